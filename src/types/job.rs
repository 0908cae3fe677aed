//! Jobs: long work (an ingest today; prompt runs, exports and imports next) as persistent rows
//! with a status, progress, attempts and an error.

use serde::{Deserialize, Serialize};

use crate::ids::{IndexId, JobId, VideoId};

super::api_enum! {
    /// The status of a job, with the API's names.
    pub enum JobStatus ("status") {
        /// Waiting for a worker (new, or put back after a crash or a shutdown).
        Pending = "pending",
        /// A worker runs it.
        Processing = "processing",
        Completed = "completed",
        Failed = "failed",
        /// Stopped on request.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

super::api_enum! {
    /// What a job does.
    pub enum JobKind ("kind") {
        /// Ingest one media file: analyse, segment, extract, embed, transcribe.
        Ingest = "ingest",
        /// Run a prompt over its target's segments.
        PromptRun = "prompt_run",
        /// Run one segment of a prompt run again.
        SegmentRetry = "segment_retry",
        /// List a connector's files and import them into an index.
        Import = "import",
        /// Write an index or a run to a file or a connector.
        Export = "export",
    }
}

super::api_enum! {
    /// Where a running job is.
    pub enum JobStage ("stage") {
        Queued = "queued",
        Analysing = "analysing",
        Extracting = "extracting",
        Embedding = "embedding",
        Transcribing = "transcribing",
        /// A prompt run asks the language model about each segment.
        ExtractingFields = "extracting_fields",
        /// An import lists its connector's files.
        Scanning = "scanning",
        /// An import downloads and submits files.
        Importing = "importing",
        Exporting = "exporting",
        Done = "done",
    }
}

/// How far a job has come.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobProgress {
    pub stage: JobStage,
    /// Share of the current stage done, 0 to 1.
    pub fraction: f32,
}

impl JobProgress {
    pub fn new(stage: JobStage, fraction: f32) -> Self {
        JobProgress { stage, fraction: fraction.clamp(0.0, 1.0) }
    }
}

impl Default for JobProgress {
    fn default() -> Self {
        JobProgress::new(JobStage::Queued, 0.0)
    }
}

/// A job to create: what it does and the request it was started with, kept so that a job
/// interrupted by a crash runs again with the same options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobRequest {
    pub kind: JobKind,
    pub video_id: Option<VideoId>,
    pub index_id: Option<IndexId>,
    /// The request as JSON (its shape depends on `kind`).
    pub request_json: String,
}

/// A job (`job_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    pub job_id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The media item the job works on, if any.
    pub video_id: Option<VideoId>,
    pub index_id: Option<IndexId>,
    pub progress: JobProgress,
    /// How many times a worker started it (more than 1 after a crash or a shutdown).
    pub attempts: u32,
    pub error: Option<String>,
    /// A cancel was asked for while it ran; it stops at the next check.
    pub cancel_requested: bool,
    /// The request it was started with, as JSON.
    pub request: serde_json::Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
}
