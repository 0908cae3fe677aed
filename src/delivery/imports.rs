//! Import jobs: the files a connector sees under a prefix and pattern, streamed into the data
//! folder and ingested into an index.
//!
//! An import is an engine job (`import`): it lists the files once (kept, so a job that runs
//! again after a crash imports the same list), then downloads each to
//! `imports/<job>/<ordinal>-<name>` (through a `.part` file, so a partial download never becomes
//! media) and submits it as an ingest. The import's status is read from its files and their
//! media, so it is `importing` until every ingest it started has ended.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::connectors::{CloudFile, Open};
use super::db::{Db, Sql};
use crate::engine::Submission;
use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::store::sqlite::now_rfc3339;
use crate::store::Stores;
use crate::types::{EventType, Job, JobStage, JobStatus, NewEvent, Status};

/// An import to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportRequest {
    pub connector_id: String,
    /// Index id or name.
    pub index_id: String,
    #[serde(default)]
    pub source_prefix: String,
    #[serde(default = "star")]
    pub file_pattern: String,
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Skip files an earlier import of the connector brought in, whatever its `import_mode`
    /// (automations import this way).
    #[serde(default)]
    pub only_new: bool,
}

fn star() -> String {
    "*".into()
}
fn yes() -> bool {
    true
}

impl ImportRequest {
    pub fn new(connector_id: impl Into<String>, index_id: impl Into<String>) -> Self {
        ImportRequest {
            connector_id: connector_id.into(),
            index_id: index_id.into(),
            source_prefix: String::new(),
            file_pattern: star(),
            recursive: true,
            only_new: false,
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source_prefix = prefix.into();
        self
    }

    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.file_pattern = pattern.into();
        self
    }

    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }
}

/// Counts of an import's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportProgress {
    pub total_files: u64,
    /// Files whose media is ready.
    pub imported: u64,
    pub failed: u64,
    pub skipped: u64,
    pub bytes_transferred: u64,
    pub current_file: Option<String>,
}

/// An import job (`imp_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportJob {
    pub job_id: String,
    /// `pending`, `scanning`, `importing`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub connector_id: String,
    pub target_index_id: String,
    pub source_prefix: String,
    pub file_pattern: String,
    pub recursive: bool,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub error_message: Option<String>,
    pub progress: ImportProgress,
    /// Media ids of the files whose media is ready, in file order.
    pub video_ids: Vec<String>,
    /// The engine job that lists and downloads the files.
    pub engine_job_id: Option<String>,
    /// The prompt run an automation started over the imported media.
    pub execution_run_id: Option<String>,
}

/// One listed file of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportFile {
    pub file_id: String,
    pub file_name: String,
    pub path: String,
    pub source_ordinal: u64,
    /// `pending`, `importing`, `processing` (downloaded, ingest running), `imported`, `failed`
    /// or `skipped`.
    pub status: String,
    pub size_bytes: u64,
    pub bytes_transferred: u64,
    pub video_id: Option<String>,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
}

/// A media item an import made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportOutput {
    pub file_id: String,
    pub file_name: String,
    pub source_ordinal: u64,
    pub video_id: String,
    pub title: String,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    pub duration: f64,
}

struct ImportRow {
    job_id: String,
    connector_id: String,
    index_id: String,
    source_prefix: String,
    file_pattern: String,
    recursive: bool,
    engine_job_id: Option<String>,
    scanned: bool,
    cancelled: bool,
    error: Option<String>,
    created_at: String,
    only_new: bool,
    execution_run_id: Option<String>,
    finished_at: Option<String>,
}

struct FileRow {
    ordinal: u64,
    path: String,
    size_bytes: u64,
    last_modified: String,
    status: String,
    video_id: Option<String>,
    ingest_job_id: Option<String>,
    bytes: u64,
    error: Option<String>,
    skip_reason: Option<String>,
}

const JOB_COLUMNS: &str = "job_id, connector_id, index_id, source_prefix, file_pattern, recursive, engine_job_id,
    scanned, cancelled, error, created_at, only_new, execution_run_id, finished_at";

