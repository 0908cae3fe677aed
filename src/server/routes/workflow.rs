//! `/workflow`: the simplified upload / define / process / search flow, composed of the same
//! engine calls as the resources (an index found or made by name, a prompt drafted by the local
//! language model, a prompt run, a text or filter search).

use axum::extract::{Extension, Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::search::{hits, record};
use super::videos::{finish_upload, import_file, receive};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::idempotency::fingerprint;
use crate::server::{base, blocking, ok, reply, wire, App, Json, Shared};
use crate::{Condition, FilterSearch, NewPrompt, RunRequest, RunTarget, TextSearch};

/// Segment length of `segmentation_mode: fixed` when no duration is given (as `videos.process`).
const DEFAULT_FIXED_SECONDS: u32 = 10;

/// The index named `name`, made if there is none. Returns it and whether it was made.
fn index_by_name(a: &App, name: &str) -> crate::Result<(String, bool)> {
    match a.engine.indexes().retrieve(name) {
        Ok(i) => Ok((i.index_id.to_string(), false)),
        Err(crate::Error::NotFound { .. }) => Ok((a.engine.indexes().create(name, None)?.index_id.to_string(), true)),
        Err(e) => Err(e),
    }
}

pub async fn upload(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    form: Multipart,
) -> ApiResult {
    let up = receive(&app, form).await?;
    let (title, index_id, index_name) = (up.field("title"), up.field("index_id"), up.field("index_name"));
    let print = fingerprint(&[
        title.as_deref().unwrap_or("").as_bytes(),
        index_id.as_deref().unwrap_or("").as_bytes(),
        index_name.as_deref().unwrap_or("").as_bytes(),
        &up.sha256,
    ]);
    finish_upload(&app, &caller, &headers, "POST /workflow/upload", print, up, move |a, up| {
        let (index, created) = match (index_id.filter(|i| !i.is_empty()), index_name.filter(|n| !n.is_empty())) {
            (Some(i), _) => (Some(i), false),
            (None, Some(n)) => {
                let (i, c) = index_by_name(a, &n)?;
                (Some(i), c)
            }
            (None, None) => (None, false),
        };
        let title = title.filter(|t| !t.trim().is_empty()).or(Some(up.file_name.clone()));
        let mut job = import_file(a, &up.path, &up.file_name, title, index, "upload", up.bytes)?;
        job["index_created"] = json!(created);
        Ok(job)
    })
    .await
}

#[derive(Deserialize)]
pub struct Define {
    instruction: String,
    #[serde(default = "yes")]
    save: bool,
}

fn yes() -> bool {
    true
}

fn definition(p: &NewPrompt) -> Value {
    json!({
        "name": p.name, "description": p.description, "prompt_text": p.prompt_text, "json_schema": p.json_schema,
        "video_level": p.video_level, "semantic_indexing": p.semantic_indexing.clone().unwrap_or_default(),
    })
}

/// A prompt drafted from an instruction by the local language model (checked like any prompt),
/// saved unless `save` is false.
pub async fn define(State(app): State<Shared>, Json(d): Json<Define>) -> ApiResult {
    ok(blocking(&app, move |a| {
        let draft = a.engine.prompts().generate(&d.instruction, None)?;
        let saved = if d.save { Some(a.engine.prompts().create(&draft, None)?) } else { None };
        Ok(json!({
            "saved": saved.is_some(), "definition": definition(&draft),
            "prompt_id": saved.as_ref().map(|p| p.prompt_id.clone()), "prompt": saved.as_ref().map(wire::prompt),
        }))
    })
    .await?)
}

/// A string or a list of strings.
#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
pub struct Process {
    prompt_id: Option<String>,
    prompt_instruction: Option<String>,
    import_job_id: Option<String>,
    video_ids: Option<OneOrMany>,
    index_id: Option<String>,
    index_name: Option<String>,
    segmentation_mode: Option<String>,
    fixed_segment_duration_seconds: Option<u32>,
    advanced_transcription: Option<bool>,
    create_image_embeddings: Option<bool>,
}

pub async fn process(State(app): State<Shared>, Json(p): Json<Process>) -> ApiResult {
    let seg = match p.segmentation_mode.as_deref() {
        None => None,
        Some("content_aware") => Some(crate::VideoSegmentation::ContentAware),
        Some("fixed") => Some(crate::VideoSegmentation::Fixed),
        Some(other) => {
            return Err(ApiError::invalid("segmentation_mode", format!("{other:?} is not content_aware or fixed")))
        }
    };
    if let Some(d) = p.fixed_segment_duration_seconds.filter(|d| !(1..=300).contains(d)) {
        return Err(ApiError::invalid("fixed_segment_duration_seconds", format!("must be 1 to 300, got {d}")));
    }
    let v = blocking(&app, move |a| {
        let (prompt, inline) = match (p.prompt_id, p.prompt_instruction) {
            (Some(id), None) => (a.engine.prompts().get(&id)?, false),
            (None, Some(instruction)) => {
                let draft = a.engine.prompts().generate(&instruction, None)?;
                (a.engine.prompts().create(&draft, None)?, true)
            }
            _ => return Err(crate::Error::invalid("prompt_id", "give prompt_id or prompt_instruction, not both")),
        };
        let target = if let Some(job) = p.import_job_id {
            let row = a.state.import(&job)?.ok_or_else(|| crate::Error::not_found("import job", &job))?;
            let video =
                row.video_id.ok_or_else(|| crate::Error::invalid("import_job_id", format!("{job} made no media")))?;
            RunTarget::Videos { video_ids: vec![video], index_id: row.target_index_id }
        } else if let Some(ids) = p.video_ids {
            RunTarget::Videos { video_ids: ids.into_vec(), index_id: p.index_id }
        } else if let Some(i) = p.index_id {
            RunTarget::Index { index_id: i }
        } else if let Some(n) = p.index_name {
            RunTarget::Index { index_id: a.engine.indexes().retrieve(&n)?.index_id.to_string() }
        } else {
            RunTarget::Playground
        };
        let mut req = RunRequest::new(prompt.prompt_id.to_string(), target);
        if let Some(s) = seg {
            req.video_segmentation_type = s;
        }
        req.video_segment_duration = match (seg, p.fixed_segment_duration_seconds) {
            (Some(crate::VideoSegmentation::Fixed), None) => Some(DEFAULT_FIXED_SECONDS),
            (_, d) => d,
        };
        req.enable_transcription = p.advanced_transcription.unwrap_or(true);
        req.enable_image_embedding = p.create_image_embeddings.unwrap_or(true);
        let run = a.engine.prompt_runs().execute(&req, None)?;
        Ok(json!({
            "prompt": wire::prompt(&prompt), "run": wire::run(&run),
            "status_url": format!("/api/v2/prompt-runs/{}", run.run_id), "prompt_created_inline": inline,
        }))
    })
    .await?;
    Ok(reply(StatusCode::ACCEPTED, v))
}

/// A workflow search request; continuation cursors carry it with the offset.
#[derive(Deserialize, Serialize, Clone, Debug)]
pub struct SearchBody {
    #[serde(default = "segment")]
    result_level: String,
    #[serde(default = "ten")]
    limit: usize,
    query: Option<String>,
    filters: Option<Vec<Value>>,
    video_ids: Option<OneOrMany>,
    prompt_run_ids: Option<OneOrMany>,
    index_id: Option<String>,
    index_name: Option<String>,
    #[serde(default)]
    offset: usize,
}

fn segment() -> String {
    "segment".into()
}

fn ten() -> usize {
    10
}

/// How many hits a workflow search looks at (the SDK's `result_window`).
const WINDOW: usize = 100;

/// `{field, value, operator?, type?}`: the operator defaults to `equals` (`item_equals` for
/// array paths) and the type follows the value.
fn condition(i: usize, f: &Value) -> crate::Result<Condition> {
    let bad = |m: &str| crate::Error::InvalidCondition {
        condition: i,
        field: f["field"].as_str().unwrap_or("").into(),
        message: m.into(),
    };
    let field = f["field"].as_str().ok_or_else(|| bad("field is required"))?.to_string();
    let value = f.get("value").cloned().filter(|v| !v.is_null());
    let field_type = match (f["type"].as_str(), &value) {
        (Some(t), _) => t,
        (None, Some(Value::Bool(_))) => "boolean",
        (None, Some(Value::Number(n))) if n.is_i64() || n.is_u64() => "integer",
        (None, Some(Value::Number(_))) => "number",
        _ => "string",
    };
    let operator = f["operator"].as_str().unwrap_or(if field_type == "array" { "item_equals" } else { "equals" });
    Ok(Condition::new(field, operator, value, field_type))
}

fn run_search(a: &App, body: &SearchBody, base: &wire::Base) -> crate::Result<Value> {
    if !(1..=50).contains(&body.limit) {
        return Err(crate::Error::invalid("limit", format!("must be 1 to 50, got {}", body.limit)));
    }
    let index = match (&body.index_id, &body.index_name) {
        (Some(i), _) => Some(i.clone()),
        (None, Some(n)) => Some(a.engine.indexes().retrieve(n)?.index_id.to_string()),
        _ => None,
    };
    let runs = body.prompt_run_ids.clone().map(OneOrMany::into_vec).unwrap_or_default();
    let videos = body.video_ids.clone().map(OneOrMany::into_vec).unwrap_or_default();
    // Media restrictions apply after the search, so look further when there are some.
    let window = if videos.is_empty() { WINDOW } else { crate::MAX_TOP_K };
    let (mode, mut hits) = match (&body.query, &body.filters) {
        (Some(q), None) => {
            let r =
                a.engine.search().text(index.as_deref(), &TextSearch::new(q.clone()).top_k(window).run_ids(runs))?;
            record(a, "workflow")?;
            ("vector", hits(a, &r, base, false)?)
        }
        (None, Some(filters)) => {
            let conditions =
                filters.iter().enumerate().map(|(i, f)| condition(i, f)).collect::<crate::Result<Vec<_>>>()?;
            let r = a
                .engine
                .search()
                .filter(index.as_deref(), &FilterSearch::new(conditions).page_size(window as u32).run_ids(runs))?;
            record(a, "workflow")?;
            let page = wire::filter_page(&r, window as u32, base);
            ("condition", page["data"].as_array().cloned().unwrap_or_default())
        }
        _ => return Err(crate::Error::invalid("query", "give query or filters, not both")),
    };
    if !videos.is_empty() {
        hits.retain(|h| videos.iter().any(|v| h["video_id"] == v.as_str()));
    }
    if body.result_level == "video" {
        let mut seen = std::collections::HashSet::new();
        hits.retain(|h| seen.insert(h["video_id"].as_str().unwrap_or("").to_string()));
        for h in &mut hits {
            h["result_type"] = json!("video");
            h["preview_segment_id"] = h["segment_id"].clone();
            h["preview_start_time"] = h["start_time"].clone();
            h["preview_end_time"] = h["end_time"].clone();
        }
    } else if body.result_level != "segment" {
        return Err(crate::Error::invalid("result_level", format!("{:?} is not segment or video", body.result_level)));
    }
    let total = hits.len();
    let page: Vec<Value> = hits.into_iter().skip(body.offset).take(body.limit).collect();
    let next = body.offset + page.len();
    let next_cursor = (next < total).then(|| {
        let mut b = body.clone();
        b.offset = next;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&b).unwrap_or_default())
    });
    Ok(json!({
        "data": page, "mode": mode, "result_level": body.result_level,
        "scope": { "index_id": index, "video_ids": videos, "prompt_run_ids": body.prompt_run_ids },
        "coverage": { "window": window, "matched": total }, "warnings": [],
        "pagination": {
            "limit": body.limit, "count": page.len(), "has_more": next_cursor.is_some(), "next_cursor": next_cursor,
            "result_window": window, "truncated": total >= window,
        },
    }))
}

pub async fn search(State(app): State<Shared>, headers: HeaderMap, Json(mut body): Json<SearchBody>) -> ApiResult {
    body.offset = 0;
    let base = base(&headers);
    ok(blocking(&app, move |a| run_search(a, &body, &base)).await?)
}

#[derive(Deserialize)]
pub struct PageCursor {
    cursor: String,
}

pub async fn search_page(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<PageCursor>) -> ApiResult {
    let body: SearchBody = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(q.cursor.trim())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::invalid("cursor", "not a cursor of a workflow search"))?;
    let base = base(&headers);
    ok(blocking(&app, move |a| run_search(a, &body, &base)).await?)
}
