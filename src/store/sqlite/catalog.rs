//! The catalog in SQLite: indexes, media, segments and transcripts (phrases with FTS5).
//!
//! Durability: WAL journal, every write is one transaction, and a media item only becomes
//! `completed` in the same transaction that stores its segments. A process killed at any point
//! leaves a catalog that opens, with finished media intact and unfinished media resumable.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    append_event, now_rfc3339, page_bounds, paginate, parse_column, scope_from_key, scope_key, Sql, SqliteStore,
};
use crate::error::{Error, Result};
use crate::ids::{IndexId, SegmentId, VideoId};
use crate::store::{
    CatalogRead, CatalogWrite, Completed, KeywordHit, MediaFilter, NewMedia, NewPhrase, NewSegment, PendingThumbnail,
};
use crate::types::{
    us_to_secs, EventType, Index, Media, ModelRef, NewEvent, Page, PageRequest, Phrase, Scope, Segment, SegmentKind,
    Space, Status,
};

const MEDIA_COLUMNS: &str = "video_id, index_id, title, source_path, content_hash, size_bytes, media_type, status, error, duration_us, metadata_json, gif_path, idempotency_key, created_at, updated_at, warnings_json";
const MEDIA_COLUMN_COUNT: usize = 16;
const SEGMENT_COLUMNS: &str =
    "segment_id, video_id, run_id, kind, ordinal, start_us, end_us, segmentation_type, keyframe_us, keyframe_frame, thumbnail_path";
const SEGMENT_COLUMN_COUNT: usize = 11;
const INDEX_SELECT: &str =
    "SELECT i.index_id, i.name, i.created_at, (SELECT count(*) FROM media m WHERE m.index_id = i.index_id) FROM indexes i";

fn index_from_row(r: &Row<'_>) -> rusqlite::Result<Index> {
    Ok(Index {
        index_id: IndexId::from(r.get::<_, String>(0)?),
        name: r.get(1)?,
        created_at: r.get(2)?,
        video_count: r.get::<_, i64>(3)? as u64,
    })
}

fn media_from_row(r: &Row<'_>) -> rusqlite::Result<Media> {
    let media_type: Option<String> = r.get(6)?;
    let status: String = r.get(7)?;
    let metadata: Option<String> = r.get(10)?;
    Ok(Media {
        video_id: VideoId::from(r.get::<_, String>(0)?),
        index_id: r.get::<_, Option<String>>(1)?.map(IndexId::from),
        title: r.get(2)?,
        source_path: r.get(3)?,
        content_hash: r.get(4)?,
        size_bytes: r.get::<_, i64>(5)? as u64,
        media_type: media_type.map(|t| parse_column(6, &t)).transpose()?,
        status: parse_column(7, &status)?,
        error: r.get(8)?,
        duration: r.get::<_, Option<i64>>(9)?.map(us_to_secs),
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
        segment_id: SegmentId::from(r.get::<_, String>(0)?),
        video_id: VideoId::from(r.get::<_, String>(1)?),
        run_id: (!run_id.is_empty()).then_some(run_id),
        kind: parse_column(3, &kind)?,
        index: r.get(4)?,
        start: us_to_secs(start_us),
        end: us_to_secs(end_us),
        start_us,
        end_us,
        segmentation_type: r.get(7)?,
        keyframe_time: r.get::<_, Option<i64>>(8)?.map(us_to_secs),
        keyframe_frame: r.get::<_, Option<i64>>(9)?.map(|f| f as u64),
        thumbnail_path: r.get(10)?,
    })
}

fn query_media(conn: &Connection, filter: &str, args: impl rusqlite::Params) -> Result<Option<Media>> {
    let sql = format!("SELECT {MEDIA_COLUMNS} FROM media {filter}");
    conn.query_row(&sql, args, media_from_row).optional().db()
}

fn get_media(conn: &Connection, video_id: &str) -> Result<Media> {
    query_media(conn, "WHERE video_id = ?1", [video_id])?.ok_or_else(|| Error::not_found("video", video_id))
}

