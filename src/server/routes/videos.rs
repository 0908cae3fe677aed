//! `/videos`, `/playground/videos` and `/import-jobs`: uploads streamed to disk and ingested as
//! engine jobs (answered as import jobs), media by `file://` URI or path, segments, batch
//! helpers, deletion records, signed local URLs, thumbnails and preview GIFs.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Extension, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::delivery::Marks;
use super::{check_len, delivery, every, offset_page, PageQuery};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::idempotency::{fingerprint, run_once};
use crate::server::state::ImportRow;
use crate::server::{base, blocking, ok, reply, wire, App, Json, Shared};
use crate::store::sqlite::{now_ms, rfc3339_ms};
use crate::{IngestOptions, Job, Result, SegmentQuery};

// ---- import jobs ----

/// Hand one file to the engine as an ingest job and record the import job that reports it.
pub(crate) fn import_file(
    a: &App,
    path: &FsPath,
    file_name: &str,
    title: Option<String>,
    index: Option<String>,
    source_kind: &str,
    bytes: u64,
) -> Result<Value> {
    let index_id = match index {
        Some(i) => Some(a.engine.indexes().retrieve(&i)?.index_id.to_string()),
        None => None,
    };
    let mut opts = IngestOptions::new();
    opts.index = index_id.clone();
    opts.title = title;
    let sub = a.engine.videos().submit(&[path.to_path_buf()], &opts)?.pop();
    let deduplicated = sub.as_ref().is_some_and(|s| s.deduplicated);
    let row = ImportRow {
        job_id: crate::ids::new("imp"),
        created_at: rfc3339_ms(now_ms()),
        source_kind: source_kind.into(),
        file_name: file_name.into(),
        source_path: path.display().to_string(),
        target_index_id: index_id,
        engine_job_id: sub.as_ref().and_then(|s| s.job_id.as_ref().map(|j| j.to_string())),
        video_id: sub.as_ref().and_then(|s| s.video_id.as_ref().map(|v| v.to_string())),
        error: sub.and_then(|s| s.error),
        bytes,
    };
    a.state.insert_import(&row)?;
    a.state.record_usage(
        "media_imported",
        1.0,
        "files",
        Some(&json!({ "import_job_id": row.job_id, "bytes": bytes })),
    )?;
    let mut job = import_json(a, &row)?;
    job["deduplicated"] = json!(deduplicated);
    Ok(job)
}

/// The SDK's `ImportJob` for a recorded import.
fn import_json(a: &App, row: &ImportRow) -> Result<Value> {
    let job: Option<Job> = match &row.engine_job_id {
        Some(id) => Some(a.engine.jobs().get(id)?),
        None => None,
    };
    let media = match &row.video_id {
        Some(v) => a.engine.videos().retrieve(v).ok(),
        None => None,
    };
    let error = row
        .error
        .clone()
        .or_else(|| job.as_ref().and_then(|j| j.error.clone()))
        .or_else(|| media.as_ref().and_then(|m| m.error.clone()));
    let failed_media = media.as_ref().is_some_and(|m| m.status == crate::Status::Failed);
    let status = wire::import_status(job.as_ref(), row.error.is_some() || failed_media);
    if status == "failed" || status == "cancelled" {
        forget_upload(a, &row.source_path);
    }
    let done = status == "completed";
    let output = row.video_id.as_ref().map(|v| {
        json!({
            "file_id": format!("{}_0", row.job_id), "file_name": row.file_name, "source_ordinal": 0,
            "part_index": 0, "part_count": 1, "source_start_seconds": 0.0,
            "source_end_seconds": media.as_ref().and_then(|m| m.duration).unwrap_or(0.0),
            "video_id": v, "title": media.as_ref().map(|m| m.title.clone()).unwrap_or_else(|| row.file_name.clone()),
            "status": if done { "ready" } else { status },
        })
    });
    let file = file_json(row, status, error.as_deref());
    let failed = status == "failed";
    Ok(json!({
        "job_id": row.job_id, "status": status, "phase": job.as_ref().map(|j| j.progress.stage),
        "source_kind": row.source_kind, "connector_id": null, "target_index_id": row.target_index_id,
        "source_prefix": "", "file_pattern": row.file_name, "recursive": false,
        "created_at": row.created_at, "started_at": job.as_ref().and_then(|j| j.started_at.clone()),
        "completed_at": job.as_ref().and_then(|j| j.finished_at.clone()), "error_message": error,
        "progress": {
            "total_files": 1, "imported": u64::from(done), "failed": u64::from(failed), "skipped": 0,
            "bytes_transferred": row.bytes, "current_file": if done || failed { None } else { Some(&row.file_name) },
            "parts_total": 1, "parts_completed": u64::from(done), "parts_failed": u64::from(failed),
            "fraction": job.as_ref().map(|j| j.progress.fraction),
        },
        "outputs": { "items": output.iter().collect::<Vec<_>>(), "next_cursor": null, "total": u64::from(output.is_some()) },
        "execution": { "status": "not_requested" },
        "video_ids": if done { row.video_id.iter().collect::<Vec<_>>() } else { vec![] },
        "failed_files": if failed { vec![file] } else { vec![] },
        "failed_files_next_cursor": null,
        "engine_job_id": row.engine_job_id,
    }))
}

