//! `videovector serve`: the hosted platform's REST API (`/api/v2`) over the engine, so that code
//! written for the official Python SDK runs unchanged against a local folder.
//!
//! The only module that knows HTTP. Every engine call runs on a blocking thread
//! (`blocking`); long work runs as the engine's jobs, so a shutdown leaves it resumable. Layers,
//! outermost first: the error envelope (every non-2xx reply becomes
//! `{"error": {"code", "message", "details", "request_id"}}`), then per route the key and scope
//! check with rate limits (`auth`) and the `Idempotency-Key` replay (`idempotency`).

// Handlers return `ApiError` by value: it is built once per failed request, never on a hot path.
#![allow(clippy::result_large_err)]

mod auth;
mod error;
mod idempotency;
mod routes;
mod state;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use auth::Limits;
use error::{ApiError, ApiResult};
use state::ServerState;

use crate::{Engine, Error, Result};

/// How `serve` listens and what it allows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The bootstrap admin key (`sk_live_` + 48 hex) to store if it is not stored yet.
    pub admin_key: Option<String>,
    /// Secret of HS256 bearer tokens accepted for the `/api-keys` family.
    pub jwt_secret: Option<String>,
    /// Serve requests without a key as admin (loopback only).
    pub allow_anonymous: bool,
    /// Largest JSON body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Largest upload, in bytes (413 above).
    pub max_upload_bytes: u64,
    /// Requests per minute and hour for the `search`, `read` and `write` categories.
    pub limits: [(&'static str, Limits); 3],
    /// Folders whose files may be registered by path or `file://` URI (`POST /videos`); none:
    /// registration by path is refused and only uploads add media.
    pub media_roots: Vec<std::path::PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_key: None,
            jwt_secret: None,
            allow_anonymous: false,
            max_body_bytes: 32 << 20,
            max_upload_bytes: 8 << 30,
            limits: [
                ("search", Limits { per_minute: 6_000, per_hour: 200_000 }),
                ("read", Limits { per_minute: 12_000, per_hour: 400_000 }),
                ("write", Limits { per_minute: 1_200, per_hour: 20_000 }),
            ],
            media_roots: vec![],
        }
    }
}

impl ServeOptions {
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    pub fn admin_key(mut self, key: Option<String>) -> Self {
        self.admin_key = key;
        self
    }
    pub fn jwt_secret(mut self, secret: Option<String>) -> Self {
        self.jwt_secret = secret;
        self
    }
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.allow_anonymous = yes;
        self
    }
    pub fn max_upload_bytes(mut self, n: u64) -> Self {
        self.max_upload_bytes = n;
        self
    }
    pub fn media_root(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.media_roots.push(dir.into());
        self
    }
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
}

/// What a started server tells its caller: where it listens and the admin key it made, if any
/// (shown once).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Started {
    pub addr: SocketAddr,
    pub new_admin_key: Option<String>,
}

pub(crate) struct App {
    engine: Engine,
    state: Arc<ServerState>,
    options: ServeOptions,
    limits: auth::RateLimiter,
    /// Signs local media URLs (`POST /videos/signed-url`).
    url_key: Vec<u8>,
    idempotency: idempotency::InFlight,
    /// Turns true when the server starts to stop, so that endless replies (the event stream) end.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// `media_roots`, canonical.
    roots: Vec<std::path::PathBuf>,
}

type Shared = Arc<App>;