fn get_index(conn: &Connection, id_or_name: &str) -> Result<Index> {
    conn.query_row(
        &format!("{INDEX_SELECT} WHERE i.index_id = ?1 OR i.name = ?1 ORDER BY i.index_id = ?1 DESC LIMIT 1"),
        [id_or_name],
        index_from_row,
    )
    .optional()
    .db()?
    .ok_or_else(|| Error::NotFound {
        kind: "index",
        id: id_or_name.to_string(),
        hint: Some(format!("Create it with `videovector index create {id_or_name}`")),
    })
}

/// Set a media item's status, dropping its ingest segmentation and transcript, and log `event`.
fn set_status(
    tx: &Connection,
    video_id: &str,
    status: Status,
    error: Option<&str>,
    source_path: Option<&str>,
    event: Option<EventType>,
) -> Result<()> {
    let media = get_media(tx, video_id)?;
    tx.execute("DELETE FROM segments WHERE video_id = ?1 AND run_id = ''", [video_id]).db()?;
    tx.execute("DELETE FROM phrases WHERE video_id = ?1", [video_id]).db()?;
    tx.execute(
        "UPDATE media SET status = ?2, error = ?3, source_path = coalesce(?4, source_path), updated_at = ?5 WHERE video_id = ?1",
        params![video_id, status.as_str(), error, source_path, now_rfc3339()],
    )
    .db()?;
    if let Some(event) = event {
        let payload = error.map_or(serde_json::Value::Null, |e| serde_json::json!({ "error": e }));
        append_event(tx, &NewEvent::new(event).video(&media.video_id, media.index_id.as_ref()).payload(payload))?;
    }
    Ok(())
}

impl CatalogRead for SqliteStore {
    fn index(&self, id_or_name: &str) -> Result<Index> {
        self.db.read(|c| get_index(c, id_or_name))
    }

