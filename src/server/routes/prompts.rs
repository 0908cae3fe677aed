//! `/prompts` and `/prompt-runs`: the engine's prompts and runs in the SDK's models.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::delivery::Marks;
use super::PageQuery;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{blocking, ok, reply, wire, Json, Shared};
use crate::{NewPrompt, PageRequest, PromptUpdate, RunRequest};

pub async fn create(State(app): State<Shared>, Json(new): Json<NewPrompt>) -> ApiResult {
    let p = blocking(&app, move |a| a.engine.prompts().create(&new, None)).await?;
    Ok(reply(StatusCode::CREATED, wire::prompt(&p)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    active_only: Option<bool>,
    #[allow(dead_code)]
    include_defaults: Option<bool>,
}

pub async fn list(State(app): State<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let active_only = q.active_only.unwrap_or(true);
    let (shown, all) =
        blocking(&app, move |a| Ok((a.engine.prompts().list(active_only)?, a.engine.prompts().list(false)?))).await?;
    ok(json!({
        "prompts": shown.iter().map(wire::prompt).collect::<Vec<_>>(),
        "total_count": all.len(),
        "active_count": all.iter().filter(|p| p.is_active).count(),
    }))
}

pub async fn retrieve(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(wire::prompt(&blocking(&app, move |a| a.engine.prompts().get(&id)).await?))
}

pub async fn update(State(app): State<Shared>, Path(id): Path<String>, Json(u): Json<PromptUpdate>) -> ApiResult {
    ok(wire::prompt(&blocking(&app, move |a| a.engine.prompts().update(&id, &u, None)).await?))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    force: Option<bool>,
}

pub async fn delete(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<DeleteQuery>) -> ApiResult {
    let force = q.force.unwrap_or(false);
    let message = blocking(&app, move |a| {
        let done = |id: &str| format!("prompt {id} deleted");
        if a.state.deletion(&id, "prompt")?.is_some() {
            return Ok(done(&id));
        }
        let used = a.engine.prompts().usage(&id)?.is_in_use;
        a.engine.prompts().delete(&id, force)?;
        if used {
            // Deactivated, not deleted: it can be deleted again (with force) and answers the same.
            return Ok(format!("prompt {id} is used by runs: deactivated"));
        }
        a.state.record_deletion(&id, &[], "prompt")?;
        Ok(done(&id))
    })
    .await?;
    ok(json!({ "message": message }))
}

#[derive(Deserialize)]
pub struct TestSchema {
    json_schema: Value,
    sample_data: Value,
}

pub async fn test_schema(State(app): State<Shared>, Json(t): Json<TestSchema>) -> ApiResult {
    let check = blocking(&app, move |a| a.engine.prompts().test_schema(&t.json_schema, &t.sample_data)).await?;
    ok(serde_json::to_value(check).unwrap_or_default())
}

pub async fn usage(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(serde_json::to_value(blocking(&app, move |a| a.engine.prompts().usage(&id)).await?).unwrap_or_default())
}

// ---- runs ----

/// What HTTP callers may not ask of a run: durations out of range, or a model by path (a
/// server loads only models it was set up with: ids and the hosted names).
fn check_run(req: &RunRequest) -> ApiResult<()> {
    if let Some(m) = req.processing_model.as_deref().filter(|m| m.contains(['/', '\\']) || m.ends_with(".gguf")) {
        return Err(ApiError::invalid(
            "processing_model",
            format!("{m:?}: models are chosen by id or hosted name over HTTP, not by path"),
        ));
    }
    for (field, d) in
        [("video_segment_duration", req.video_segment_duration), ("audio_segment_duration", req.audio_segment_duration)]
    {
        if let Some(d) = d.filter(|d| !(1..=300).contains(d)) {
            return Err(ApiError::invalid(field, format!("must be 1 to 300 seconds, got {d}")));
        }
    }
    Ok(())
}

pub async fn execute(State(app): State<Shared>, Json(req): Json<RunRequest>) -> ApiResult {
    check_run(&req)?;
    let run = blocking(&app, move |a| a.engine.prompt_runs().execute(&req, None)).await?;
    Ok(reply(StatusCode::ACCEPTED, wire::run(&run)))
}

/// The dry run's figures in the SDK's cost-estimate model. Nothing is billed locally: the
/// balance fields are zero and `sufficient_balance` is true.
pub async fn estimate(State(app): State<Shared>, Json(req): Json<RunRequest>) -> ApiResult {
    check_run(&req)?;
    let e = blocking(&app, move |a| a.engine.prompt_runs().estimate(&req)).await?;
    ok(json!({
        "estimated_mt": 0.0, "sufficient_balance": true, "current_balance_mt": 0.0,
        "breakdown": {
            "videos": e.videos, "segments": e.segments, "model_calls": e.model_calls,
            "input_tokens": e.input_tokens, "tokens_to_read": e.tokens_to_read, "output_tokens": e.output_tokens,
            "seconds": e.seconds, "prefill_tokens_per_second": e.prefill_tokens_per_second,
            "decode_tokens_per_second": e.decode_tokens_per_second,
        },
        "model": e.model, "throughput_source": e.throughput_source,
    }))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    limit: Option<usize>,
}

pub async fn runs(State(app): State<Shared>, Query(q): Query<RunsQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be 1 to 1000, got {limit}")));
    }
    let runs = blocking(&app, move |a| a.engine.prompt_runs().list(limit)).await?;
    let marks = Marks::load(&app).await?;
    ok(Value::Array(runs.iter().map(|r| marked_run(&marks, r)).collect()))
}

fn marked_run(marks: &Marks, r: &crate::PromptRun) -> Value {
    let mut v = wire::run(r);
    marks.run(&mut v);
    v
}

pub async fn run(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let run = blocking(&app, move |a| a.engine.prompt_runs().get(&id)).await?;
    ok(marked_run(&Marks::load(&app).await?, &run))
}

/// Cancelling a finished run answers it as it is.
pub async fn cancel(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let run = blocking(&app, move |a| {
        let run = a.engine.prompt_runs().get(&id)?;
        if run.status.is_final() {
            return Ok(run);
        }
        a.engine.prompt_runs().cancel(&id)
    })
    .await?;
    ok(wire::run(&run))
}

#[derive(Deserialize)]
pub struct ResultsQuery {
    video_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn results(State(app): State<Shared>, Path(id): Path<String>, Query(q): Query<ResultsQuery>) -> ApiResult {
    let video_id = q.video_id.ok_or_else(|| ApiError::invalid("video_id", "required"))?;
    let page: PageRequest = PageQuery { limit: q.limit, cursor: q.cursor }.request()?;
    let limit = page.limit.unwrap_or(50);
    let (run, results) = blocking(&app, move |a| {
        Ok((a.engine.prompt_runs().get(&id)?, a.engine.prompt_runs().results(&id, &video_id, &page)?))
    })
    .await?;
    let marks = Marks::load(&app).await?;
    let data = results
        .data
        .iter()
        .map(|r| {
            let mut v = wire::result(r);
            marks.result(&mut v, "segment_result", &run, "segment_id");
            v
        })
        .collect();
    ok(wire::page(data, limit, results.next_cursor))
}

pub async fn llm_calls(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let calls = blocking(&app, move |a| a.engine.prompt_runs().llm_calls(&id)).await?;
    ok(Value::Array(calls.iter().map(wire::llm_call).collect()))
}

pub async fn video_result(State(app): State<Shared>, Path((run, video)): Path<(String, String)>) -> ApiResult {
    let (run, result) = blocking(&app, move |a| {
        Ok((a.engine.prompt_runs().get(&run)?, a.engine.prompt_runs().video_result(&run, &video)?))
    })
    .await?;
    let mut v = wire::video_result(&result);
    Marks::load(&app).await?.result(&mut v, "video_result", &run, "video_id");
    ok(v)
}

pub async fn failed_segments(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let (run, failed) =
        blocking(&app, move |a| Ok((a.engine.prompt_runs().get(&id)?, a.engine.prompt_runs().failed_segments(&id)?)))
            .await?;
    ok(wire::failed_manifest(&run, &failed))
}

fn retry_json(r: &crate::SegmentRetry) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["message"] = json!(format!("retry {} of segment {} is {}", r.retry_id, r.segment_id, r.status));
    v
}

pub async fn retry(
    State(app): State<Shared>,
    Path((run, video, segment)): Path<(String, String, String)>,
) -> ApiResult {
    let r = blocking(&app, move |a| a.engine.prompt_runs().retry_segment(&run, &video, &segment, None)).await?;
    Ok(reply(StatusCode::ACCEPTED, retry_json(&r)))
}

pub async fn retry_status(
    State(app): State<Shared>,
    Path((run, video, segment, retry)): Path<(String, String, String, String)>,
) -> ApiResult {
    let r = blocking(&app, move |a| a.engine.prompt_runs().retry_status(&retry)).await?;
    if *r.run_id != *run || *r.video_id != *video || *r.segment_id != *segment {
        return Err(ApiError::not_found("retry", &r.retry_id));
    }
    ok(retry_json(&r))
}