/// Remove the uploaded copy at `source_path` (its folder under `uploads/`) once nothing will read
/// it: the import failed or was cancelled, or its media was deleted. Other sources are the
/// user's files and are never touched.
pub(crate) fn forget_upload(a: &App, source_path: &str) {
    let uploads = a.engine.data_dir().join("uploads");
    let path = FsPath::new(source_path);
    if let Some(dir) = path.parent().filter(|d| d.parent() == Some(uploads.as_path())) {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn file_json(row: &ImportRow, status: &str, error: Option<&str>) -> Value {
    let failed = status == "failed";
    json!({
        "file_id": format!("{}_0", row.job_id), "file_name": row.file_name, "source_ordinal": 0,
        "status": status, "part_count": 1, "parts_completed": u64::from(status == "completed"),
        "parts_failed": u64::from(failed),
        "failure": if failed { json!({ "message": error.unwrap_or("failed") }) } else { Value::Null },
        "skip_reason": null, "size_bytes": row.bytes,
    })
}

fn import_row(a: &App, job_id: &str) -> Result<ImportRow> {
    a.state.import(job_id)?.ok_or_else(|| crate::Error::not_found("import job", job_id))
}

#[derive(Deserialize)]
pub struct ImportListQuery {
    status: Option<String>,
}

pub async fn import_jobs(State(app): State<Shared>, Query(q): Query<ImportListQuery>) -> ApiResult {
    let jobs = blocking(&app, move |a| {
        let mut out = vec![];
        for row in a.state.imports()? {
            let v = import_json(a, &row)?;
            if q.status.as_deref().is_none_or(|s| v["status"] == s) {
                out.push(v);
            }
        }
        for job in a.engine.imports().list(q.status.as_deref())? {
            out.push(delivery::import_json(a, &job)?);
        }
        // Newest first, uploads and connector imports together.
        out.sort_by(|x, y| y["created_at"].as_str().cmp(&x["created_at"].as_str()));
        Ok(out)
    })
    .await?;
    ok(Value::Array(jobs))
}

/// An import job of either kind: an upload (the server's record) or a connector import (the
/// engine's).
fn any_import_json(a: &App, id: &str) -> Result<Value> {
    match a.state.import(id)? {
        Some(row) => import_json(a, &row),
        None => delivery::import_json(a, &a.engine.imports().retrieve(id)?),
    }
}

pub async fn import_job(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(&app, move |a| any_import_json(a, &id)).await?)
}

#[derive(Deserialize)]
pub struct ItemsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    failed_only: Option<bool>,
}

