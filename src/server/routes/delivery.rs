//! `/connectors`, connector `/import-jobs`, `/exports` and `/webhooks`: the engine's delivery
//! resources in the SDK's shapes.

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::delivery::{
    Export, ExportRequest, ImportJob, ImportRequest, NewConnector, NewWebhook, Provider, WebhookUpdate,
};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{blocking, ok, reply, App, Json, Shared};
use crate::Result;

// ---- connectors ----

fn connector_json(c: &crate::delivery::Connector) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        // Fields the SDK's model does not know stay out of the reply.
        o.remove("path");
        o.remove("endpoint");
        o.retain(|_, v| !v.is_null());
    }
    v
}

#[derive(Deserialize)]
pub struct NewS3 {
    name: String,
    bucket: String,
    region: String,
    aws_access_key_id: String,
    aws_secret_access_key: String,
    scopes: Option<Vec<String>>,
    export_base_path: Option<String>,
    import_mode: Option<String>,
    /// Not sent by the SDK: an S3-compatible server other than AWS (else `AWS_ENDPOINT_URL`).
    endpoint: Option<String>,
}

pub async fn create_s3(State(app): State<Shared>, Json(b): Json<NewS3>) -> ApiResult {
    let mut new = NewConnector::s3(b.name, b.bucket, b.region, b.aws_access_key_id, b.aws_secret_access_key);
    new.scopes = b.scopes;
    new.export_base_path = b.export_base_path;
    new.import_mode = b.import_mode;
    new.endpoint = b.endpoint;
    create(app, new).await
}

#[derive(Deserialize)]
pub struct NewAzure {
    name: String,
    storage_account: String,
    container: String,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Not sent by the SDK: a storage account key instead of a service principal.
    access_key: Option<String>,
    scopes: Option<Vec<String>>,
    export_base_path: Option<String>,
    import_mode: Option<String>,
    endpoint: Option<String>,
}

pub async fn create_azure(State(app): State<Shared>, Json(b): Json<NewAzure>) -> ApiResult {
    let mut new = NewConnector::azure(b.name, b.storage_account, b.container);
    new.tenant_id = b.tenant_id;
    new.client_id = b.client_id;
    new.client_secret = b.client_secret;
    new.access_key = b.access_key;
    new.scopes = b.scopes;
    new.export_base_path = b.export_base_path;
    new.import_mode = b.import_mode;
    new.endpoint = b.endpoint;
    create(app, new).await
}

/// Largest service-account file (as the hosted API).
const MAX_CREDENTIALS: usize = 64 << 10;

pub async fn create_gcs(State(app): State<Shared>, mut form: Multipart) -> ApiResult {
    let mut new = NewConnector { provider: Some(Provider::Gcs), ..Default::default() };
    let mut scopes = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::invalid("multipart", e.body_text());
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(bad)?;
        if name == "credentials_file" {
            if bytes.len() > MAX_CREDENTIALS {
                return Err(ApiError::invalid("credentials_file", "is larger than 64 KiB"));
            }
            new.credentials_json = Some(String::from_utf8_lossy(&bytes).into_owned());
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "name" => new.name = text,
            "bucket" => new.bucket = Some(text),
            "gcp_project_id" => new.gcp_project_id = Some(text),
            "scopes" => scopes.push(text),
            "import_mode" => new.import_mode = Some(text),
            "export_base_path" => new.export_base_path = Some(text),
            _ => {}
        }
    }
    new.scopes = (!scopes.is_empty()).then_some(scopes);
    create(app, new).await
}

#[derive(Deserialize)]
pub struct NewLocal {
    name: String,
    path: String,
    scopes: Option<Vec<String>>,
    export_base_path: Option<String>,
    import_mode: Option<String>,
}

/// A local-folder connector (not in the SDK): only folders under `--media-root`.
pub async fn create_local(State(app): State<Shared>, Json(b): Json<NewLocal>) -> ApiResult {
    let mut new = NewConnector::local(b.name, &b.path);
    new.scopes = b.scopes;
    new.export_base_path = b.export_base_path;
    new.import_mode = b.import_mode;
    let real = std::fs::canonicalize(&b.path).map_err(|e| ApiError::invalid("path", format!("{}: {e}", b.path)))?;
    if !app.roots.iter().any(|root| real.starts_with(root)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "path_not_allowed",
            format!("{} is not under a --media-root folder of this server", real.display()),
        ));
    }
    create(app, new).await
}

