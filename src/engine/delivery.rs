//! `engine.connectors()`, `engine.imports()`, `engine.exports()`, `engine.webhooks()`: moving
//! media in and results out (see [`crate::delivery`]).

use std::path::Path;

use super::{Core, Engine};
use crate::delivery::{
    connectors, exports, imports, webhooks, CloudFile, Connector, ConnectorTest, Delivery, Export, ExportRequest,
    ImportFile, ImportJob, ImportOutput, ImportRequest, NewConnector, NewWebhook, Webhook, WebhookTest, WebhookUpdate,
};
use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::pipeline::IngestOptions;
use crate::types::{JobKind, JobRequest, Scope};

/// `client.connectors`: where media comes from and exports go.
pub struct Connectors<'a> {
    engine: &'a Engine,
}

impl<'a> Connectors<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Connectors { engine }
    }

    /// Create a connector; its secrets are kept in a file only the owner can read and never
    /// returned.
    pub fn create(&self, new: &NewConnector) -> Result<Connector> {
        connectors::create(&self.engine.core().delivery, self.engine.data_dir(), new)
    }

    pub fn list(&self) -> Result<Vec<Connector>> {
        connectors::list(&self.engine.core().delivery)
    }

    pub fn retrieve(&self, connector_id: &str) -> Result<Connector> {
        connectors::get(&self.engine.core().delivery, connector_id)
    }

    pub fn delete(&self, connector_id: &str) -> Result<()> {
        connectors::delete(&self.engine.core().delivery, self.engine.data_dir(), connector_id)
    }

    /// Check that the storage answers with these credentials (the outcome is kept on the connector).
    pub fn test(&self, connector_id: &str) -> Result<ConnectorTest> {
        connectors::test(&self.engine.core().delivery, self.engine.data_dir(), connector_id)
    }

    /// Files under `prefix` matching `pattern` (a glob with brace sets: `*.{mp4,mov}`).
    pub fn browse(&self, connector_id: &str, prefix: &str, pattern: &str, recursive: bool) -> Result<Vec<CloudFile>> {
        connectors::Open::new(&self.engine.core().delivery, self.engine.data_dir(), connector_id)?
            .browse(prefix, pattern, recursive)
    }
}

/// `client.import_jobs`: a connector's files, imported into an index.
pub struct Imports<'a> {
    engine: &'a Engine,
}

impl<'a> Imports<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Imports { engine }
    }

    /// Start an import; it runs on the engine's workers.
    pub fn create(&self, req: &ImportRequest) -> Result<ImportJob> {
        let core = self.engine.core();
        let id = imports::create(&core.delivery, &core.stores, req)?;
        self.start(&id)
    }

    /// Queue the import's job and wake the workers. The import is read before they wake: it is
    /// what was accepted (pending), where read after, a short import could already be over.
    fn start(&self, import_id: &str) -> Result<ImportJob> {
        let core = self.engine.core();
        let job = core.stores.jobs.create_job(&JobRequest {
            kind: JobKind::Import,
            video_id: None,
            index_id: None,
            request_json: serde_json::to_string(&imports::ImportJobRequest { import_id: import_id.to_string() })
                .map_err(|e| Error::Internal(format!("import request: {e}")))?,
        })?;
        imports::attach_job(&core.delivery, import_id, &job.job_id)?;
        let accepted = self.retrieve(import_id)?;
        self.engine.pool().notify();
        Ok(accepted)
    }

    pub fn retrieve(&self, import_id: &str) -> Result<ImportJob> {
        imports::view(&self.engine.core().delivery, &self.engine.core().stores, import_id)
    }

    /// Imports, newest first, optionally only those of one status.
    pub fn list(&self, status: Option<&str>) -> Result<Vec<ImportJob>> {
        imports::list(&self.engine.core().delivery, &self.engine.core().stores, status)
    }

    /// The import's listed files (only the failed ones if asked), in listing order.
    pub fn files(&self, import_id: &str, failed_only: bool) -> Result<Vec<ImportFile>> {
        imports::file_page(&self.engine.core().delivery, &self.engine.core().stores, import_id, failed_only)
    }

    /// The media items the import made, in listing order.
    pub fn outputs(&self, import_id: &str) -> Result<Vec<ImportOutput>> {
        imports::outputs(&self.engine.core().delivery, &self.engine.core().stores, import_id)
    }

    /// Stop an import and the ingests it started; media already ready stays.
    pub fn cancel(&self, import_id: &str) -> Result<ImportJob> {
        let core = self.engine.core();
        for job in imports::cancel(&core.delivery, &core.stores, import_id)? {
            // A job that ended in between is fine.
            let _ = self.engine.jobs().cancel(&job);
        }
        self.retrieve(import_id)
    }

    /// Import the failed files of an ended import again (all, or those named by path or file
    /// name), and, for a cancelled import, the files it had not reached.
    pub fn retry(&self, import_id: &str, files: Option<&[String]>) -> Result<ImportJob> {
        let core = self.engine.core();
        let n = imports::reset_failed(&core.delivery, &core.stores, import_id, files)?;
        if n == 0 {
            return Err(Error::Conflict(format!("import job {import_id} has no failed files to retry")));
        }
        self.start(import_id)
    }
}

