//! Prompts, prompt runs, results, retries and the call log in SQLite: JSON documents beside the
//! columns that are queried. Run counts are computed from `run_results` on every read.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::filter::{plan, render, Query, DRIVE_BELOW};
use super::{append_event, now_rfc3339, page_bounds, paginate, Sql, SqliteStore};
use crate::error::{Error, Result};
use crate::ids::{PromptId, RetryId, RunId, SegmentId, VideoId};
use crate::store::{NewRun, PromptStore, ResultFilter, RunOutline, Throughput};
use crate::types::{
    EventType, FailedSegment, JobRequest, LlmCall, NewEvent, NewPrompt, Page, PageRequest, Prompt, PromptRun,
    PromptUpdate, PromptUsage, RunStatus, Scope, SegmentResult, SegmentRetry, VideoResult,
};

fn to_doc<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("cannot serialise a record: {e}")))
}

fn from_doc<T: DeserializeOwned>(what: &str, doc: &str) -> Result<T> {
    serde_json::from_str(doc).map_err(|e| Error::Store(format!("a stored {what} cannot be read: {e}")))
}

fn get_prompt(c: &Connection, prompt_id: &str) -> Result<Prompt> {
    let doc: Option<String> =
        c.query_row("SELECT doc FROM prompts WHERE prompt_id = ?1", [prompt_id], |r| r.get(0)).optional().db()?;
    from_doc("prompt", &doc.ok_or_else(|| Error::not_found("prompt", prompt_id))?)
}

fn put_prompt(tx: &Connection, p: &Prompt) -> Result<()> {
    tx.execute(
        "UPDATE prompts SET doc = ?2, is_active = ?3 WHERE prompt_id = ?1",
        params![p.prompt_id.as_str(), to_doc(p)?, p.is_active],
    )
    .db()?;
    Ok(())
}

fn event(kind: EventType, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(kind).payload(payload)
}

/// A run with its counts filled in from the results.
fn get_outline(c: &Connection, run_id: &str) -> Result<RunOutline> {
    let doc: Option<String> =
        c.query_row("SELECT doc FROM prompt_runs WHERE run_id = ?1", [run_id], |r| r.get(0)).optional().db()?;
    let run: PromptRun = from_doc("prompt run", &doc.ok_or_else(|| Error::not_found("prompt run", run_id))?)?;
    Ok(RunOutline {
        run_id: run.run_id,
        prompt_id: run.prompt_id,
        prompt_name: run.prompt_name,
        index_id: run.index_id,
        created_at: run.created_at,
        json_schema: run.prompt.json_schema,
    })
}