async fn create(app: Shared, new: NewConnector) -> ApiResult {
    let c = blocking(&app, move |a| a.engine.connectors().create(&new)).await?;
    Ok(reply(StatusCode::CREATED, connector_json(&c)))
}

pub async fn connectors(State(app): State<Shared>) -> ApiResult {
    let list = blocking(&app, |a| a.engine.connectors().list()).await?;
    ok(Value::Array(list.iter().map(connector_json).collect()))
}

pub async fn connector(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(connector_json(&blocking(&app, move |a| a.engine.connectors().retrieve(&id)).await?))
}

pub async fn delete_connector(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let msg = format!("connector {id} deleted");
    blocking(&app, move |a| a.engine.connectors().delete(&id)).await?;
    ok(json!({ "message": msg, "success": true }))
}

pub async fn test_connector(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let t = blocking(&app, move |a| a.engine.connectors().test(&id)).await?;
    ok(json!({ "success": t.success, "error_message": t.error_message }))
}

#[derive(Deserialize)]
pub struct Browse {
    #[serde(default)]
    prefix: String,
    pattern: Option<String>,
    recursive: Option<bool>,
}

pub async fn browse(State(app): State<Shared>, Path(id): Path<String>, Json(b): Json<Browse>) -> ApiResult {
    let files = blocking(&app, move |a| {
        a.engine.connectors().browse(&id, &b.prefix, b.pattern.as_deref().unwrap_or("*"), b.recursive.unwrap_or(true))
    })
    .await?;
    ok(serde_json::to_value(files).unwrap_or_default())
}

// ---- import jobs from connectors ----

/// The SDK's `ImportJob` for an engine import, with the first page of outputs and failures.
pub(crate) fn import_json(a: &App, job: &ImportJob) -> Result<Value> {
    let outputs = a.engine.imports().outputs(&job.job_id)?;
    let failed = a.engine.imports().files(&job.job_id, true)?;
    let first = |n: usize| if n > PAGE { Some(PAGE.to_string()) } else { None };
    Ok(json!({
        "job_id": job.job_id, "status": job.status,
        "phase": job.status,
        "source_kind": "connector", "connector_id": job.connector_id, "target_index_id": job.target_index_id,
        "source_prefix": job.source_prefix, "file_pattern": job.file_pattern, "recursive": job.recursive,
        "created_at": job.created_at, "started_at": job.started_at, "completed_at": job.completed_at,
        "error_message": job.error_message,
        "progress": {
            "total_files": job.progress.total_files, "imported": job.progress.imported, "failed": job.progress.failed,
            "skipped": job.progress.skipped, "bytes_transferred": job.progress.bytes_transferred,
            "current_file": job.progress.current_file,
            "parts_total": job.progress.total_files, "parts_completed": job.progress.imported,
            "parts_failed": job.progress.failed,
        },
        "outputs": {
            "items": outputs.iter().take(PAGE).map(output_json).collect::<Vec<_>>(),
            "next_cursor": first(outputs.len()), "total": outputs.len(),
        },
        "execution": { "status": "not_requested" },
        "video_ids": job.video_ids,
        "failed_files": failed.iter().take(PAGE).map(file_json).collect::<Vec<_>>(),
        "failed_files_next_cursor": first(failed.len()),
        "engine_job_id": job.engine_job_id,
    }))
}

/// Items per page of outputs and files.
const PAGE: usize = 100;

fn output_json(o: &crate::delivery::ImportOutput) -> Value {
    json!({
        "file_id": o.file_id, "file_name": o.file_name, "source_ordinal": o.source_ordinal,
        "part_index": 0, "part_count": 1, "source_start_seconds": 0.0, "source_end_seconds": o.duration,
        "video_id": o.video_id, "title": o.title, "status": o.status,
    })
}

fn file_json(f: &crate::delivery::ImportFile) -> Value {
    json!({
        "file_id": f.file_id, "file_name": f.file_name, "source_ordinal": f.source_ordinal, "status": f.status,
        "part_count": 1, "parts_completed": u8::from(f.status == "imported"), "parts_failed": u8::from(f.status == "failed"),
        "failure": f.error.as_ref().map(|e| json!({ "message": e, "path": f.path })),
        "skip_reason": f.skip_reason, "path": f.path, "size_bytes": f.size_bytes, "video_id": f.video_id,
    })
}

