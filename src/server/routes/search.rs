//! Searches: text, image, multimodal, filter (index and playground), multi-run, playground, and
//! SQL search (catalog, execute, generate). Searches answer bare arrays; only filter search is
//! a page. Each search counts as a `search_requests` usage event.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::search::SearchResponse;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{base, blocking, ok, wire, App, Json, Shared};
use crate::{
    Aggregation, Condition, FilterSearch, ImageInput, ImageSearch, Media, MultiRunSearch, MultimodalSearch,
    SqlGenerate, SqlQuery, TextSearch,
};

/// `playground` in a path means the index-less media.
fn scope(index_id: &str) -> Option<String> {
    (index_id != "playground").then(|| index_id.to_string())
}

fn refuse_unsupported(search_fields: &Option<Vec<String>>, index_ids: &Option<Vec<String>>) -> ApiResult<()> {
    if search_fields.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid(
            "search_fields",
            "per-field metadata search is not supported by this engine; use conditions or filter search",
        ));
    }
    if index_ids.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid(
            "index_ids",
            "searching several indexes at once is supported by filter and SQL search only; search each index",
        ));
    }
    Ok(())
}

fn decode_image(data: &str) -> ApiResult<ImageInput> {
    let b64 = data.split_once(";base64,").map_or(data, |(_, b)| b).trim();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map(ImageInput::Bytes)
        .map_err(|e| ApiError::invalid("image_data", format!("not base64: {e}")))
}

pub(crate) fn record(a: &App, kind: &str) -> crate::Result<()> {
    a.state.record_usage("search_requests", 1.0, "requests", Some(&json!({ "search": kind })))
}

/// Hits as `SearchResult`s, with their media's title and type.
pub(crate) fn hits(a: &App, r: &SearchResponse, base: &wire::Base, fused: bool) -> crate::Result<Vec<Value>> {
    let mut ids: Vec<String> = r.results.iter().map(|h| h.video_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let media: HashMap<String, Media> =
        a.engine.videos().batch_retrieve(&ids)?.data.into_iter().map(|m| (m.video_id.to_string(), m)).collect();
    Ok(r.results.iter().map(|h| wire::hit(h, media.get(h.video_id.as_str()), base, fused)).collect())
}

#[derive(Deserialize)]
pub struct TextBody {
    query: String,
    top_k: Option<usize>,
    search_fields: Option<Vec<String>>,
    run_ids: Option<Vec<String>>,
    index_ids: Option<Vec<String>>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

pub async fn text(
    State(app): State<Shared>,
    Path(index): Path<String>,
    headers: HeaderMap,
    Json(b): Json<TextBody>,
) -> ApiResult {
    refuse_unsupported(&b.search_fields, &b.index_ids)?;
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = TextSearch::new(b.query).run_ids(b.run_ids.unwrap_or_default()).conditions(b.conditions);
        req.top_k = b.top_k;
        let r = a.engine.search().text(scope(&index).as_deref(), &req)?;
        record(a, "text")?;
        hits(a, &r, &base, false).map(Value::Array)
    })
    .await?)
}

#[derive(Deserialize)]
pub struct ImageBody {
    image_data: String,
    top_k: Option<usize>,
    run_ids: Option<Vec<String>>,
    index_ids: Option<Vec<String>>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

async fn image_search(app: Shared, index: Option<String>, headers: HeaderMap, b: ImageBody) -> ApiResult {
    refuse_unsupported(&None, &b.index_ids)?;
    let input = decode_image(&b.image_data)?;
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = ImageSearch::new(input).run_ids(b.run_ids.unwrap_or_default()).conditions(b.conditions);
        req.top_k = b.top_k;
        let r = a.engine.search().image(index.as_deref(), &req)?;
        record(a, "image")?;
        hits(a, &r, &base, false).map(Value::Array)
    })
    .await?)
}

pub async fn image(
    State(app): State<Shared>,
    Path(index): Path<String>,
    headers: HeaderMap,
    Json(b): Json<ImageBody>,
) -> ApiResult {
    image_search(app, scope(&index), headers, b).await
}

#[derive(Deserialize)]
pub struct MultimodalBody {
    text_query: Option<String>,
    image_data: Option<String>,
    top_k: Option<usize>,
    text_weight: Option<f32>,
    image_weight: Option<f32>,
    search_fields: Option<Vec<String>>,
    run_ids: Option<Vec<String>>,
    index_ids: Option<Vec<String>>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

pub async fn multimodal(
    State(app): State<Shared>,
    Path(index): Path<String>,
    headers: HeaderMap,
    Json(b): Json<MultimodalBody>,
) -> ApiResult {
    refuse_unsupported(&b.search_fields, &b.index_ids)?;
    for (field, w) in [("text_weight", b.text_weight), ("image_weight", b.image_weight)] {
        if let Some(w) = w.filter(|w| !(0.0..=1.0).contains(w)) {
            return Err(ApiError::invalid(field, format!("must be 0.0 to 1.0, got {w}")));
        }
    }
    let text = b.text_query.filter(|t| !t.trim().is_empty());
    let img = b.image_data.filter(|d| !d.trim().is_empty()).map(|d| decode_image(&d)).transpose()?;
    if text.is_none() && img.is_none() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "text_query or image_data is required (or both)",
        ));
    }
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = MultimodalSearch::new().run_ids(b.run_ids.unwrap_or_default()).conditions(b.conditions);
        if let Some(t) = text {
            req = req.text(t);
        }
        if let Some(i) = img {
            req = req.image(i);
        }
        req.text_weight = b.text_weight;
        req.image_weight = b.image_weight;
        req.top_k = b.top_k;
        let r = a.engine.search().multimodal(scope(&index).as_deref(), &req)?;
        record(a, "multimodal")?;
        hits(a, &r, &base, true).map(Value::Array)
    })
    .await?)
}

