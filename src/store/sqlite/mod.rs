//! The embedded backend: one SQLite file (WAL) for the catalog, vectors, jobs and events, and
//! usearch files for the ANN indexes, in the data folder.
//!
//! Concurrency: one writer connection (writes are short transactions, `BEGIN IMMEDIATE`) beside
//! a small pool of read connections, so a search never waits behind a write transaction; other
//! processes on the same folder coordinate through SQLite's locks (busy timeout 10 s).

pub(crate) mod ann;
mod catalog;
mod filter;
mod jobs;
mod prompts;
mod sql;
pub(crate) mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use ann::{AnnConfig, AnnScalar};

use crate::error::{Error, Result};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
///
/// Segments carry `run_id` ('' for the ingest segmentation) because the API's segments are
/// run-backed; transcripts, vectors and prompt results reference `segment_id`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE indexes (
    index_id        TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    created_at      TEXT NOT NULL
);
CREATE TABLE media (
    video_id        TEXT PRIMARY KEY,
    index_id        TEXT REFERENCES indexes(index_id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    source_path     TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    media_type      TEXT CHECK (media_type IN ('video', 'audio', 'image')),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    error           TEXT,
    duration_us     INTEGER,
    metadata_json   TEXT,
    segmentation_json TEXT,
    gif_path        TEXT,
    warnings_json   TEXT,
    idempotency_key TEXT UNIQUE,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX media_content_per_index ON media (coalesce(index_id, ''), content_hash);
CREATE INDEX media_status ON media (status);
CREATE TABLE segments (
    segment_id      TEXT PRIMARY KEY,
    video_id        TEXT NOT NULL REFERENCES media(video_id) ON DELETE CASCADE,
    run_id          TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL CHECK (kind IN ('video', 'audio')),
    ordinal         INTEGER NOT NULL,
    start_us        INTEGER NOT NULL,
    end_us          INTEGER NOT NULL CHECK (end_us >= start_us),
    segmentation_type TEXT NOT NULL,
    keyframe_us     INTEGER,
    keyframe_frame  INTEGER,
    thumbnail_path  TEXT,
    UNIQUE (video_id, run_id, kind, ordinal)
);
"#,
    r#"
-- Vectors: one per (segment, space), with the model that made it. The ANN files are caches of
-- this table and are rebuilt from it whenever they disagree.
CREATE TABLE vectors (
    vector_id       INTEGER PRIMARY KEY,
    segment_id      TEXT NOT NULL REFERENCES segments(segment_id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    space           TEXT NOT NULL CHECK (space IN ('visual', 'transcript', 'metadata')),
    model_id        TEXT NOT NULL,
    model_revision  TEXT NOT NULL,
    dims            INTEGER NOT NULL,
    vector          BLOB NOT NULL,
    source_text     TEXT,
    UNIQUE (segment_id, space)
);
CREATE INDEX vectors_scope_space ON vectors (scope, space, vector_id);
-- The model each (scope, space) was embedded with: mixing models in one space is refused.
CREATE TABLE space_models (
    scope           TEXT NOT NULL,
    space           TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    model_revision  TEXT NOT NULL,
    dims            INTEGER NOT NULL,
    PRIMARY KEY (scope, space)
);
-- What the ANN file of a (scope, space) held when it was last saved.
CREATE TABLE ann_files (
    scope           TEXT NOT NULL,
    space           TEXT NOT NULL,
    count           INTEGER NOT NULL,
    key_sum         INTEGER NOT NULL,
    max_key         INTEGER NOT NULL,
    PRIMARY KEY (scope, space)
);
"#,
    r#"
-- Transcripts: timed phrases per media item, from the audio segment (window) they were heard in,
-- with a full-text index for keyword search.
CREATE TABLE phrases (
    phrase_id       INTEGER PRIMARY KEY,
    video_id        TEXT NOT NULL REFERENCES media(video_id) ON DELETE CASCADE,
    window_segment_id TEXT REFERENCES segments(segment_id) ON DELETE CASCADE,
    start_us        INTEGER NOT NULL,
    end_us          INTEGER NOT NULL CHECK (end_us >= start_us),
    text            TEXT NOT NULL,
    language        TEXT,
    model_id        TEXT NOT NULL,
    model_revision  TEXT NOT NULL
);
CREATE INDEX phrases_video ON phrases (video_id, start_us);
CREATE VIRTUAL TABLE phrases_fts USING fts5(text, content='phrases', content_rowid='phrase_id');
CREATE TRIGGER phrases_ai AFTER INSERT ON phrases BEGIN
    INSERT INTO phrases_fts (rowid, text) VALUES (new.phrase_id, new.text);
END;
CREATE TRIGGER phrases_ad AFTER DELETE ON phrases BEGIN
    INSERT INTO phrases_fts (phrases_fts, rowid, text) VALUES ('delete', old.phrase_id, old.text);
END;
"#,
    r#"
-- Requests are kept with their media, so a resume runs with the caller's options.
ALTER TABLE media ADD COLUMN request_json TEXT;
-- Every write to a space bumps its generation: a cached ANN index compares generations to
-- notice writes made by any process.
ALTER TABLE space_models ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
-- ANN keys are vector ids; AUTOINCREMENT so that a key is never reused for another vector.
CREATE TABLE vectors_v4 (
    vector_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    segment_id      TEXT NOT NULL REFERENCES segments(segment_id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    space           TEXT NOT NULL CHECK (space IN ('visual', 'transcript', 'metadata')),
    model_id        TEXT NOT NULL,
    model_revision  TEXT NOT NULL,
    dims            INTEGER NOT NULL,
    vector          BLOB NOT NULL,
    source_text     TEXT,
    UNIQUE (segment_id, space)
);
INSERT INTO vectors_v4 SELECT vector_id, segment_id, scope, space, model_id, model_revision, dims, vector, source_text FROM vectors;
DROP TABLE vectors;
ALTER TABLE vectors_v4 RENAME TO vectors;
CREATE INDEX vectors_scope_space ON vectors (scope, space, vector_id);
CREATE TRIGGER vectors_generation_ai AFTER INSERT ON vectors BEGIN
    UPDATE space_models SET generation = generation + 1 WHERE scope = new.scope AND space = new.space;
END;
CREATE TRIGGER vectors_generation_ad AFTER DELETE ON vectors BEGIN
    UPDATE space_models SET generation = generation + 1 WHERE scope = old.scope AND space = old.space;
END;
-- ANN files now carry their generation in their name.
DROP TABLE ann_files;
CREATE TABLE jobs (
    job_id          TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    video_id        TEXT,
    index_id        TEXT,
    request_json    TEXT NOT NULL,
    progress_json   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner           TEXT,
    lease_until_ms  INTEGER,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_video ON jobs (video_id);
CREATE TABLE events (
    event_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type      TEXT NOT NULL,
    video_id        TEXT,
    index_id        TEXT,
    job_id          TEXT,
    segment_id      TEXT,
    run_id          TEXT,
    created_at      TEXT NOT NULL,
    payload_json    TEXT
);
"#,
    // 5: prompts, prompt runs, their results, retries and the language-model call log. Records
    // are JSON documents beside the columns that are queried.
    r#"
CREATE TABLE prompts (
    prompt_id       TEXT PRIMARY KEY,
    is_active       INTEGER NOT NULL DEFAULT 1,
    doc             TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT,
    created_at      TEXT NOT NULL
);
CREATE TABLE prompt_runs (
    run_id          TEXT PRIMARY KEY,
    prompt_id       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'completed_with_failures', 'failed', 'cancelled')),
    doc             TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX prompt_runs_prompt ON prompt_runs (prompt_id);
CREATE TABLE run_media (
    run_id          TEXT NOT NULL REFERENCES prompt_runs(run_id) ON DELETE CASCADE,
    video_id        TEXT NOT NULL,
    ordinal         INTEGER NOT NULL,
    PRIMARY KEY (run_id, video_id)
);
CREATE TABLE run_results (
    result_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL REFERENCES prompt_runs(run_id) ON DELETE CASCADE,
    video_id        TEXT NOT NULL,
    segment_id      TEXT NOT NULL,
    start_us        INTEGER NOT NULL,
    succeeded       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    doc             TEXT NOT NULL,
    UNIQUE (run_id, segment_id)
);
CREATE INDEX run_results_video ON run_results (run_id, video_id, start_us);
CREATE TABLE video_results (
    run_id          TEXT NOT NULL REFERENCES prompt_runs(run_id) ON DELETE CASCADE,
    video_id        TEXT NOT NULL,
    succeeded       INTEGER NOT NULL,
    doc             TEXT NOT NULL,
    PRIMARY KEY (run_id, video_id)
);
CREATE TABLE run_retries (
    retry_id        TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES prompt_runs(run_id) ON DELETE CASCADE,
    idempotency_key TEXT UNIQUE,
    doc             TEXT NOT NULL
);
CREATE TABLE llm_calls (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    llm_call_id     TEXT NOT NULL UNIQUE,
    run_id          TEXT,
    model           TEXT NOT NULL,
    succeeded       INTEGER NOT NULL,
    input_tokens    INTEGER NOT NULL,
    cached_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL,
    prefill_ms      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    doc             TEXT NOT NULL
);
CREATE INDEX llm_calls_run ON llm_calls (run_id, seq);
-- Idempotency keys of writes that have no row of their own to carry one (prompt updates).
CREATE TABLE idempotency_keys (
    operation       TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    PRIMARY KEY (operation, key)
);
CREATE INDEX llm_calls_model ON llm_calls (model);
"#,
    // 6: the leaves of each result, for filters (`filter.rs`; existing results are indexed by
    // `filter::index_existing` in the same transaction).
    filter::MIGRATION,
];

/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// The SQLite file: one writer, pooled readers.
pub(crate) struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// rusqlite results into the crate's error.
pub(crate) trait Sql<T> {
    fn db(self) -> Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::Store(e.to_string()))
    }
}

impl Db {
    /// Open or create the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = Self::connect(path, false)?;
        let db = Db { path: path.to_path_buf(), writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) };
        db.migrate()?;
        Ok(db)
    }

    fn connect(path: &Path, read_only: bool) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| Self::context_of(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| Self::context_of(path, e))?;
        let pragmas = if read_only {
            "PRAGMA foreign_keys = ON; PRAGMA query_only = ON;"
        } else {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        };
        conn.execute_batch(pragmas).map_err(|e| Self::context_of(path, e))?;
        Ok(conn)
    }

    fn context_of(path: &Path, e: rusqlite::Error) -> Error {
        Error::Store(format!("catalog {}: {e}", path.display()))
    }

    /// Name the file in store errors.
    fn context(&self, e: Error) -> Error {
        match e {
            Error::Store(m) if !m.starts_with("catalog ") => {
                Error::Store(format!("catalog {}: {m}", self.path.display()))
            }
            e => e,
        }
    }

    /// Run reads on a pooled connection (never the writer: reads do not wait for writes).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => Self::connect(&self.path, true)?,
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS && conn.is_autocommit() {
            idle.push(conn);
        }
        out.map_err(|e| self.context(e))
    }

    /// Run reads that must see one snapshot (several statements) on a pooled connection.
    pub fn read_snapshot<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let out = f(&tx)?;
            tx.finish().db()?;
            Ok(out)
        })
    }

    /// Run `f` in one write transaction (committed when it returns `Ok`, rolled back otherwise).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written: the transaction rolls back.
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
            let out = f(&tx)?;
            tx.commit().db()?;
            Ok(out)
        };
        run(&mut conn).map_err(|e| self.context(e))
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(Error::Store(format!(
                "catalog {}: schema version {version} is newer than this build knows ({}); upgrade videovector",
                self.path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
            // Another process may have migrated while this one waited for the lock.
            let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
            if now as usize > i {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| Self::context_of(&self.path, e))?;
            if i + 1 == 6 {
                filter::index_existing(&tx)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).db()?;
            tx.commit().db()?;
        }
        Ok(())
    }
}

