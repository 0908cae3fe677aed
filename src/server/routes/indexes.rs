//! `/indexes`: create, list, retrieve, delete (with its deletion record) and the listings.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::delivery::Marks;
use super::{check_len, every, offset_page, PageQuery};
use crate::server::error::{ApiError, ApiResult};
use crate::server::{base, blocking, ok, reply, wire, Json, Shared};

#[derive(Deserialize)]
pub struct NewIndex {
    name: String,
}

pub async fn create(State(app): State<Shared>, Json(body): Json<NewIndex>) -> ApiResult {
    check_len("name", &body.name, 1, 255)?;
    let index = blocking(&app, move |a| a.engine.indexes().create(body.name.trim(), None)).await?;
    Ok(reply(StatusCode::CREATED, wire::index(&index)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[allow(dead_code)]
    include_defaults: Option<bool>,
}

/// Every index (there are no shared demo indexes locally, so `include_defaults` adds none).
pub async fn list(State(app): State<Shared>, Query(_q): Query<ListQuery>) -> ApiResult {
    let indexes = blocking(&app, |a| a.engine.indexes().list()).await?;
    ok(Value::Array(indexes.iter().map(wire::index).collect()))
}

pub async fn retrieve(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let index = blocking(&app, move |a| a.engine.indexes().retrieve(&id)).await?;
    ok(wire::index(&index))
}

fn deletion_reply(index_id: &str, (deletion_id, status): (String, String)) -> Value {
    json!({ "index_id": index_id, "deletion_id": deletion_id, "status": status, "retry_after_seconds": null })
}

/// Delete an index with its media, segments and vectors. A repeated DELETE (the SDK retries
/// them) answers the same deletion record.
pub async fn delete(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let v = blocking(&app, move |a| {
        if let Some(done) = a.state.deletion(&id, "index")? {
            return Ok(deletion_reply(&id, done));
        }
        let index = a.engine.indexes().retrieve(&id)?;
        let media = every(|page| a.engine.indexes().list_videos(&index.index_id, &page))?;
        a.engine.indexes().delete(&index.index_id)?;
        for m in &media {
            super::videos::forget_upload(a, &m.source_path);
        }
        let record = a.state.record_deletion(&index.index_id, &[&id], "index")?;
        Ok(deletion_reply(&index.index_id, record))
    })
    .await?;
    ok(v)
}

pub async fn deletion(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    match blocking(&app, move |a| a.state.deletion(&key, "index")).await? {
        Some(record) => ok(deletion_reply(&id, record)),
        None => Err(ApiError::not_found("deletion", &id)),
    }
}

pub async fn videos(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> ApiResult {
    let page = q.request()?;
    let limit = page.limit.unwrap_or(50);
    let media = blocking(&app, move |a| a.engine.indexes().list_videos(&id, &page)).await?;
    let base = base(&headers);
    let marks = Marks::load(&app).await?;
    ok(wire::page(
        media.data.iter().map(|m| marks.marked_video(wire::video(m, &base))).collect(),
        limit,
        media.next_cursor,
    ))
}

pub async fn prompt_runs(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<PageQuery>) -> ApiResult {
    let runs = blocking(&app, move |a| {
        let index = a.engine.indexes().retrieve(&id)?;
        let runs = a.engine.prompt_runs().list(10_000)?;
        Ok(runs.into_iter().filter(|r| r.index_id.as_ref() == Some(&index.index_id)).collect::<Vec<_>>())
    })
    .await?;
    let (runs, limit, next) = offset_page(runs, &q, 50, 100)?;
    let marks = Marks::load(&app).await?;
    ok(wire::page(runs.iter().map(|r| marks.marked_run(wire::run(r))).collect(), limit, next))
}