#[derive(Deserialize)]
pub struct FilterBody {
    conditions: Vec<Condition>,
    page_size: Option<u32>,
    cursor: Option<String>,
    #[serde(default)]
    run_ids: Vec<String>,
    #[serde(default)]
    index_ids: Vec<String>,
}

async fn filter_in(app: Shared, index: Option<String>, headers: HeaderMap, b: FilterBody) -> ApiResult {
    let page_size = b.page_size.unwrap_or(crate::DEFAULT_PAGE_SIZE);
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = FilterSearch::new(b.conditions).page_size(page_size).run_ids(b.run_ids).index_ids(b.index_ids);
        req.cursor = b.cursor;
        let r = a.engine.search().filter(index.as_deref(), &req)?;
        record(a, "filter")?;
        Ok(wire::filter_page(&r, page_size, &base))
    })
    .await?)
}

pub async fn filter(
    State(app): State<Shared>,
    Path(index): Path<String>,
    headers: HeaderMap,
    Json(b): Json<FilterBody>,
) -> ApiResult {
    filter_in(app, scope(&index), headers, b).await
}

pub async fn filter_playground(State(app): State<Shared>, headers: HeaderMap, Json(b): Json<FilterBody>) -> ApiResult {
    filter_in(app, None, headers, b).await
}

#[derive(Deserialize)]
pub struct MultiRunBody {
    query: String,
    #[serde(default)]
    run_ids: Vec<String>,
    index_id: Option<String>,
    aggregation: Option<Aggregation>,
    top_k: Option<usize>,
}

pub async fn multi_run(State(app): State<Shared>, headers: HeaderMap, Json(b): Json<MultiRunBody>) -> ApiResult {
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = MultiRunSearch::new(b.query).run_ids(b.run_ids);
        req.index_id = b.index_id;
        req.aggregation = b.aggregation;
        req.top_k = b.top_k;
        let r = a.engine.search().multi_run(&req)?;
        record(a, "multi_run")?;
        hits(a, &r, &base, false).map(Value::Array)
    })
    .await?)
}

#[derive(Deserialize)]
pub struct PlaygroundQuery {
    run_id: Option<String>,
}

#[derive(Deserialize)]
pub struct PlaygroundBody {
    query: String,
    top_k: Option<usize>,
}

pub async fn playground(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PlaygroundQuery>,
    Json(b): Json<PlaygroundBody>,
) -> ApiResult {
    let base = base(&headers);
    ok(blocking(&app, move |a| {
        let mut req = TextSearch::new(b.query).run_ids(q.run_id.into_iter().collect());
        req.top_k = b.top_k;
        let r = a.engine.search().text(None, &req)?;
        record(a, "playground")?;
        hits(a, &r, &base, false).map(Value::Array)
    })
    .await?)
}

// ---- SQL search ----

#[derive(Deserialize, Default)]
pub struct CatalogBody {
    #[serde(default)]
    run_ids: Vec<String>,
    #[serde(default)]
    index_ids: Vec<String>,
}

async fn catalog(app: Shared, index: String, b: CatalogBody) -> ApiResult {
    let c =
        blocking(&app, move |a| a.engine.search().sql().catalog(scope(&index).as_deref(), &b.run_ids, &b.index_ids))
            .await?;
    ok(serde_json::to_value(c).unwrap_or_default())
}

pub async fn sql_catalog(
    State(app): State<Shared>,
    Path(index): Path<String>,
    Json(b): Json<CatalogBody>,
) -> ApiResult {
    catalog(app, index, b).await
}

pub async fn sql_catalog_get(State(app): State<Shared>, Path(index): Path<String>) -> ApiResult {
    catalog(app, index, CatalogBody::default()).await
}

pub async fn sql_execute(State(app): State<Shared>, Path(index): Path<String>, Json(q): Json<SqlQuery>) -> ApiResult {
    ok(blocking(&app, move |a| {
        let r = a.engine.search().sql().execute(scope(&index).as_deref(), &q)?;
        record(a, "sql")?;
        Ok(serde_json::to_value(r).unwrap_or_default())
    })
    .await?)
}

pub async fn sql_generate(
    State(app): State<Shared>,
    Path(index): Path<String>,
    Json(g): Json<SqlGenerate>,
) -> ApiResult {
    let d = blocking(&app, move |a| a.engine.search().sql().generate(scope(&index).as_deref(), &g)).await?;
    ok(serde_json::to_value(d).unwrap_or_default())
}