/// An `items` page from an offset cursor.
pub(crate) fn items_page(all: Vec<Value>, limit: Option<u32>, cursor: Option<&str>) -> ApiResult<Value> {
    let limit = limit.unwrap_or(100).clamp(1, 1000) as usize;
    let start = match cursor {
        None | Some("") => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("cursor", format!("{c:?} is not a cursor of this listing")))?,
    };
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    let next = (start + items.len() < total).then(|| (start + items.len()).to_string());
    Ok(json!({ "items": items, "next_cursor": next, "total": total }))
}

#[derive(Deserialize)]
pub struct NewImport {
    connector_id: String,
    index_id: String,
    #[serde(default)]
    source_prefix: String,
    file_pattern: Option<String>,
    recursive: Option<bool>,
}

pub async fn create_import(State(app): State<Shared>, Json(b): Json<NewImport>) -> ApiResult {
    let req = ImportRequest::new(b.connector_id, b.index_id)
        .prefix(b.source_prefix)
        .pattern(b.file_pattern.unwrap_or_else(|| "*".into()))
        .recursive(b.recursive.unwrap_or(true));
    let v = blocking(&app, move |a| {
        let job = a.engine.imports().create(&req)?;
        import_json(a, &job)
    })
    .await?;
    Ok(reply(StatusCode::ACCEPTED, v))
}

pub(crate) fn outputs_page(a: &App, id: &str, limit: Option<u32>, cursor: Option<&str>) -> ApiResult<Value> {
    let all = a.engine.imports().outputs(id)?.iter().map(output_json).collect();
    items_page(all, limit, cursor)
}

pub(crate) fn files_page(
    a: &App,
    id: &str,
    failed_only: bool,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Value> {
    let all = a.engine.imports().files(id, failed_only)?.iter().map(file_json).collect();
    items_page(all, limit, cursor)
}

// ---- exports ----

fn export_json(e: &Export) -> Value {
    let direct = e.destination_type == "download";
    let ready = e.status == "completed";
    let download_url = (direct && ready).then(|| format!("/api/v2/exports/{}/download", e.export_id));
    json!({
        "export_id": e.export_id, "user_id": null, "export_type": e.export_type, "target_id": e.target_id,
        "status": e.status,
        "queue_status": match e.status.as_str() { "pending" => "queued", "processing" => "running", "completed" => "succeeded", _ => "failed" },
        "created_at": e.created_at, "started_at": e.started_at, "completed_at": e.completed_at, "updated_at": e.updated_at,
        "available_at": e.created_at,
        "gcs_uri": if direct { download_url.clone() } else { e.destination_uri.clone() },
        "download_url": download_url,
        "file_size_bytes": e.file_size_bytes,
        "error_message": e.error_message, "last_error": e.error_message,
        "export_params": {
            "prompt_run_ids": e.prompt_run_ids, "destination_connector_id": e.destination_connector_id,
            "destination_base_path": e.destination_base_path, "destination_subpath": e.destination_subpath,
        },
        "attempts": e.attempts, "max_attempts": 1,
        "destination_type": e.destination_type,
        "destination_connector_id": e.destination_connector_id,
        "destination_base_path": e.destination_base_path, "destination_subpath": e.destination_subpath,
        "destination_uri": if direct { None } else { e.destination_uri.clone() },
        "format": e.format,
    })
}

#[derive(Deserialize)]
pub struct NewExport {
    prompt_run_ids: Option<Vec<String>>,
    destination_connector_id: Option<String>,
    destination_subpath: Option<String>,
    /// Not sent by the SDK: `json` (default) or `jsonl`.
    format: Option<String>,
}

async fn start_export(app: Shared, mut req: ExportRequest, b: NewExport) -> ApiResult {
    req.prompt_run_ids = b.prompt_run_ids;
    req.destination_connector_id = b.destination_connector_id.filter(|s| !s.trim().is_empty());
    req.destination_subpath = b.destination_subpath.filter(|s| !s.trim().is_empty());
    if let Some(f) = b.format {
        req.format = f.parse().map_err(|e: crate::Error| ApiError::from(e))?;
    }
    let e = blocking(&app, move |a| a.engine.exports().create(&req)).await?;
    Ok(reply(StatusCode::ACCEPTED, json!({ "export_id": e.export_id, "status": e.status })))
}

pub async fn export_index(State(app): State<Shared>, Path(id): Path<String>, Json(b): Json<NewExport>) -> ApiResult {
    start_export(app, ExportRequest::index(id), b).await
}

pub async fn export_run(State(app): State<Shared>, Path(id): Path<String>, Json(b): Json<NewExport>) -> ApiResult {
    if b.prompt_run_ids.is_some() {
        return Err(ApiError::invalid("prompt_run_ids", "applies to index exports only"));
    }
    start_export(app, ExportRequest::prompt_run(id), b).await
}

pub async fn export(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(export_json(&blocking(&app, move |a| a.engine.exports().retrieve(&id)).await?))
}

#[derive(Deserialize)]
pub struct ExportList {
    limit: Option<u32>,
}

pub async fn exports(State(app): State<Shared>, Query(q): Query<ExportList>) -> ApiResult {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000) as usize;
    let list = blocking(&app, move |a| a.engine.exports().list(limit)).await?;
    ok(Value::Array(list.iter().map(export_json).collect()))
}

