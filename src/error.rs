//! The one error type of the crate, grouped by failure domain, with kinds that map to the API's HTTP statuses.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in videovector.
///
/// Messages name the input (path, id or field) and, where there is one, the next step.
/// Dependency errors (FFmpeg, SQLite, image codecs) are turned into text here and never leak as types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is missing, out of range or contradicts another field (HTTP 400).
    #[error("invalid request: {field}: {message}")]
    InvalidRequest { field: String, message: String },

    /// An id or name that does not exist (HTTP 404).
    #[error("{kind} not found: {id}{hint}")]
    NotFound { kind: &'static str, id: String, hint: String },

    /// The write conflicts with something already stored (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),

    /// A file that cannot be read as media: empty, truncated, corrupt or not media at all (HTTP 422).
    #[error("cannot ingest {path}: {message}")]
    Media { path: PathBuf, message: String },

    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The catalog (SQLite) failed.
    #[error("catalog {path}: {message}")]
    Catalog { path: PathBuf, message: String },

    /// A model's files are not where they were looked for.
    #[error("model {model} is missing {}: {hint}", missing.join(", "))]
    ModelMissing { model: String, missing: Vec<String>, hint: String },

    /// A model named in the engine's options could not be loaded (the message says why); kept
    /// from the first attempt so that every later call reports the same cause.
    #[error("{0}")]
    ModelUnavailable(String),

    /// A model failed to load or run.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },

    /// Vectors of one space were made by another model than the one asked to search or add to it.
    #[error("model mismatch: {0}")]
    ModelMismatch(String),

    /// The work was stopped on request (cooperative cancellation).
    #[error("cancelled")]
    Cancelled,
}

/// The API status class of an error, for applications that expose the engine over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    TooLarge,
    Unprocessable,
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
            ErrorKind::Internal => 500,
        }
    }
}

impl Error {
    /// The API status class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest { .. } => ErrorKind::BadRequest,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Media { .. } => ErrorKind::Unprocessable,
            Error::ModelMissing { .. } | Error::ModelMismatch(_) | Error::ModelUnavailable(_) => ErrorKind::Conflict,
            Error::Io { .. } | Error::Catalog { .. } | Error::Model { .. } | Error::Cancelled => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest { field: field.into(), message: message.into() }
    }

    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into(), hint: String::new() }
    }

    pub(crate) fn media(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Media { path: path.into(), message: message.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