fn job_row(r: &Row) -> rusqlite::Result<ImportRow> {
    Ok(ImportRow {
        job_id: r.get(0)?,
        connector_id: r.get(1)?,
        index_id: r.get(2)?,
        source_prefix: r.get(3)?,
        file_pattern: r.get(4)?,
        recursive: r.get(5)?,
        engine_job_id: r.get(6)?,
        scanned: r.get(7)?,
        cancelled: r.get(8)?,
        error: r.get(9)?,
        created_at: r.get(10)?,
        only_new: r.get(11)?,
        execution_run_id: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

fn load(db: &Db, job_id: &str) -> Result<ImportRow> {
    db.with(|c| {
        c.query_row(&format!("SELECT {JOB_COLUMNS} FROM import_jobs WHERE job_id = ?1"), [job_id], job_row).optional()
    })?
    .ok_or_else(|| Error::not_found("import job", job_id))
}

fn files(db: &Db, job_id: &str) -> Result<Vec<FileRow>> {
    db.with(|c| {
        let mut stmt = c.prepare(
            "SELECT ordinal, path, size_bytes, last_modified, status, video_id, ingest_job_id, bytes, error, skip_reason
             FROM import_files WHERE job_id = ?1 ORDER BY ordinal",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok(FileRow {
                ordinal: r.get::<_, i64>(0)? as u64,
                path: r.get(1)?,
                size_bytes: r.get::<_, i64>(2)? as u64,
                last_modified: r.get(3)?,
                status: r.get(4)?,
                video_id: r.get(5)?,
                ingest_job_id: r.get(6)?,
                bytes: r.get::<_, i64>(7)? as u64,
                error: r.get(8)?,
                skip_reason: r.get(9)?,
            })
        })?;
        rows.collect()
    })
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Check the request and record the import; the caller creates its engine job and passes its
/// id to [`attach_job`].
pub(crate) fn create(db: &Db, stores: &Stores, req: &ImportRequest) -> Result<String> {
    let connector = super::connectors::get(db, &req.connector_id)?;
    if !connector.scopes.iter().any(|s| s == "import") {
        return Err(Error::invalid(
            "connector_id",
            format!(
                "connector {} has no import scope (its scopes: {})",
                connector.connector_id,
                connector.scopes.join(", ")
            ),
        ));
    }
    let index = stores.catalog.index(&req.index_id)?;
    super::glob("file_pattern", &req.file_pattern)?;
    let prefix = super::relative_path("source_prefix", &req.source_prefix)?;
    let job_id = crate::ids::new("imp");
    db.write(|tx| {
        let seq = Db::next_seq(tx, "import_jobs").sql()?;
        tx.execute(
            "INSERT INTO import_jobs (job_id, seq, connector_id, index_id, source_prefix, file_pattern, recursive, created_at,
                 only_new)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                job_id,
                seq,
                connector.connector_id,
                index.index_id.as_str(),
                prefix,
                if req.file_pattern.trim().is_empty() { "*" } else { req.file_pattern.trim() },
                req.recursive,
                now_rfc3339(),
                req.only_new
            ],
        )
        .sql()
    })?;
    Ok(job_id)
}

/// Record the engine job that runs (or runs again) an import, clearing a past cancel or failure.
pub(crate) fn attach_job(db: &Db, import_id: &str, engine_job_id: &str) -> Result<()> {
    db.with(|c| {
        c.execute(
            "UPDATE import_jobs SET engine_job_id = ?2, cancelled = 0, error = NULL, finished_at = NULL, finish_event = NULL
             WHERE job_id = ?1",
            params![import_id, engine_job_id],
        )
    })?;
    Ok(())
}

/// The engine job's request for an import.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ImportJobRequest {
    pub import_id: String,
}

/// Where a file's media is, read from the catalog.
fn media_state(stores: &Stores, f: &FileRow) -> Option<(Status, Option<String>, String, f64)> {
    let id = f.video_id.as_deref()?;
    stores.catalog.media(id).ok().map(|m| (m.status, m.error, m.title, m.duration.unwrap_or(0.0)))
}

/// A file's status and error, read through its media.
fn file_status(stores: &Stores, f: &FileRow) -> (String, Option<String>) {
    if f.status != "submitted" {
        return (f.status.clone(), f.error.clone());
    }
    // The ingest goes on after its media is `completed` (embedding, transcription): the file is
    // imported once its job has ended too.
    let ingest_running =
        f.ingest_job_id.as_deref().and_then(|j| stores.jobs.job(j).ok()).is_some_and(|j| !j.status.is_final());
    match media_state(stores, f) {
        Some((Status::Completed, ..)) if ingest_running => ("processing".into(), None),
        Some((Status::Completed, ..)) => ("imported".into(), None),
        Some((Status::Failed, error, ..)) => ("failed".into(), error.or_else(|| Some("processing failed".into()))),
        Some(_) => ("processing".into(), None),
        None => ("failed".into(), Some(format!("media {} was deleted", f.video_id.as_deref().unwrap_or("?")))),
    }
}