/// Over plain HTTP the SDK accepts no capability URL, so the answer carries none: the SDK's
/// `download()` reads `/exports/{id}/download` with its key instead.
pub async fn download_url(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let e = blocking(&app, move |a| a.engine.exports().retrieve(&id)).await?;
    ok(json!({
        "export_id": e.export_id, "status": e.status, "destination_type": e.destination_type,
        "destination_connector_id": e.destination_connector_id, "download_url": null,
    }))
}

/// The export file, whole, with its length (the SDK requires `Content-Length` and 200).
pub async fn download(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let e = blocking(&app, move |a| a.engine.exports().retrieve(&id)).await?;
    let path = match (&e.file_path, e.status.as_str()) {
        (Some(p), "completed") => p.clone(),
        _ if e.destination_type == "connector" => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "export_not_downloadable",
                format!(
                    "export {} was written to connector {}",
                    e.export_id,
                    e.destination_connector_id.unwrap_or_default()
                ),
            ))
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "export_not_ready",
                format!("export {} is {}; download it once it is completed", e.export_id, e.status),
            ))
        }
    };
    let bytes = tokio::fs::read(&path).await.map_err(|err| ApiError::internal(format!("{}: {err}", path.display())))?;
    let content_type = match e.format {
        crate::delivery::ExportFormat::Json => "application/json",
        crate::delivery::ExportFormat::Jsonl => "application/x-ndjson",
        crate::delivery::ExportFormat::Parquet => "application/vnd.apache.parquet",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, bytes.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", path.file_name().unwrap_or_default().to_string_lossy()),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

// ---- webhooks ----

fn webhook_json(w: &crate::delivery::Webhook) -> Value {
    serde_json::to_value(w).unwrap_or_default()
}

fn delivery_json(d: &crate::delivery::Delivery) -> Value {
    serde_json::to_value(d).unwrap_or_default()
}

pub async fn create_webhook(State(app): State<Shared>, Json(b): Json<NewWebhook>) -> ApiResult {
    let (w, secret) = blocking(&app, move |a| a.engine.webhooks().create(&b)).await?;
    let mut v = webhook_json(&w);
    v["secret"] = json!(secret);
    Ok(reply(StatusCode::CREATED, v))
}

pub async fn webhooks(State(app): State<Shared>) -> ApiResult {
    let list = blocking(&app, |a| a.engine.webhooks().list()).await?;
    ok(Value::Array(list.iter().map(webhook_json).collect()))
}

pub async fn webhook(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(webhook_json(&blocking(&app, move |a| a.engine.webhooks().retrieve(&id)).await?))
}

pub async fn update_webhook(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<WebhookUpdate>,
) -> ApiResult {
    ok(webhook_json(&blocking(&app, move |a| a.engine.webhooks().update(&id, &b)).await?))
}

pub async fn delete_webhook(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let msg = format!("webhook {id} deleted");
    blocking(&app, move |a| a.engine.webhooks().delete(&id)).await?;
    ok(json!({ "message": msg, "success": true }))
}

pub async fn rotate_secret(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id2 = id.clone();
    let secret = blocking(&app, move |a| a.engine.webhooks().rotate_secret(&id2)).await?;
    ok(json!({ "webhook_id": id, "new_secret": secret }))
}

pub async fn test_webhook(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let t = blocking(&app, move |a| a.engine.webhooks().test(&id)).await?;
    ok(serde_json::to_value(t).unwrap_or_default())
}

#[derive(Deserialize)]
pub struct DeliveryList {
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn deliveries(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<DeliveryList>) -> ApiResult {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000) as usize;
    let list = blocking(&app, move |a| a.engine.webhooks().deliveries(&id, q.status.as_deref(), limit)).await?;
    ok(Value::Array(list.iter().map(delivery_json).collect()))
}

pub async fn delivery(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(delivery_json(&blocking(&app, move |a| a.engine.webhooks().delivery(&id)).await?))
}

pub async fn retry_delivery(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(delivery_json(&blocking(&app, move |a| a.engine.webhooks().retry_delivery(&id)).await?))
}

pub async fn events() -> ApiResult {
    ok(json!(crate::delivery::EVENT_NAMES))
}

// ---- automations ----

fn automation_json<T: serde::Serialize>(a: &T) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("cursor");
    }
    v
}

