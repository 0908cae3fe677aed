//! The error envelope the SDK parses: `{"error": {"code", "message", "details", "request_id"}}`,
//! with the HTTP status of each engine error kind.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::{Error, ErrorKind};

/// An error answered over HTTP. Every non-2xx reply of the server is one of these.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
    /// Seconds for `Retry-After` (429 only).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T = Response> = std::result::Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), details: json!({}), retry_after: None }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A request field that is missing, malformed or out of range (400).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("{field}: {message}"))
            .details(json!({ "field": field }))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, &format!("{kind}_not_found"), format!("{kind} not found: {id}"))
            .details(json!({ format!("{kind}_id"): id }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // The SDK raises `IdempotencyError` for a 422 whose code names idempotency.
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let (code, details) = match &e {
            Error::NotFound { kind, id, .. } => {
                (format!("{}_not_found", kind.replace(' ', "_")), json!({ "kind": kind, "id": id }))
            }
            Error::InvalidRequest { field, .. } => (e.code().to_string(), json!({ "field": field })),
            Error::InvalidSchema { pointer, .. } => (e.code().to_string(), json!({ "pointer": pointer })),
            Error::InvalidCondition { condition, field, .. } => {
                (e.code().to_string(), json!({ "condition": condition, "field": field }))
            }
            Error::IdempotencyConflict { key, .. } => (e.code().to_string(), json!({ "idempotency_key": key })),
            _ => (e.code().to_string(), json!({})),
        };
        ApiError { status, code, message: e.to_string(), details, retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}
