//! Prompts and prompt runs: a JSON Schema per segment (plus an optional media-wide synthesis),
//! and its execution over an index, a list of media or the playground, with per-segment results,
//! media-wide results, retries and the log of every language-model call.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{IndexId, JobId, LlmCallId, PromptId, RetryId, RunId, SegmentId, VideoId};
use crate::types::{AudioSegmentation, VideoSegmentation};

/// The media-wide synthesis of a prompt: one more call per media item over the segment results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VideoLevel {
    pub instructions_text: String,
    pub json_schema: Value,
    /// Segment fields given to the synthesis (`scene.location`; `transcription` names the
    /// transcript). Default: every field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_segment_fields: Option<Vec<String>>,
    /// Keys callers add that the engine does not use; kept as given.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl VideoLevel {
    pub fn new(instructions_text: impl Into<String>, json_schema: Value) -> Self {
        VideoLevel {
            instructions_text: instructions_text.into(),
            json_schema,
            included_segment_fields: None,
            extra: Default::default(),
        }
    }
}

/// Which extracted fields are left out of `metadata_text` (and so of the metadata space).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SemanticIndexing {
    #[serde(default)]
    pub disabled_segment_fields: Vec<String>,
    #[serde(default)]
    pub disabled_video_level_fields: Vec<String>,
}

/// A prompt (`prompt_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Prompt {
    pub prompt_id: PromptId,
    pub user_id: String,
    pub name: String,
    pub description: String,
    pub prompt_text: String,
    pub json_schema: Value,
    pub video_level: Option<VideoLevel>,
    pub semantic_indexing: SemanticIndexing,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A prompt to create. `NewPrompt::new(name, prompt_text, json_schema)` and the builder methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewPrompt {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub prompt_text: String,
    pub json_schema: Value,
    #[serde(default)]
    pub video_level: Option<VideoLevel>,
    #[serde(default)]
    pub semantic_indexing: Option<SemanticIndexing>,
}

impl NewPrompt {
    pub fn new(name: impl Into<String>, prompt_text: impl Into<String>, json_schema: Value) -> Self {
        NewPrompt {
            name: name.into(),
            description: String::new(),
            prompt_text: prompt_text.into(),
            json_schema,
            video_level: None,
            semantic_indexing: None,
        }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    pub fn video_level(mut self, v: VideoLevel) -> Self {
        self.video_level = Some(v);
        self
    }

    pub fn semantic_indexing(mut self, s: SemanticIndexing) -> Self {
        self.semantic_indexing = Some(s);
        self
    }
}

/// A partial update: only the fields given change; `clear_video_level` removes the synthesis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub prompt_text: Option<String>,
    #[serde(default)]
    pub json_schema: Option<Value>,
    #[serde(default)]
    pub video_level: Option<VideoLevel>,
    #[serde(default)]
    pub semantic_indexing: Option<SemanticIndexing>,
    #[serde(default)]
    pub clear_video_level: bool,
}

/// Whether a prompt is used by runs, and so whether deleting it loses history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptUsage {
    pub prompt_id: PromptId,
    pub name: String,
    pub is_active: bool,
    /// Some run used it (deleting needs `force`).
    pub is_in_use: bool,
    pub run_count: u64,
    /// Runs not yet finished.
    pub active_run_count: u64,
    pub created_at: String,
    pub schema_properties_count: u64,
}

/// The outcome of checking sample data against a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchemaCheck {
    pub valid: bool,
    pub validated_data: Option<Value>,
    /// The first violation, as `"<path>: <message>"`.
    pub error: Option<String>,
    pub message: String,
    /// Every violation: the JSON pointer into the data and what is wrong there.
    pub errors: Vec<SchemaViolation>,
}

/// One way sample data breaks a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchemaViolation {
    /// JSON pointer into the data (`/scene/people/0/name`; empty for the root).
    pub path: String,
    /// JSON pointer into the schema of the rule broken.
    pub schema_path: String,
    pub message: String,
}

/// What a prompt run covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunTarget {
    /// Every processed media item of an index.
    Index { index_id: String },
    /// These media items.
    Videos {
        video_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index_id: Option<String>,
    },
    /// Every processed media item of the playground.
    Playground,
}

fn yes() -> bool {
    true
}

/// The request of `execute` and `estimate`, with the API's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunRequest {
    pub prompt_id: String,
    pub target: RunTarget,
    #[serde(default)]
    pub video_segmentation_type: VideoSegmentation,
    #[serde(default)]
    pub audio_segmentation_type: AudioSegmentation,
    #[serde(default)]
    pub video_segment_duration: Option<u32>,
    #[serde(default)]
    pub audio_segment_duration: Option<u32>,
    /// A GGUF path, a model id, or a hosted name (which runs the default model).
    #[serde(default)]
    pub processing_model: Option<String>,
    #[serde(default = "yes")]
    pub enable_transcription: bool,
    #[serde(default = "yes")]
    pub enable_image_embedding: bool,
}

impl RunRequest {
    pub fn new(prompt_id: impl Into<String>, target: RunTarget) -> Self {
        RunRequest {
            prompt_id: prompt_id.into(),
            target,
            video_segmentation_type: VideoSegmentation::default(),
            audio_segmentation_type: AudioSegmentation::default(),
            video_segment_duration: None,
            audio_segment_duration: None,
            processing_model: None,
            enable_transcription: true,
            enable_image_embedding: true,
        }
    }

    pub fn processing_model(mut self, model: impl Into<String>) -> Self {
        self.processing_model = Some(model.into());
        self
    }
}