/// The embedded store: implements every store trait over one [`Db`] and the ANN files.
pub(crate) struct SqliteStore {
    db: Db,
    ann: vectors::AnnCache,
    result_vectors: vectors::ResultVectorCache,
}

impl SqliteStore {
    /// Open (creating) the catalog at `path`, with ANN files under `ann_dir`.
    pub fn open(path: &Path, ann_dir: &Path, config: AnnConfig) -> Result<Self> {
        Ok(SqliteStore {
            db: Db::open(path)?,
            ann: vectors::AnnCache::new(ann_dir, config),
            result_vectors: Default::default(),
        })
    }
}

/// Current UTC time as RFC 3339 with milliseconds, e.g. `2026-04-20T09:30:00.123Z`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339_ms(now_ms())
}

/// A time given in milliseconds since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The key a scope has in SQLite columns: the index id, or '' for the playground.
fn scope_key(scope: &crate::types::Scope) -> &str {
    scope.index_id().map_or("", |i| i.as_str())
}

fn scope_from_key(key: String) -> crate::types::Scope {
    if key.is_empty() {
        crate::types::Scope::Playground
    } else {
        crate::types::Scope::Index(key.into())
    }
}

/// Cursors are opaque to callers: `c` followed by the last row's rowid.
fn page_bounds(page: &crate::types::PageRequest) -> Result<(i64, i64)> {
    let limit = page.limit()?;
    let after = match &page.cursor {
        None => 0,
        Some(c) => c
            .strip_prefix('c')
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::invalid("cursor", format!("{c:?} is not a cursor this listing returned")))?,
    };
    Ok((i64::from(limit), after))
}

fn paginate<T>(mut rows: Vec<(T, i64)>, limit: i64) -> crate::types::Page<T> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(|(_, rowid)| format!("c{rowid}")) } else { None };
    crate::types::Page::new(rows.into_iter().map(|(t, _)| t).collect(), next_cursor)
}

/// A column holding one of an enum's API strings.
fn parse_column<T: std::str::FromStr>(i: usize, value: &str) -> rusqlite::Result<T> {
    value.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unexpected value {value:?}").into(),
        )
    })
}

/// Append an event inside the caller's transaction.
fn append_event(tx: &Connection, e: &crate::types::NewEvent) -> Result<u64> {
    tx.execute(
        "INSERT INTO events (event_type, video_id, index_id, job_id, created_at, payload_json, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            e.event_type.as_str(),
            e.video_id.as_deref(),
            e.index_id.as_deref(),
            e.job_id.as_deref(),
            now_rfc3339(),
            (!e.payload.is_null()).then(|| e.payload.to_string()),
            e.run_id.as_deref()
        ],
    )
    .db()?;
    Ok(tx.last_insert_rowid() as u64)
}
