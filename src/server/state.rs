//! What only the server keeps, in `server.sqlite` beside the catalog: API keys (hashed),
//! idempotent replies, deletion records, import jobs and usage events.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::store::sqlite::{now_ms, rfc3339_ms};
use crate::{Error, Result};

// WAL with `synchronous = NORMAL`: a commit does not wait for the disk, so the writes most
// requests make (usage events) cost microseconds; a power cut can lose the last commits but never
// corrupts the file.
const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_hash BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT,
    expires_ms INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (key_prefix);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deletions (
    target_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    deletion_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (target_id, kind)
);
CREATE TABLE IF NOT EXISTS imports (
    job_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source_path TEXT NOT NULL,
    target_index_id TEXT,
    engine_job_id TEXT,
    video_id TEXT,
    error TEXT,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_ms);
CREATE TABLE IF NOT EXISTS usage (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    metric_type TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    ms INTEGER NOT NULL,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS usage_metric ON usage (metric_type, ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// How long a stored reply answers a replayed `Idempotency-Key`: the SDK retries within
/// minutes; a day leaves room for a client that resumes later.
pub const REPLAY_KEPT_MS: i64 = 24 * 3600 * 1000;

/// A stored API key, without its secret.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_id: String,
    pub name: String,
    pub key_prefix: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub expires_ms: Option<i64>,
}

impl KeyRow {
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_ms.is_none_or(|e| e > now)
    }

    pub fn expires_at(&self) -> Option<String> {
        self.expires_ms.map(rfc3339_ms)
    }
}

/// An import job as the server recorded it: where the file came from and which engine job
/// ingests it (none when the file was refused before a job could start).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub job_id: String,
    pub created_at: String,
    pub source_kind: String,
    pub file_name: String,
    pub source_path: String,
    pub target_index_id: Option<String>,
    pub engine_job_id: Option<String>,
    pub video_id: Option<String>,
    pub error: Option<String>,
    pub bytes: u64,
}

/// A usage event (a search, an upload, ...), as `GET /usage/details` lists them.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub event_id: i64,
    pub metric_type: String,
    pub value: f64,
    pub unit: String,
    pub ms: i64,
    pub metadata: Option<Value>,
}

/// The outcome of looking up an idempotency key.
pub enum Replay {
    /// Not seen before: go ahead.
    New,
    /// Seen with the same request: answer this again.
    Same { status: u16, body: Vec<u8> },
    /// Seen with another request.
    Conflict { route: String },
}

pub struct ServerState {
    db: Mutex<Connection>,
    /// When each key's `last_used_at` was last written (ms): at most once a minute per key.
    touched: Mutex<std::collections::HashMap<String, i64>>,
}

fn store(e: rusqlite::Error) -> Error {
    Error::Store(format!("server.sqlite: {e}"))
}

impl ServerState {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("server.sqlite");
        let db = Connection::open(&path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        db.busy_timeout(std::time::Duration::from_secs(10)).map_err(store)?;
        db.execute_batch(SCHEMA).map_err(store)?;
        Ok(ServerState { db: Mutex::new(db), touched: Default::default() })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A secret of `len` random bytes kept under `name`, made on first use.
    pub fn secret(&self, name: &str, len: usize) -> Result<Vec<u8>> {
        let db = self.db();
        if let Some(v) = db
            .query_row("SELECT value FROM meta WHERE key = ?1", [name], |r| r.get::<_, Vec<u8>>(0))
            .optional()
            .map_err(store)?
        {
            return Ok(v);
        }
        let mut bytes = vec![0u8; len];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        db.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![name, bytes]).map_err(store)?;
        Ok(bytes)
    }

    // ---- API keys ----

    pub fn key_count(&self) -> Result<u64> {
        self.db()
            .query_row("SELECT count(*) FROM api_keys", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(store)
    }

    pub fn insert_key(&self, row: &KeyRow) -> Result<()> {
        self.db()
            .execute(
                "INSERT INTO api_keys (key_id, name, key_prefix, key_hash, scopes, created_at, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.key_id,
                    row.name,
                    row.key_prefix,
                    row.key_hash,
                    serde_json::to_string(&row.scopes).unwrap_or_default(),
                    row.created_at,
                    row.expires_ms
                ],
            )
            .map_err(store)?;
        Ok(())
    }

