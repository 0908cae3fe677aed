//! Exports: an index (optionally only some runs' results) or one prompt run, as one JSON
//! document, as JSON Lines or as a Parquet table, to a download under `exports/` or to a
//! connector.
//!
//! The document holds the media items with their segments, transcript phrases and run results
//! (segment results and the media-wide result), the runs with the prompts they ran, and the
//! index. Units are the library's own (microseconds beside seconds). An export is at most
//! [`MAX_EXPORT_BYTES`], the hosted API's limit, so the SDK's download accepts every one.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::connectors::Open;
use super::db::{Db, Sql};
use crate::error::{Error, Result};
use crate::jobs::JobContext;
use crate::store::sqlite::now_rfc3339;
use crate::store::{all_run_segments, every_page, MediaFilter, Stores};
use crate::types::{
    EventType, JobStage, JobStatus, NewEvent, PromptRun, Scope, Segment, SegmentKind, SegmentResult, VideoResult,
    MAX_PAGE_LIMIT,
};

/// Largest export, in bytes (64 MiB, as the hosted API).
pub const MAX_EXPORT_BYTES: usize = 64 << 20;

crate::types::api_enum! {
    /// What an export covers.
    pub enum ExportTarget ("export_type") {
        Index = "index",
        PromptRun = "prompt_run",
    }
}

crate::types::api_enum! {
    /// How an export is written.
    pub enum ExportFormat ("format") {
        /// One JSON document.
        Json = "json",
        /// JSON Lines: one record per line, each with a `type`.
        Jsonl = "jsonl",
        /// One flat Parquet table: a row per segment and run result (see `delivery::table`).
        Parquet = "parquet",
    }
}

/// An export to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportRequest {
    pub export_type: ExportTarget,
    /// The index (id or name) or the run.
    pub target_id: String,
    /// For an index export: only these runs' results (all of the index's runs when `None`).
    pub prompt_run_ids: Option<Vec<String>>,
    /// Write to this connector (it needs the `export` scope) instead of a download.
    pub destination_connector_id: Option<String>,
    /// Under the connector's `export_base_path`.
    pub destination_subpath: Option<String>,
    pub format: ExportFormat,
}

impl ExportRequest {
    pub fn index(index_id: impl Into<String>) -> Self {
        ExportRequest {
            export_type: ExportTarget::Index,
            target_id: index_id.into(),
            prompt_run_ids: None,
            destination_connector_id: None,
            destination_subpath: None,
            format: ExportFormat::Json,
        }
    }

    pub fn prompt_run(run_id: impl Into<String>) -> Self {
        ExportRequest { export_type: ExportTarget::PromptRun, ..ExportRequest::index(run_id) }
    }

    pub fn runs(mut self, run_ids: Vec<String>) -> Self {
        self.prompt_run_ids = Some(run_ids);
        self
    }

    pub fn to_connector(mut self, connector_id: impl Into<String>, subpath: Option<String>) -> Self {
        self.destination_connector_id = Some(connector_id.into());
        self.destination_subpath = subpath;
        self
    }

    pub fn format(mut self, format: ExportFormat) -> Self {
        self.format = format;
        self
    }
}

/// An export (`exp_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Export {
    pub export_id: String,
    pub export_type: ExportTarget,
    pub target_id: String,
    /// `pending`, `processing`, `completed` or `failed`.
    pub status: String,
    pub format: ExportFormat,
    pub prompt_run_ids: Option<Vec<String>>,
    /// `download` or `connector`.
    pub destination_type: String,
    pub destination_connector_id: Option<String>,
    pub destination_base_path: Option<String>,
    pub destination_subpath: Option<String>,
    /// Where a connector export was written (`s3://bucket/key`).
    pub destination_uri: Option<String>,
    /// The file of a download export, once written.
    pub file_path: Option<PathBuf>,
    pub file_size_bytes: Option<u64>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub updated_at: String,
    pub engine_job_id: Option<String>,
}

/// The engine job's request for an export.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExportJobRequest {
    pub export_id: String,
}

