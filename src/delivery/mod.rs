//! Moving media in and results out: connectors (a local folder, S3, Azure Blob, GCS through
//! `object_store`), import jobs, exports and webhooks.
//!
//! What these keep lives in `delivery.sqlite` beside the catalog (`db::Db`): connectors (secrets
//! apart, in `secrets/`, readable by the owner only), import jobs and their files, exports,
//! webhooks and their deliveries. Import and export work runs as engine jobs (`import`,
//! `export`), so it is leased, cancellable and picked up again after a crash; webhook deliveries
//! are made by one dispatcher thread per engine that tails the event log.

pub(crate) mod automations;
pub(crate) mod collections;
pub(crate) mod connectors;
pub(crate) mod db;
pub(crate) mod exports;
pub(crate) mod imports;
pub(crate) mod markers;
mod table;
pub(crate) mod webhooks;

pub use automations::{parse_interval, ExportAutomation, ImportAutomation};
pub use collections::{Collection, CollectionThumbnail, NumberedPage, MAX_PAGE_SIZE};
pub use connectors::{CloudFile, Connector, ConnectorTest, NewConnector, Provider};
pub use exports::{Export, ExportFormat, ExportRequest, ExportTarget};
pub use imports::{ImportFile, ImportJob, ImportOutput, ImportProgress, ImportRequest};
pub use markers::{Marker, MarkerUpsert, TARGET_TYPES};
pub use webhooks::{canonical_json, signature, Delivery, NewWebhook, Webhook, WebhookTest, WebhookUpdate, EVENT_NAMES};

use std::future::Future;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The runtime that drives `object_store` and HTTP clients for the engine's blocking code.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("videovector-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Internal(format!("cannot start the I/O runtime: {e}")))
}

/// Run an async storage or HTTP call from blocking code (engine threads, or the server's
/// blocking pool).
pub(crate) fn block_on<F: Future + Send>(f: F) -> Result<F::Output>
where
    F::Output: Send,
{
    let rt = runtime()?;
    // Inside a runtime's worker (an async caller) block_on would panic: hand the future to the
    // I/O runtime and wait on a thread that may block.
    if tokio::runtime::Handle::try_current().is_ok() {
        Ok(std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join())
            .map_err(|_| Error::Internal("an I/O task panicked".into()))?)
    } else {
        Ok(rt.block_on(f))
    }
}

/// A glob over file paths, with brace sets (`*.{mp4,mov}`); `*` matches within one path
/// segment, `**` across them.
pub(crate) fn glob(field: &str, pattern: &str) -> Result<globset::GlobMatcher> {
    let pattern = if pattern.trim().is_empty() { "*" } else { pattern.trim() };
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::invalid(field, format!("{pattern:?} is not a glob pattern: {e}")))
}

/// A secret of `bytes` random bytes, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A path under a connector (a prefix or subpath): relative, without `.` or `..` segments.
/// Returns it without leading and trailing slashes.
pub(crate) fn relative_path(field: &str, path: &str) -> Result<String> {
    let p = path.trim().trim_matches('/');
    if p.split('/').any(|seg| seg == ".." || seg == ".") || p.contains('\\') {
        return Err(Error::invalid(field, format!("{path:?} may not contain . or .. segments")));
    }
    Ok(p.to_string())
}