pub async fn import_outputs(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> ApiResult {
    let page = blocking(&app, move |a| match a.state.import(&id)? {
        Some(row) => Ok(Ok(import_json(a, &row)?["outputs"].clone())),
        None => Ok(delivery::outputs_page(a, &id, q.limit, q.cursor.as_deref())),
    })
    .await??;
    ok(page)
}

pub async fn import_files(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<ItemsQuery>) -> ApiResult {
    let id2 = id.clone();
    let connector = blocking(&app, move |a| match a.state.import(&id2)? {
        Some(_) => Ok(None),
        None => Ok(Some(delivery::files_page(a, &id2, q.failed_only.unwrap_or(false), q.limit, q.cursor.as_deref()))),
    })
    .await?;
    if let Some(page) = connector {
        return ok(page?);
    }
    let (row, status, error) = blocking(&app, move |a| {
        let row = import_row(a, &id)?;
        let v = import_json(a, &row)?;
        Ok((row, v["status"].as_str().unwrap_or("").to_string(), v["error_message"].as_str().map(String::from)))
    })
    .await?;
    let items: Vec<Value> = if q.failed_only.unwrap_or(false) && status != "failed" {
        vec![]
    } else {
        vec![file_json(&row, &status, error.as_deref())]
    };
    ok(json!({ "items": items, "next_cursor": null, "total": items.len() }))
}

pub async fn import_cancel(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(&app, move |a| {
        if a.state.import(&id)?.is_none() {
            return delivery::import_json(a, &a.engine.imports().cancel(&id)?);
        }
        let row = import_row(a, &id)?;
        if let Some(job) = &row.engine_job_id {
            let j = a.engine.jobs().get(job)?;
            if !j.status.is_final() {
                a.engine.jobs().cancel(job)?;
            }
        }
        import_json(a, &row)
    })
    .await?)
}

/// Import the file of a failed import again (as a new import job).
pub async fn import_retry(State(app): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> ApiResult {
    // `files` entries are free-form; a `path`, `file_name` or `name` in one picks that file.
    let files: Option<Vec<String>> = body.get("files").and_then(Value::as_array).map(|fs| {
        fs.iter()
            .filter_map(|f| ["path", "file_name", "name"].iter().find_map(|k| f.get(*k).and_then(Value::as_str)))
            .map(str::to_string)
            .collect()
    });
    let v = blocking(&app, move |a| {
        if a.state.import(&id)?.is_none() {
            let only = files.as_deref().filter(|f| !f.is_empty());
            return delivery::import_json(a, &a.engine.imports().retry(&id, only)?);
        }
        let row = import_row(a, &id)?;
        let current = import_json(a, &row)?;
        if current["status"] != "failed" {
            return Ok(current);
        }
        let path = PathBuf::from(&row.source_path);
        if !path.is_file() {
            return Err(crate::Error::Conflict(format!(
                "the file of import job {id} ({}) is not kept after a failed upload; upload it again",
                row.file_name
            )));
        }
        import_file(a, &path, &row.file_name, None, row.target_index_id.clone(), &row.source_kind, row.bytes)
    })
    .await?;
    Ok(reply(StatusCode::ACCEPTED, v))
}

/// `POST /videos` with a `source_connector_id`: one object of a connector is imported by an
/// import job instead.
fn connector_uri() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "use_import_job",
        "registering one object of a connector by video_uri is not served: create an import job \
         (POST /import-jobs) with the connector, its prefix and a file_pattern naming the object",
    )
}

// ---- uploads and registration ----

/// Keep the last path component of a client's file name, with nothing that could leave the
/// upload folder.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().map(|c| if c.is_alphanumeric() || "._- ".contains(c) { c } else { '_' }).collect();
    let clean = clean.trim_start_matches('.').trim().to_string();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean.chars().take(200).collect()
    }
}

/// `POST /videos/upload` (and `/workflow/upload`): the file part is streamed to
/// `uploads/<id>/<name>` under the data folder, hashed on the way for the idempotency
/// fingerprint; the engine probes its content (whatever the name or part type says).
pub(crate) struct Upload {
    pub fields: Vec<(String, String)>,
    pub path: PathBuf,
    pub file_name: String,
    pub bytes: u64,
    pub sha256: Vec<u8>,
}

