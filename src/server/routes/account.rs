//! API keys, usage and rate limits (from the server's own counters), the processing-activity and
//! validate probes, and the processing event stream (Server-Sent Events from the engine's log).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_len, every};
use crate::server::auth::{self, Caller, SCOPES};
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::KeyRow;
use crate::server::{blocking, ok, reply, wire, Json, Shared};
use crate::store::sqlite::{now_ms, rfc3339_ms};
use crate::Event;

// ---- API keys ----

fn key_json(k: &KeyRow) -> Value {
    json!({
        "key_id": k.key_id, "key_prefix": k.key_prefix, "name": k.name, "scopes": k.scopes,
        "created_at": k.created_at, "last_used_at": k.last_used_at, "revoked_at": k.revoked_at,
        "expires_at": k.expires_at(), "is_active": k.is_active(now_ms()),
    })
}

fn with_secret(k: &KeyRow, secret: &str) -> Value {
    let mut v = key_json(k);
    v["key"] = json!(secret);
    v
}

#[derive(Deserialize)]
pub struct NewKey {
    name: String,
    scopes: Option<Vec<String>>,
    expires_in_days: Option<u32>,
}

pub async fn create_key(State(app): State<Shared>, Json(b): Json<NewKey>) -> ApiResult {
    check_len("name", &b.name, 1, 100)?;
    let scopes = b.scopes.unwrap_or_else(|| vec!["read".into()]);
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "give at least one scope"));
    }
    if let Some(s) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::invalid("scopes", format!("{s:?} is not one of {SCOPES:?}")));
    }
    if let Some(d) = b.expires_in_days.filter(|d| !(1..=365).contains(d)) {
        return Err(ApiError::invalid("expires_in_days", format!("must be 1 to 365, got {d}")));
    }
    let (secret, prefix, hash) = auth::new_key()?;
    let row = KeyRow {
        key_id: crate::ids::new("key"),
        name: b.name.trim().to_string(),
        key_prefix: prefix,
        key_hash: hash,
        scopes,
        created_at: rfc3339_ms(now_ms()),
        last_used_at: None,
        revoked_at: None,
        expires_ms: b.expires_in_days.map(|d| now_ms() + i64::from(d) * 86_400_000),
    };
    let stored = row.clone();
    blocking(&app, move |a| a.state.insert_key(&stored)).await?;
    Ok(reply(StatusCode::CREATED, with_secret(&row, &secret)))
}

pub async fn keys(State(app): State<Shared>) -> ApiResult {
    let keys = blocking(&app, |a| a.state.keys()).await?;
    ok(Value::Array(keys.iter().map(key_json).collect()))
}

async fn find(app: &Shared, id: String) -> ApiResult<KeyRow> {
    let key = id.clone();
    blocking(app, move |a| a.state.key(&key)).await?.ok_or_else(|| ApiError::not_found("api_key", &id))
}

pub async fn key(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(key_json(&find(&app, id).await?))
}

/// Delete a key; a repeated DELETE (the SDK retries them) answers the same.
pub async fn delete_key(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    let known = blocking(&app, move |a| {
        if a.state.deletion(&key, "api_key")?.is_some() {
            return Ok(true);
        }
        let deleted = a.state.delete_key(&key)?;
        if deleted {
            a.state.record_deletion(&key, &[], "api_key")?;
        }
        Ok(deleted)
    })
    .await?;
    if !known {
        return Err(ApiError::not_found("api_key", &id));
    }
    ok(json!({ "message": format!("API key {id} deleted") }))
}

pub async fn revoke_key(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    if !blocking(&app, move |a| a.state.revoke_key(&key)).await? {
        return Err(ApiError::not_found("api_key", &id));
    }
    ok(key_json(&find(&app, id).await?))
}

