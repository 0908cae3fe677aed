//! The routes of `/api/v2`, one file per SDK resource family. Literal segments win over
//! parameters (`/videos/batch` before `/videos/{video_id}`), as the SDK needs.

mod account;
pub(crate) mod delivery;
mod indexes;
mod prompts;
mod search;
pub(crate) mod videos;
mod workflow;

use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::Shared;
use crate::PageRequest;

pub fn routes(app: Shared) -> Router<Shared> {
    let upload_limit =
        axum::extract::DefaultBodyLimit::max(usize::try_from(app.options.max_upload_bytes).unwrap_or(usize::MAX));
    Router::new()
        .route("/indexes", get(indexes::list).post(indexes::create))
        .route("/indexes/{index_id}", get(indexes::retrieve).delete(indexes::delete))
        .route("/indexes/{index_id}/deletion", get(indexes::deletion))
        .route("/indexes/{index_id}/videos", get(indexes::videos))
        .route("/indexes/{index_id}/prompt-runs", get(indexes::prompt_runs))
        .route("/indexes/{index_id}/search", post(search::text))
        .route("/indexes/{index_id}/image-search", post(search::image))
        .route("/indexes/{index_id}/multimodal-search", post(search::multimodal))
        .route("/videos", post(videos::create))
        .route("/videos/upload", post(videos::upload).layer(upload_limit))
        .route("/videos/batch", post(videos::batch_retrieve))
        .route("/videos/batch/status", post(videos::batch_status))
        .route("/videos/batch/segments", post(videos::batch_segments))
        .route("/videos/signed-url", post(videos::signed_url))
        .route("/videos/segments/{segment_id}/thumbnail", get(videos::thumbnail))
        .route("/videos/{video_id}", get(videos::retrieve).delete(videos::delete))
        .route("/videos/{video_id}/deletion", get(videos::deletion))
        .route("/videos/{video_id}/process", post(videos::process))
        .route("/videos/{video_id}/segments", get(videos::segments))
        .route("/videos/{video_id}/prompt-runs", get(videos::prompt_runs))
        .route("/videos/{video_id}/gif", get(videos::gif))
        .route("/media/{token}", get(videos::media_file))
        .route("/playground/videos", get(videos::playground))
        .route("/playground/search", post(search::playground))
        .route("/import-jobs", get(videos::import_jobs).post(delivery::create_import))
        .route("/import-jobs/{job_id}", get(videos::import_job))
        .route("/import-jobs/{job_id}/outputs", get(videos::import_outputs))
        .route("/import-jobs/{job_id}/files", get(videos::import_files))
        .route("/import-jobs/{job_id}/cancel", post(videos::import_cancel))
        .route("/import-jobs/{job_id}/retry", post(videos::import_retry))
        .route(
            "/indexes/{index_id}/automations/import",
            get(delivery::import_automation).put(delivery::put_import_automation),
        )
        .route("/indexes/{index_id}/automations/import/pause", post(delivery::pause_import_automation))
        .route("/indexes/{index_id}/automations/import/resume", post(delivery::resume_import_automation))
        .route(
            "/indexes/{index_id}/automations/export",
            get(delivery::export_automation).put(delivery::put_export_automation),
        )
        .route("/indexes/{index_id}/automations/export/pause", post(delivery::pause_export_automation))
        .route("/indexes/{index_id}/automations/export/resume", post(delivery::resume_export_automation))
        .route("/collections", get(delivery::collections).post(delivery::create_collection))
        .route(
            "/collections/{collection_id}",
            get(delivery::collection).patch(delivery::update_collection).delete(delivery::delete_collection),
        )
        .route(
            "/collections/{collection_id}/videos",
            get(delivery::collection_videos).post(delivery::add_collection_video),
        )
        .route(
            "/collections/{collection_id}/videos/{video_id}",
            axum::routing::delete(delivery::remove_collection_video),
        )
        .route("/collections/{collection_id}/search", post(delivery::search_collection))
        .route("/markers", get(delivery::markers).put(delivery::upsert_marker))
        .route("/markers/{marker_id}", axum::routing::delete(delivery::delete_marker))
        .route("/connectors", get(delivery::connectors))
        .route("/connectors/s3", post(delivery::create_s3))
        .route("/connectors/azure", post(delivery::create_azure))
        .route("/connectors/gcs", post(delivery::create_gcs))
        .route("/connectors/local", post(delivery::create_local))
        .route("/connectors/{connector_id}", get(delivery::connector).delete(delivery::delete_connector))
        .route("/connectors/{connector_id}/test", post(delivery::test_connector))
        .route("/connectors/{connector_id}/browse", post(delivery::browse))
        .route("/exports", get(delivery::exports))
        .route("/exports/index/{index_id}", post(delivery::export_index))
        .route("/exports/prompt-run/{run_id}", post(delivery::export_run))
        .route("/exports/{export_id}", get(delivery::export))
        .route("/exports/{export_id}/download-url", post(delivery::download_url))
        .route("/exports/{export_id}/download", get(delivery::download))
        .route("/webhooks", get(delivery::webhooks).post(delivery::create_webhook))
        .route("/webhooks/events", get(delivery::events))
        .route(
            "/webhooks/{webhook_id}",
            get(delivery::webhook).patch(delivery::update_webhook).delete(delivery::delete_webhook),
        )
        .route("/webhooks/{webhook_id}/rotate-secret", post(delivery::rotate_secret))
        .route("/webhooks/{webhook_id}/test", post(delivery::test_webhook))
        .route("/webhooks/{webhook_id}/deliveries", get(delivery::deliveries))
        .route("/webhooks/deliveries/{delivery_id}", get(delivery::delivery))
        .route("/webhooks/deliveries/{delivery_id}/retry", post(delivery::retry_delivery))
        .route("/prompts", get(prompts::list).post(prompts::create))
        .route("/prompts/test-schema", post(prompts::test_schema))
        .route("/prompts/{prompt_id}", get(prompts::retrieve).put(prompts::update).delete(prompts::delete))
        .route("/prompts/{prompt_id}/usage", get(prompts::usage))
        .route("/prompt-runs", get(prompts::runs))
        .route("/prompt-runs/execute", post(prompts::execute))
        .route("/prompt-runs/estimate", post(prompts::estimate))
        .route("/prompt-runs/{run_id}", get(prompts::run))
        .route("/prompt-runs/{run_id}/cancel", post(prompts::cancel))
        .route("/prompt-runs/{run_id}/results", get(prompts::results))
        .route("/prompt-runs/{run_id}/llm-calls", get(prompts::llm_calls))
        .route("/prompt-runs/{run_id}/failed-segments", get(prompts::failed_segments))
        .route("/prompt-runs/{run_id}/videos/{video_id}/video-result", get(prompts::video_result))
        .route("/prompt-runs/{run_id}/videos/{video_id}/segments/{segment_id}/retry", post(prompts::retry))
        .route(
            "/prompt-runs/{run_id}/videos/{video_id}/segments/{segment_id}/retries/{retry_id}",
            get(prompts::retry_status),
        )
        .route("/search/filter/playground", post(search::filter_playground))
        .route("/search/filter/{index_id}", post(search::filter))
        .route("/search/multi-run", post(search::multi_run))
        .route("/search/sql/{index_id}", post(search::sql_execute))
        .route("/search/sql/{index_id}/catalog", post(search::sql_catalog).get(search::sql_catalog_get))
        .route("/search/sql/{index_id}/generate", post(search::sql_generate))
        .route(
            "/workflow/upload",
            post(workflow::upload).layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(app.options.max_upload_bytes).unwrap_or(usize::MAX),
            )),
        )
        .route("/workflow/define", post(workflow::define))
        .route("/workflow/process", post(workflow::process))
        .route("/workflow/search", post(workflow::search))
        .route("/workflow/search/page", get(workflow::search_page))
        .route("/api-keys", get(account::keys).post(account::create_key))
        .route("/api-keys/{key_id}", get(account::key).delete(account::delete_key))
        .route("/api-keys/{key_id}/revoke", post(account::revoke_key))
        .route("/api-keys/{key_id}/rotate", post(account::rotate_key))
        .route("/usage", get(account::usage))
        .route("/usage/history", get(account::usage_history))
        .route("/usage/details", get(account::usage_details))
        .route("/usage/breakdown", get(account::usage_breakdown))
        .route("/usage/metric-types", get(account::metric_types))
        .route("/rate-limit/status", get(account::rate_limits))
        .route("/rate-limit/refresh", post(account::rate_limits))
        .route("/auth/processing-activity", post(account::processing_activity))
        .route("/auth/validate", get(account::validate))
        .route("/processing/events/stream", get(account::events_stream))
}