impl Upload {
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

pub(crate) async fn receive(app: &Shared, mut form: Multipart) -> ApiResult<Upload> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        ApiError::new(status, if status == 413 { "payload_too_large" } else { "invalid_multipart" }, e.body_text())
    };
    let mut fields = vec![];
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if name != "file" {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                text.extend_from_slice(&chunk);
                if text.len() > 4096 {
                    return Err(ApiError::invalid(&name, "form field is over 4096 bytes"));
                }
            }
            let text = String::from_utf8(text).map_err(|_| ApiError::invalid(&name, "form field is not UTF-8"))?;
            fields.push((name, text));
            continue;
        }
        let file_name = safe_name(field.file_name().unwrap_or("upload"));
        let dir = app.engine.data_dir().join("uploads").join(crate::ids::new("upl"));
        tokio::fs::create_dir_all(&dir).await.map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join(&file_name);
        let mut out =
            tokio::fs::File::create(&path).await.map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        let (mut bytes, mut hash) = (0u64, Sha256::new());
        let limit = app.options.max_upload_bytes;
        let result: ApiResult<()> = async {
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                bytes += chunk.len() as u64;
                if bytes > limit {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("file {file_name:?} is over the upload limit of {limit} bytes"),
                    ));
                }
                hash.update(&chunk);
                out.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            }
            out.flush().await.map_err(|e| ApiError::internal(e.to_string()))
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        // The SDK sends the file last; anything after it is ignored.
        return Ok(Upload { fields, path, file_name, bytes, sha256: hash.finalize().to_vec() });
    }
    Err(ApiError::invalid("file", "the multipart body has no `file` part"))
}

pub async fn upload(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    form: Multipart,
) -> ApiResult {
    let up = receive(&app, form).await?;
    let title = up.field("title").filter(|t| !t.trim().is_empty());
    if let Some(t) = &title {
        check_len("title", t, 1, 255)?;
    }
    let index = up.field("index_id").filter(|i| !i.trim().is_empty());
    let print = fingerprint(&[
        title.as_deref().unwrap_or("").as_bytes(),
        index.as_deref().unwrap_or("").as_bytes(),
        up.file_name.as_bytes(),
        &up.sha256,
    ]);
    finish_upload(&app, &caller, &headers, "POST /videos/upload", print, up, move |a, up| {
        let title = title.or(Some(up.file_name.clone()));
        import_file(a, &up.path, &up.file_name, title, index, "upload", up.bytes)
    })
    .await
}

/// Import an uploaded file once per `Idempotency-Key` (in the caller's own namespace, with
/// `print` as the request's fingerprint), and keep the uploaded copy only if it became media.
pub(crate) async fn finish_upload(
    app: &Shared,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    print: Vec<u8>,
    up: Upload,
    import: impl FnOnce(&App, &Upload) -> Result<Value> + Send + 'static,
) -> ApiResult {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    let cleanup = Cleanup(up.path.parent().map(FsPath::to_path_buf));
    let work = {
        let app = app.clone();
        async move {
            match blocking(&app, move |a| import(a, &up)).await {
                Ok(v) => accepted_import(v),
                Err(e) => e.into_response(),
            }
        }
    };
    let response = match key {
        Some(k) => {
            let key = format!("{}:{k}", caller.key_id.as_deref().unwrap_or(""));
            run_once(app, key, route.into(), print, work).await?
        }
        None => work.await,
    };
    cleanup.keep_if(&response);
    Ok(response)
}

/// 202 with the import job; `x-deduplicated` says the content was already there (so the
/// uploaded copy is not kept).
pub(crate) fn accepted_import(job: Value) -> Response {
    let dedup = job["deduplicated"] == true;
    let mut response = reply(StatusCode::ACCEPTED, job);
    if dedup {
        response.headers_mut().insert("x-deduplicated", axum::http::HeaderValue::from_static("true"));
    }
    response
}

