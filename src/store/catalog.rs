//! The SQLite catalog: indexes, media and segments, with versioned migrations.
//!
//! Durability: WAL journal, every write is one transaction, and a media item only becomes
//! `completed` in the same transaction that stores its segments. A process killed at any point
//! leaves a catalog that opens, with finished media intact and unfinished media `processing`,
//! ready to be processed again under the same id.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{Index, Media, Page, PageRequest, Segment, SegmentKind, Status, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::error::{Error, Result};
use crate::ids;
use crate::media::{MediaInfo, MediaType};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
///
/// Segments carry `run_id` ('' for the ingest segmentation) because the API's segments are
/// run-backed; transcripts, vectors and prompt results will reference `segment_id`.
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
];

/// A media row to insert before processing starts.
#[derive(Debug, Clone)]
pub struct NewMedia<'a> {
    pub index_id: Option<&'a str>,
    pub title: &'a str,
    pub source_path: &'a str,
    pub content_hash: &'a str,
    pub size_bytes: u64,
    pub idempotency_key: Option<&'a str>,
}

/// What a finished ingest stores in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Completed<'a> {
    pub info: &'a MediaInfo,
    pub duration_us: i64,
    /// The segmentation settings used, as JSON.
    pub segmentation_json: &'a str,
    pub gif_path: Option<&'a str>,
    /// Problems that did not stop the ingest (for example packets that failed to decode).
    pub warnings: &'a [String],
    pub segments: &'a [NewSegment],
}

/// A segment as the pipeline made it, with its id.
#[derive(Debug, Clone)]
pub struct NewSegment {
    pub segment_id: String,
    pub kind: SegmentKind,
    pub start_us: i64,
    pub end_us: i64,
    pub segmentation_type: String,
    pub keyframe_us: Option<i64>,
    pub keyframe_frame: Option<u64>,
    pub thumbnail_path: Option<String>,
}