/// `limit` and `cursor` of a listing.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self, default: u32, max: u32) -> ApiResult<u32> {
        match self.limit.unwrap_or(default) {
            n if (1..=max).contains(&n) => Ok(n),
            n => Err(ApiError::invalid("limit", format!("must be 1 to {max}, got {n}"))),
        }
    }

    pub fn request(&self) -> ApiResult<PageRequest> {
        Ok(PageRequest { limit: Some(self.limit(50, 100)?), cursor: self.cursor.clone() })
    }
}

/// A page over an in-memory list: the cursor is the offset.
pub fn offset_page<T>(
    items: Vec<T>,
    q: &PageQuery,
    default: u32,
    max: u32,
) -> ApiResult<(Vec<T>, u32, Option<String>)> {
    let limit = q.limit(default, max)?;
    let start = match &q.cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("o")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::invalid("cursor", format!("{c:?} is not a cursor this listing made")))?,
    };
    if start > items.len() {
        return Err(ApiError::invalid("cursor", "points past the end of this listing"));
    }
    let end = start.saturating_add(limit as usize).min(items.len());
    let next = (end < items.len()).then(|| format!("o{end}"));
    let page = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    Ok((page, limit, next))
}

/// Every item of a cursor-paged engine listing, read 100 at a time.
pub fn every<T>(mut page: impl FnMut(PageRequest) -> crate::Result<crate::Page<T>>) -> crate::Result<Vec<T>> {
    crate::store::every_page(100, |p| page(p.clone()))
}

/// A name of `min..=max` characters.
pub fn check_len(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.trim().chars().count();
    if n < min || value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be {min} to {max} characters, got {n}")));
    }
    Ok(())
}