/// Removes an upload's folder unless the upload became media the catalog refers to: on an
/// error, on a replayed key (the first request's file is kept) and when the content was
/// already there.
pub(crate) struct Cleanup(pub Option<PathBuf>);

impl Cleanup {
    pub fn keep_if(mut self, response: &Response) {
        let replayed = response.headers().contains_key("idempotent-replayed");
        let deduplicated = response.headers().contains_key("x-deduplicated");
        if response.status().is_success() && !replayed && !deduplicated {
            self.0 = None;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Deserialize)]
pub struct Register {
    title: String,
    video_uri: String,
    index_id: Option<String>,
    source_connector_id: Option<String>,
}

/// A local path from a `file://` URI or a plain absolute path.
pub(crate) fn local_path(uri: &str) -> ApiResult<PathBuf> {
    let path = match uri.split_once("://") {
        None => uri,
        Some(("file", rest)) => rest.strip_prefix("localhost").unwrap_or(rest),
        Some((scheme, _)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_uri",
                format!("video_uri {uri:?}: {scheme}:// sources need a connector, which this server does not have yet; use a file:// URI or a path on this machine"),
            ))
        }
    };
    let decoded = percent_decode(path);
    let p = PathBuf::from(&decoded);
    if !p.is_absolute() {
        return Err(ApiError::invalid("video_uri", format!("{uri:?} is not an absolute path")));
    }
    Ok(p)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&h), Some(&l)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn create(State(app): State<Shared>, Json(body): Json<Register>) -> ApiResult {
    check_len("title", &body.title, 1, 255)?;
    if body.source_connector_id.is_some() {
        return Err(connector_uri());
    }
    let path = local_path(&body.video_uri)?;
    let uri = body.video_uri.clone();
    let v = blocking(&app, move |a| {
        let real =
            std::fs::canonicalize(&path).map_err(|e| crate::Error::media(&path, format!("video_uri {uri:?}: {e}")))?;
        if !a.roots.iter().any(|root| real.starts_with(root)) {
            return Err(crate::Error::invalid(
                "video_uri",
                format!(
                    "{uri:?} is outside the folders this server registers files from ({}); start it with \
                     --media-root DIR, or upload the file",
                    if a.roots.is_empty() { "none given".to_string() } else { format!("{:?}", a.roots) }
                ),
            ));
        }
        let name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        import_file(a, &real, &name, Some(body.title), body.index_id, "uri", bytes)
    })
    .await?;
    Ok(reply(StatusCode::ACCEPTED, v))
}

// ---- media ----

pub async fn retrieve(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let m = blocking(&app, move |a| a.engine.videos().retrieve(&id)).await?;
    let mut v = wire::video(&m, &base(&headers));
    Marks::load(&app).await?.video(&mut v);
    ok(v)
}

fn video_deletion(video_id: &str, (deletion_id, status): (String, String)) -> Value {
    json!({ "video_id": video_id, "deletion_id": deletion_id, "status": status, "retry_after_seconds": null })
}

pub async fn delete(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(&app, move |a| {
        if let Some(done) = a.state.deletion(&id, "video")? {
            return Ok(video_deletion(&id, done));
        }
        let media = a.engine.videos().retrieve(&id)?;
        a.engine.videos().delete(&id)?;
        forget_upload(a, &media.source_path);
        Ok(video_deletion(&id, a.state.record_deletion(&id, &[], "video")?))
    })
    .await?)
}

pub async fn deletion(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    match blocking(&app, move |a| a.state.deletion(&key, "video")).await? {
        Some(record) => ok(video_deletion(&id, record)),
        None => Err(ApiError::not_found("deletion", &id)),
    }
}

#[derive(Deserialize)]
pub struct ProcessQuery {
    segment_duration: Option<u32>,
    prompt_id: Option<String>,
}