/// Run `engine` behind the REST API until SIGINT or SIGTERM; `on_start` is called once the
/// socket accepts connections. In-flight requests finish before it returns; jobs keep their
/// state in the engine's folder and resume on the next open.
pub fn serve(engine: Engine, options: ServeOptions, on_start: impl FnOnce(&Started)) -> Result<()> {
    if !options.listen.ip().is_loopback() && options.allow_anonymous {
        return Err(Error::invalid(
            "listen",
            format!("{} is not a loopback address: anonymous access is only allowed on loopback", options.listen),
        ));
    }
    let state = Arc::new(ServerState::open(engine.data_dir())?);
    let new_admin_key = auth::bootstrap(&state, options.admin_key.as_deref())?;
    let url_key = state.secret("url_signing_key", 32)?;
    let limits = auth::RateLimiter::new(options.limits.iter().copied().collect::<HashMap<_, _>>());
    let mut roots = vec![];
    for root in &options.media_roots {
        roots.push(std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?);
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app =
        Arc::new(App { engine, state, options, limits, url_key, idempotency: Default::default(), stopping, roots });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("tokio runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(app.options.listen)
            .await
            .map_err(|e| Error::invalid("listen", format!("cannot listen on {}: {e}", app.options.listen)))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        on_start(&Started { addr, new_admin_key });
        let stopped = async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        };
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stopped)
            .await
            .map_err(|e| Error::Io { path: std::path::PathBuf::from(addr.to_string()), source: e })
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn router(app: Shared) -> axum::Router {
    let api = routes::routes(app.clone())
        .route_layer(middleware::from_fn_with_state(app.clone(), idempotency::replay))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::authorize))
        .layer(axum::extract::DefaultBodyLimit::max(app.options.max_body_bytes));
    axum::Router::new().nest("/api/v2", api).fallback(no_route).layer(middleware::from_fn(envelope)).with_state(app)
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", format!("no route {} {}", req.method(), req.uri().path()))
}

/// Give every reply a request id, and every error the envelope (axum's own rejections, such as
/// 405 or a body over the limit, come as plain text).
async fn envelope(req: Request, next: Next) -> Response {
    let request_id = crate::ids::new("req");
    let (req, body_read) = track_body(req);
    let response = next.run(req).await;
    let status = response.status();
    let (mut parts, body) = response.into_parts();
    parts.headers.insert("x-request-id", request_id.parse().expect("ascii id"));
    if !body_read.load(Ordering::Acquire) {
        // hyper closes a connection whose request body was left unread, right after the reply.
        // Saying so in the reply keeps a client from sending its next request down that
        // connection while it closes (a 403 before an upload, a 404 with a body).
        parts.headers.insert(header::CONNECTION, "close".parse().expect("static"));
    }
    if status.is_success() || status.is_informational() {
        return Response::from_parts(parts, body);
    }
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !value.get("error").is_some_and(Value::is_object) {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal_error",
            _ => "invalid_request",
        };
        let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
        value = serde_json::json!({ "error": { "code": code, "message": message, "details": {} } });
    }
    value["error"]["request_id"] = Value::String(request_id);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, "application/json".parse().expect("static"));
    Response::from_parts(parts, axum::body::Body::from(value.to_string()))
}

/// The request with its body wrapped to note when it has been read to its end (at once for a
/// request without one).
fn track_body(req: Request) -> (Request, Arc<AtomicBool>) {
    let (parts, body) = req.into_parts();
    let read = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(&body)));
    let tracked = Tracked { inner: body, read: read.clone() };
    (Request::from_parts(parts, axum::body::Body::new(tracked)), read)
}

/// A request body that sets `read` once it has given its last frame.
struct Tracked {
    inner: axum::body::Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Run an engine call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&App) -> Result<T> + Send + 'static,
) -> ApiResult<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| ApiError::internal(format!("engine call panicked: {e}")))?
        .map_err(ApiError::from)
}

/// A JSON body, parsed whatever its `Content-Type` says; an empty body is `{}` so that the
/// SDK's body-less POSTs work. Syntax errors are 400 and type errors 422, naming where.
pub(crate) struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                if e.status() == 413 { "payload_too_large" } else { "invalid_request" },
                e.body_text(),
            )
        })?;
        parse(&bytes).map(Json)
    }
}

pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        let (status, code) = match e.classify() {
            serde_json::error::Category::Data => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            _ => (StatusCode::BAD_REQUEST, "invalid_json"),
        };
        ApiError::new(status, code, format!("request body: {e}"))
    })
}

/// A JSON reply with a status.
pub(crate) fn reply(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

pub(crate) fn ok(value: Value) -> ApiResult {
    Ok(reply(StatusCode::OK, value))
}

/// `http://HOST/api/v2` for links in replies.
pub(crate) fn base(headers: &HeaderMap) -> wire::Base {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    wire::Base(format!("http://{host}/api/v2"))
}
