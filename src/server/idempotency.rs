//! `Idempotency-Key` replay: the first 2xx reply to a key is stored with a fingerprint of its
//! request (method, path, query, body); the same request again gets that reply and does nothing,
//! another request with the key is a 422 `idempotency_conflict` (the SDK's `IdempotencyError`).
//! Requests with the same key wait for each other, so a retry racing the original cannot run twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::state::Replay;
use super::{blocking, Shared};

/// Keys whose first request is still running.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl InFlight {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.entry(key.to_string()).or_default().clone()
    }
}

pub fn key_of(req: &Request) -> Option<String> {
    let key = req.headers().get("idempotency-key")?.to_str().ok()?.trim();
    (!key.is_empty()).then(|| key.to_string())
}

pub fn fingerprint(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().to_vec()
}

/// Replay or run a write that carries an `Idempotency-Key`. Multipart uploads fingerprint their
/// own content as they stream it (see `routes::videos`), so they pass through here.
pub async fn replay(State(app): State<Shared>, req: Request, next: Next) -> ApiResult<Response> {
    let write = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    // Replies of `/api-keys` hold secrets shown once: they are never stored.
    let secret = req.uri().path().starts_with("/api/v2/api-keys");
    let Some(key) = key_of(&req).filter(|_| write && !multipart && !secret) else {
        return Ok(next.run(req).await);
    };
    // Keys are the caller's own: another key's replies are never answered.
    let caller = req.extensions().get::<super::auth::Caller>().and_then(|c| c.key_id.clone()).unwrap_or_default();
    let key = format!("{caller}:{key}");
    let route = format!("{} {}", req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, app.options.max_body_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is over {} bytes", app.options.max_body_bytes),
        )
    })?;
    let query = parts.uri.query().unwrap_or("").as_bytes().to_vec();
    let print = fingerprint(&[route.as_bytes(), &query, &bytes]);
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    run_once(&app, key, route, print, next.run(req)).await
}

/// Answer from the stored reply of `key`, or run `work` and store its reply if it is a 2xx.
pub async fn run_once(
    app: &Shared,
    key: String,
    route: String,
    print: Vec<u8>,
    work: impl std::future::Future<Output = Response>,
) -> ApiResult<Response> {
    let lock = app.idempotency.lock_for(&key);
    let _held = lock.lock().await;
    let (k, r, p) = (key.clone(), route.clone(), print.clone());
    match blocking(app, move |a| a.state.replay(&k, &r, &p)).await? {
        Replay::Same { status, body } => {
            let mut response = Response::new(axum::body::Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            response.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static"));
            response.headers_mut().insert("idempotent-replayed", "true".parse().expect("static"));
            return Ok(response);
        }
        Replay::Conflict { route: first } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                format!("Idempotency-Key {key:?} was used for another request ({first}); use a new key"),
            )
            .details(serde_json::json!({ "idempotency_key": key })));
        }
        Replay::New => {}
    }
    let response = work.await;
    if !response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let stored = bytes.to_vec();
    blocking(app, move |a| a.state.remember(&key, &route, &print, status.as_u16(), &stored)).await?;
    Ok(Response::from_parts(parts, axum::body::Body::from(bytes)))
}