super::api_enum! {
    /// The status of a prompt run, with the API's names.
    pub enum RunStatus ("status") {
        Pending = "pending",
        Processing = "processing",
        Completed = "completed",
        /// Finished, and some segments failed (their errors are in the failed-segment manifest).
        CompletedWithFailures = "completed_with_failures",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Processing)
    }
}

/// A prompt run (`run_...`): its request, the prompt as it was when the run started, and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptRun {
    pub run_id: RunId,
    pub prompt_id: PromptId,
    pub prompt_name: String,
    pub status: RunStatus,
    pub request: RunRequest,
    /// The prompt as it was when the run was created (later edits do not change a run).
    pub prompt: Prompt,
    pub index_id: Option<IndexId>,
    /// The model that runs it (the resolved `processing_model`).
    pub model: String,
    pub job_id: Option<JobId>,
    pub total_videos: u64,
    pub completed_videos: u64,
    pub failed_videos: u64,
    pub total_segments: u64,
    pub completed_segments: u64,
    pub failed_segments: u64,
    pub video_level_total_items: u64,
    pub video_level_completed_items: u64,
    pub video_level_failed_items: u64,
    pub total_video_seconds: f64,
    pub error_message: Option<String>,
    pub cancel_requested_at: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub updated_at: String,
}

impl PromptRun {
    /// A new run, `pending`, with the prompt copied in and nothing counted yet; `now` is its
    /// creation time.
    pub(crate) fn pending(
        request: RunRequest,
        prompt: Prompt,
        index_id: Option<IndexId>,
        model: String,
        total_videos: u64,
        now: String,
    ) -> Self {
        PromptRun {
            run_id: RunId::generate(),
            prompt_id: prompt.prompt_id.clone(),
            prompt_name: prompt.name.clone(),
            status: RunStatus::Pending,
            request,
            prompt,
            index_id,
            model,
            job_id: None,
            total_videos,
            completed_videos: 0,
            failed_videos: 0,
            total_segments: 0,
            completed_segments: 0,
            failed_segments: 0,
            video_level_total_items: 0,
            video_level_completed_items: 0,
            video_level_failed_items: 0,
            total_video_seconds: 0.0,
            error_message: None,
            cancel_requested_at: None,
            created_at: now.clone(),
            started_at: None,
            completed_at: None,
            updated_at: now,
        }
    }
}

/// The extraction for one segment in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SegmentResult {
    pub run_id: RunId,
    pub prompt_id: PromptId,
    pub segment_id: SegmentId,
    pub video_id: VideoId,
    pub video_name: String,
    pub start_time: f64,
    pub end_time: f64,
    /// Valid for the run's schema; `{}` when extraction failed.
    pub metadata: Value,
    /// One `path: value` line per leaf, disabled fields left out.
    pub metadata_text: String,
    pub field_extraction_succeeded: bool,
    pub field_extraction_error: Option<String>,
    pub attempts: u32,
    pub executed_at: String,
}

/// The media-wide synthesis for one media item in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VideoResult {
    pub run_id: RunId,
    pub prompt_id: PromptId,
    pub video_id: VideoId,
    pub video_name: String,
    /// `completed`, `failed` or `skipped` (the prompt has no video level).
    pub status: String,
    pub metadata: Value,
    pub metadata_text: String,
    pub raw_llm_response: Option<String>,
    pub error_message: Option<String>,
    pub successful_segment_count: u64,
    pub failed_segment_count: u64,
    pub executed_at: String,
}

/// A failed segment of a run, for the failed-segment manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailedSegment {
    pub video_id: VideoId,
    pub segment_id: SegmentId,
    pub start_time: f64,
    pub end_time: f64,
    /// `field_extraction` (the model's output) or `processing` (anything else).
    pub failed_operation: String,
    pub error: String,
    pub attempts: u32,
    /// Whether a retry can succeed (false for a segment whose media is gone).
    pub retryable: bool,
}

/// A retry of one segment (`retry_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SegmentRetry {
    pub retry_id: RetryId,
    pub run_id: RunId,
    pub video_id: VideoId,
    pub segment_id: SegmentId,
    /// `pending`, `processing`, `completed` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// One call to the language model, kept for debugging: what went in and what came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LlmCall {
    pub llm_call_id: LlmCallId,
    pub run_id: Option<RunId>,
    pub prompt_id: Option<PromptId>,
    pub video_id: Option<VideoId>,
    pub segment_id: Option<SegmentId>,
    pub model: String,
    /// `segment_extraction`, `video_level` or `prompt_generation`.
    pub purpose: String,
    /// `completed` or `failed`.
    pub status: String,
    pub input_tokens: u64,
    /// Input tokens whose attention state was reused from the previous call (a shared prefix).
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub prefill_ms: u64,
    pub duration_ms: u64,
    pub video_seconds: f64,
    pub segment_start_time: Option<f64>,
    pub segment_end_time: Option<f64>,
    /// The whole prompt as the model read it (chat template included).
    pub prompt_text: String,
    pub response_text: Option<String>,
    pub schema_used: Option<String>,
    pub error_message: Option<String>,
    pub invoked_at: String,
    pub completed_at: Option<String>,
}

/// What a run would do, computed without running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunEstimate {
    pub videos: u64,
    pub segments: u64,
    /// Segment calls plus media-wide calls.
    pub model_calls: u64,
    /// Exact: the prompts are rendered and tokenized as the run will.
    pub input_tokens: u64,
    /// Of those, the tokens the model reads (the rest is a prefix shared with the previous call).
    pub tokens_to_read: u64,
    /// Predicted from this machine's measured throughput for the model.
    pub output_tokens: u64,
    pub seconds: f64,
    /// Where the throughput figures came from (`measured from N earlier calls` or `calibrated now`).
    pub throughput_source: String,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub model: String,
}
