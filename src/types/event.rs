//! The event log: every state change of media and jobs, in order, readable from any id on.

use serde::{Deserialize, Serialize};

use crate::ids::{IndexId, JobId, SegmentId, VideoId};

super::api_enum! {
    /// What happened, with the API's event names where the API has one.
    pub enum EventType ("event_type") {
        MediaCreated = "media.created",
        MediaProcessingStarted = "media.processing.started",
        MediaProcessingCompleted = "media.processing.completed",
        MediaProcessingFailed = "media.processing.failed",
        MediaDeleted = "media.deleted",
        JobCreated = "job.created",
        JobStarted = "job.started",
        JobCompleted = "job.completed",
        JobFailed = "job.failed",
        JobCancelled = "job.cancelled",
        /// Put back to `pending` after a crash or a shutdown.
        JobRequeued = "job.requeued",
        PromptCreated = "prompt.created",
        PromptUpdated = "prompt.updated",
        PromptDeleted = "prompt.deleted",
        PromptRunCreated = "prompt_run.created",
        PromptRunProcessing = "prompt_run.processing",
        PromptRunCompleted = "prompt_run.completed",
        PromptRunFailed = "prompt_run.failed",
        PromptRunCancelled = "prompt_run.cancelled",
        ImportJobStarted = "import_job.started",
        ImportJobProgress = "import_job.progress",
        ImportJobCompleted = "import_job.completed",
        /// Completed with some files failed.
        ImportJobPartialCompleted = "import_job.partial_completed",
        ImportJobFailed = "import_job.failed",
        ExportReady = "export.ready",
        ExportFailed = "export.failed",
    }
}

/// One event (`event_id` increases monotonically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    pub event_id: u64,
    pub event_type: EventType,
    pub video_id: Option<VideoId>,
    pub index_id: Option<IndexId>,
    pub job_id: Option<JobId>,
    pub segment_id: Option<SegmentId>,
    pub run_id: Option<String>,
    pub created_at: String,
    /// Details of the change (for example the error of a failure).
    pub payload: serde_json::Value,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub video_id: Option<VideoId>,
    pub index_id: Option<IndexId>,
    pub job_id: Option<JobId>,
    pub run_id: Option<String>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    pub(crate) fn new(event_type: EventType) -> Self {
        NewEvent {
            event_type,
            video_id: None,
            index_id: None,
            job_id: None,
            run_id: None,
            payload: serde_json::Value::Null,
        }
    }

    pub(crate) fn run(mut self, id: &str) -> Self {
        self.run_id = Some(id.to_string());
        self
    }

    pub(crate) fn video(mut self, id: &VideoId, index: Option<&IndexId>) -> Self {
        self.video_id = Some(id.clone());
        self.index_id = index.cloned();
        self
    }

    pub(crate) fn job(mut self, id: &JobId) -> Self {
        self.job_id = Some(id.clone());
        self
    }

    pub(crate) fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
}