/// The import as the API shows it.
pub(crate) fn view(db: &Db, stores: &Stores, job_id: &str) -> Result<ImportJob> {
    let row = load(db, job_id)?;
    let job: Option<Job> = match &row.engine_job_id {
        Some(id) => stores.jobs.job(id).ok(),
        None => None,
    };
    let files = files(db, job_id)?;
    let mut progress = ImportProgress { total_files: files.len() as u64, ..Default::default() };
    let mut video_ids = Vec::new();
    let mut busy = false;
    let mut first_error = None;
    for f in &files {
        progress.bytes_transferred += f.bytes;
        let (status, error) = file_status(stores, f);
        match status.as_str() {
            "imported" => {
                progress.imported += 1;
                video_ids.extend(f.video_id.clone());
            }
            "failed" => {
                progress.failed += 1;
                if first_error.is_none() {
                    first_error = error.map(|e| format!("{}: {e}", f.path));
                }
            }
            "skipped" => progress.skipped += 1,
            "importing" => {
                progress.current_file = Some(base_name(&f.path));
                busy = true;
            }
            _ => busy = true,
        }
    }
    let status = if row.cancelled {
        "cancelled"
    } else {
        match job.as_ref().map(|j| j.status) {
            None | Some(JobStatus::Pending) => "pending",
            Some(JobStatus::Processing) if !row.scanned => "scanning",
            Some(JobStatus::Processing) => "importing",
            Some(JobStatus::Cancelled) => "cancelled",
            Some(JobStatus::Failed) => "failed",
            Some(JobStatus::Completed) if busy => "importing",
            Some(JobStatus::Completed) if progress.total_files > 0 && progress.failed == progress.total_files => {
                "failed"
            }
            Some(JobStatus::Completed) => "completed",
        }
    };
    let error_message = row.error.clone().or_else(|| job.as_ref().and_then(|j| j.error.clone())).or_else(|| {
        (status == "failed").then(|| {
            format!(
                "every file failed ({} of {}); the first: {}",
                progress.failed,
                progress.total_files,
                first_error.clone().unwrap_or_default()
            )
        })
    });
    let terminal = matches!(status, "completed" | "failed" | "cancelled");
    // When it ended: recorded once it settled, else the last of its own job and its ingests.
    let completed_at = if terminal {
        row.finished_at.clone().or_else(|| {
            let ingests =
                files.iter().filter_map(|f| f.ingest_job_id.as_deref()).filter_map(|j| stores.jobs.job(j).ok());
            ingests.filter_map(|j| j.finished_at).chain(job.as_ref().and_then(|j| j.finished_at.clone())).max()
        })
    } else {
        None
    };
    Ok(ImportJob {
        job_id: row.job_id,
        status: status.into(),
        connector_id: row.connector_id,
        target_index_id: row.index_id,
        source_prefix: row.source_prefix,
        file_pattern: row.file_pattern,
        recursive: row.recursive,
        created_at: row.created_at,
        started_at: job.as_ref().and_then(|j| j.started_at.clone()),
        completed_at,
        error_message: if status == "failed" || status == "cancelled" { error_message } else { None },
        progress,
        video_ids,
        engine_job_id: row.engine_job_id,
        execution_run_id: row.execution_run_id,
    })
}

/// Record the prompt run started over an import's media.
pub(crate) fn set_execution(db: &Db, import_id: &str, run_id: &str) -> Result<()> {
    db.with(|c| {
        c.execute("UPDATE import_jobs SET execution_run_id = ?2 WHERE job_id = ?1", params![import_id, run_id])
    })?;
    Ok(())
}