#[derive(Deserialize)]
pub struct PutImportAutomation {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    paused: bool,
    connector_id: String,
    #[serde(default)]
    source_prefix: String,
    file_pattern: Option<String>,
    recursive: Option<bool>,
    debounce_interval: Option<String>,
    prompt_preset: Option<Value>,
}

fn yes() -> bool {
    true
}

/// The API's debounce intervals.
const INTERVALS: [&str; 4] = ["5m", "10m", "1h", "1d"];

pub async fn put_import_automation(
    State(app): State<Shared>,
    Path(index): Path<String>,
    Json(b): Json<PutImportAutomation>,
) -> ApiResult {
    let debounce = b.debounce_interval.unwrap_or_else(|| "10m".into());
    if !INTERVALS.contains(&debounce.as_str()) {
        return Err(ApiError::invalid("debounce_interval", format!("{debounce:?}: use 5m, 10m, 1h or 1d")));
    }
    let mut a = crate::delivery::ImportAutomation::new(index, b.connector_id, debounce)
        .prefix(b.source_prefix)
        .pattern(b.file_pattern.unwrap_or_else(|| "*".into()));
    a.enabled = b.enabled;
    a.paused = b.paused;
    a.recursive = b.recursive.unwrap_or(true);
    a.prompt_preset = b.prompt_preset.filter(|p| !p.is_null());
    let a = blocking(&app, move |x| x.engine.automations().put_import(a)).await?;
    ok(automation_json(&a))
}

pub async fn import_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    ok(automation_json(&blocking(&app, move |x| x.engine.automations().import(&index)).await?))
}

#[derive(Deserialize)]
pub struct PutExportAutomation {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    paused: bool,
    destination_connector_id: String,
    destination_subpath: Option<String>,
}

pub async fn put_export_automation(
    State(app): State<Shared>,
    Path(index): Path<String>,
    Json(b): Json<PutExportAutomation>,
) -> ApiResult {
    let mut a = crate::delivery::ExportAutomation::new(index, b.destination_connector_id, b.destination_subpath);
    a.enabled = b.enabled;
    a.paused = b.paused;
    let a = blocking(&app, move |x| x.engine.automations().put_export(a)).await?;
    ok(automation_json(&a))
}

pub async fn export_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    ok(automation_json(&blocking(&app, move |x| x.engine.automations().export(&index)).await?))
}

async fn pause(app: Shared, index: String, kind: &'static str, paused: bool) -> ApiResult {
    let v = blocking(&app, move |x| {
        x.engine.automations().set_paused(&index, kind, paused)?;
        Ok(if kind == "import" {
            automation_json(&x.engine.automations().import(&index)?)
        } else {
            automation_json(&x.engine.automations().export(&index)?)
        })
    })
    .await?;
    ok(v)
}

pub async fn pause_import_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    pause(app, index, "import", true).await
}

pub async fn resume_import_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    pause(app, index, "import", false).await
}