    fn indexes(&self) -> Result<Vec<Index>> {
        self.db.read(|c| {
            let mut stmt = c.prepare(&format!("{INDEX_SELECT} ORDER BY i.created_at, i.index_id")).db()?;
            let rows = stmt.query_map([], index_from_row).db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn media(&self, video_id: &str) -> Result<Media> {
        self.db.read(|c| get_media(c, video_id))
    }

    fn media_by_content(&self, scope: &Scope, content_hash: &str) -> Result<Option<Media>> {
        self.db.read(|c| {
            query_media(
                c,
                "WHERE coalesce(index_id, '') = ?1 AND content_hash = ?2",
                params![scope_key(scope), content_hash],
            )
        })
    }

    fn media_by_idempotency_key(&self, key: &str) -> Result<Option<Media>> {
        self.db.read(|c| query_media(c, "WHERE idempotency_key = ?1", [key]))
    }

    fn media_request(&self, video_id: &str) -> Result<Option<String>> {
        self.db.read(|c| {
            c.query_row("SELECT request_json FROM media WHERE video_id = ?1", [video_id], |r| r.get(0))
                .optional()
                .db()?
                .ok_or_else(|| Error::not_found("video", video_id))
        })
    }

    fn list_media(&self, filter: MediaFilter<'_>, page: &PageRequest) -> Result<Page<Media>> {
        let (limit, after) = page_bounds(page)?;
        let (clause, scope) = match filter {
            MediaFilter::All => ("1 = 1", None),
            MediaFilter::Scope(s) => ("coalesce(index_id, '') = ?3", Some(scope_key(s))),
        };
        let sql =
            format!("SELECT {MEDIA_COLUMNS}, rowid FROM media WHERE rowid > ?1 AND {clause} ORDER BY rowid LIMIT ?2");
        self.db.read(|c| {
            let mut stmt = c.prepare(&sql).db()?;
            let map = |r: &Row<'_>| Ok((media_from_row(r)?, r.get::<_, i64>(MEDIA_COLUMN_COUNT)?));
            let rows: Vec<(Media, i64)> = match scope {
                Some(s) => stmt.query_map(params![after, limit + 1, s], map),
                None => stmt.query_map(params![after, limit + 1], map),
            }
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
            Ok(paginate(rows, limit))
        })
    }

    fn unfinished_media(&self) -> Result<Vec<Media>> {
        self.db.read(|c| {
            let sql =
                format!("SELECT {MEDIA_COLUMNS} FROM media WHERE status IN ('pending', 'processing') ORDER BY rowid");
            let mut stmt = c.prepare(&sql).db()?;
            let rows = stmt.query_map([], media_from_row).db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn segments(
        &self,
        video_id: &str,
        kind: SegmentKind,
        run_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Segment>> {
        let (limit, after) = page_bounds(page)?;
        let sql = format!(
            "SELECT {SEGMENT_COLUMNS}, rowid FROM segments WHERE video_id = ?1 AND run_id = ?5 AND kind = ?2
             AND rowid > ?3 ORDER BY rowid LIMIT ?4"
        );
        self.db.read_snapshot(|c| {
            get_media(c, video_id)?;
            let mut stmt = c.prepare_cached(&sql).db()?;
            let rows: Vec<(Segment, i64)> = stmt
                .query_map(params![video_id, kind.as_str(), after, limit + 1, run_id.unwrap_or("")], |r| {
                    Ok((segment_from_row(r)?, r.get(SEGMENT_COLUMN_COUNT)?))
                })
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            Ok(paginate(rows, limit))
        })
    }

    fn latest_segment_run(&self, video_id: &str) -> Result<Option<String>> {
        self.db.read(|c| {
            get_media(c, video_id)?;
            c.query_row(
                "SELECT run_id FROM segments WHERE video_id = ?1 AND run_id != '' ORDER BY rowid DESC LIMIT 1",
                [video_id],
                |r| r.get(0),
            )
            .optional()
            .db()
        })
    }

    fn segment(&self, segment_id: &str) -> Result<Segment> {
        let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?1");
        self.db.read(|c| {
            c.query_row(&sql, [segment_id], segment_from_row)
                .optional()
                .db()?
                .ok_or_else(|| Error::not_found("segment", segment_id))
        })
    }

    fn phrases(&self, video_id: &str) -> Result<Vec<Phrase>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT start_us, end_us, text, language FROM phrases WHERE video_id = ?1 ORDER BY start_us, phrase_id",
                )
                .db()?;
            let rows = stmt
                .query_map([video_id], |r| {
                    Ok(Phrase {
                        start: us_to_secs(r.get(0)?),
                        end: us_to_secs(r.get(1)?),
                        text: r.get(2)?,
                        language: r.get(3)?,
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn keyword_phrases(&self, scope: &Scope, query: &str, limit: usize) -> Result<Vec<KeywordHit>> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT p.video_id, p.start_us, p.end_us, p.text, bm25(phrases_fts) FROM phrases_fts
                     JOIN phrases p ON p.phrase_id = phrases_fts.rowid JOIN media m ON m.video_id = p.video_id
                     WHERE phrases_fts MATCH ?1 AND coalesce(m.index_id, '') = ?2 ORDER BY bm25(phrases_fts), p.phrase_id LIMIT ?3",
                )
                .db()?;
            let rows = stmt
                .query_map(params![fts, scope_key(scope), limit as i64], |r| {
                    Ok(KeywordHit {
                        video_id: VideoId::from(r.get::<_, String>(0)?),
                        start_us: r.get(1)?,
                        end_us: r.get(2)?,
                        text: r.get(3)?,
                        // SQLite's bm25() is lower-is-better; the trait's scores are higher-is-better.
                        score: -r.get::<_, f64>(4)?,
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn thumbnails_without_vector(&self, scope: Option<&Scope>, space: Space) -> Result<Vec<PendingThumbnail>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT coalesce(m.index_id, ''), s.segment_id, s.thumbnail_path FROM segments s JOIN media m ON m.video_id = s.video_id
                     WHERE m.status = 'completed' AND s.thumbnail_path IS NOT NULL AND (?1 IS NULL OR coalesce(m.index_id, '') = ?1)
                     AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.segment_id = s.segment_id AND v.space = ?2)
                     ORDER BY m.rowid, s.kind, s.ordinal",
                )
                .db()?;
            let rows = stmt
                .query_map(params![scope.map(scope_key), space.as_str()], |r| {
                    Ok(PendingThumbnail {
                        scope: scope_from_key(r.get(0)?),
                        segment_id: SegmentId::from(r.get::<_, String>(1)?),
                        thumbnail: r.get(2)?,
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }

    fn check(&self) -> Result<()> {
        let result: String = self.db.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).db())?;
        if result == "ok" {
            Ok(())
        } else {
            Err(Error::Store(format!("integrity check failed: {result}")))
        }
    }
}

/// FTS5 query from user words: each word quoted, so nothing the user typed is FTS5 syntax.
/// `None` when the query has no words.
fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl CatalogWrite for SqliteStore {
    fn create_index(&self, name: &str, idempotency_key: Option<&str>) -> Result<Index> {
        let name = name.trim();
        if name.is_empty() || name.len() > 256 {
            return Err(Error::invalid("name", "an index name must be 1 to 256 characters"));
        }
        self.db.write(|tx| {
            if let Some(key) = idempotency_key {
                let existing: Option<String> = tx
                    .query_row("SELECT index_id FROM indexes WHERE idempotency_key = ?1", [key], |r| r.get(0))
                    .optional()
                    .db()?;
                if let Some(id) = existing {
                    let index = get_index(tx, &id)?;
                    if index.name != name {
                        return Err(Error::IdempotencyConflict {
                            key: key.to_string(),
                            message: format!("it created index {:?}, not {name:?}", index.name),
                        });
                    }
                    return Ok(index);
                }
            }
            let taken: bool =
                tx.query_row("SELECT count(*) > 0 FROM indexes WHERE name = ?1", [name], |r| r.get(0)).db()?;
            if taken {
                return Err(Error::Conflict(format!("an index named {name:?} already exists")));
            }
            let id = IndexId::generate();
            tx.execute(
                "INSERT INTO indexes (index_id, name, idempotency_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id.as_str(), name, idempotency_key, now_rfc3339()],
            )
            .db()?;
            get_index(tx, &id)
        })
    }

    fn delete_index(&self, index_id: &IndexId) -> Result<Vec<VideoId>> {
        self.db.write(|tx| {
            get_index(tx, index_id)?;
            let videos: Vec<VideoId> = {
                let mut stmt = tx.prepare("SELECT video_id FROM media WHERE index_id = ?1").db()?;
                let rows = stmt.query_map([index_id.as_str()], |r| r.get::<_, String>(0)).db()?;
                rows.map(|r| r.map(VideoId::from)).collect::<rusqlite::Result<_>>().db()?
            };
            for v in &videos {
                append_event(tx, &NewEvent::new(EventType::MediaDeleted).video(v, Some(index_id)))?;
            }
            tx.execute("DELETE FROM indexes WHERE index_id = ?1", [index_id.as_str()]).db()?;
            Ok(videos)
        })
    }

    fn insert_media(&self, new: &NewMedia<'_>) -> Result<Media> {
        let id = VideoId::generate();
        let now = now_rfc3339();
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO media (video_id, index_id, title, source_path, content_hash, size_bytes, status, idempotency_key, request_json, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?9)",
                params![
                    id.as_str(),
                    new.scope.index_id().map(|i| i.as_str()),
                    new.title,
                    new.source_path,
                    new.content_hash,
                    new.size_bytes as i64,
                    new.idempotency_key,
                    new.request_json,
                    now
                ],
            )
            .db()?;
            append_event(
                tx,
                &NewEvent::new(EventType::MediaCreated)
                    .video(&id, new.scope.index_id())
                    .payload(serde_json::json!({ "source_path": new.source_path })),
            )?;
            get_media(tx, &id)
        })
    }

    fn start_media(&self, video_id: &str, source_path: &str) -> Result<()> {
        self.db.write(|tx| {
            set_status(
                tx,
                video_id,
                Status::Processing,
                None,
                Some(source_path),
                Some(EventType::MediaProcessingStarted),
            )
        })
    }

    fn complete_media(&self, video_id: &str, done: &Completed<'_>) -> Result<()> {
        let Completed { info, duration_us, segmentation_json, gif_path, warnings, segments } = *done;
        let metadata = serde_json::to_string(info).map_err(|e| Error::Internal(format!("media info: {e}")))?;
        let warnings = serde_json::to_string(warnings).map_err(|e| Error::Internal(format!("warnings: {e}")))?;
        self.db.write(|tx| {
            let media = get_media(tx, video_id)?;
            tx.execute("DELETE FROM segments WHERE video_id = ?1 AND run_id = ''", [video_id]).db()?;
            insert_segments(tx, video_id, "", segments)?;
            tx.execute(
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
            .db()?;
            append_event(
                tx,
                &NewEvent::new(EventType::MediaProcessingCompleted)
                    .video(&media.video_id, media.index_id.as_ref())
                    .payload(serde_json::json!({ "segments": segments.len(), "duration": us_to_secs(duration_us) })),
            )?;
            Ok(())
        })
    }

    fn fail_media(&self, video_id: &str, error: &str) -> Result<()> {
        self.db.write(|tx| {
            set_status(tx, video_id, Status::Failed, Some(error), None, Some(EventType::MediaProcessingFailed))
        })
    }

    fn reset_media(&self, video_id: &str) -> Result<()> {
        self.db.write(|tx| set_status(tx, video_id, Status::Pending, None, None, None))
    }

    fn delete_media(&self, video_id: &str) -> Result<()> {
        self.db.write(|tx| {
            let media = get_media(tx, video_id)?;
            tx.execute("DELETE FROM media WHERE video_id = ?1", [video_id]).db()?;
            append_event(tx, &NewEvent::new(EventType::MediaDeleted).video(&media.video_id, media.index_id.as_ref()))?;
            Ok(())
        })
    }

    fn add_media_warnings(&self, video_id: &str, warnings: &[String]) -> Result<()> {
        self.db.write(|tx| {
            let mut all = get_media(tx, video_id)?.warnings;
            // The same warning twice (a second run meeting the same missing model) is kept once.
            for w in warnings {
                if !all.contains(w) {
                    all.push(w.clone());
                }
            }
            let json = serde_json::to_string(&all).map_err(|e| Error::Internal(format!("warnings: {e}")))?;
            tx.execute(
                "UPDATE media SET warnings_json = ?2, updated_at = ?3 WHERE video_id = ?1",
                params![video_id, json, now_rfc3339()],
            )
            .db()?;
            Ok(())
        })
    }

    fn add_run_segments(&self, video_id: &str, run_id: &str, segments: &[NewSegment]) -> Result<()> {
        self.db.write(|tx| {
            get_media(tx, video_id)?;
            tx.execute("DELETE FROM segments WHERE video_id = ?1 AND run_id = ?2", [video_id, run_id]).db()?;
            insert_segments(tx, video_id, run_id, segments)
        })
    }

    fn set_phrases(&self, video_id: &str, model: &ModelRef, phrases: &[NewPhrase]) -> Result<()> {
        self.db.write(|tx| {
            tx.execute("DELETE FROM phrases WHERE video_id = ?1", [video_id]).db()?;
            let mut ins = tx
                .prepare(
                    "INSERT INTO phrases (video_id, window_segment_id, start_us, end_us, text, language, model_id, model_revision)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .db()?;
            for p in phrases {
                ins.execute(params![
                    video_id,
                    p.window_segment_id.as_deref(),
                    p.start_us,
                    p.end_us,
                    p.text,
                    p.language,
                    model.id,
                    model.revision
                ])
                .db()?;
            }
            Ok(())
        })
    }
}

/// Insert segments in order (ordinals per kind from 0), for the ingest segmentation (`run_id`
/// empty) or a run's own.
fn insert_segments(tx: &Connection, video_id: &str, run_id: &str, segments: &[NewSegment]) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO segments (segment_id, video_id, run_id, kind, ordinal, start_us, end_us, segmentation_type, keyframe_us, keyframe_frame, thumbnail_path)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .db()?;
    let mut ordinal = [0u32; 2];
    for s in segments {
        let o = &mut ordinal[usize::from(s.kind == SegmentKind::Audio)];
        stmt.execute(params![
            s.segment_id.as_str(),
            video_id,
            run_id,
            s.kind.as_str(),
            *o,
            s.start_us,
            s.end_us,
            s.segmentation_type,
            s.keyframe_us,
            s.keyframe_frame.map(|f| f as i64),
            s.thumbnail_path
        ])
        .db()?;
        *o += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_every_word() {
        let check = |q: &str, expected: Option<&str>| assert_eq!(fts_query(q).as_deref(), expected, "{q}");
        check("cold hearted", Some("\"cold\" \"hearted\""));
        check("NEAR(a b) OR \"x\" -y *", Some("\"NEAR\" \"a\" \"b\" \"OR\" \"x\" \"y\""));
        check("  ---  ", None);
    }
}