/// A new secret for the same key; the old one stops working at once.
pub async fn rotate_key(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let row = find(&app, id.clone()).await?;
    if row.revoked_at.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "api_key_revoked", format!("API key {id} is revoked")));
    }
    let (secret, prefix, hash) = auth::new_key()?;
    let key = id.clone();
    if !blocking(&app, move |a| a.state.replace_secret(&key, &prefix, &hash)).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "api_key_revoked", format!("API key {id} was revoked")));
    }
    let row = find(&app, id).await?;
    ok(with_secret(&row, &secret))
}

// ---- usage and rate limits ----

#[derive(Deserialize)]
pub struct Period {
    start_date: Option<String>,
    end_date: Option<String>,
    metric_type: Option<String>,
    limit: Option<u32>,
}

/// Milliseconds of an ISO date or date-time (`2026-01-01`, `2026-01-01T00:00:00+00:00`, `...Z`).
fn parse_ms(field: &str, s: &str) -> ApiResult<i64> {
    let bad = || ApiError::invalid(field, format!("{s:?} is not an ISO 8601 date"));
    let num = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = if s.len() >= 19 { (num(11, 13)?, num(14, 16)?, num(17, 19)?) } else { (0, 0, 0) };
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    if let Some(tz) = s.get(19..).map(|t| t.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit())) {
        if let (Some(sign), Some(h), Some(mi)) = (
            tz.chars().next(),
            tz.get(1..3).and_then(|x| x.parse::<i64>().ok()),
            tz.get(4..6).and_then(|x| x.parse::<i64>().ok()),
        ) {
            let off = h * 3600 + mi * 60;
            secs += if sign == '-' {
                off
            } else if sign == '+' {
                -off
            } else {
                0
            };
        }
    }
    Ok(secs * 1000)
}

/// The current month, as the hosted platform's billing periods run.
fn month_of(ms: i64) -> (i64, i64) {
    let date = rfc3339_ms(ms);
    let (y, m): (i64, i64) = (date[0..4].parse().unwrap_or(1970), date[5..7].parse().unwrap_or(1));
    let start = parse_ms("", &format!("{y:04}-{m:02}-01")).unwrap_or(0);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, parse_ms("", &format!("{ny:04}-{nm:02}-01")).unwrap_or(i64::MAX))
}

/// What the server counted in `[from, to)`, plus the engine's totals (media, segments, tokens).
fn totals(a: &crate::server::App, from: i64, to: i64) -> crate::Result<(Value, Value)> {
    let counted = a.state.usage_totals(from, to)?;
    let metric = |name: &str| counted.iter().find(|(m, ..)| m == name).map_or(0.0, |(_, sum, _)| *sum);
    let runs = a.engine.prompt_runs().list(1000)?;
    let mut tokens = 0u64;
    for r in &runs {
        for c in a.engine.prompt_runs().llm_calls(&r.run_id)? {
            tokens += c.input_tokens + c.output_tokens;
        }
    }
    let in_indexes: u64 = a.engine.indexes().list()?.iter().map(|i| i.video_count).sum();
    let media = in_indexes + every(|page| a.engine.videos().list_playground(&page))?.len() as u64;
    let metrics: serde_json::Map<String, Value> = counted.iter().map(|(m, sum, _)| (m.clone(), json!(sum))).collect();
    let totals = json!({
        "total_tokens": tokens, "total_searches": metric("search_requests") as u64,
        "total_storage_bytes": null, "total_videos_uploaded": metric("media_imported") as u64,
        "total_videos_processed": media, "total_segments_created": null,
    });
    Ok((Value::Object(metrics), totals))
}

pub async fn usage(State(app): State<Shared>) -> ApiResult {
    let (from, to) = month_of(now_ms());
    let (metrics, totals) = blocking(&app, move |a| totals(a, from, to)).await?;
    ok(json!({
        "user_id": wire::USER, "period_start": rfc3339_ms(from), "period_end": rfc3339_ms(to),
        "metrics": metrics, "model_usage": {}, "auth_usage": {}, "totals": totals,
    }))
}