/// `client.exports`: an index or a run, to a file or a connector.
pub struct Exports<'a> {
    engine: &'a Engine,
}

impl<'a> Exports<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Exports { engine }
    }

    /// Start an export; it runs on the engine's workers.
    pub fn create(&self, req: &ExportRequest) -> Result<Export> {
        let core = self.engine.core();
        let id = exports::create(&core.delivery, &core.stores, req)?;
        let job = core.stores.jobs.create_job(&JobRequest {
            kind: JobKind::Export,
            video_id: None,
            index_id: None,
            request_json: serde_json::to_string(&exports::ExportJobRequest { export_id: id.clone() })
                .map_err(|e| Error::Internal(format!("export request: {e}")))?,
        })?;
        exports::attach_job(&core.delivery, &id, &job.job_id)?;
        // Read before the workers wake, as for imports.
        let accepted = self.retrieve(&id)?;
        self.engine.pool().notify();
        Ok(accepted)
    }

    pub fn retrieve(&self, export_id: &str) -> Result<Export> {
        exports::get(&self.engine.core().delivery, &self.engine.core().stores, export_id)
    }

    /// The newest `limit` exports.
    pub fn list(&self, limit: usize) -> Result<Vec<Export>> {
        exports::list(&self.engine.core().delivery, &self.engine.core().stores, limit)
    }
}

/// `client.webhooks`: events posted to a URL, signed, retried until delivered.
pub struct Webhooks<'a> {
    engine: &'a Engine,
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Webhooks { engine }
    }

    /// Create a webhook: returns it and its signing secret (shown only here and on rotation).
    /// It receives events appended from now on.
    pub fn create(&self, new: &NewWebhook) -> Result<(Webhook, String)> {
        webhooks::create(&self.engine.core().delivery, &self.engine.core().stores, new)
    }

    pub fn list(&self) -> Result<Vec<Webhook>> {
        webhooks::list(&self.engine.core().delivery)
    }

    pub fn retrieve(&self, webhook_id: &str) -> Result<Webhook> {
        webhooks::get(&self.engine.core().delivery, webhook_id)
    }

    pub fn update(&self, webhook_id: &str, update: &WebhookUpdate) -> Result<Webhook> {
        webhooks::update(&self.engine.core().delivery, &self.engine.core().stores, webhook_id, update)
    }

    pub fn delete(&self, webhook_id: &str) -> Result<()> {
        webhooks::delete(&self.engine.core().delivery, webhook_id)
    }

    /// A new signing secret; the old one stops at once.
    pub fn rotate_secret(&self, webhook_id: &str) -> Result<String> {
        webhooks::rotate_secret(&self.engine.core().delivery, webhook_id)
    }

    /// Send a signed `webhook.test` event now.
    pub fn test(&self, webhook_id: &str) -> Result<WebhookTest> {
        webhooks::test(&self.engine.core().delivery, webhook_id)
    }

    /// Deliveries of a webhook, newest first, optionally of one status.
    pub fn deliveries(&self, webhook_id: &str, status: Option<&str>, limit: usize) -> Result<Vec<Delivery>> {
        webhooks::deliveries(&self.engine.core().delivery, webhook_id, status, limit)
    }

    pub fn delivery(&self, delivery_id: &str) -> Result<Delivery> {
        webhooks::delivery(&self.engine.core().delivery, delivery_id)
    }

    /// Send a delivery again now.
    pub fn retry_delivery(&self, delivery_id: &str) -> Result<Delivery> {
        webhooks::retry_delivery(&self.engine.core().delivery, delivery_id)
    }
}

/// Run an import's engine job: downloads go to the data folder, each file becomes an ingest
/// job into the import's index.
pub(crate) fn run_import(core: &Core, import_id: &str, ctx: &JobContext) -> Result<()> {
    let submit = |path: &Path, title: &str, index_id: &str| {
        let opts =
            IngestOptions { index: Some(index_id.to_string()), title: Some(title.to_string()), ..Default::default() };
        let scope = Scope::Index(core.stores.catalog.index(index_id)?.index_id);
        super::videos::submit_file(&core.stores, path, &scope, &opts)
    };
    imports::run(&core.delivery, &core.stores, &core.root, import_id, ctx, &submit)
}

pub(crate) fn run_export(core: &Core, export_id: &str, ctx: &JobContext) -> Result<()> {
    exports::run(&core.delivery, &core.stores, &core.root, export_id, ctx)
}