/// Check the request and record the export; the caller creates its engine job.
pub(crate) fn create(db: &Db, stores: &Stores, req: &ExportRequest) -> Result<String> {
    let target = match req.export_type {
        ExportTarget::Index => {
            let index = stores.catalog.index(&req.target_id)?;
            for run_id in req.prompt_run_ids.iter().flatten() {
                let run = stores.prompts.run(run_id)?;
                if run.index_id.as_ref() != Some(&index.index_id) {
                    return Err(Error::invalid(
                        "prompt_run_ids",
                        format!("run {run_id} is not a run of index {}", index.index_id),
                    ));
                }
            }
            index.index_id.to_string()
        }
        ExportTarget::PromptRun => {
            if req.prompt_run_ids.is_some() {
                return Err(Error::invalid("prompt_run_ids", "applies to index exports only"));
            }
            stores.prompts.run(&req.target_id)?.run_id.to_string()
        }
    };
    let (base, subpath) = match &req.destination_connector_id {
        Some(id) => {
            let c = super::connectors::get(db, id)?;
            if !c.scopes.iter().any(|s| s == "export") {
                return Err(Error::invalid(
                    "destination_connector_id",
                    format!("connector {id} has no export scope (its scopes: {})", c.scopes.join(", ")),
                ));
            }
            let subpath = req
                .destination_subpath
                .as_deref()
                .map(|s| super::relative_path("destination_subpath", s))
                .transpose()?;
            (c.export_base_path, subpath.filter(|s| !s.is_empty()))
        }
        None if req.destination_subpath.is_some() => {
            return Err(Error::invalid("destination_subpath", "needs destination_connector_id"))
        }
        None => (None, None),
    };
    let export_id = crate::ids::new("exp");
    let now = now_rfc3339();
    db.write(|tx| {
        let seq = Db::next_seq(tx, "exports").sql()?;
        tx.execute(
            "INSERT INTO exports (export_id, seq, export_type, target_id, format, prompt_run_ids, destination_connector_id,
                 destination_base_path, destination_subpath, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            params![
                export_id,
                seq,
                req.export_type.as_str(),
                target,
                req.format.as_str(),
                req.prompt_run_ids.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()),
                req.destination_connector_id,
                base,
                subpath,
                now
            ],
        )
        .sql()
    })?;
    Ok(export_id)
}

pub(crate) fn attach_job(db: &Db, export_id: &str, engine_job_id: &str) -> Result<()> {
    db.with(|c| {
        c.execute("UPDATE exports SET engine_job_id = ?2 WHERE export_id = ?1", params![export_id, engine_job_id])
    })?;
    Ok(())
}

const COLUMNS: &str = "export_id, export_type, target_id, format, prompt_run_ids, destination_connector_id,
    destination_base_path, destination_subpath, destination_uri, engine_job_id, file_path, file_size_bytes, error,
    created_at, started_at, completed_at, updated_at";