pub async fn usage_history(State(app): State<Shared>, Query(p): Query<Period>) -> ApiResult {
    let limit = p.limit.unwrap_or(12).clamp(1, 120);
    let end = p.end_date.as_deref().map(|s| parse_ms("end_date", s)).transpose()?.unwrap_or(now_ms());
    let start = p.start_date.as_deref().map(|s| parse_ms("start_date", s)).transpose()?;
    let periods = blocking(&app, move |a| {
        let mut out = vec![];
        let (mut from, mut to) = month_of(end);
        while out.len() < limit as usize && start.is_none_or(|s| to > s) {
            let counted = a.state.usage_totals(from, to)?;
            let metrics: serde_json::Map<String, Value> =
                counted.iter().map(|(m, sum, _)| (m.clone(), json!(sum))).collect();
            let totals: serde_json::Map<String, Value> =
                counted.iter().map(|(m, _, n)| (m.clone(), json!(n))).collect();
            out.push(json!({
                "summary_id": format!("sum_{}", &rfc3339_ms(from)[..7]), "period_start": rfc3339_ms(from),
                "period_end": rfc3339_ms(to), "metrics": metrics, "totals": totals,
            }));
            (from, to) = month_of(from - 1);
            if from < 0 {
                break;
            }
        }
        Ok(out)
    })
    .await?;
    ok(json!({ "user_id": wire::USER, "periods": periods }))
}

pub async fn usage_details(State(app): State<Shared>, Query(p): Query<Period>) -> ApiResult {
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let from = p.start_date.as_deref().map(|s| parse_ms("start_date", s)).transpose()?.unwrap_or(0);
    let to = p.end_date.as_deref().map(|s| parse_ms("end_date", s)).transpose()?.unwrap_or(i64::MAX);
    let rows = blocking(&app, move |a| a.state.usage_events(p.metric_type.as_deref(), from, to, limit)).await?;
    ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "event_id": format!("use_{}", r.event_id), "metric_type": r.metric_type, "value": r.value,
                    "unit": r.unit, "timestamp": rfc3339_ms(r.ms), "metadata": r.metadata,
                })
            })
            .collect(),
    ))
}

pub async fn usage_breakdown(State(app): State<Shared>, Query(p): Query<Period>) -> ApiResult {
    let (month_start, month_end) = month_of(now_ms());
    let from = p.start_date.as_deref().map(|s| parse_ms("start_date", s)).transpose()?.unwrap_or(month_start);
    let to = p.end_date.as_deref().map(|s| parse_ms("end_date", s)).transpose()?.unwrap_or(month_end);
    let (metrics, totals) = blocking(&app, move |a| totals(a, from, to)).await?;
    ok(json!({
        "user_id": wire::USER, "period_start": rfc3339_ms(from), "period_end": rfc3339_ms(to),
        "breakdown": metrics, "totals": totals,
    }))
}

pub async fn metric_types() -> ApiResult {
    ok(json!([
        { "type": "search_requests", "description": "searches answered (text, image, multimodal, filter, multi-run, playground, SQL)", "unit": "requests" },
        { "type": "media_imported", "description": "media files handed to the engine by upload or registration", "unit": "files" },
        { "type": "llm_tokens", "description": "language-model tokens read and written by prompt runs (in totals.total_tokens)", "unit": "tokens" },
    ]))
}

pub async fn rate_limits(State(app): State<Shared>) -> ApiResult {
    let categories: serde_json::Map<String, Value> = app
        .limits
        .status()
        .into_iter()
        .map(|(name, s)| {
            (
                name.to_string(),
                json!({
                    "minute_used": s.minute_used, "minute_limit": s.limits.per_minute,
                    "minute_remaining": s.limits.per_minute.saturating_sub(s.minute_used),
                    "hour_used": s.hour_used, "hour_limit": s.limits.per_hour,
                    "hour_remaining": s.limits.per_hour.saturating_sub(s.hour_used), "reset_at": s.reset_at,
                }),
            )
        })
        .collect();
    ok(json!({ "user_id": wire::USER, "plan_id": "local", "categories": categories }))
}