/// With `prompt_id`: a prompt run over this media with fixed segments of `segment_duration`
/// seconds. Without: the media was processed at upload; say so.
pub async fn process(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<ProcessQuery>) -> ApiResult {
    let duration = q.segment_duration.unwrap_or(10);
    if !(1..=300).contains(&duration) {
        return Err(ApiError::invalid("segment_duration", format!("must be 1 to 300 seconds, got {duration}")));
    }
    let message = blocking(&app, move |a| {
        let media = a.engine.videos().retrieve(&id)?;
        let Some(prompt_id) = q.prompt_id else {
            return Ok(format!(
                "{} is {}: media is segmented, embedded and transcribed when it is ingested; pass prompt_id to extract metadata",
                media.video_id,
                wire::video_status(media.status)
            ));
        };
        let mut req = crate::RunRequest::new(
            prompt_id,
            crate::RunTarget::Videos { video_ids: vec![media.video_id.to_string()], index_id: None },
        );
        req.video_segmentation_type = crate::VideoSegmentation::Fixed;
        req.video_segment_duration = Some(duration);
        let run = a.engine.prompt_runs().execute(&req, None)?;
        Ok(format!("processing started: prompt run {} over {} in {duration} s segments", run.run_id, media.video_id))
    })
    .await?;
    Ok(reply(StatusCode::ACCEPTED, json!({ "message": message })))
}

#[derive(Deserialize)]
pub struct SegmentsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    run_id: Option<String>,
    latest_run: Option<bool>,
}

pub async fn segments(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<SegmentsQuery>,
) -> ApiResult {
    let page = PageQuery { limit: q.limit, cursor: q.cursor }.request()?;
    let limit = page.limit.unwrap_or(50);
    let mut query = SegmentQuery::new().page(page);
    if let Some(r) = q.run_id {
        query = query.run_id(r);
    }
    if q.latest_run.unwrap_or(false) {
        query = query.latest_run();
    }
    let segs = blocking(&app, move |a| a.engine.videos().list_segments(&id, &query)).await?;
    let base = base(&headers);
    let marks = Marks::load(&app).await?;
    let data = segs
        .data
        .iter()
        .map(|s| {
            let mut v = wire::segment(s, &base);
            marks.segment(&mut v);
            v
        })
        .collect();
    ok(wire::page(data, limit, segs.next_cursor))
}

#[derive(Deserialize)]
pub struct Target {
    video_id: String,
    run_id: Option<String>,
}

#[derive(Deserialize)]
pub struct BatchBody {
    #[serde(default)]
    video_ids: Option<Vec<String>>,
    #[serde(default)]
    targets: Option<Vec<Target>>,
}

fn batch_ids(body: &BatchBody, max: usize) -> ApiResult<&[String]> {
    let ids = body.video_ids.as_deref().ok_or_else(|| ApiError::invalid("video_ids", "required"))?;
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::invalid("video_ids", format!("must hold 1 to {max} ids, got {}", ids.len())));
    }
    Ok(ids)
}

pub async fn batch_retrieve(State(app): State<Shared>, headers: HeaderMap, Json(body): Json<BatchBody>) -> ApiResult {
    let ids = batch_ids(&body, 100)?.to_vec();
    let found = blocking(&app, move |a| a.engine.videos().batch_retrieve(&ids)).await?;
    let base = base(&headers);
    let marks = Marks::load(&app).await?;
    ok(Value::Array(
        found
            .data
            .iter()
            .map(|m| {
                let mut v = marks.marked_video(wire::video(m, &base));
                v["gif_data"] = Value::Null;
                v["first_thumbnail"] = Value::Null;
                v
            })
            .collect(),
    ))
}

pub async fn batch_status(State(app): State<Shared>, Json(body): Json<BatchBody>) -> ApiResult {
    let ids = batch_ids(&body, 100)?.to_vec();
    let found = blocking(&app, move |a| a.engine.videos().batch_status(&ids)).await?;
    ok(Value::Array(
        found
            .data
            .iter()
            .map(|s| json!({ "video_id": s.video_id, "status": wire::video_status(s.status), "error_message": s.error, "updated_at": s.updated_at }))
            .collect(),
    ))
}