fn from_row(r: &Row) -> rusqlite::Result<Export> {
    let export_type: String = r.get(1)?;
    let format: String = r.get(3)?;
    let runs: Option<String> = r.get(4)?;
    let connector: Option<String> = r.get(5)?;
    Ok(Export {
        export_id: r.get(0)?,
        export_type: export_type.parse().unwrap_or(ExportTarget::Index),
        target_id: r.get(2)?,
        status: String::new(),
        format: format.parse().unwrap_or(ExportFormat::Json),
        prompt_run_ids: runs.and_then(|r| serde_json::from_str(&r).ok()),
        destination_type: if connector.is_some() { "connector" } else { "download" }.into(),
        destination_connector_id: connector,
        destination_base_path: r.get(6)?,
        destination_subpath: r.get(7)?,
        destination_uri: r.get(8)?,
        engine_job_id: r.get(9)?,
        file_path: r.get::<_, Option<String>>(10)?.map(PathBuf::from),
        file_size_bytes: r.get::<_, Option<i64>>(11)?.map(|n| n as u64),
        error_message: r.get(12)?,
        attempts: 0,
        created_at: r.get(13)?,
        started_at: r.get(14)?,
        completed_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

/// The export with its status read from its engine job.
pub(crate) fn get(db: &Db, stores: &Stores, export_id: &str) -> Result<Export> {
    let row = || -> Result<Export> {
        db.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM exports WHERE export_id = ?1"), [export_id], from_row)
                .optional()
        })?
        .ok_or_else(|| Error::not_found("export", export_id))
    };
    let mut e = row()?;
    let job = e.engine_job_id.as_deref().and_then(|id| stores.jobs.job(id).ok());
    if job.as_ref().is_some_and(|j| j.status.is_final()) && e.completed_at.is_none() {
        // The row is written before its job ends: read it again so that a job which ended
        // between the two reads is not taken for one that ended without its file.
        e = row()?;
    }
    e.attempts = job.as_ref().map_or(0, |j| j.attempts);
    e.status = match job.as_ref().map(|j| j.status) {
        None | Some(JobStatus::Pending) => "pending",
        Some(JobStatus::Processing) => "processing",
        Some(JobStatus::Completed) if e.completed_at.is_some() => "completed",
        Some(JobStatus::Completed) | Some(JobStatus::Failed) | Some(JobStatus::Cancelled) => "failed",
    }
    .into();
    if e.started_at.is_none() {
        e.started_at = job.as_ref().and_then(|j| j.started_at.clone());
    }
    if e.status == "failed" && e.error_message.is_none() {
        e.error_message = job.and_then(|j| j.error).or_else(|| Some("the export was cancelled".into()));
    }
    Ok(e)
}

/// Exports, newest first.
pub(crate) fn list(db: &Db, stores: &Stores, limit: usize) -> Result<Vec<Export>> {
    let ids: Vec<String> = db.with(|c| {
        let mut stmt = c.prepare("SELECT export_id FROM exports ORDER BY seq DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
        rows.collect()
    })?;
    ids.iter().map(|id| get(db, stores, id)).collect()
}

/// Bytes written so far, refusing to grow past [`MAX_EXPORT_BYTES`].
#[derive(Default)]
struct Bounded {
    buf: Vec<u8>,
    /// A write was refused for the limit (the Parquet writer reports it as an I/O error).
    overflowed: bool,
}

/// The error of an export past [`MAX_EXPORT_BYTES`].
fn too_large() -> Error {
    Error::invalid(
        "export",
        format!(
            "the export would exceed {} MiB: export fewer runs (prompt_run_ids) or one run at a time",
            MAX_EXPORT_BYTES >> 20
        ),
    )
}

impl Bounded {
    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > MAX_EXPORT_BYTES {
            self.overflowed = true;
            return Err(too_large());
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn value(&mut self, v: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(v).map_err(|e| Error::Internal(format!("export: {e}")))?;
        self.push(&bytes)
    }
}

impl Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.push(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::FileTooLarge, e.to_string()))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn both_kinds(stores: &Stores, video_id: &str, run_id: Option<&str>) -> Result<Vec<Segment>> {
    let mut out = all_run_segments(&*stores.catalog, video_id, SegmentKind::Video, run_id)?;
    out.extend(all_run_segments(&*stores.catalog, video_id, SegmentKind::Audio, run_id)?);
    Ok(out)
}

/// What one run holds for one media item.
pub(super) struct RunResults<'a> {
    pub run: &'a PromptRun,
    pub segment_results: Vec<SegmentResult>,
    pub video_result: Option<VideoResult>,
    /// Segments the run made for itself (another segmentation than the ingest's), if any.
    pub run_segments: Vec<Segment>,
}

/// These runs' results for one media item; runs with none are left out.
pub(super) fn run_results<'a>(stores: &Stores, video_id: &str, runs: &'a [PromptRun]) -> Result<Vec<RunResults<'a>>> {
    let mut out = Vec::new();
    for run in runs {
        let segment_results = every_page(MAX_PAGE_LIMIT, |p| stores.prompts.segment_results(&run.run_id, video_id, p))?;
        let video_result = stores.prompts.video_result(&run.run_id, video_id)?;
        if segment_results.is_empty() && video_result.is_none() {
            continue;
        }
        let run_segments = both_kinds(stores, video_id, Some(&run.run_id))?;
        out.push(RunResults { run, segment_results, video_result, run_segments });
    }
    Ok(out)
}