// ---- auth probes ----

pub async fn processing_activity(Extension(caller): Extension<Caller>, body: axum::body::Bytes) -> ApiResult {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    ok(json!({
        "acknowledged": true, "key_id": caller.key_id, "scopes": caller.scopes,
        "event_id": body.get("event_id"), "reason": body.get("reason"), "operation": body.get("operation"),
    }))
}

pub async fn validate(Extension(caller): Extension<Caller>) -> ApiResult {
    ok(json!({ "valid": true, "user_id": wire::USER, "key_id": caller.key_id, "scopes": caller.scopes }))
}

// ---- processing event stream ----

#[derive(Deserialize)]
pub struct StreamQuery {
    run_id: Option<String>,
    index_id: Option<String>,
    /// Comma-separated.
    video_ids: Option<String>,
    /// Comma-separated.
    event_types: Option<String>,
    batch_size: Option<usize>,
    /// Resume after this event id (as the `Last-Event-ID` header).
    last_event_id: Option<u64>,
}

fn list(s: &Option<String>) -> Vec<String> {
    s.iter().flat_map(|s| s.split(',')).map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

/// The engine's event log from `Last-Event-ID` on, then new events as they are appended
/// (polled every 250 ms), with a heartbeat comment every 15 s.
pub async fn events_stream(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<StreamQuery>) -> ApiResult {
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.last_event_id)
        .unwrap_or(0);
    let batch = q.batch_size.unwrap_or(100).clamp(1, 1000);
    let (videos, types) = (list(&q.video_ids), list(&q.event_types));
    let keep = move |e: &Event| {
        q.run_id.as_ref().is_none_or(|r| e.run_id.as_ref() == Some(r))
            && q.index_id.as_ref().is_none_or(|i| e.index_id.as_ref().is_some_and(|x| x.as_str() == i))
            && (videos.is_empty() || e.video_id.as_ref().is_some_and(|v| videos.iter().any(|x| x == v.as_str())))
            && (types.is_empty() || types.iter().any(|t| t == e.event_type.as_str()))
    };
    let stream = futures_util::stream::unfold((app, from, Vec::<Event>::new()), move |(app, mut last, mut buf)| {
        let keep = keep.clone();
        async move {
            loop {
                if *app.stopping.borrow() {
                    return None;
                }
                if let Some(e) = (!buf.is_empty()).then(|| buf.remove(0)) {
                    let data = json!({
                        "event_id": e.event_id, "event_type": e.event_type, "user_id": wire::USER,
                        "run_id": e.run_id, "video_id": e.video_id, "segment_id": e.segment_id,
                        "index_id": e.index_id, "job_id": e.job_id, "created_at": e.created_at, "payload": e.payload,
                    });
                    let event = SseEvent::default()
                        .id(e.event_id.to_string())
                        .event(e.event_type.as_str())
                        .data(data.to_string());
                    return Some((Ok::<_, Infallible>(event), (app, last, buf)));
                }
                let since = last;
                match blocking(&app, move |a| a.engine.events().since(since, batch)).await {
                    Ok(events) if !events.is_empty() => {
                        last = events.last().map_or(last, |e| e.event_id);
                        buf = events.into_iter().filter(|e| keep(e)).collect();
                    }
                    Ok(_) => {
                        let mut stopping = app.stopping.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                            _ = stopping.changed() => {}
                        }
                    }
                    Err(e) => {
                        let event = SseEvent::default()
                            .event("processing.stream_error")
                            .data(json!({ "message": e.message }).to_string());
                        return Some((Ok(event), (app, u64::MAX, vec![])));
                    }
                }
                if last == u64::MAX {
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("heartbeat"))
        .into_response())
}