/// Segments of several media items, each from a run's segmentation when a target names one.
pub async fn batch_segments(State(app): State<Shared>, headers: HeaderMap, Json(body): Json<BatchBody>) -> ApiResult {
    let targets: Vec<(String, Option<String>)> = match (&body.video_ids, &body.targets) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("targets", "give video_ids or targets, not both")),
        (Some(_), None) => batch_ids(&body, 50)?.iter().map(|v| (v.clone(), None)).collect(),
        (None, Some(t)) if !t.is_empty() && t.len() <= 50 => {
            t.iter().map(|t| (t.video_id.clone(), t.run_id.clone())).collect()
        }
        (None, Some(t)) => {
            return Err(ApiError::invalid("targets", format!("must hold 1 to 50 targets, got {}", t.len())))
        }
        (None, None) => return Err(ApiError::invalid("video_ids", "give video_ids or targets")),
    };
    let base = base(&headers);
    let out = blocking(&app, move |a| {
        let marks = Marks::read(a)?;
        let mut out = vec![];
        for (video_id, run_id) in targets {
            let segments = every(|page| {
                let q = SegmentQuery::new().page(page);
                let q = match &run_id {
                    Some(r) => q.run_id(r.clone()),
                    None => q,
                };
                a.engine.videos().list_segments(&video_id, &q)
            })?;
            let segments: Vec<Value> = segments.iter().map(|s| marks.marked_segment(wire::segment(s, &base))).collect();
            out.push(json!({ "video_id": video_id, "run_id": run_id, "segments": segments }));
        }
        Ok(out)
    })
    .await?;
    ok(Value::Array(out))
}

#[derive(Deserialize)]
pub struct SignBody {
    gcs_uri: String,
    #[serde(default)]
    #[allow(dead_code)]
    force_refresh: bool,
}

/// How long a signed media URL works.
const SIGNED_URL_SECONDS: i64 = 3600;

fn sign(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A URL that serves the media item behind a segment's `gcs_uri` until it expires: the video id
/// and expiry signed with the server's key (HMAC-SHA256).
pub async fn signed_url(State(app): State<Shared>, headers: HeaderMap, Json(body): Json<SignBody>) -> ApiResult {
    let rest = body.gcs_uri.strip_prefix("videovector://videos/").ok_or_else(|| {
        ApiError::invalid(
            "gcs_uri",
            format!("{:?} is not a media reference of this server (videovector://videos/...)", body.gcs_uri),
        )
    })?;
    let video_id = rest.split(['#', '/', '?']).next().unwrap_or("").to_string();
    let id = video_id.clone();
    blocking(&app, move |a| a.engine.videos().retrieve(&id)).await?;
    let expires = now_ms() / 1000 + SIGNED_URL_SECONDS;
    let payload = format!("{video_id}.{expires}");
    let token = format!("{payload}.{}", sign(&app.url_key, &payload));
    let fragment = body.gcs_uri.split_once('#').map(|(_, f)| format!("#{f}")).unwrap_or_default();
    ok(json!({
        "signed_url": format!("{}/media/{token}{fragment}", base(&headers).0),
        "expires_at": rfc3339_ms(expires * 1000),
    }))
}

/// A file's bytes, streamed in 64 KiB chunks with its length.
async fn file_response(path: &FsPath, content_type: &str) -> ApiResult {
    let missing =
        |e: std::io::Error| ApiError::new(StatusCode::NOT_FOUND, "file_not_found", format!("{}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(missing)?;
    let length = file.metadata().await.map_err(missing)?.len();
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_LENGTH, length.to_string())],
        Body::from_stream(chunks),
    )
        .into_response())
}

fn content_type(path: &FsPath) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        Some("avi") => "video/x-msvideo",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        _ => "application/octet-stream",
    }
}

