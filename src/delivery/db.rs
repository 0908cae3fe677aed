//! `delivery.sqlite`: connectors, import jobs and files, exports, webhooks and deliveries.
//!
//! One connection behind a mutex: these are small rows written at human or per-file rates,
//! next to the catalog's own writer. WAL, so another process (the CLI beside a server) reads
//! while one writes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS connectors (
    connector_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    scopes TEXT NOT NULL,
    import_mode TEXT NOT NULL,
    export_base_path TEXT,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_tested_at TEXT,
    last_test_result TEXT,
    last_test_error TEXT
);
CREATE TABLE IF NOT EXISTS import_jobs (
    job_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    connector_id TEXT NOT NULL,
    index_id TEXT NOT NULL,
    source_prefix TEXT NOT NULL,
    file_pattern TEXT NOT NULL,
    recursive INTEGER NOT NULL,
    engine_job_id TEXT,
    scanned INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    finish_event TEXT,
    only_new INTEGER NOT NULL DEFAULT 0,
    execution_run_id TEXT
);
CREATE TABLE IF NOT EXISTS import_files (
    job_id TEXT NOT NULL REFERENCES import_jobs (job_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    status TEXT NOT NULL,
    video_id TEXT,
    ingest_job_id TEXT,
    bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    skip_reason TEXT,
    PRIMARY KEY (job_id, ordinal)
);
CREATE TABLE IF NOT EXISTS imported_sources (
    connector_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    job_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    PRIMARY KEY (connector_id, path, size_bytes, last_modified)
);
CREATE TABLE IF NOT EXISTS exports (
    export_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    export_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    format TEXT NOT NULL,
    prompt_run_ids TEXT,
    destination_connector_id TEXT,
    destination_base_path TEXT,
    destination_subpath TEXT,
    destination_uri TEXT,
    engine_job_id TEXT,
    file_path TEXT,
    file_size_bytes INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    index_ids TEXT,
    status TEXT NOT NULL,
    secret TEXT NOT NULL,
    metadata TEXT,
    from_event INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    last_failure_at TEXT,
    last_success_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    lease_owner TEXT,
    lease_until_ms INTEGER,
    last_attempt_at TEXT,
    response_status_code INTEGER,
    response_body TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (webhook_id, event_key)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_ms);
CREATE INDEX IF NOT EXISTS deliveries_webhook ON deliveries (webhook_id, seq);
CREATE TABLE IF NOT EXISTS automations (
    index_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (index_id, kind)
);
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_media (
    collection_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (collection_id, video_id)
);
CREATE INDEX IF NOT EXISTS collection_media_video ON collection_media (video_id);
CREATE TABLE IF NOT EXISTS markers (
    marker_id TEXT PRIMARY KEY,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    field_path TEXT NOT NULL,
    color TEXT,
    note TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (target_type, target_id, field_path)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The delivery database of one data folder.
pub(crate) struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("delivery.sqlite");
        let conn = Connection::open(&path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(|e| Error::Store(e.to_string()))?;
        conn.execute_batch(SCHEMA).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        Ok(Db { conn: Mutex::new(conn) })
    }

    /// Run `f` on the connection.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| Error::Store(format!("delivery.sqlite: {e}")))
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Store(format!("delivery.sqlite: {e}")))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| Error::Store(format!("delivery.sqlite: {e}")))?;
        Ok(out)
    }

    /// The next value of a per-table creation counter (list order).
    pub fn next_seq(tx: &Connection, table: &str) -> rusqlite::Result<i64> {
        tx.query_row(&format!("SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}"), [], |r| r.get(0))
    }
}

/// `rusqlite` errors as the crate's store error.
pub(crate) trait Sql<T> {
    fn sql(self) -> Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(|e| Error::Store(format!("delivery.sqlite: {e}")))
    }
}
