//! Storage: what the engine needs kept, as traits (catalog reads and writes, vectors with ANN
//! search, jobs, the event log, blobs), and the embedded backend that implements them (SQLite +
//! usearch + files in one data folder).
//!
//! Above these traits nothing assumes SQLite: no rowids (cursors are opaque strings), no PRAGMA,
//! no FTS5 (keyword scores are "higher is better"), no ANN files (a server database keeps its
//! vector index inside). The records are `crate::types`; this module imports nothing from
//! `media`, `segment`, `ml` or `pipeline`.

mod blobs;
#[cfg(test)]
mod conformance;
pub(crate) mod sqlite;

use std::collections::HashSet;
use std::sync::Arc;

pub(crate) use blobs::{BlobKey, BlobStore, LocalBlobs};
pub(crate) use sqlite::SqliteStore;

use crate::error::Result;
use crate::ids::{IndexId, JobId, RetryId, RunId, SegmentId, VideoId};
use crate::types::filter::Filter;
use crate::types::sql::{SqlCatalog, SqlResult};
use crate::types::{
    Event, FailedSegment, Index, Job, JobProgress, JobRequest, JobStatus, LlmCall, Media, MediaInfo, ModelRef,
    NewEvent, NewPrompt, Page, PageRequest, Phrase, Prompt, PromptRun, PromptUpdate, PromptUsage, RunStatus, Scope,
    Segment, SegmentKind, SegmentResult, SegmentRetry, Space, VideoResult,
};

/// Which media a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaFilter<'a> {
    All,
    Scope(&'a Scope),
}

/// A media row to insert before processing starts (status `pending`).
#[derive(Debug, Clone)]
pub(crate) struct NewMedia<'a> {
    pub scope: &'a Scope,
    pub title: &'a str,
    pub source_path: &'a str,
    pub content_hash: &'a str,
    pub size_bytes: u64,
    pub idempotency_key: Option<&'a str>,
    /// The ingest request, as JSON, kept so that a resume uses the caller's options.
    pub request_json: &'a str,
}

/// What a finished ingest stores in one transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completed<'a> {
    pub info: &'a MediaInfo,
    pub duration_us: i64,
    /// The segmentation settings used, as JSON.
    pub segmentation_json: &'a str,
    pub gif_path: Option<&'a str>,
    /// Problems that did not stop the ingest (for example packets that failed to decode).
    pub warnings: &'a [String],
    pub segments: &'a [NewSegment],
}

/// A segment as the pipeline made it, with its id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewSegment {
    pub segment_id: SegmentId,
    pub kind: SegmentKind,
    pub start_us: i64,
    pub end_us: i64,
    pub segmentation_type: String,
    pub keyframe_us: Option<i64>,
    pub keyframe_frame: Option<u64>,
    pub thumbnail_path: Option<String>,
}

/// A phrase to store, in microseconds from the start of the media.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewPhrase {
    /// The audio segment it was heard in.
    pub window_segment_id: Option<SegmentId>,
    pub start_us: i64,
    pub end_us: i64,
    pub text: String,
    pub language: Option<String>,
}

/// A keyword hit: a phrase and its relevance (higher is better; the backend's own scale).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeywordHit {
    pub video_id: VideoId,
    pub start_us: i64,
    pub end_us: i64,
    pub text: String,
    pub score: f64,
}

/// A segment whose keyframe has no vector yet in a space.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingThumbnail {
    pub scope: Scope,
    pub segment_id: SegmentId,
    pub thumbnail: String,
}

/// A vector to store for a segment.
#[derive(Debug, Clone)]
pub(crate) struct NewVector<'a> {
    pub segment_id: &'a SegmentId,
    pub vector: &'a [f32],
    /// The text that was embedded (transcript and metadata spaces).
    pub source_text: Option<&'a str>,
}

/// A stored vector with what made it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredVector {
    pub segment_id: SegmentId,
    pub space: Space,
    pub model: ModelRef,
    pub vector: Vec<f32>,
}

/// A search candidate with what a result needs: its segment and its stored vector (for exact
/// re-scoring).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorHit {
    pub segment_id: SegmentId,
    pub video_id: VideoId,
    pub run_id: Option<String>,
    pub start_us: i64,
    pub end_us: i64,
    pub thumbnail_path: Option<String>,
    pub vector: Vec<f32>,
    pub source_text: Option<String>,
}