/// The catalog of one data folder. Cheap to share: calls serialise on one connection.
pub struct Catalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Catalog {
    /// Open or create the catalog at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| sql_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| sql_err(path, e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| sql_err(path, e))?;
        let catalog = Catalog { path: path.to_path_buf(), conn: Mutex::new(conn) };
        catalog.migrate()?;
        Ok(catalog)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: transactions roll back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn err(&self, e: rusqlite::Error) -> Error {
        sql_err(&self.path, e)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn();
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| sql_err(&self.path, e))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(Error::Catalog {
                path: self.path.clone(),
                message: format!(
                    "schema version {version} is newer than this build knows ({}); upgrade videovector",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(|e| sql_err(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| sql_err(&self.path, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(|e| sql_err(&self.path, e))?;
            tx.commit().map_err(|e| sql_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Schema version after migrations.
    pub fn schema_version(&self) -> Result<u32> {
        self.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// SQLite's own consistency check; `Ok` when the file is sound.
    pub fn integrity_check(&self) -> Result<()> {
        let result: String =
            self.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(Error::Catalog { path: self.path.clone(), message: format!("integrity check failed: {result}") })
        }
    }

    // ---- indexes ----

    /// Create an index. A name in use is a conflict, unless the same idempotency key created it.
    pub fn create_index(&self, name: &str, idempotency_key: Option<&str>) -> Result<Index> {
        let name = name.trim();
        if name.is_empty() || name.len() > 256 {
            return Err(Error::invalid("name", "an index name must be 1 to 256 characters"));
        }
        if let Some(key) = idempotency_key {
            let existing: Option<String> = self
                .conn()
                .query_row("SELECT index_id FROM indexes WHERE idempotency_key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(id) = existing {
                let index = self.get_index(&id)?;
                if index.name != name {
                    return Err(Error::Conflict(format!(
                        "idempotency key {key:?} was used to create index {:?}, not {name:?}",
                        index.name
                    )));
                }
                return Ok(index);
            }
        }
        let id = ids::new("idx");
        let now = now_rfc3339();
        let inserted = self.conn().execute(
            "INSERT INTO indexes (index_id, name, idempotency_key, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, idempotency_key, now],
        );
        match inserted {
            Ok(_) => self.get_index(&id),
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(Error::Conflict(format!("an index named {name:?} already exists")))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Look an index up by id (`idx_...`) or by name.
    pub fn get_index(&self, id_or_name: &str) -> Result<Index> {
        self.conn()
            .query_row(
                "SELECT i.index_id, i.name, i.created_at, (SELECT count(*) FROM media m WHERE m.index_id = i.index_id)
                 FROM indexes i WHERE i.index_id = ?1 OR i.name = ?1 ORDER BY i.index_id = ?1 DESC LIMIT 1",
                [id_or_name],
                index_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| Error::NotFound {
                kind: "index",
                id: id_or_name.to_string(),
                hint: format!(". Create it with `videovector index create {id_or_name}`"),
            })
    }

    pub fn list_indexes(&self) -> Result<Vec<Index>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT i.index_id, i.name, i.created_at, (SELECT count(*) FROM media m WHERE m.index_id = i.index_id)
                 FROM indexes i ORDER BY i.created_at, i.index_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], index_from_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Delete an index with its media and segments; returns the ids of the media removed.
    pub fn delete_index(&self, index_id: &str) -> Result<Vec<String>> {
        let index = self.get_index(index_id)?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let videos: Vec<String> = {
            let mut stmt = tx.prepare("SELECT video_id FROM media WHERE index_id = ?1").map_err(|e| self.err(e))?;
            let rows = stmt.query_map([&index.index_id], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        tx.execute("DELETE FROM indexes WHERE index_id = ?1", [&index.index_id]).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(videos)
    }

    // ---- media ----

    /// The media row for this content in this index (or the playground), if any.
    pub fn find_media_by_content(&self, index_id: Option<&str>, content_hash: &str) -> Result<Option<Media>> {
        self.query_media(
            "WHERE coalesce(index_id, '') = coalesce(?1, '') AND content_hash = ?2",
            params![index_id, content_hash],
        )
    }

    pub fn find_media_by_idempotency_key(&self, key: &str) -> Result<Option<Media>> {
        self.query_media("WHERE idempotency_key = ?1", params![key])
    }

    fn query_media(&self, filter: &str, args: impl rusqlite::Params) -> Result<Option<Media>> {
        let sql = format!("SELECT {MEDIA_COLUMNS} FROM media {filter}");
        self.conn().query_row(&sql, args, media_from_row).optional().map_err(|e| self.err(e))
    }

    /// Insert a media row in `processing` state, committed before any work starts.
    pub fn insert_media(&self, new: &NewMedia<'_>) -> Result<Media> {
        let id = ids::new("vid");
        let now = now_rfc3339();
        self.conn()
            .execute(
                "INSERT INTO media (video_id, index_id, title, source_path, content_hash, size_bytes, status, idempotency_key, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'processing', ?7, ?8, ?8)",
                params![id, new.index_id, new.title, new.source_path, new.content_hash, new.size_bytes as i64, new.idempotency_key, now],
            )
            .map_err(|e| self.err(e))?;
        self.get_media(&id)
    }

    /// Mark a media item `processing` again (a retry or a resume) and drop its old segments.
    pub fn restart_media(&self, video_id: &str, source_path: &str) -> Result<()> {
        self.reset_media(video_id, Status::Processing, None, Some(source_path))
    }

    /// Drop the ingest segmentation of a media item and set its status, in one transaction.
    fn reset_media(
        &self,
        video_id: &str,
        status: Status,
        error: Option<&str>,
        source_path: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM segments WHERE video_id = ?1 AND run_id = ''", [video_id]).map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE media SET status = ?2, error = ?3, source_path = coalesce(?4, source_path), updated_at = ?5 WHERE video_id = ?1",
            params![video_id, status.as_str(), error, source_path, now_rfc3339()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Store the segments and probe results and mark the media `completed`, atomically.
    pub fn complete_media(&self, video_id: &str, done: &Completed<'_>) -> Result<()> {
        let Completed { info, duration_us, segmentation_json, gif_path, warnings, segments } = *done;
        let metadata = serde_json::to_string(info).expect("MediaInfo serialises");
        let warnings = serde_json::to_string(warnings).expect("strings serialise");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM segments WHERE video_id = ?1 AND run_id = ''", [video_id]).map_err(|e| self.err(e))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO segments (segment_id, video_id, kind, ordinal, start_us, end_us, segmentation_type, keyframe_us, keyframe_frame, thumbnail_path)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(|e| self.err(e))?;
            let mut ordinal = [0u32; 2];
            for s in segments {
                let o = &mut ordinal[s.kind as usize];
                stmt.execute(params![
                    s.segment_id,
                    video_id,
                    s.kind.as_str(),
                    *o,
                    s.start_us,
                    s.end_us,
                    s.segmentation_type,
                    s.keyframe_us,
                    s.keyframe_frame.map(|f| f as i64),
                    s.thumbnail_path
                ])
                .map_err(|e| self.err(e))?;
                *o += 1;
            }
        }
        let changed = tx
            .execute(
                "UPDATE media SET status = 'completed', error = NULL, media_type = ?2, duration_us = ?3, metadata_json = ?4,
                 segmentation_json = ?5, gif_path = ?6, warnings_json = ?7, updated_at = ?8 WHERE video_id = ?1",
                params![
                    video_id,
                    info.media_type.as_str(),
                    duration_us,
                    metadata,
                    segmentation_json,
                    gif_path,
                    warnings,
                    now_rfc3339()
                ],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::not_found("video", video_id));
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Record why a media item failed; its earlier segments, if any, are dropped.
    pub fn fail_media(&self, video_id: &str, error: &str) -> Result<()> {
        self.reset_media(video_id, Status::Failed, Some(error), None)
    }

    pub fn get_media(&self, video_id: &str) -> Result<Media> {
        self.query_media("WHERE video_id = ?1", [video_id])?.ok_or_else(|| Error::not_found("video", video_id))
    }

    /// Media left `pending` or `processing` by an interrupted ingest.
    pub fn unfinished_media(&self) -> Result<Vec<Media>> {
        let conn = self.conn();
        let sql = format!("SELECT {MEDIA_COLUMNS} FROM media WHERE status IN ('pending', 'processing') ORDER BY rowid");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], media_from_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Media of one index, of the playground, or all media, in ingest order.
    pub fn list_media(&self, scope: MediaScope<'_>, page: &PageRequest) -> Result<Page<Media>> {
        let (limit, after) = page_bounds(page)?;
        let (filter, arg) = match scope {
            MediaScope::All => ("1 = 1", None),
            MediaScope::Index(id) => ("index_id = ?3", Some(id)),
            MediaScope::Playground => ("index_id IS NULL", None),
        };
        let sql =
            format!("SELECT {MEDIA_COLUMNS}, rowid FROM media WHERE rowid > ?1 AND {filter} ORDER BY rowid LIMIT ?2");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let map = |r: &Row<'_>| Ok((media_from_row(r)?, r.get::<_, i64>(MEDIA_COLUMN_COUNT)?));
        let rows: Vec<(Media, i64)> = match arg {
            Some(id) => stmt.query_map(params![after, limit + 1, id], map),
            None => stmt.query_map(params![after, limit + 1], map),
        }
        .map_err(|e| self.err(e))?
        .collect::<rusqlite::Result<_>>()
        .map_err(|e| self.err(e))?;
        Ok(paginate(rows, limit))
    }

    /// Delete a media item and its segments. Files are the caller's to remove.
    pub fn delete_media(&self, video_id: &str) -> Result<()> {
        let n = self.conn().execute("DELETE FROM media WHERE video_id = ?1", [video_id]).map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(Error::not_found("video", video_id));
        }
        Ok(())
    }

    // ---- segments ----

    /// Segments of a media item in timeline order; `kind` `None` lists both kinds (video first).
    pub fn list_segments(
        &self,
        video_id: &str,
        kind: Option<SegmentKind>,
        page: &PageRequest,
    ) -> Result<Page<Segment>> {
        self.get_media(video_id)?;
        let (limit, after) = page_bounds(page)?;
        let sql = format!(
            "SELECT {SEGMENT_COLUMNS}, rowid FROM segments WHERE video_id = ?1 AND run_id = '' AND (?2 IS NULL OR kind = ?2)
             AND rowid > ?3 ORDER BY rowid LIMIT ?4"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows: Vec<(Segment, i64)> = stmt
            .query_map(params![video_id, kind.map(|k| k.as_str()), after, limit + 1], |r| {
                Ok((segment_from_row(r)?, r.get(SEGMENT_COLUMN_COUNT)?))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        Ok(paginate(rows, limit))
    }

    /// Every segment of a media item of one kind, in order (no pagination).
    pub fn all_segments(&self, video_id: &str, kind: SegmentKind) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        let mut page = PageRequest { limit: Some(MAX_PAGE_LIMIT), cursor: None };
        loop {
            let p = self.list_segments(video_id, Some(kind), &page)?;
            out.extend(p.data);
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The ingest segment of a media item that holds `time_us`: a video segment when the media
    /// has them, else an audio one.
    pub fn segment_at(&self, video_id: &str, time_us: i64) -> Result<Option<Segment>> {
        let sql = format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE video_id = ?1 AND run_id = '' AND start_us <= ?2
             AND (end_us > ?2 OR end_us = (SELECT max(end_us) FROM segments WHERE video_id = ?1))
             ORDER BY kind = 'video' DESC, start_us DESC LIMIT 1"
        );
        self.conn().query_row(&sql, params![video_id, time_us], segment_from_row).optional().map_err(|e| self.err(e))
    }

    pub fn get_segment(&self, segment_id: &str) -> Result<Segment> {
        let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?1");
        self.conn()
            .query_row(&sql, [segment_id], segment_from_row)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| Error::not_found("segment", segment_id))
    }
}

/// Which media a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaScope<'a> {
    All,
    Index(&'a str),
    Playground,
}

const MEDIA_COLUMNS: &str = "video_id, index_id, title, source_path, content_hash, size_bytes, media_type, status, error, duration_us, metadata_json, gif_path, idempotency_key, created_at, updated_at, warnings_json";
const MEDIA_COLUMN_COUNT: usize = 16;
const SEGMENT_COLUMNS: &str =
    "segment_id, video_id, run_id, kind, ordinal, start_us, end_us, segmentation_type, keyframe_us, keyframe_frame, thumbnail_path";
const SEGMENT_COLUMN_COUNT: usize = 11;

fn index_from_row(r: &Row<'_>) -> rusqlite::Result<Index> {
    Ok(Index { index_id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)?, video_count: r.get::<_, i64>(3)? as u64 })
}

fn bad_column(i: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

fn media_from_row(r: &Row<'_>) -> rusqlite::Result<Media> {
    let media_type: Option<String> = r.get(6)?;
    let status: String = r.get(7)?;
    let metadata: Option<String> = r.get(10)?;
    Ok(Media {
        video_id: r.get(0)?,
        index_id: r.get(1)?,
        title: r.get(2)?,
        source_path: r.get(3)?,
        content_hash: r.get(4)?,
        size_bytes: r.get::<_, i64>(5)? as u64,
        media_type: media_type
            .map(|t| MediaType::parse(&t).ok_or_else(|| bad_column(6, "media type", &t)))
            .transpose()?,
        status: Status::parse(&status).ok_or_else(|| bad_column(7, "status", &status))?,
        error: r.get(8)?,
        duration: r.get::<_, Option<i64>>(9)?.map(crate::segment::us_to_secs),
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        gif_path: r.get(11)?,
        idempotency_key: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        warnings: r.get::<_, Option<String>>(15)?.and_then(|w| serde_json::from_str(&w).ok()).unwrap_or_default(),
    })
}

fn segment_from_row(r: &Row<'_>) -> rusqlite::Result<Segment> {
    let run_id: String = r.get(2)?;
    let kind: String = r.get(3)?;
    let start_us: i64 = r.get(5)?;
    let end_us: i64 = r.get(6)?;
    Ok(Segment {
        segment_id: r.get(0)?,
        video_id: r.get(1)?,
        run_id: (!run_id.is_empty()).then_some(run_id),
        kind: SegmentKind::parse(&kind).ok_or_else(|| bad_column(3, "segment kind", &kind))?,
        index: r.get(4)?,
        start: crate::segment::us_to_secs(start_us),
        end: crate::segment::us_to_secs(end_us),
        start_us,
        end_us,
        segmentation_type: r.get(7)?,
        keyframe_time: r.get::<_, Option<i64>>(8)?.map(crate::segment::us_to_secs),
        keyframe_frame: r.get::<_, Option<i64>>(9)?.map(|f| f as u64),
        thumbnail_path: r.get(10)?,
    })
}

/// Cursors are opaque to callers: `c` followed by the last row's rowid.
fn page_bounds(page: &PageRequest) -> Result<(i64, i64)> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE_LIMIT}, got {limit}")));
    }
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

fn paginate<T>(mut rows: Vec<(T, i64)>, limit: i64) -> Page<T> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(|(_, rowid)| format!("c{rowid}")) } else { None };
    Page { data: rows.into_iter().map(|(t, _)| t).collect(), next_cursor, has_more }
}

fn sql_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Catalog { path: path.to_path_buf(), message: e.to_string() }
}

/// Current UTC time as RFC 3339 with milliseconds, e.g. `2026-04-20T09:30:00.123Z`.
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
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
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_walks_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        for i in 0..7 {
            let hash = format!("{i:064}");
            cat.insert_media(&NewMedia {
                index_id: None,
                title: "t",
                source_path: "p",
                content_hash: &hash,
                size_bytes: 1,
                idempotency_key: None,
            })
            .unwrap();
        }
        let mut seen = Vec::new();
        let mut req = PageRequest { limit: Some(3), cursor: None };
        loop {
            let page = cat.list_media(MediaScope::All, &req).unwrap();
            assert!(page.data.len() <= 3);
            seen.extend(page.data.into_iter().map(|m| m.video_id));
            match page.next_cursor {
                Some(c) => req.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 7);
        seen.dedup();
        assert_eq!(seen.len(), 7);
        let bad = cat.list_media(MediaScope::All, &PageRequest { limit: Some(0), cursor: None }).unwrap_err();
        assert!(bad.to_string().contains("limit"), "{bad}");
        let bad = cat.list_media(MediaScope::All, &PageRequest { limit: None, cursor: Some("zz".into()) }).unwrap_err();
        assert!(bad.to_string().contains("cursor"), "{bad}");
    }

    #[test]
    fn same_content_twice_in_one_index_is_refused_by_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let new = NewMedia {
            index_id: None,
            title: "t",
            source_path: "p",
            content_hash: "h",
            size_bytes: 1,
            idempotency_key: None,
        };
        cat.insert_media(&new).unwrap();
        assert!(cat.insert_media(&new).is_err());
    }

    #[test]
    fn index_names_are_unique_and_idempotency_keys_return_the_same_index() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let a = cat.create_index("news", Some("k1")).unwrap();
        assert_eq!(cat.create_index("news", Some("k1")).unwrap().index_id, a.index_id);
        assert_eq!(cat.create_index("news", None).unwrap_err().kind(), crate::ErrorKind::Conflict);
        assert_eq!(cat.create_index("sport", Some("k1")).unwrap_err().kind(), crate::ErrorKind::Conflict);
        assert_eq!(cat.get_index("news").unwrap().index_id, a.index_id);
        assert_eq!(cat.get_index("idx_missing").unwrap_err().kind(), crate::ErrorKind::NotFound);
    }

    #[test]
    fn rfc3339_has_the_expected_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T", "{s}");
    }
}