/// One media item with its segments, transcript and these runs' results.
fn media_record(stores: &Stores, video_id: &str, runs: &[PromptRun]) -> Result<Value> {
    let media = stores.catalog.media(video_id)?;
    let segments = both_kinds(stores, video_id, None)?;
    let transcript = stores.catalog.phrases(video_id)?;
    let mut results = serde_json::Map::new();
    for r in run_results(stores, video_id, runs)? {
        results.insert(
            r.run.run_id.to_string(),
            json!({ "segment_results": r.segment_results, "video_result": r.video_result, "run_segments": r.run_segments }),
        );
    }
    Ok(json!({ "media": media, "segments": segments, "transcript": transcript, "results": results }))
}

/// Build the export's bytes.
fn build(stores: &Stores, export: &Export, ctx: &JobContext) -> Result<Vec<u8>> {
    let (index, runs, videos) = match export.export_type {
        ExportTarget::Index => {
            let index = stores.catalog.index(&export.target_id)?;
            let scope = Scope::Index(index.index_id.clone());
            let mut runs = Vec::new();
            for outline in stores.prompts.runs_in_scopes(std::slice::from_ref(&scope))? {
                if export.prompt_run_ids.as_ref().is_none_or(|ids| ids.iter().any(|i| *i == *outline.run_id)) {
                    runs.push(stores.prompts.run(&outline.run_id)?);
                }
            }
            let media = every_page(MAX_PAGE_LIMIT, |p| stores.catalog.list_media(MediaFilter::Scope(&scope), p))?;
            (Some(index), runs, media.into_iter().map(|m| m.video_id.to_string()).collect::<Vec<_>>())
        }
        ExportTarget::PromptRun => {
            let run = stores.prompts.run(&export.target_id)?;
            let videos = stores.prompts.run_videos(&run.run_id)?.into_iter().map(|v| v.to_string()).collect();
            let index = match &run.index_id {
                Some(i) => stores.catalog.index(i).ok(),
                None => None,
            };
            (index, vec![run], videos)
        }
    };
    let header = json!({
        "export_id": export.export_id,
        "export_type": export.export_type,
        "target_id": export.target_id,
        "created_at": export.created_at,
        "format_version": 1,
        "generator": concat!("videovector ", env!("CARGO_PKG_VERSION")),
    });
    let mut out = Bounded::default();
    let total = videos.len().max(1) as f32;
    match export.format {
        ExportFormat::Json => {
            out.push(b"{\"export\":")?;
            out.value(&header)?;
            out.push(b",\"index\":")?;
            out.value(&json!(index))?;
            out.push(b",\"prompt_runs\":")?;
            out.value(&json!(runs))?;
            out.push(b",\"media\":[")?;
            for (i, v) in videos.iter().enumerate() {
                ctx.check()?;
                ctx.progress(JobStage::Exporting, i as f32 / total);
                if i > 0 {
                    out.push(b",")?;
                }
                out.value(&media_record(stores, v, &runs)?)?;
            }
            out.push(b"]}")?;
        }
        ExportFormat::Jsonl => {
            let line = |v: Value, out: &mut Bounded| -> Result<()> {
                out.value(&v)?;
                out.push(b"\n")
            };
            line(json!({ "type": "export", "export": header }), &mut out)?;
            if let Some(index) = &index {
                line(json!({ "type": "index", "index": index }), &mut out)?;
            }
            for run in &runs {
                line(json!({ "type": "prompt_run", "prompt_run": run }), &mut out)?;
            }
            for (i, v) in videos.iter().enumerate() {
                ctx.check()?;
                ctx.progress(JobStage::Exporting, i as f32 / total);
                let mut record = media_record(stores, v, &runs)?;
                let take = |k: &str, r: &mut Value| r.get_mut(k).map(Value::take).unwrap_or(Value::Null);
                line(json!({ "type": "media", "media": take("media", &mut record) }), &mut out)?;
                for s in take("segments", &mut record).as_array().into_iter().flatten() {
                    line(json!({ "type": "segment", "segment": s }), &mut out)?;
                }
                for p in take("transcript", &mut record).as_array().into_iter().flatten() {
                    line(json!({ "type": "phrase", "video_id": v, "phrase": p }), &mut out)?;
                }
                for (run_id, r) in take("results", &mut record).as_object().into_iter().flatten() {
                    for s in r["segment_results"].as_array().into_iter().flatten() {
                        line(json!({ "type": "segment_result", "run_id": run_id, "segment_result": s }), &mut out)?;
                    }
                    if !r["video_result"].is_null() {
                        line(
                            json!({ "type": "video_result", "run_id": run_id, "video_result": r["video_result"] }),
                            &mut out,
                        )?;
                    }
                }
            }
        }
        ExportFormat::Parquet => {
            if let Err(e) = super::table::write(stores, &header, index.as_ref(), &runs, &videos, &mut out, ctx) {
                return Err(if out.overflowed { too_large() } else { e });
            }
        }
    }
    Ok(out.buf)
}

