//! Job rows and the event log in SQLite.
//!
//! A worker claims a job with a lease (`owner`, `lease_until_ms`) that its heartbeat renews; a
//! job whose owner died (its lease ran out, or its process is gone) goes back to `pending`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{append_event, now_ms, now_rfc3339, page_bounds, paginate, parse_column, Sql, SqliteStore};
use crate::error::{Error, Result};
use crate::ids::{IndexId, JobId, SegmentId, VideoId};
use crate::store::{EventLog, JobStore};
use crate::types::{Event, EventType, Job, JobProgress, JobRequest, JobStage, JobStatus, NewEvent, Page, PageRequest};

const JOB_COLUMNS: &str = "job_id, kind, status, video_id, index_id, progress_json, attempts, error, cancel_requested, request_json, created_at, started_at, finished_at, updated_at";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = r.get(1)?;
    let status: String = r.get(2)?;
    let progress: Option<String> = r.get(5)?;
    let request: String = r.get(9)?;
    Ok(Job {
        job_id: JobId::from(r.get::<_, String>(0)?),
        kind: parse_column(1, &kind)?,
        status: parse_column(2, &status)?,
        video_id: r.get::<_, Option<String>>(3)?.map(VideoId::from),
        index_id: r.get::<_, Option<String>>(4)?.map(IndexId::from),
        progress: progress.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default(),
        attempts: r.get(6)?,
        error: r.get(7)?,
        cancel_requested: r.get(8)?,
        request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
        created_at: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

fn get_job(c: &Connection, job_id: &str) -> Result<Job> {
    c.query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1"), [job_id], job_from_row)
        .optional()
        .db()?
        .ok_or_else(|| Error::not_found("job", job_id))
}

fn job_event(job: &Job, event_type: EventType, payload: serde_json::Value) -> NewEvent {
    let mut e = NewEvent::new(event_type).job(&job.job_id).payload(payload);
    e.video_id = job.video_id.clone();
    e.index_id = job.index_id.clone();
    e
}

/// Set the final status of a job and log it.
fn finish(tx: &Connection, job: &Job, status: JobStatus, error: Option<&str>) -> Result<()> {
    let now = now_rfc3339();
    // A completed job is at its last stage, whatever the last heartbeat wrote.
    let done = serde_json::to_string(&JobProgress::new(JobStage::Done, 1.0))
        .map_err(|e| Error::Internal(format!("job progress: {e}")))?;
    tx.execute(
        "UPDATE jobs SET status = ?2, error = ?3, owner = NULL, lease_until_ms = NULL, finished_at = ?4, updated_at = ?4,
         progress_json = CASE WHEN ?2 = 'completed' THEN ?5 ELSE progress_json END WHERE job_id = ?1",
        params![job.job_id.as_str(), status.as_str(), error, now, done],
    )
    .db()?;
    let event = match status {
        JobStatus::Completed => EventType::JobCompleted,
        JobStatus::Cancelled => EventType::JobCancelled,
        _ => EventType::JobFailed,
    };
    let payload = error.map_or(serde_json::Value::Null, |e| serde_json::json!({ "error": e }));
    append_event(tx, &job_event(job, event, payload))?;
    Ok(())
}

/// Insert a pending job (inside a caller's transaction, so that a record and its job appear together).
pub(super) fn insert_job(tx: &Connection, request: &JobRequest) -> Result<Job> {
    let id = JobId::generate();
    let now = now_rfc3339();
    tx.execute(
        "INSERT INTO jobs (job_id, kind, status, video_id, index_id, request_json, created_at, updated_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6)",
        params![
            id.as_str(),
            request.kind.as_str(),
            request.video_id.as_deref(),
            request.index_id.as_deref(),
            request.request_json,
            now
        ],
    )
    .db()?;
    let job = get_job(tx, &id)?;
    append_event(tx, &job_event(&job, EventType::JobCreated, serde_json::Value::Null))?;
    Ok(job)
}

/// Cancel a pending job at once, or ask a running one to stop at its next check.
pub(super) fn request_cancel(tx: &Connection, job_id: &str) -> Result<Job> {
    let job = get_job(tx, job_id)?;
    match job.status {
        JobStatus::Pending => finish(tx, &job, JobStatus::Cancelled, None)?,
        JobStatus::Processing => {
            tx.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE job_id = ?1",
                params![job_id, now_rfc3339()],
            )
            .db()?;
        }
        _ => {}
    }
    get_job(tx, job_id)
}

impl JobStore for SqliteStore {
    fn create_job(&self, request: &JobRequest) -> Result<Job> {
        self.db.write(|tx| insert_job(tx, request))
    }

    fn job(&self, job_id: &str) -> Result<Job> {
        self.db.read(|c| get_job(c, job_id))
    }

    fn list_jobs(&self, status: Option<JobStatus>, page: &PageRequest) -> Result<Page<Job>> {
        let (limit, after) = page_bounds(page)?;
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS}, rowid FROM jobs WHERE rowid > ?1 AND (?3 IS NULL OR status = ?3) ORDER BY rowid LIMIT ?2"
                ))
                .db()?;
            let rows: Vec<(Job, i64)> = stmt
                .query_map(params![after, limit + 1, status.map(|s| s.as_str())], |r| Ok((job_from_row(r)?, r.get(14)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            Ok(paginate(rows, limit))
        })
    }

    fn active_job_for_media(&self, video_id: &str) -> Result<Option<Job>> {
        self.db.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE video_id = ?1 AND status IN ('pending', 'processing') ORDER BY rowid DESC LIMIT 1"
                ),
                [video_id],
                job_from_row,
            )
            .optional()
            .db()
        })
    }

    fn claim_job(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>> {
        self.db.write(|tx| {
            let next: Option<String> = tx
                .query_row("SELECT job_id FROM jobs WHERE status = 'pending' ORDER BY rowid LIMIT 1", [], |r| r.get(0))
                .optional()
                .db()?;
            let Some(id) = next else { return Ok(None) };
            let now = now_rfc3339();
            tx.execute(
                "UPDATE jobs SET status = 'processing', owner = ?2, lease_until_ms = ?3, attempts = attempts + 1,
                 cancel_requested = 0, started_at = coalesce(started_at, ?4), updated_at = ?4 WHERE job_id = ?1",
                params![id, owner, now_ms() + lease_ms, now],
            )
            .db()?;
            let job = get_job(tx, &id)?;
            append_event(tx, &job_event(&job, EventType::JobStarted, serde_json::json!({ "attempt": job.attempts })))?;
            Ok(Some(job))
        })
    }

    fn heartbeat(&self, job_id: &JobId, owner: &str, progress: &JobProgress, lease_ms: i64) -> Result<bool> {
        let progress = serde_json::to_string(progress).map_err(|e| Error::Internal(format!("job progress: {e}")))?;
        self.db.write(|tx| {
            tx.execute(
                "UPDATE jobs SET progress_json = ?3, lease_until_ms = ?4, updated_at = ?5 WHERE job_id = ?1 AND owner = ?2",
                params![job_id.as_str(), owner, progress, now_ms() + lease_ms, now_rfc3339()],
            )
            .db()?;
            tx.query_row("SELECT cancel_requested FROM jobs WHERE job_id = ?1", [job_id.as_str()], |r| r.get(0))
                .optional()
                .db()
                .map(|c| c.unwrap_or(true))
        })
    }

    fn finish_job(&self, job_id: &JobId, owner: &str, status: JobStatus, error: Option<&str>) -> Result<()> {
        self.db.write(|tx| {
            let job = get_job(tx, job_id)?;
            let held: Option<String> =
                tx.query_row("SELECT owner FROM jobs WHERE job_id = ?1", [job_id.as_str()], |r| r.get(0)).db()?;
            if held.as_deref() != Some(owner) {
                // Requeued to someone else meanwhile (this worker's lease ran out): theirs now.
                return Ok(());
            }
            finish(tx, &job, status, error)
        })
    }

    fn release_job(&self, job_id: &JobId, owner: &str) -> Result<()> {
        self.db.write(|tx| {
            let job = get_job(tx, job_id)?;
            let n = tx
                .execute(
                    "UPDATE jobs SET status = 'pending', owner = NULL, lease_until_ms = NULL, updated_at = ?3
                     WHERE job_id = ?1 AND owner = ?2 AND status = 'processing'",
                    params![job_id.as_str(), owner, now_rfc3339()],
                )
                .db()?;
            if n > 0 {
                append_event(
                    tx,
                    &job_event(&job, EventType::JobRequeued, serde_json::json!({ "reason": "shutdown" })),
                )?;
            }
            Ok(())
        })
    }

    fn cancel_job(&self, job_id: &str) -> Result<Job> {
        self.db.write(|tx| request_cancel(tx, job_id))
    }

    fn requeue_orphans(&self, is_dead: &dyn Fn(&str) -> bool) -> Result<Vec<JobId>> {
        self.db.write(|tx| {
            let running: Vec<(String, Option<String>, Option<i64>)> = {
                let mut stmt =
                    tx.prepare("SELECT job_id, owner, lease_until_ms FROM jobs WHERE status = 'processing'").db()?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).db()?;
                rows.collect::<rusqlite::Result<_>>().db()?
            };
            let now = now_ms();
            let mut requeued = Vec::new();
            for (id, owner, lease) in running {
                let gone = owner.as_deref().is_none_or(is_dead) || lease.is_none_or(|l| l < now);
                if !gone {
                    continue;
                }
                let job = get_job(tx, &id)?;
                tx.execute(
                    "UPDATE jobs SET status = 'pending', owner = NULL, lease_until_ms = NULL, updated_at = ?2 WHERE job_id = ?1",
                    params![id, now_rfc3339()],
                )
                .db()?;
                append_event(
                    tx,
                    &job_event(&job, EventType::JobRequeued, serde_json::json!({ "reason": "worker gone", "owner": owner })),
                )?;
                requeued.push(job.job_id);
            }
            Ok(requeued)
        })
    }
}