    fn key_rows(&self, sql: &str, arg: &str) -> Result<Vec<KeyRow>> {
        let db = self.db();
        let mut stmt = db.prepare_cached(sql).map_err(store)?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok(KeyRow {
                    key_id: r.get(0)?,
                    name: r.get(1)?,
                    key_prefix: r.get(2)?,
                    key_hash: r.get(3)?,
                    scopes: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    created_at: r.get(5)?,
                    last_used_at: r.get(6)?,
                    revoked_at: r.get(7)?,
                    expires_ms: r.get(8)?,
                })
            })
            .map_err(store)?;
        rows.collect::<rusqlite::Result<_>>().map_err(store)
    }

    const KEY_COLUMNS: &'static str =
        "SELECT key_id, name, key_prefix, key_hash, scopes, created_at, last_used_at, revoked_at, expires_ms FROM api_keys";

    pub fn keys(&self) -> Result<Vec<KeyRow>> {
        self.key_rows(&format!("{} WHERE ?1 = ?1 ORDER BY created_at, key_id", Self::KEY_COLUMNS), "")
    }

    pub fn key(&self, key_id: &str) -> Result<Option<KeyRow>> {
        Ok(self.key_rows(&format!("{} WHERE key_id = ?1", Self::KEY_COLUMNS), key_id)?.pop())
    }

    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<KeyRow>> {
        self.key_rows(&format!("{} WHERE key_prefix = ?1", Self::KEY_COLUMNS), prefix)
    }

    /// Record that a key was used (to the minute).
    pub fn touch_key(&self, key_id: &str) -> Result<()> {
        let now = now_ms();
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.get(key_id).is_some_and(|t| now - t < 60_000) {
                return Ok(());
            }
            touched.insert(key_id.to_string(), now);
        }
        self.db()
            .execute("UPDATE api_keys SET last_used_at = ?2 WHERE key_id = ?1", params![key_id, rfc3339_ms(now_ms())])
            .map_err(store)?;
        Ok(())
    }

    pub fn revoke_key(&self, key_id: &str) -> Result<bool> {
        let n = self
            .db()
            .execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE key_id = ?1",
                params![key_id, rfc3339_ms(now_ms())],
            )
            .map_err(store)?;
        Ok(n > 0)
    }

    /// Give a key a new secret (same id, name and scopes); the old secret stops working.
    pub fn replace_secret(&self, key_id: &str, prefix: &str, hash: &[u8]) -> Result<bool> {
        let n = self
            .db()
            .execute(
                "UPDATE api_keys SET key_prefix = ?2, key_hash = ?3 WHERE key_id = ?1 AND revoked_at IS NULL",
                params![key_id, prefix, hash],
            )
            .map_err(store)?;
        Ok(n > 0)
    }

    pub fn delete_key(&self, key_id: &str) -> Result<bool> {
        Ok(self.db().execute("DELETE FROM api_keys WHERE key_id = ?1", [key_id]).map_err(store)? > 0)
    }

    // ---- idempotency ----

    pub fn replay(&self, key: &str, route: &str, fingerprint: &[u8]) -> Result<Replay> {
        let row = self
            .db()
            .query_row(
                "SELECT route, fingerprint, status, body FROM idempotency WHERE key = ?1 AND created_ms >= ?2",
                params![key, now_ms() - REPLAY_KEPT_MS],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, u16>(2)?, r.get::<_, Vec<u8>>(3)?)),
            )
            .optional()
            .map_err(store)?;
        Ok(match row {
            None => Replay::New,
            Some((r, f, status, body)) if r == route && f == fingerprint => Replay::Same { status, body },
            Some((route, ..)) => Replay::Conflict { route },
        })
    }

    pub fn remember(&self, key: &str, route: &str, fingerprint: &[u8], status: u16, body: &[u8]) -> Result<()> {
        let db = self.db();
        db.execute("DELETE FROM idempotency WHERE created_ms < ?1", [now_ms() - REPLAY_KEPT_MS]).map_err(store)?;
        db.execute(
            "INSERT OR IGNORE INTO idempotency (key, route, fingerprint, status, body, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, route, fingerprint, status, body, now_ms()],
        )
        .map_err(store)?;
        Ok(())
    }

    // ---- deletions ----

    /// The deletion record of `target_id` (kind `index`, `video`, `prompt` or `api_key`), if
    /// it was deleted through the server.
    pub fn deletion(&self, target_id: &str, kind: &str) -> Result<Option<(String, String)>> {
        self.db()
            .query_row(
                "SELECT deletion_id, status FROM deletions WHERE target_id = ?1 AND kind = ?2",
                [target_id, kind],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(store)
    }

    /// Record that `target_id` (also known as each of `aliases`, such as the name it was deleted
    /// by) is deleted; a repeated DELETE answers this record.
    pub fn record_deletion(&self, target_id: &str, aliases: &[&str], kind: &str) -> Result<(String, String)> {
        let id = crate::ids::new("del");
        let db = self.db();
        for target in std::iter::once(target_id).chain(aliases.iter().copied()) {
            db.execute(
                "INSERT OR IGNORE INTO deletions (target_id, kind, deletion_id, status, created_at)
                 VALUES (?1, ?2, ?3, 'deleted', ?4)",
                params![target, kind, id, rfc3339_ms(now_ms())],
            )
            .map_err(store)?;
        }
        Ok((id, "deleted".into()))
    }

    // ---- import jobs ----

    pub fn insert_import(&self, row: &ImportRow) -> Result<()> {
        self.db()
            .execute(
                "INSERT INTO imports (job_id, seq, created_at, source_kind, file_name, source_path, target_index_id,
                                      engine_job_id, video_id, error, bytes)
                 VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM imports), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    row.job_id,
                    row.created_at,
                    row.source_kind,
                    row.file_name,
                    row.source_path,
                    row.target_index_id,
                    row.engine_job_id,
                    row.video_id,
                    row.error,
                    row.bytes as i64
                ],
            )
            .map_err(store)?;
        Ok(())
    }

    fn import_rows(&self, filter: &str, arg: &str) -> Result<Vec<ImportRow>> {
        let db = self.db();
        let sql = format!(
            "SELECT job_id, created_at, source_kind, file_name, source_path, target_index_id, engine_job_id,
                    video_id, error, bytes FROM imports WHERE {filter} ORDER BY seq DESC"
        );
        let mut stmt = db.prepare_cached(&sql).map_err(store)?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok(ImportRow {
                    job_id: r.get(0)?,
                    created_at: r.get(1)?,
                    source_kind: r.get(2)?,
                    file_name: r.get(3)?,
                    source_path: r.get(4)?,
                    target_index_id: r.get(5)?,
                    engine_job_id: r.get(6)?,
                    video_id: r.get(7)?,
                    error: r.get(8)?,
                    bytes: r.get::<_, i64>(9)? as u64,
                })
            })
            .map_err(store)?;
        rows.collect::<rusqlite::Result<_>>().map_err(store)
    }

    pub fn import(&self, job_id: &str) -> Result<Option<ImportRow>> {
        Ok(self.import_rows("job_id = ?1", job_id)?.pop())
    }

    pub fn imports(&self) -> Result<Vec<ImportRow>> {
        self.import_rows("?1 = ?1", "")
    }

    // ---- usage ----

    pub fn record_usage(&self, metric_type: &str, value: f64, unit: &str, metadata: Option<&Value>) -> Result<()> {
        self.db()
            .execute(
                "INSERT INTO usage (metric_type, value, unit, ms, metadata) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![metric_type, value, unit, now_ms(), metadata.map(|m| m.to_string())],
            )
            .map_err(store)?;
        Ok(())
    }

    /// Sum and count of each metric between two times (ms, end exclusive).
    pub fn usage_totals(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(String, f64, u64)>> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached(
                "SELECT metric_type, sum(value), count(*) FROM usage WHERE ms >= ?1 AND ms < ?2 GROUP BY 1 ORDER BY 1",
            )
            .map_err(store)?;
        let rows = stmt
            .query_map(params![from_ms, to_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))
            .map_err(store)?;
        rows.collect::<rusqlite::Result<_>>().map_err(store)
    }

    pub fn usage_events(&self, metric: Option<&str>, from_ms: i64, to_ms: i64, limit: u32) -> Result<Vec<UsageRow>> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached(
                "SELECT event_id, metric_type, value, unit, ms, metadata FROM usage
                 WHERE (?1 IS NULL OR metric_type = ?1) AND ms >= ?2 AND ms < ?3 ORDER BY event_id DESC LIMIT ?4",
            )
            .map_err(store)?;
        let rows = stmt
            .query_map(params![metric, from_ms, to_ms, limit], |r| {
                Ok(UsageRow {
                    event_id: r.get(0)?,
                    metric_type: r.get(1)?,
                    value: r.get(2)?,
                    unit: r.get(3)?,
                    ms: r.get(4)?,
                    metadata: r.get::<_, Option<String>>(5)?.and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .map_err(store)?;
        rows.collect::<rusqlite::Result<_>>().map_err(store)
    }
}