/// The bytes behind a signed URL, if its signature holds and it has not expired.
pub async fn media_file(State(app): State<Shared>, Path(token): Path<String>) -> ApiResult<Response> {
    let refuse =
        || ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", "the signed URL is invalid or has expired");
    let mut parts = token.rsplitn(2, '.');
    let (Some(sig), Some(payload)) = (parts.next(), parts.next()) else { return Err(refuse()) };
    let (video_id, expires) = payload.split_once('.').ok_or_else(refuse)?;
    let expected = sign(&app.url_key, payload);
    let valid: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into();
    if !valid || expires.parse::<i64>().map_or(true, |e| e < now_ms() / 1000) {
        return Err(refuse());
    }
    let id = video_id.to_string();
    let media = blocking(&app, move |a| a.engine.videos().retrieve(&id)).await?;
    if media.status != crate::Status::Completed || media.media_type.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "media_not_ready",
            format!("{} is not processed media", media.video_id),
        ));
    }
    let path = PathBuf::from(&media.source_path);
    file_response(&path, content_type(&path)).await
}

pub async fn thumbnail(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let seg = blocking(&app, move |a| a.engine.stores().catalog.segment(&id)).await?;
    let path = seg.thumbnail_path.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "thumbnail_not_found",
            format!("segment {} has no thumbnail (audio segments have none)", seg.segment_id),
        )
    })?;
    file_response(FsPath::new(&path), "image/jpeg").await
}

pub async fn gif(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let media = blocking(&app, move |a| a.engine.videos().retrieve(&id)).await?;
    let path = media.gif_path.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "gif_not_found",
            format!("{} has no preview GIF (only video has one)", media.video_id),
        )
    })?;
    file_response(FsPath::new(&path), "image/gif").await
}

pub async fn playground(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<PageQuery>) -> ApiResult {
    let page = q.request()?;
    let limit = page.limit.unwrap_or(50);
    let media = blocking(&app, move |a| a.engine.videos().list_playground(&page)).await?;
    let base = base(&headers);
    let marks = Marks::load(&app).await?;
    let data = media
        .data
        .iter()
        .map(|m| {
            let mut v = wire::video(m, &base);
            marks.video(&mut v);
            v
        })
        .collect();
    ok(wire::page(data, limit, media.next_cursor))
}

/// Runs that covered this media item: its index's runs and runs that named it.
pub async fn prompt_runs(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<PageQuery>) -> ApiResult {
    let runs = blocking(&app, move |a| {
        let media = a.engine.videos().retrieve(&id)?;
        let runs = a.engine.prompt_runs().list(10_000)?;
        Ok(runs
            .into_iter()
            .filter(|r| match &r.request.target {
                crate::RunTarget::Videos { video_ids, .. } => video_ids.iter().any(|v| *v == *media.video_id),
                crate::RunTarget::Index { .. } => r.index_id.is_some() && r.index_id == media.index_id,
                crate::RunTarget::Playground => media.index_id.is_none(),
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let (runs, _, _) = offset_page(runs, &PageQuery { limit: Some(q.limit(200, 200)?), cursor: None }, 200, 200)?;
    let marks = Marks::load(&app).await?;
    ok(Value::Array(runs.iter().map(|r| marks.marked_run(wire::run(r))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_cannot_leave_the_upload_folder() {
        assert_eq!(safe_name("/home/me/clips/bikes.mp4"), "bikes.mp4");
        assert_eq!(safe_name("..\\..\\evil.mp4"), "evil.mp4");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name(".."), "upload");
        assert_eq!(safe_name("a/b/.hidden"), "hidden");
        assert_eq!(safe_name("we\u{0}ird:name.mp4"), "we_ird_name.mp4");
    }

    #[test]
    fn only_local_uris_register() {
        assert_eq!(local_path("file:///data/a%20b.mp4").unwrap(), PathBuf::from("/data/a b.mp4"));
        assert_eq!(local_path("/data/x.mp4").unwrap(), PathBuf::from("/data/x.mp4"));
        assert_eq!(local_path("gs://bucket/x.mp4").unwrap_err().code, "unsupported_uri");
        assert_eq!(local_path("relative.mp4").unwrap_err().code, "invalid_request");
    }
}
