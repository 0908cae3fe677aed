//! The one error type of the crate, grouped by failure domain, with kinds that map to the API's
//! HTTP statuses and stable machine-readable codes.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in videovector.
///
/// Messages name the input (path, id or field) and, where there is one, the next step.
/// Dependency errors (FFmpeg, SQLite, usearch, image codecs) are turned into text here and never
/// leak as types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is missing, out of range or contradicts another field (HTTP 400).
    #[error("invalid request: {field}: {message}")]
    InvalidRequest { field: String, message: String },

    /// A JSON Schema outside the supported subset, or not a schema at all (HTTP 422); `pointer`
    /// is the JSON pointer of the offending part (`/properties/mood/type`).
    #[error("invalid schema at {pointer:?}: {message}")]
    InvalidSchema { pointer: String, message: String },

    /// A filter condition that cannot be applied (HTTP 422): an operator not allowed for its
    /// type, a value of the wrong type, a path that is not a field of the runs' schemas.
    /// `condition` is its position in the request, from 0.
    #[error("invalid filter: conditions[{condition}] ({field}): {message}")]
    InvalidCondition { condition: usize, field: String, message: String },

    /// A SQL search query that is refused (HTTP 400): not one read-only SELECT over the
    /// documented tables, over its time, row or size limit, or not valid SQL. The message says
    /// what was refused.
    #[error("query refused: {0}")]
    QueryRefused(String),

    /// An id or name that does not exist (HTTP 404).
    #[error("{kind} not found: {id}{}", hint.as_ref().map(|h| format!(". {h}")).unwrap_or_default())]
    NotFound { kind: &'static str, id: String, hint: Option<String> },

    /// The write conflicts with something already stored (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),

    /// An idempotency key was reused with another request (HTTP 409, code `idempotency_conflict`).
    #[error("idempotency key {key:?}: {message}")]
    IdempotencyConflict { key: String, message: String },

    /// A file that cannot be read as media: empty, truncated, corrupt or not media at all (HTTP 422).
    #[error("cannot ingest {path}: {message}")]
    Media { path: PathBuf, message: String },

    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The store failed (the catalog database or a vector index); the message names which.
    #[error("store: {0}")]
    Store(String),

    /// A model's files are not where they were looked for (HTTP 503: the engine is not set up for this).
    #[error("model {model} is missing {}: {hint}", missing.join(", "))]
    ModelMissing { model: String, missing: Vec<String>, hint: String },

    /// A model named in the engine's options could not be loaded (the message says why and
    /// names the file).
    #[error("{0}")]
    ModelUnavailable(String),

    /// A model failed to load or run.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },

    /// Vectors of one space were made by another model than the one asked to search or add to it.
    #[error("model mismatch: {0}")]
    ModelMismatch(String),

    /// A connector's storage (a folder, S3, Azure Blob, GCS) or a webhook's receiver failed or
    /// refused; `target` names the connector or URL (HTTP 502).
    #[error("{target}: {message}")]
    Remote { target: String, message: String },

    /// The work was stopped on request (cooperative cancellation) or by a shutdown.
    #[error("cancelled")]
    Cancelled,

    /// A bug: an invariant of the engine did not hold. The message says which.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The API status class of an error, for applications that expose the engine over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    TooLarge,
    Unprocessable,
    Unavailable,
    BadGateway,
    Internal,
}

impl ErrorKind {
    /// The HTTP status code the hosted API answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::Unprocessable => 422,
            ErrorKind::Unavailable => 503,
            ErrorKind::BadGateway => 502,
            ErrorKind::Internal => 500,
        }
    }
}

impl Error {
    /// The API status class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest { .. } | Error::QueryRefused(_) => ErrorKind::BadRequest,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) | Error::IdempotencyConflict { .. } | Error::ModelMismatch(_) | Error::Cancelled => {
                ErrorKind::Conflict
            }
            Error::Media { .. } | Error::InvalidSchema { .. } | Error::InvalidCondition { .. } => {
                ErrorKind::Unprocessable
            }
            Error::ModelMissing { .. } | Error::ModelUnavailable(_) => ErrorKind::Unavailable,
            Error::Remote { .. } => ErrorKind::BadGateway,
            Error::Io { .. } | Error::Store(_) | Error::Model { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A stable, machine-readable code for this error (the API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::InvalidSchema { .. } => "invalid_schema",
            Error::InvalidCondition { .. } => "invalid_condition",
            Error::QueryRefused(_) => "query_refused",
            Error::NotFound { .. } => "not_found",
            Error::Conflict(_) => "conflict",
            Error::IdempotencyConflict { .. } => "idempotency_conflict",
            Error::Media { .. } => "unreadable_media",
            Error::Io { .. } => "io_error",
            Error::Store(_) => "store_error",
            Error::ModelMissing { .. } => "model_missing",
            Error::ModelUnavailable(_) => "model_unavailable",
            Error::Model { .. } => "model_error",
            Error::ModelMismatch(_) => "model_mismatch",
            Error::Remote { .. } => "remote_error",
            Error::Cancelled => "cancelled",
            Error::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest { field: field.into(), message: message.into() }
    }

    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into(), hint: None }
    }

    pub(crate) fn media(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Media { path: path.into(), message: message.into() }
    }

    pub(crate) fn remote(target: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Remote { target: target.into(), message: message.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Whether this error means the store itself is broken (as opposed to the input): work that
    /// meets one stops instead of recording a failure it may not be able to write.
    pub(crate) fn is_store_failure(&self) -> bool {
        matches!(self, Error::Store(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes_are_stable() {
        let check = |e: Error, status: u16, code: &str| {
            assert_eq!((e.kind().http_status(), e.code()), (status, code), "{e}");
        };
        check(Error::invalid("top_k", "x"), 400, "invalid_request");
        check(Error::not_found("video", "vid_1"), 404, "not_found");
        check(
            Error::InvalidCondition { condition: 1, field: "a".into(), message: "x".into() },
            422,
            "invalid_condition",
        );
        check(Error::QueryRefused("x".into()), 400, "query_refused");
        check(Error::Conflict("x".into()), 409, "conflict");
        check(Error::IdempotencyConflict { key: "k".into(), message: "x".into() }, 409, "idempotency_conflict");
        check(Error::media("a.mp4", "x"), 422, "unreadable_media");
        check(Error::Store("x".into()), 500, "store_error");
        check(Error::ModelMissing { model: "m".into(), missing: vec![], hint: "h".into() }, 503, "model_missing");
        check(Error::Cancelled, 409, "cancelled");
        check(Error::Internal("x".into()), 500, "internal_error");
        let hinted = Error::NotFound { kind: "index", id: "news".into(), hint: Some("Create it".into()) };
        assert_eq!(hinted.to_string(), "index not found: news. Create it");
    }
}