impl EventLog for SqliteStore {
    fn append(&self, event: &NewEvent) -> Result<u64> {
        self.db.write(|tx| append_event(tx, event))
    }

    fn last_event_id(&self) -> Result<u64> {
        self.db
            .read(|c| c.query_row("SELECT COALESCE(MAX(event_id), 0) FROM events", [], |r| r.get::<_, i64>(0)).db())
            .map(|n| n as u64)
    }

    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.db.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT event_id, event_type, video_id, index_id, job_id, segment_id, run_id, created_at, payload_json
                     FROM events WHERE event_id > ?1 ORDER BY event_id LIMIT ?2",
                )
                .db()?;
            let rows = stmt
                .query_map(params![after as i64, limit as i64], |r| {
                    let event_type: String = r.get(1)?;
                    let payload: Option<String> = r.get(8)?;
                    Ok(Event {
                        event_id: r.get::<_, i64>(0)? as u64,
                        event_type: parse_column(1, &event_type)?,
                        video_id: r.get::<_, Option<String>>(2)?.map(VideoId::from),
                        index_id: r.get::<_, Option<String>>(3)?.map(IndexId::from),
                        job_id: r.get::<_, Option<String>>(4)?.map(JobId::from),
                        segment_id: r.get::<_, Option<String>>(5)?.map(SegmentId::from),
                        run_id: r.get(6)?,
                        created_at: r.get(7)?,
                        payload: payload.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or(serde_json::Value::Null),
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
    }
}