fn get_run(c: &Connection, run_id: &str) -> Result<PromptRun> {
    let row: Option<(String, String)> = c
        .query_row("SELECT doc, status FROM prompt_runs WHERE run_id = ?1", [run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    let (doc, status) = row.ok_or_else(|| Error::not_found("prompt run", run_id))?;
    let mut run: PromptRun = from_doc("prompt run", &doc)?;
    run.status = status.parse().map_err(|_| Error::Store(format!("run {run_id} has status {status:?}")))?;
    let (done, failed): (i64, i64) = c
        .query_row(
            "SELECT coalesce(sum(succeeded), 0), coalesce(sum(1 - succeeded), 0) FROM run_results WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .db()?;
    run.completed_segments = done as u64;
    run.failed_segments = failed as u64;
    run.total_videos =
        c.query_row("SELECT count(*) FROM run_media WHERE run_id = ?1", [run_id], |r| r.get::<_, i64>(0)).db()? as u64;
    // A media item is failed when any of its segments failed, completed when it has a result
    // for each of its segments and none failed (the per-media totals are in the results' docs
    // only through the run's total, so "completed" means: no failure and the run is over).
    let failed_videos: i64 = c
        .query_row(
            "SELECT count(DISTINCT video_id) FROM run_results WHERE run_id = ?1 AND succeeded = 0",
            [run_id],
            |r| r.get(0),
        )
        .db()?;
    run.failed_videos = failed_videos as u64;
    let with_results: i64 = c
        .query_row("SELECT count(DISTINCT video_id) FROM run_results WHERE run_id = ?1", [run_id], |r| r.get(0))
        .db()?;
    run.completed_videos = if run.status.is_final() {
        (with_results - failed_videos).max(0) as u64
    } else {
        c.query_row("SELECT count(*) FROM video_results WHERE run_id = ?1 AND succeeded = 1", [run_id], |r| {
            r.get::<_, i64>(0)
        })
        .db()? as u64
    };
    let (vl_done, vl_failed): (i64, i64) = c
        .query_row(
            "SELECT coalesce(sum(succeeded), 0), coalesce(sum(1 - succeeded), 0) FROM video_results WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .db()?;
    if run.prompt.video_level.is_some() {
        run.video_level_total_items = run.total_videos;
        run.video_level_completed_items = vl_done as u64;
        run.video_level_failed_items = vl_failed as u64;
    }
    Ok(run)
}

fn put_run(tx: &Connection, run: &PromptRun) -> Result<()> {
    tx.execute(
        "UPDATE prompt_runs SET doc = ?2, status = ?3 WHERE run_id = ?1",
        params![run.run_id.as_str(), to_doc(run)?, run.status.as_str()],
    )
    .db()?;
    Ok(())
}

/// The id a write with this `(key, request hash)` made before, if any; the same key with another
/// request is a conflict. `table` and `id_column` are constants of this file.
fn idempotent(
    tx: &Connection,
    table: &str,
    id_column: &str,
    idempotency: Option<(&str, &str)>,
    did: &str,
) -> Result<Option<String>> {
    let Some((key, hash)) = idempotency else { return Ok(None) };
    let seen: Option<(String, Option<String>)> = tx
        .query_row(&format!("SELECT {id_column}, request_hash FROM {table} WHERE idempotency_key = ?1"), [key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .db()?;
    match seen {
        Some((id, h)) if h.as_deref() != Some(hash) => Err(Error::IdempotencyConflict {
            key: key.to_string(),
            message: format!("it {did} {id} from another request"),
        }),
        Some((id, _)) => Ok(Some(id)),
        None => Ok(None),
    }
}

impl PromptStore for SqliteStore {
    fn create_prompt(&self, new: &NewPrompt, idempotency: Option<(&str, &str)>) -> Result<Prompt> {
        let now = now_rfc3339();
        self.db.write(|tx| {
            if let Some(id) = idempotent(tx, "prompts", "prompt_id", idempotency, "created prompt")? {
                return get_prompt(tx, &id);
            }
            let prompt = Prompt {
                prompt_id: PromptId::generate(),
                user_id: "local".into(),
                name: new.name.clone(),
                description: new.description.clone(),
                prompt_text: new.prompt_text.clone(),
                json_schema: new.json_schema.clone(),
                video_level: new.video_level.clone(),
                semantic_indexing: new.semantic_indexing.clone().unwrap_or_default(),
                is_active: true,
                created_at: now.clone(),
                updated_at: now.clone(),
            };
            tx.execute(
                "INSERT INTO prompts (prompt_id, doc, idempotency_key, request_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![prompt.prompt_id.as_str(), to_doc(&prompt)?, idempotency.map(|i| i.0), idempotency.map(|i| i.1), now],
            )
            .db()?;
            append_event(tx, &event(EventType::PromptCreated, serde_json::json!({"prompt_id": prompt.prompt_id})))?;
            Ok(prompt)
        })
    }

    fn prompt(&self, prompt_id: &str) -> Result<Prompt> {
        self.db.read(|c| get_prompt(c, prompt_id))
    }

    fn list_prompts(&self, active_only: bool) -> Result<Vec<Prompt>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT doc FROM prompts WHERE (?1 = 0 OR is_active = 1) ORDER BY created_at, rowid")
                .db()?;
            let docs: Vec<String> =
                stmt.query_map([active_only], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            docs.iter().map(|d| from_doc("prompt", d)).collect()
        })
    }

    fn update_prompt(&self, prompt_id: &str, u: &PromptUpdate, idempotency: Option<(&str, &str)>) -> Result<Prompt> {
        self.db.write(|tx| {
            let mut p = get_prompt(tx, prompt_id)?;
            if let Some((key, hash)) = idempotency {
                let seen: Option<(String, String)> = tx
                    .query_row(
                        "SELECT request_hash, resource_id FROM idempotency_keys WHERE operation = 'prompt-update' AND key = ?1",
                        [key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .db()?;
                match seen {
                    Some((h, id)) if h == hash && id == prompt_id => return Ok(p),
                    Some((_, id)) => {
                        return Err(Error::IdempotencyConflict {
                            key: key.to_string(),
                            message: format!("it updated prompt {id} with another request"),
                        })
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO idempotency_keys (operation, key, request_hash, resource_id) VALUES ('prompt-update', ?1, ?2, ?3)",
                            [key, hash, prompt_id],
                        )
                        .db()?;
                    }
                }
            }
            if let Some(v) = &u.name {
                p.name = v.clone();
            }
            if let Some(v) = &u.description {
                p.description = v.clone();
            }
            if let Some(v) = &u.prompt_text {
                p.prompt_text = v.clone();
            }
            if let Some(v) = &u.json_schema {
                p.json_schema = v.clone();
            }
            if let Some(v) = &u.video_level {
                p.video_level = Some(v.clone());
            }
            if u.clear_video_level {
                p.video_level = None;
            }
            if let Some(v) = &u.semantic_indexing {
                p.semantic_indexing = v.clone();
            }
            p.updated_at = now_rfc3339();
            put_prompt(tx, &p)?;
            append_event(tx, &event(EventType::PromptUpdated, serde_json::json!({"prompt_id": p.prompt_id})))?;
            Ok(p)
        })
    }

    fn delete_prompt(&self, prompt_id: &str, force: bool) -> Result<()> {
        self.db.write(|tx| {
            let mut p = get_prompt(tx, prompt_id)?;
            let runs: i64 =
                tx.query_row("SELECT count(*) FROM prompt_runs WHERE prompt_id = ?1", [prompt_id], |r| r.get(0)).db()?;
            if runs > 0 && !force {
                return Err(Error::Conflict(format!(
                    "prompt {prompt_id} is used by {runs} run(s); pass force to deactivate it (its runs keep their copy)"
                )));
            }
            if runs > 0 {
                p.is_active = false;
                p.updated_at = now_rfc3339();
                put_prompt(tx, &p)?;
            } else {
                tx.execute("DELETE FROM prompts WHERE prompt_id = ?1", [prompt_id]).db()?;
            }
            append_event(
                tx,
                &event(EventType::PromptDeleted, serde_json::json!({"prompt_id": prompt_id, "deactivated": runs > 0})),
            )?;
            Ok(())
        })
    }

    fn prompt_usage(&self, prompt_id: &str) -> Result<PromptUsage> {
        self.db.read(|c| {
            let p = get_prompt(c, prompt_id)?;
            let (runs, active): (i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(status IN ('pending', 'processing')), 0) FROM prompt_runs WHERE prompt_id = ?1",
                    [prompt_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .db()?;
            Ok(PromptUsage {
                prompt_id: p.prompt_id,
                name: p.name,
                is_active: p.is_active,
                is_in_use: runs > 0,
                run_count: runs as u64,
                active_run_count: active as u64,
                created_at: p.created_at,
                schema_properties_count: p.json_schema.get("properties").and_then(|v| v.as_object()).map_or(0, |m| m.len() as u64),
            })
        })
    }

    fn create_run(&self, new: &NewRun<'_>, job: &JobRequest) -> Result<(PromptRun, bool)> {
        self.db.write(|tx| {
            if let Some(id) = idempotent(tx, "prompt_runs", "run_id", new.idempotency, "started run")? {
                return Ok((get_run(tx, &id)?, false));
            }
            let job = super::jobs::insert_job(tx, job)?;
            let mut run = new.run.clone();
            run.job_id = Some(job.job_id.clone());
            tx.execute(
                "INSERT INTO prompt_runs (run_id, prompt_id, status, doc, idempotency_key, request_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    run.run_id.as_str(),
                    run.prompt_id.as_str(),
                    run.status.as_str(),
                    to_doc(&run)?,
                    new.idempotency.map(|i| i.0),
                    new.idempotency.map(|i| i.1),
                    run.created_at
                ],
            )
            .db()?;
            for (i, v) in new.videos.iter().enumerate() {
                tx.execute(
                    "INSERT INTO run_media (run_id, video_id, ordinal) VALUES (?1, ?2, ?3)",
                    params![run.run_id.as_str(), v.as_str(), i as i64],
                )
                .db()?;
            }
            append_event(
                tx,
                &event(
                    EventType::PromptRunCreated,
                    serde_json::json!({"run_id": run.run_id, "prompt_id": run.prompt_id}),
                )
                .run(&run.run_id),
            )?;
            Ok((get_run(tx, &run.run_id)?, true))
        })
    }

    fn run(&self, run_id: &str) -> Result<PromptRun> {
        self.db.read_snapshot(|c| get_run(c, run_id))
    }

    fn list_runs(&self, limit: usize) -> Result<Vec<PromptRun>> {
        self.db.read_snapshot(|c| {
            let mut stmt = c.prepare_cached("SELECT run_id FROM prompt_runs ORDER BY rowid DESC LIMIT ?1").db()?;
            let ids: Vec<String> =
                stmt.query_map([limit as i64], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            ids.iter().map(|id| get_run(c, id)).collect()
        })
    }

    fn run_videos(&self, run_id: &str) -> Result<Vec<VideoId>> {
        self.db.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT video_id FROM run_media WHERE run_id = ?1 ORDER BY ordinal").db()?;
            let ids: Vec<String> =
                stmt.query_map([run_id], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            Ok(ids.into_iter().map(VideoId::from).collect())
        })
    }

    fn set_run_totals(&self, run_id: &RunId, total_segments: u64, total_video_seconds: f64) -> Result<()> {
        self.db.write(|tx| {
            let mut run = get_run(tx, run_id)?;
            run.total_segments = total_segments;
            run.total_video_seconds = total_video_seconds;
            put_run(tx, &run)
        })
    }

    fn set_run_status(&self, run_id: &RunId, status: RunStatus, error: Option<&str>) -> Result<PromptRun> {
        self.db.write(|tx| {
            let mut run = get_run(tx, run_id)?;
            if run.status == status && error.is_none() {
                return Ok(run);
            }
            let now = now_rfc3339();
            run.status = status;
            run.updated_at = now.clone();
            if status == RunStatus::Processing && run.started_at.is_none() {
                run.started_at = Some(now.clone());
            }
            if status.is_final() {
                run.completed_at = Some(now.clone());
            }
            if let Some(e) = error {
                run.error_message = Some(e.to_string());
            }
            put_run(tx, &run)?;
            let kind = match status {
                RunStatus::Pending | RunStatus::Processing => EventType::PromptRunProcessing,
                RunStatus::Completed | RunStatus::CompletedWithFailures => EventType::PromptRunCompleted,
                RunStatus::Cancelled => EventType::PromptRunCancelled,
                _ => EventType::PromptRunFailed,
            };
            let mut e = event(kind, serde_json::json!({"run_id": run.run_id, "status": status, "error": error}))
                .run(&run.run_id);
            // Index-scoped readers (webhooks, automations) see the run's index.
            e.index_id = run.index_id.clone();
            append_event(tx, &e)?;
            get_run(tx, run_id)
        })
    }

    fn request_run_cancel(&self, run_id: &str) -> Result<PromptRun> {
        self.db.write(|tx| {
            let mut run = get_run(tx, run_id)?;
            if run.status.is_final() {
                return Ok(run);
            }
            let now = now_rfc3339();
            run.cancel_requested_at = Some(now.clone());
            run.updated_at = now;
            put_run(tx, &run)?;
            let job = run.job_id.as_ref().map(|j| super::jobs::request_cancel(tx, j)).transpose()?;
            // A run whose job never started ends here; a running one stops at its next check.
            if run.status == RunStatus::Pending && job.is_none_or(|j| j.status == crate::types::JobStatus::Cancelled) {
                run.status = RunStatus::Cancelled;
                run.completed_at = run.cancel_requested_at.clone();
                put_run(tx, &run)?;
                append_event(
                    tx,
                    &event(EventType::PromptRunCancelled, serde_json::json!({"run_id": run.run_id})).run(&run.run_id),
                )?;
            }
            get_run(tx, run_id)
        })
    }

    fn save_segment_result(&self, r: &SegmentResult) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO run_results (run_id, video_id, segment_id, start_us, succeeded, attempts, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (run_id, segment_id) DO UPDATE SET succeeded = excluded.succeeded,
                     attempts = run_results.attempts + 1, doc = excluded.doc",
                params![
                    r.run_id.as_str(),
                    r.video_id.as_str(),
                    r.segment_id.as_str(),
                    crate::types::secs_to_us(r.start_time),
                    r.field_extraction_succeeded,
                    r.attempts,
                    to_doc(r)?
                ],
            )
            .db()?;
            let result_id: i64 = tx
                .query_row(
                    "SELECT result_id FROM run_results WHERE run_id = ?1 AND segment_id = ?2",
                    [r.run_id.as_str(), r.segment_id.as_str()],
                    |row| row.get(0),
                )
                .db()?;
            super::filter::write_fields(tx, result_id, r.field_extraction_succeeded.then_some(&r.metadata))
        })
    }

    fn segment_result(&self, run_id: &str, segment_id: &str) -> Result<Option<SegmentResult>> {
        self.db.read(|c| {
            let row: Option<(String, u32)> = c
                .query_row(
                    "SELECT doc, attempts FROM run_results WHERE run_id = ?1 AND segment_id = ?2",
                    [run_id, segment_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .db()?;
            row.map(|(doc, attempts)| {
                let mut r: SegmentResult = from_doc("segment result", &doc)?;
                r.attempts = attempts;
                Ok(r)
            })
            .transpose()
        })
    }

    fn segment_results(&self, run_id: &str, video_id: &str, page: &PageRequest) -> Result<Page<SegmentResult>> {
        let (limit, after) = page_bounds(page)?;
        self.db.read(|c| {
            get_run(c, run_id)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc, attempts, result_id FROM run_results WHERE run_id = ?1 AND video_id = ?2 AND result_id > ?3
                     ORDER BY result_id LIMIT ?4",
                )
                .db()?;
            let rows: Vec<(String, u32, i64)> = stmt
                .query_map(params![run_id, video_id, after, limit + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for (doc, attempts, id) in rows {
                let mut r: SegmentResult = from_doc("segment result", &doc)?;
                r.attempts = attempts;
                out.push((r, id));
            }
            Ok(paginate(out, limit))
        })
    }

    fn done_segments(&self, run_id: &str, video_id: &str) -> Result<HashSet<SegmentId>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT segment_id FROM run_results WHERE run_id = ?1 AND video_id = ?2 AND succeeded = 1",
                )
                .db()?;
            let ids: Vec<String> =
                stmt.query_map([run_id, video_id], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            Ok(ids.into_iter().map(SegmentId::from).collect())
        })
    }

    fn save_video_result(&self, r: &VideoResult) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO video_results (run_id, video_id, succeeded, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run_id, video_id) DO UPDATE SET succeeded = excluded.succeeded, doc = excluded.doc",
                params![r.run_id.as_str(), r.video_id.as_str(), r.status == "completed", to_doc(r)?],
            )
            .db()?;
            Ok(())
        })
    }

    fn video_result(&self, run_id: &str, video_id: &str) -> Result<Option<VideoResult>> {
        self.db.read(|c| {
            let doc: Option<String> = c
                .query_row(
                    "SELECT doc FROM video_results WHERE run_id = ?1 AND video_id = ?2",
                    [run_id, video_id],
                    |r| r.get(0),
                )
                .optional()
                .db()?;
            doc.map(|d| from_doc("media-wide result", &d)).transpose()
        })
    }

    fn failed_segments(&self, run_id: &str) -> Result<Vec<FailedSegment>> {
        self.db.read(|c| {
            get_run(c, run_id)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT r.doc, r.attempts, s.segment_id IS NOT NULL FROM run_results r
                     LEFT JOIN segments s ON s.segment_id = r.segment_id
                     WHERE r.run_id = ?1 AND r.succeeded = 0 ORDER BY r.video_id, r.start_us",
                )
                .db()?;
            let rows: Vec<(String, u32, bool)> = stmt
                .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            rows.into_iter()
                .map(|(doc, attempts, exists)| {
                    let r: SegmentResult = from_doc("segment result", &doc)?;
                    let error = r.field_extraction_error.unwrap_or_default();
                    Ok(FailedSegment {
                        video_id: r.video_id,
                        segment_id: r.segment_id,
                        start_time: r.start_time,
                        end_time: r.end_time,
                        failed_operation: if error.starts_with("processing:") {
                            "processing"
                        } else {
                            "field_extraction"
                        }
                        .to_string(),
                        error,
                        attempts,
                        retryable: exists,
                    })
                })
                .collect()
        })
    }

    fn run_outline(&self, run_id: &str) -> Result<RunOutline> {
        self.db.read(|c| get_outline(c, run_id))
    }

    fn runs_in_scopes(&self, scopes: &[Scope]) -> Result<Vec<RunOutline>> {
        self.db.read_snapshot(|c| {
            let mut q = Query::default();
            q.push(
                "SELECT DISTINCT rm.run_id, p.rowid FROM run_media rm JOIN prompt_runs p ON p.run_id = rm.run_id
                 JOIN media m ON m.video_id = rm.video_id WHERE coalesce(m.index_id, '') IN ",
            )
            .list(scopes.iter().map(|s| super::scope_key(s).to_string()))
            .push(" ORDER BY p.rowid DESC");
            let mut stmt = c.prepare(&q.text).db()?;
            let ids: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(q.params.iter()), |r| r.get(0))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            ids.iter().map(|id| get_outline(c, id)).collect()
        })
    }

    fn filter_results(&self, filter: &ResultFilter<'_>, page: &PageRequest) -> Result<Page<SegmentResult>> {
        let (limit, after) = page_bounds(page)?;
        self.db.read(|c| {
            let mut q = Query::default();
            q.push("SELECT r.result_id, r.doc, r.attempts FROM run_results r WHERE r.result_id > ").bind(after);
            render(filter, plan(c, filter, DRIVE_BELOW)?, &mut q);
            q.push(" ORDER BY r.result_id LIMIT ").bind(limit + 1);
            let mut stmt = c.prepare(&q.text).db()?;
            let rows: Vec<(i64, String, u32)> = stmt
                .query_map(rusqlite::params_from_iter(q.params.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            let rows = rows
                .into_iter()
                .map(|(id, doc, attempts)| {
                    let mut r: SegmentResult = from_doc("segment result", &doc)?;
                    r.attempts = attempts;
                    Ok((r, id))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(paginate(rows, limit))
        })
    }

    fn run_segment_ids(&self, run_id: &str) -> Result<HashSet<SegmentId>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT segment_id FROM run_results WHERE run_id = ?1 UNION SELECT segment_id FROM segments WHERE run_id = ?1",
                )
                .db()?;
            let ids: Vec<String> = stmt.query_map([run_id], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            Ok(ids.into_iter().map(SegmentId::from).collect())
        })
    }

    fn log_llm_call(&self, call: &LlmCall) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO llm_calls (llm_call_id, run_id, model, succeeded, input_tokens, output_tokens, prefill_ms, duration_ms, doc, cached_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    call.llm_call_id.as_str(),
                    call.run_id.as_deref(),
                    call.model,
                    call.status == "completed",
                    call.input_tokens as i64,
                    call.output_tokens as i64,
                    call.prefill_ms as i64,
                    call.duration_ms as i64,
                    to_doc(call)?,
                    call.cached_input_tokens as i64
                ],
            )
            .db()?;
            Ok(())
        })
    }

    fn llm_calls(&self, run_id: &str) -> Result<Vec<LlmCall>> {
        self.db.read(|c| {
            get_run(c, run_id)?;
            let mut stmt = c.prepare_cached("SELECT doc FROM llm_calls WHERE run_id = ?1 ORDER BY seq").db()?;
            let docs: Vec<String> =
                stmt.query_map([run_id], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            docs.iter().map(|d| from_doc("model call", d)).collect()
        })
    }

    fn throughput(&self, model: &str) -> Result<Option<Throughput>> {
        self.db.read(|c| {
            let (calls, inp, out, prefill, total): (i64, i64, i64, i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(input_tokens - cached_tokens), 0), coalesce(sum(output_tokens), 0),
                            coalesce(sum(prefill_ms), 0), coalesce(sum(duration_ms), 0)
                     FROM llm_calls WHERE model = ?1 AND succeeded = 1",
                    [model],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .db()?;
            if calls == 0 || prefill == 0 || total <= prefill {
                return Ok(None);
            }
            Ok(Some(Throughput {
                calls: calls as u64,
                prefill_tokens_per_second: inp as f64 * 1000.0 / prefill as f64,
                decode_tokens_per_second: out as f64 * 1000.0 / (total - prefill) as f64,
                mean_output_tokens: out as f64 / calls as f64,
            }))
        })
    }

    fn create_retry(&self, retry: &SegmentRetry, job: &JobRequest) -> Result<(SegmentRetry, bool)> {
        self.db.write(|tx| {
            if let Some(key) = &retry.idempotency_key {
                let seen: Option<String> = tx
                    .query_row("SELECT doc FROM run_retries WHERE idempotency_key = ?1", [key], |r| r.get(0))
                    .optional()
                    .db()?;
                if let Some(doc) = seen {
                    let old: SegmentRetry = from_doc("retry", &doc)?;
                    if old.run_id != retry.run_id || old.segment_id != retry.segment_id {
                        return Err(Error::IdempotencyConflict {
                            key: key.clone(),
                            message: format!("it retried segment {} of run {}", old.segment_id, old.run_id),
                        });
                    }
                    return Ok((old, false));
                }
            }
            super::jobs::insert_job(tx, job)?;
            tx.execute(
                "INSERT INTO run_retries (retry_id, run_id, idempotency_key, doc) VALUES (?1, ?2, ?3, ?4)",
                params![retry.retry_id.as_str(), retry.run_id.as_str(), retry.idempotency_key, to_doc(retry)?],
            )
            .db()?;
            Ok((retry.clone(), true))
        })
    }

    fn retry(&self, retry_id: &str) -> Result<SegmentRetry> {
        self.db.read(|c| {
            let doc: Option<String> = c
                .query_row("SELECT doc FROM run_retries WHERE retry_id = ?1", [retry_id], |r| r.get(0))
                .optional()
                .db()?;
            from_doc("retry", &doc.ok_or_else(|| Error::not_found("retry", retry_id))?)
        })
    }

    fn set_retry_status(&self, retry_id: &RetryId, status: &str, error: Option<&str>) -> Result<()> {
        self.db.write(|tx| {
            let doc: String = tx
                .query_row("SELECT doc FROM run_retries WHERE retry_id = ?1", [retry_id.as_str()], |r| r.get(0))
                .optional()
                .db()?
                .ok_or_else(|| Error::not_found("retry", retry_id.as_str()))?;
            let mut r: SegmentRetry = from_doc("retry", &doc)?;
            let now = now_rfc3339();
            r.status = status.to_string();
            r.error = error.map(str::to_string);
            if status == "processing" {
                r.started_at = Some(now);
            } else if status == "completed" || status == "failed" {
                r.completed_at = Some(now);
            }
            tx.execute("UPDATE run_retries SET doc = ?2 WHERE retry_id = ?1", params![retry_id.as_str(), to_doc(&r)?])
                .db()?;
            Ok(())
        })
    }
}