/// Which run results a filter reads: the successful results of these runs, on media of these
/// scopes, that satisfy every condition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultFilter<'a> {
    pub scopes: &'a [Scope],
    pub run_ids: &'a [String],
    pub filter: &'a Filter,
}

/// Which segments a vector search may return: a pre-filter, applied inside the ANN search so
/// that `k` results come back even when most vectors are filtered out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Candidates<'a> {
    All,
    Segments(&'a HashSet<SegmentId>),
    /// Segments with a result that passes the filter.
    Results(&'a ResultFilter<'a>),
}

/// Reads of the catalog: indexes, media, segments, transcripts.
pub(crate) trait CatalogRead: Send + Sync {
    /// By id (`idx_...`) or name.
    fn index(&self, id_or_name: &str) -> Result<Index>;
    fn indexes(&self) -> Result<Vec<Index>>;
    fn media(&self, video_id: &str) -> Result<Media>;
    fn media_by_content(&self, scope: &Scope, content_hash: &str) -> Result<Option<Media>>;
    fn media_by_idempotency_key(&self, key: &str) -> Result<Option<Media>>;
    /// The ingest request stored with a media item (`None` for media ingested before requests were kept).
    fn media_request(&self, video_id: &str) -> Result<Option<String>>;
    /// Media in ingest order.
    fn list_media(&self, filter: MediaFilter<'_>, page: &PageRequest) -> Result<Page<Media>>;
    /// Media left `pending` or `processing`.
    fn unfinished_media(&self) -> Result<Vec<Media>>;
    /// Segments of one kind of a media item's ingest segmentation, in timeline order.
    /// Segments of one kind: the ingest segmentation (`run_id` `None`) or a run's own.
    fn segments(
        &self,
        video_id: &str,
        kind: SegmentKind,
        run_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Segment>>;
    /// The newest run that made segments of its own for this media item.
    fn latest_segment_run(&self, video_id: &str) -> Result<Option<String>>;
    fn segment(&self, segment_id: &str) -> Result<Segment>;
    /// The transcript of a media item in time order.
    fn phrases(&self, video_id: &str) -> Result<Vec<Phrase>>;
    /// Phrases of media in `scope` holding every word of `query`, best first. Words are words:
    /// nothing in `query` is query syntax.
    fn keyword_phrases(&self, scope: &Scope, query: &str, limit: usize) -> Result<Vec<KeywordHit>>;
    /// Segments of completed media (of one scope, or all) with a thumbnail and no vector in `space`.
    fn thumbnails_without_vector(&self, scope: Option<&Scope>, space: Space) -> Result<Vec<PendingThumbnail>>;
    /// The backend's own consistency check.
    fn check(&self) -> Result<()>;
}

/// Writes of the catalog. Each method is atomic, and each state change of a media item appends
/// its event in the same transaction.
pub(crate) trait CatalogWrite: CatalogRead {
    /// A name in use is a conflict unless the same idempotency key created it.
    fn create_index(&self, name: &str, idempotency_key: Option<&str>) -> Result<Index>;
    /// Delete an index with its media and segments; returns the media removed.
    fn delete_index(&self, index_id: &IndexId) -> Result<Vec<VideoId>>;
    /// Insert a media row in `pending` state (`media.created`).
    fn insert_media(&self, new: &NewMedia<'_>) -> Result<Media>;
    /// Mark a media item `processing` from `source_path`, dropping any earlier segmentation
    /// (`media.processing.started`).
    fn start_media(&self, video_id: &str, source_path: &str) -> Result<()>;
    /// Store the segments and mark the media `completed`, atomically (`media.processing.completed`).
    fn complete_media(&self, video_id: &str, done: &Completed<'_>) -> Result<()>;
    /// Record why a media item failed; its segments are dropped (`media.processing.failed`).
    fn fail_media(&self, video_id: &str, error: &str) -> Result<()>;
    /// Put a media item back to `pending` (a shutdown stopped it), dropping its segments.
    fn reset_media(&self, video_id: &str) -> Result<()>;
    /// Delete a media item and its segments and transcript (`media.deleted`).
    fn delete_media(&self, video_id: &str) -> Result<()>;
    /// Add problems found after completion (a keyframe that could not be embedded, say).
    fn add_media_warnings(&self, video_id: &str, warnings: &[String]) -> Result<()>;
    /// Replace the transcript of a media item.
    fn set_phrases(&self, video_id: &str, model: &ModelRef, phrases: &[NewPhrase]) -> Result<()>;
    /// Store a run's own segmentation of a media item (tiling like the ingest one), in one transaction.
    fn add_run_segments(&self, video_id: &str, run_id: &str, segments: &[NewSegment]) -> Result<()>;
}

/// Vectors per (scope, space) with approximate nearest-neighbour search. The rows are the truth;
/// any index over them is kept in step, including with writes made by other processes.
pub(crate) trait VectorStore: Send + Sync {
    /// The model a scope's space was embedded with, if it holds vectors.
    fn space_model(&self, scope: &Scope, space: Space) -> Result<Option<ModelRef>>;
    /// Store (or replace) vectors of segments. Refused (`ModelMismatch`) when the space holds
    /// vectors of another model.
    fn upsert(&self, scope: &Scope, space: Space, model: &ModelRef, rows: &[NewVector<'_>]) -> Result<()>;
    /// Remove every vector of a media item's segments (before the media is deleted).
    fn remove_media(&self, video_id: &VideoId) -> Result<()>;
    /// Remove every vector of a scope's space (to re-embed it with another model).
    fn drop_space(&self, scope: &Scope, space: Space) -> Result<()>;
    /// The `k` nearest candidates to a unit `query`, best first, among `candidates`.
    fn search(
        &self,
        scope: &Scope,
        space: Space,
        query: &[f32],
        k: usize,
        candidates: Candidates<'_>,
    ) -> Result<Vec<VectorHit>>;
    /// Vectors of one media item, by space, then in timeline order.
    fn media_vectors(&self, video_id: &str) -> Result<Vec<StoredVector>>;
    /// Scopes that hold vectors in `space`.
    fn scopes_with_vectors(&self, space: Space) -> Result<Vec<Scope>>;
    /// Persist whatever index state is only in memory (a crash before it costs a rebuild).
    fn flush(&self) -> Result<()>;
}

/// Job rows: created, claimed by a worker (with a lease the worker renews), finished.
pub(crate) trait JobStore: Send + Sync {
    /// A new `pending` job (`job.created`).
    fn create_job(&self, request: &JobRequest) -> Result<Job>;
    fn job(&self, job_id: &str) -> Result<Job>;
    /// Jobs in creation order, optionally of one status.
    fn list_jobs(&self, status: Option<JobStatus>, page: &PageRequest) -> Result<Page<Job>>;
    /// The `pending` or `processing` job of a media item, if any.
    fn active_job_for_media(&self, video_id: &str) -> Result<Option<Job>>;
    /// Take the oldest `pending` job for `owner` (`processing`, attempts + 1, `job.started`).
    fn claim_job(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>>;
    /// Record progress and renew the lease; returns whether a cancel was asked for.
    fn heartbeat(&self, job_id: &JobId, owner: &str, progress: &JobProgress, lease_ms: i64) -> Result<bool>;
    /// Record the outcome of a job this owner holds (`job.completed`, `job.failed`, `job.cancelled`).
    fn finish_job(&self, job_id: &JobId, owner: &str, status: JobStatus, error: Option<&str>) -> Result<()>;
    /// Give a job back (`pending`) because its worker is shutting down (`job.requeued`).
    fn release_job(&self, job_id: &JobId, owner: &str) -> Result<()>;
    /// Cancel: a `pending` job becomes `cancelled` at once; a `processing` one is flagged and
    /// its worker stops it at its next check.
    fn cancel_job(&self, job_id: &str) -> Result<Job>;
    /// Put back to `pending` every `processing` job whose owner is gone: its lease ran out, or
    /// `is_dead(owner)` says so (`job.requeued`).
    fn requeue_orphans(&self, is_dead: &dyn Fn(&str) -> bool) -> Result<Vec<JobId>>;
}

/// The append-only event log.
pub(crate) trait EventLog: Send + Sync {
    /// Append an event of its own (state changes of media and jobs append theirs inside their
    /// own transactions): imports and exports.
    fn append(&self, event: &NewEvent) -> Result<u64>;
    /// Events with `event_id > after`, oldest first, at most `limit`.
    fn events_since(&self, after: u64, limit: usize) -> Result<Vec<Event>>;
    /// The id of the newest event (0 when there is none).
    fn last_event_id(&self) -> Result<u64>;
}

/// Everything an engine stores, behind the traits. Cheap to clone.
/// A prompt run to create, with the media it covers (fixed when the run is created) and the
/// job that will run it.
#[derive(Debug, Clone)]
pub(crate) struct NewRun<'a> {
    pub run: &'a PromptRun,
    pub videos: &'a [VideoId],
    /// `(key, hash of the request)`: the same key with another request is a conflict.
    pub idempotency: Option<(&'a str, &'a str)>,
}

/// Measured speed of a model, from the calls logged for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Throughput {
    pub calls: u64,
    /// Tokens read (not taken from the cache) per second of prompt reading.
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub mean_output_tokens: f64,
}

/// Prompts, prompt runs and what they produce: segment and media-wide results, retries and the
/// language-model call log. Run counts (completed, failed) are derived from the stored results,
/// so they cannot drift from them.
pub(crate) trait PromptStore: Send + Sync {
    /// Create a prompt; with an idempotency key, the same key and request give back the prompt
    /// made the first time, and another request is [`crate::Error::IdempotencyConflict`].
    fn create_prompt(&self, new: &NewPrompt, idempotency: Option<(&str, &str)>) -> Result<Prompt>;
    fn prompt(&self, prompt_id: &str) -> Result<Prompt>;
    fn list_prompts(&self, active_only: bool) -> Result<Vec<Prompt>>;
    /// Apply a partial update. With an idempotency key, a repeat of the same request changes
    /// nothing more and gives the prompt back; the key with another request is a conflict.
    fn update_prompt(
        &self,
        prompt_id: &str,
        update: &PromptUpdate,
        idempotency: Option<(&str, &str)>,
    ) -> Result<Prompt>;
    /// Delete a prompt no run used; one that runs used is deactivated with `force` (its runs keep
    /// their copy), and refused without it.
    fn delete_prompt(&self, prompt_id: &str, force: bool) -> Result<()>;
    fn prompt_usage(&self, prompt_id: &str) -> Result<PromptUsage>;

    /// Create a run, its media list and its job in one transaction. Returns the run and whether it
    /// is new (false: an idempotent repeat).
    fn create_run(&self, new: &NewRun<'_>, job: &JobRequest) -> Result<(PromptRun, bool)>;
    fn run(&self, run_id: &str) -> Result<PromptRun>;
    /// Newest first.
    fn list_runs(&self, limit: usize) -> Result<Vec<PromptRun>>;
    fn run_videos(&self, run_id: &str) -> Result<Vec<VideoId>>;
    fn set_run_totals(&self, run_id: &RunId, total_segments: u64, total_video_seconds: f64) -> Result<()>;
    fn set_run_status(&self, run_id: &RunId, status: RunStatus, error: Option<&str>) -> Result<PromptRun>;
    fn request_run_cancel(&self, run_id: &str) -> Result<PromptRun>;
    /// Record a segment's outcome (replacing an earlier one and counting the attempt).
    fn save_segment_result(&self, result: &SegmentResult) -> Result<()>;
    fn segment_result(&self, run_id: &str, segment_id: &str) -> Result<Option<SegmentResult>>;
    fn segment_results(&self, run_id: &str, video_id: &str, page: &PageRequest) -> Result<Page<SegmentResult>>;
    /// Segments of a media item that already have a successful result in this run.
    fn done_segments(&self, run_id: &str, video_id: &str) -> Result<HashSet<SegmentId>>;
    fn save_video_result(&self, result: &VideoResult) -> Result<()>;
    fn video_result(&self, run_id: &str, video_id: &str) -> Result<Option<VideoResult>>;
    fn failed_segments(&self, run_id: &str) -> Result<Vec<FailedSegment>>;
    /// Runs that cover media of these scopes, newest first.
    fn runs_in_scopes(&self, scopes: &[Scope]) -> Result<Vec<RunOutline>>;
    /// A run's identity and schema, without the counts [`PromptStore::run`] derives (cheap).
    fn run_outline(&self, run_id: &str) -> Result<RunOutline>;
    /// Results that pass a filter, in the order they were stored; the cursor is opaque.
    fn filter_results(&self, filter: &ResultFilter<'_>, page: &PageRequest) -> Result<Page<SegmentResult>>;
    /// The segments a run touched: those with a result, and those it made of its own.
    fn run_segment_ids(&self, run_id: &str) -> Result<HashSet<SegmentId>>;
    fn log_llm_call(&self, call: &LlmCall) -> Result<()>;
    fn llm_calls(&self, run_id: &str) -> Result<Vec<LlmCall>>;
    /// Speed of `model` over its successful logged calls (`None` before the first).
    fn throughput(&self, model: &str) -> Result<Option<Throughput>>;
    fn create_retry(&self, retry: &SegmentRetry, job: &JobRequest) -> Result<(SegmentRetry, bool)>;
    fn retry(&self, retry_id: &str) -> Result<SegmentRetry>;
    fn set_retry_status(&self, retry_id: &RetryId, status: &str, error: Option<&str>) -> Result<()>;
}

/// What searches over results need of a run: its identity and its prompt's schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunOutline {
    pub run_id: RunId,
    pub prompt_id: crate::ids::PromptId,
    pub prompt_name: String,
    pub index_id: Option<IndexId>,
    pub created_at: String,
    pub json_schema: serde_json::Value,
}

/// What a SQL search covers: media of these scopes, and these runs' results.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqlScope<'a> {
    pub scopes: &'a [Scope],
    pub runs: &'a [RunOutline],
}

/// SQL search over views of one scope, in the backend's own dialect. Strictly read-only and
/// bounded: whatever the query, nothing is written and nothing outside the scope is read; each
/// refusal is [`crate::Error::QueryRefused`] and says what was refused.
pub(crate) trait SqlStore: Send + Sync {
    /// The tables a query may read, the default query and the limits.
    fn sql_catalog(&self, scope: &SqlScope<'_>) -> Result<SqlCatalog>;
    /// Prepare a query without running it (to check a draft).
    fn sql_check(&self, scope: &SqlScope<'_>, query: &str) -> Result<()>;
    /// Run a query, returning at most `limit` rows.
    fn sql_execute(&self, scope: &SqlScope<'_>, query: &str, limit: usize) -> Result<SqlResult>;
}

#[derive(Clone)]
pub(crate) struct Stores {
    pub catalog: Arc<dyn CatalogWrite>,
    pub vectors: Arc<dyn VectorStore>,
    pub jobs: Arc<dyn JobStore>,
    pub events: Arc<dyn EventLog>,
    pub prompts: Arc<dyn PromptStore>,
    pub sql: Arc<dyn SqlStore>,
    pub blobs: Arc<dyn BlobStore>,
}

impl Stores {
    /// The embedded default: SQLite and usearch files and blobs in one data folder.
    pub fn embedded(root: &std::path::Path, ann: AnnConfig) -> Result<Self> {
        let blobs = Arc::new(LocalBlobs::create(root)?);
        let store = Arc::new(SqliteStore::open(&root.join("catalog.sqlite"), &root.join("ann"), ann)?);
        Ok(Stores {
            catalog: store.clone(),
            vectors: store.clone(),
            jobs: store.clone(),
            events: store.clone(),
            prompts: store.clone(),
            sql: store,
            blobs,
        })
    }
}

pub(crate) use sqlite::now_rfc3339 as now;
pub use sqlite::{AnnConfig, AnnScalar};

/// Every segment of a media item of one kind, in order (all pages).
pub(crate) fn all_segments(catalog: &dyn CatalogRead, video_id: &str, kind: SegmentKind) -> Result<Vec<Segment>> {
    all_run_segments(catalog, video_id, kind, None)
}

/// Every segment of one kind of a media item, for the ingest segmentation or a run's own.
pub(crate) fn all_run_segments(
    catalog: &dyn CatalogRead,
    video_id: &str,
    kind: SegmentKind,
    run_id: Option<&str>,
) -> Result<Vec<Segment>> {
    every_page(crate::types::MAX_PAGE_LIMIT, |page| catalog.segments(video_id, kind, run_id, page))
}

/// Every item of a cursor-paged listing, read `limit` at a time.
pub(crate) fn every_page<T>(limit: u32, mut read: impl FnMut(&PageRequest) -> Result<Page<T>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(limit);
    loop {
        let p = read(&page)?;
        out.extend(p.data);
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}