/// Whether an earlier import of this connector brought in this file (same path, size and
/// modification time) and its media is still there and ready.
pub(crate) fn already_imported(db: &Db, stores: &Stores, connector_id: &str, f: &CloudFile) -> Result<Option<String>> {
    let earlier: Option<(String, String)> = db.with(|c| {
        c.query_row(
            "SELECT job_id, video_id FROM imported_sources WHERE connector_id = ?1 AND path = ?2
             AND size_bytes = ?3 AND last_modified = ?4",
            params![connector_id, f.path, f.size_bytes as i64, f.last_modified],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })?;
    Ok(earlier
        .filter(|(_, video)| stores.catalog.media(video).is_ok_and(|m| m.status == Status::Completed))
        .map(|(job, _)| job))
}

/// Imports, newest first, optionally of one status.
pub(crate) fn list(db: &Db, stores: &Stores, status: Option<&str>) -> Result<Vec<ImportJob>> {
    let ids: Vec<String> = db.with(|c| {
        let mut stmt = c.prepare("SELECT job_id FROM import_jobs ORDER BY seq DESC")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    })?;
    let mut out = Vec::new();
    for id in ids {
        let job = view(db, stores, &id)?;
        if status.is_none_or(|s| s.eq_ignore_ascii_case(&job.status)) {
            out.push(job);
        }
    }
    Ok(out)
}

/// The import's files from `offset`, at most `limit`; only failed ones if asked.
pub(crate) fn file_page(db: &Db, stores: &Stores, job_id: &str, failed_only: bool) -> Result<Vec<ImportFile>> {
    load(db, job_id)?;
    Ok(files(db, job_id)?
        .iter()
        .map(|f| {
            let (status, error) = file_status(stores, f);
            ImportFile {
                file_id: format!("{job_id}_{}", f.ordinal),
                file_name: base_name(&f.path),
                path: f.path.clone(),
                source_ordinal: f.ordinal,
                status,
                size_bytes: f.size_bytes,
                bytes_transferred: f.bytes,
                video_id: f.video_id.clone(),
                error,
                skip_reason: f.skip_reason.clone(),
            }
        })
        .filter(|f| !failed_only || f.status == "failed")
        .collect())
}

/// The media items the import made, in file order.
pub(crate) fn outputs(db: &Db, stores: &Stores, job_id: &str) -> Result<Vec<ImportOutput>> {
    load(db, job_id)?;
    Ok(files(db, job_id)?
        .iter()
        .filter_map(|f| {
            let video_id = f.video_id.clone()?;
            let (status, ..) = file_status(stores, f);
            let (_, _, title, duration) =
                media_state(stores, f).unwrap_or((Status::Failed, None, base_name(&f.path), 0.0));
            Some(ImportOutput {
                file_id: format!("{job_id}_{}", f.ordinal),
                file_name: base_name(&f.path),
                source_ordinal: f.ordinal,
                video_id,
                title,
                status: match status.as_str() {
                    "imported" => "ready".into(),
                    other => other.to_string(),
                },
                duration,
            })
        })
        .collect())
}

/// Mark an import cancelled; returns the engine jobs to cancel (its own, and the ingests it
/// started that have not ended). An import that has ended is left as it is.
pub(crate) fn cancel(db: &Db, stores: &Stores, job_id: &str) -> Result<Vec<String>> {
    let view = view(db, stores, job_id)?;
    // Cancelling an import that has ended changes nothing (as for runs and uploads).
    if matches!(view.status.as_str(), "completed" | "failed" | "cancelled") {
        return Ok(Vec::new());
    }
    let row = load(db, job_id)?;
    db.with(|c| {
        c.execute(
            "UPDATE import_jobs SET cancelled = 1, finished_at = ?2 WHERE job_id = ?1",
            params![job_id, now_rfc3339()],
        )
    })?;
    let mut jobs: Vec<String> = row.engine_job_id.into_iter().collect();
    for f in files(db, job_id)? {
        if f.status == "submitted" {
            jobs.extend(f.ingest_job_id);
        }
    }
    Ok(jobs)
}

/// Make failed files (all of them, or those whose path is in `only`) pending again for a new
/// run of the import. Refused while the import runs.
pub(crate) fn reset_failed(db: &Db, stores: &Stores, job_id: &str, only: Option<&[String]>) -> Result<usize> {
    let view = view(db, stores, job_id)?;
    if !matches!(view.status.as_str(), "completed" | "failed" | "cancelled") {
        return Err(Error::Conflict(format!("import job {job_id} is {}; retry it once it has ended", view.status)));
    }
    let mut n = 0;
    for f in files(db, job_id)? {
        let (status, _) = file_status(stores, &f);
        let wanted = only.is_none_or(|paths| paths.iter().any(|p| p == &f.path || *p == base_name(&f.path)));
        if (status == "failed" || (view.status == "cancelled" && status != "imported" && status != "skipped")) && wanted
        {
            db.with(|c| {
                c.execute(
                    "UPDATE import_files SET status = 'pending', video_id = NULL, ingest_job_id = NULL, error = NULL, bytes = 0
                     WHERE job_id = ?1 AND ordinal = ?2",
                    params![job_id, f.ordinal as i64],
                )
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Append the import's final event once it has ended (`import_job.completed`,
/// `import_job.partial_completed` or `import_job.failed`; a cancelled import appends none).
/// Called by the webhook dispatcher, which sees every media event.
pub(crate) fn settle(db: &Db, stores: &Stores) -> Result<()> {
    let open: Vec<String> = db.with(|c| {
        let mut stmt = c.prepare("SELECT job_id FROM import_jobs WHERE finish_event IS NULL AND cancelled = 0")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    })?;
    for id in open {
        let v = view(db, stores, &id)?;
        let event = match v.status.as_str() {
            "completed" if v.progress.failed > 0 => EventType::ImportJobPartialCompleted,
            "completed" => EventType::ImportJobCompleted,
            "failed" => EventType::ImportJobFailed,
            _ => continue,
        };
        let claimed = db.with(|c| {
            c.execute(
                "UPDATE import_jobs SET finish_event = ?2, finished_at = COALESCE(finished_at, ?3)
                 WHERE job_id = ?1 AND finish_event IS NULL",
                params![id, event.as_str(), v.completed_at.clone().unwrap_or_else(now_rfc3339)],
            )
        })?;
        if claimed == 1 {
            stores.events.append(&import_event(event, &v))?;
        }
    }
    Ok(())
}

fn import_event(event: EventType, v: &ImportJob) -> NewEvent {
    let mut e = NewEvent::new(event);
    e.index_id = Some(v.target_index_id.as_str().into());
    e.payload = json!({
        "import_job_id": v.job_id,
        "connector_id": v.connector_id,
        "index_id": v.target_index_id,
        "status": v.status,
        "total_files": v.progress.total_files,
        "imported": v.progress.imported,
        "failed": v.progress.failed,
        "skipped": v.progress.skipped,
        "video_ids": v.video_ids,
        "error_message": v.error_message,
    });
    e
}

/// Run an import's engine job: list the files (once), then download and submit each file not
/// yet done. `submit` hands a downloaded file to the engine as an ingest into the index.
pub(crate) fn run(
    db: &Db,
    stores: &Stores,
    root: &Path,
    import_id: &str,
    ctx: &JobContext,
    submit: &dyn Fn(&Path, &str, &str) -> Result<Submission>,
) -> Result<()> {
    let row = load(db, import_id)?;
    if row.cancelled {
        return Err(Error::Cancelled);
    }
    let open = Open::new(db, root, &row.connector_id)?;
    if !row.scanned {
        ctx.progress(JobStage::Scanning, 0.0);
        let mut started = view(db, stores, import_id)?;
        started.status = "scanning".into();
        stores.events.append(&import_event(EventType::ImportJobStarted, &started))?;
        let listed = open.browse(&row.source_prefix, &row.file_pattern, row.recursive)?;
        record_listing(db, stores, &open, &row, &listed)?;
    }
    let dir = root.join("imports").join(import_id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let todo: Vec<FileRow> =
        files(db, import_id)?.into_iter().filter(|f| f.status == "pending" || f.status == "importing").collect();
    let total = todo.len().max(1) as f32;
    for (i, f) in todo.iter().enumerate() {
        ctx.check()?;
        ctx.progress(JobStage::Importing, i as f32 / total);
        set_file(db, import_id, f.ordinal, "importing", None)?;
        let name = base_name(&f.path);
        let dest = dir.join(format!("{}-{}", f.ordinal, safe_name(&name)));
        let downloaded = if dest.exists() {
            Ok(std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0))
        } else {
            let mut last = 0u64;
            open.download(
                &f.path,
                &dest,
                &mut |n| {
                    // Byte counts are written every 8 MiB, not per chunk.
                    if n - last >= 8 << 20 {
                        last = n;
                        let _ = db.with(|c| {
                            c.execute(
                                "UPDATE import_files SET bytes = ?3 WHERE job_id = ?1 AND ordinal = ?2",
                                params![import_id, f.ordinal as i64, n as i64],
                            )
                        });
                    }
                },
                &|| ctx.is_stopped(),
            )
        };
        let bytes = match downloaded {
            Ok(n) => n,
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) if e.is_store_failure() => return Err(e),
            Err(e) => {
                set_file(db, import_id, f.ordinal, "failed", Some(&e.to_string()))?;
                continue;
            }
        };
        db.with(|c| {
            c.execute(
                "UPDATE import_files SET bytes = ?3 WHERE job_id = ?1 AND ordinal = ?2",
                params![import_id, f.ordinal as i64, bytes as i64],
            )
        })?;
        match submit(&dest, &name, &row.index_id) {
            Ok(Submission { video_id: Some(video_id), job_id, .. }) => {
                db.write(|tx| {
                    tx.execute(
                        "UPDATE import_files SET status = 'submitted', video_id = ?3, ingest_job_id = ?4, error = NULL
                         WHERE job_id = ?1 AND ordinal = ?2",
                        params![import_id, f.ordinal as i64, video_id.as_str(), job_id.as_deref()],
                    )
                    .sql()?;
                    tx.execute(
                        "INSERT OR REPLACE INTO imported_sources (connector_id, path, size_bytes, last_modified, job_id, video_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![row.connector_id, f.path, f.size_bytes as i64, f.last_modified, import_id, video_id.as_str()],
                    )
                    .sql()
                })?;
            }
            Ok(Submission { error, .. }) => {
                let _ = std::fs::remove_file(&dest);
                let error = error.unwrap_or_else(|| "the file could not be ingested".into());
                set_file(db, import_id, f.ordinal, "failed", Some(&error))?;
            }
            Err(e) if e.is_store_failure() => return Err(e),
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                set_file(db, import_id, f.ordinal, "failed", Some(&e.to_string()))?;
            }
        }
        let mut progress = view(db, stores, import_id)?;
        progress.progress.current_file = Some(name);
        stores.events.append(&import_event(EventType::ImportJobProgress, &progress))?;
    }
    ctx.progress(JobStage::Importing, 1.0);
    Ok(())
}

/// Keep what the listing found, in one transaction with the `scanned` flag. Under a
/// `new_only` connector (or an import asked for only new files), a file an earlier import
/// brought in whose media is still there and ready is skipped.
fn record_listing(db: &Db, stores: &Stores, open: &Open, row: &ImportRow, listed: &[CloudFile]) -> Result<()> {
    let new_only = open.connector.import_mode == "new_only" || row.only_new;
    let mut earlier = Vec::with_capacity(listed.len());
    for f in listed {
        earlier.push(if new_only { already_imported(db, stores, &open.connector.connector_id, f)? } else { None });
    }
    let import_id = row.job_id.as_str();
    db.write(|tx| {
        for (ordinal, (f, earlier)) in listed.iter().zip(&earlier).enumerate() {
            let (status, skip) = match earlier {
                Some(job) => ("skipped", Some(format!("already imported by {job}"))),
                None => ("pending", None),
            };
            tx.execute(
                "INSERT OR IGNORE INTO import_files (job_id, ordinal, path, size_bytes, last_modified, status, skip_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![import_id, ordinal as i64, f.path, f.size_bytes as i64, f.last_modified, status, skip],
            )
            .sql()?;
        }
        tx.execute("UPDATE import_jobs SET scanned = 1 WHERE job_id = ?1", [import_id]).sql()?;
        Ok(())
    })
}

fn set_file(db: &Db, import_id: &str, ordinal: u64, status: &str, error: Option<&str>) -> Result<()> {
    db.with(|c| {
        c.execute(
            "UPDATE import_files SET status = ?3, video_id = NULL, ingest_job_id = NULL, error = ?4
             WHERE job_id = ?1 AND ordinal = ?2",
            params![import_id, ordinal as i64, status, error],
        )
    })?;
    Ok(())
}

/// A file name safe to create: the base name with anything but letters, digits, `.`, `-` and
/// `_` replaced.
pub(crate) fn safe_name(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        "file".into()
    } else {
        s.chars().take(120).collect()
    }
}