/// Run an export's engine job: build it, then write it to `exports/` or the connector.
pub(crate) fn run(db: &Db, stores: &Stores, root: &Path, export_id: &str, ctx: &JobContext) -> Result<()> {
    let outcome = write(db, stores, root, export_id, ctx);
    let now = now_rfc3339();
    match &outcome {
        Ok(()) => {}
        // A stop goes back to pending (shutdown) or ends as cancelled: no event yet.
        Err(Error::Cancelled) => {}
        Err(e) => {
            db.with(|c| {
                c.execute(
                    "UPDATE exports SET error = ?2, updated_at = ?3 WHERE export_id = ?1",
                    params![export_id, e.to_string(), now],
                )
            })?;
            let mut event = NewEvent::new(EventType::ExportFailed);
            event.payload = json!({ "export_id": export_id, "error_message": e.to_string() });
            if let Ok(x) = get(db, stores, export_id) {
                scope_event(stores, &mut event, &x);
            }
            stores.events.append(&event)?;
        }
    }
    outcome
}

fn write(db: &Db, stores: &Stores, root: &Path, export_id: &str, ctx: &JobContext) -> Result<()> {
    let export = get(db, stores, export_id)?;
    ctx.progress(JobStage::Exporting, 0.0);
    let bytes = build(stores, &export, ctx)?;
    let ext = match export.format {
        ExportFormat::Json => "json",
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Parquet => "parquet",
    };
    let name = format!("{export_id}.{ext}");
    let (file_path, uri) = match &export.destination_connector_id {
        None => {
            let dir = root.join("exports");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let path = dir.join(&name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            (Some(path.display().to_string()), None)
        }
        Some(connector_id) => {
            let open = Open::new(db, root, connector_id)?;
            let key: Vec<&str> =
                [export.destination_base_path.as_deref(), export.destination_subpath.as_deref(), Some(&name)]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect();
            let key = key.join("/");
            open.put(&key, bytes.clone())?;
            (None, Some(open.uri(&key)))
        }
    };
    let now = now_rfc3339();
    db.with(|c| {
        c.execute(
            "UPDATE exports SET file_path = ?2, destination_uri = ?3, file_size_bytes = ?4, error = NULL,
                 completed_at = ?5, updated_at = ?5 WHERE export_id = ?1",
            params![export_id, file_path, uri, bytes.len() as i64, now],
        )
    })?;
    let mut event = NewEvent::new(EventType::ExportReady);
    event.payload = json!({
        "export_id": export_id, "export_type": export.export_type, "target_id": export.target_id,
        "file_size_bytes": bytes.len(), "destination_type": export.destination_type, "destination_uri": uri,
    });
    scope_event(stores, &mut event, &export);
    stores.events.append(&event)?;
    Ok(())
}

/// The index (or run) an export event is about, for webhooks scoped to indexes.
fn scope_event(stores: &Stores, event: &mut NewEvent, export: &Export) {
    if export.export_type == ExportTarget::Index {
        event.index_id = Some(export.target_id.as_str().into());
    } else {
        event.run_id = Some(export.target_id.clone());
        event.index_id = stores.prompts.run(&export.target_id).ok().and_then(|r| r.index_id);
    }
}