pub async fn pause_export_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    pause(app, index, "export", true).await
}

pub async fn resume_export_automation(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    pause(app, index, "export", false).await
}

// ---- collections ----

fn collection_json(c: &crate::delivery::Collection, base: &crate::server::wire::Base) -> Value {
    json!({
        "collection_id": c.collection_id, "name": c.name, "description": c.description,
        "parent_type": "user", "created_at": c.created_at, "updated_at": c.updated_at,
        "video_count": c.video_count,
        "thumbnails": c.thumbnails.iter().map(|t| base.thumbnail(&t.segment_id)).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
pub struct NumberedQuery {
    page: Option<u32>,
    page_size: Option<u32>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

pub async fn collections(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<NumberedQuery>) -> ApiResult {
    let base = crate::server::base(&headers);
    let p =
        blocking(&app, move |a| a.engine.collections().list(q.page.unwrap_or(1), q.page_size.unwrap_or(10))).await?;
    ok(json!({
        "data": p.data.iter().map(|c| collection_json(c, &base)).collect::<Vec<_>>(),
        "page": p.page, "page_size": p.page_size, "total": p.total,
    }))
}

#[derive(Deserialize)]
pub struct CollectionBody {
    name: Option<String>,
    description: Option<String>,
}

pub async fn create_collection(
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(b): Json<CollectionBody>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let name = b.name.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let c = blocking(&app, move |a| a.engine.collections().create(&name, b.description.as_deref())).await?;
    Ok(reply(StatusCode::CREATED, collection_json(&c, &base)))
}

pub async fn collection(State(app): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let base = crate::server::base(&headers);
    ok(collection_json(&blocking(&app, move |a| a.engine.collections().retrieve(&id)).await?, &base))
}

pub async fn update_collection(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<CollectionBody>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let c = blocking(&app, move |a| a.engine.collections().update(&id, b.name.as_deref(), b.description.as_deref()))
        .await?;
    ok(collection_json(&c, &base))
}

pub async fn delete_collection(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let msg = format!("collection {id} deleted; its media stay");
    blocking(&app, move |a| a.engine.collections().delete(&id)).await?;
    ok(json!({ "message": msg, "success": true }))
}

pub async fn collection_videos(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<NumberedQuery>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let p = blocking(&app, move |a| {
        a.engine.collections().list_videos(
            &id,
            q.page.unwrap_or(1),
            q.page_size.unwrap_or(10),
            q.sort_by.as_deref().unwrap_or("created_at"),
            q.sort_order.as_deref().unwrap_or("desc"),
        )
    })
    .await?;
    let marks = Marks::load(&app).await?;
    ok(json!({
        "data": p.data.iter().map(|m| marks.marked_video(crate::server::wire::video(m, &base))).collect::<Vec<_>>(),
        "page": p.page, "page_size": p.page_size, "total": p.total,
    }))
}

#[derive(Deserialize)]
pub struct AddVideo {
    video_id: String,
}

pub async fn add_collection_video(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<AddVideo>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let c = blocking(&app, move |a| a.engine.collections().add_video(&id, &b.video_id)).await?;
    Ok(reply(StatusCode::CREATED, collection_json(&c, &base)))
}

pub async fn remove_collection_video(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path((id, video_id)): Path<(String, String)>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let c = blocking(&app, move |a| a.engine.collections().remove_video(&id, &video_id)).await?;
    ok(collection_json(&c, &base))
}

#[derive(Deserialize)]
pub struct CollectionSearch {
    query: String,
    top_k: Option<usize>,
}

pub async fn search_collection(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<CollectionSearch>,
) -> ApiResult {
    let base = crate::server::base(&headers);
    let v = blocking(&app, move |a| {
        let mut req = crate::TextSearch::new(b.query);
        req.top_k = b.top_k;
        let found = a.engine.collections().search(&id, &req)?;
        super::search::record(a, "collection")?;
        super::search::hits(a, &found, &base, false)
    })
    .await?;
    ok(json!({ "results": v, "total": v.len() }))
}

// ---- markers ----

fn marker_json(m: &crate::delivery::Marker) -> Value {
    serde_json::to_value(m).unwrap_or_default()
}

#[derive(Deserialize)]
pub struct MarkerQuery {
    target_type: Option<String>,
    target_id: Option<String>,
}

pub async fn markers(State(app): State<Shared>, Query(q): Query<MarkerQuery>) -> ApiResult {
    let list =
        blocking(&app, move |a| a.engine.markers().list(q.target_type.as_deref(), q.target_id.as_deref())).await?;
    ok(Value::Array(list.iter().map(marker_json).collect()))
}

pub async fn upsert_marker(State(app): State<Shared>, Json(b): Json<crate::delivery::MarkerUpsert>) -> ApiResult {
    ok(marker_json(&blocking(&app, move |a| a.engine.markers().upsert(&b)).await?))
}

pub async fn delete_marker(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let msg = format!("marker {id} deleted");
    blocking(&app, move |a| a.engine.markers().delete(&id)).await?;
    ok(json!({ "message": msg, "success": true }))
}

/// Every marker, read once per reply, to fill the SDK's `marker` and `*_markers` fields.
pub(crate) struct Marks(Vec<crate::delivery::Marker>);

impl Marks {
    pub async fn load(app: &Shared) -> ApiResult<Marks> {
        blocking(app, Marks::read).await
    }

    pub fn read(a: &App) -> Result<Marks> {
        Ok(Marks(a.engine.markers().list(None, None)?))
    }

    pub fn marked_video(&self, mut v: Value) -> Value {
        self.video(&mut v);
        v
    }

    pub fn marked_segment(&self, mut v: Value) -> Value {
        self.segment(&mut v);
        v
    }

    pub fn marked_run(&self, mut v: Value) -> Value {
        self.run(&mut v);
        v
    }

    fn info(m: &crate::delivery::Marker) -> Value {
        json!({ "marker_id": m.marker_id, "color": m.color, "note": m.note, "updated_at": m.updated_at })
    }

    fn own(&self, target_type: &str, id: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|m| m.target_type == target_type && m.target_id == id && m.field_path.is_none())
            .map(Self::info)
    }

    fn fields(&self, target_type: &str, id: &str, into: &mut serde_json::Map<String, Value>) {
        for m in self.0.iter().filter(|m| m.target_type == target_type && m.target_id == id) {
            if let Some(f) = &m.field_path {
                into.insert(f.clone(), Self::info(m));
            }
        }
    }

    fn set_own(&self, v: &mut Value, target_type: &str, id_field: &str) {
        let own = v[id_field].as_str().and_then(|id| self.own(target_type, id));
        if let Some(marker) = own {
            v["marker"] = marker;
        }
    }

    pub fn video(&self, v: &mut Value) {
        self.set_own(v, "video", "video_id");
    }

    pub fn segment(&self, v: &mut Value) {
        self.set_own(v, "segment", "segment_id");
    }

    /// A run: its own marker, and field markers of the run and of its prompt.
    pub fn run(&self, v: &mut Value) {
        self.set_own(v, "prompt_run", "run_id");
        let mut fields = serde_json::Map::new();
        if let Some(p) = v["prompt_id"].as_str() {
            self.fields("prompt", p, &mut fields);
        }
        if let Some(r) = v["run_id"].as_str() {
            self.fields("prompt_run", r, &mut fields);
        }
        if !fields.is_empty() {
            v["metadata_markers"] = Value::Object(fields);
        }
    }

    /// A segment or media-wide result of `run`: its own marker, markers on its extracted
    /// values (`extracted_metadata_markers`) and the run's and prompt's field markers
    /// (`metadata_markers`).
    pub fn result(&self, v: &mut Value, target_type: &str, run: &crate::PromptRun, id_field: &str) {
        let Some(id) = v[id_field].as_str().map(|i| format!("{}/{i}", run.run_id)) else { return };
        if let Some(m) = self.own(target_type, &id) {
            v["marker"] = m;
        }
        let mut extracted = serde_json::Map::new();
        self.fields(target_type, &id, &mut extracted);
        if !extracted.is_empty() {
            v["extracted_metadata_markers"] = Value::Object(extracted);
        }
        let mut fields = serde_json::Map::new();
        self.fields("prompt", run.prompt_id.as_str(), &mut fields);
        self.fields("prompt_run", run.run_id.as_str(), &mut fields);
        if !fields.is_empty() {
            v["metadata_markers"] = Value::Object(fields);
        }
    }
}
