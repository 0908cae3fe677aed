//! videovector: a local-first, embedded video search engine.
//!
//! An [`Engine`] opened on a data folder ingests media files (video, audio, still images) through
//! FFmpeg, cuts them into segments (`smart`, `fixed` or `content_aware`), picks a keyframe per
//! segment, embeds keyframes and transcripts, and answers text, keyword, image and multimodal
//! searches. Ingests run as jobs on the engine's workers; every change is in the event log.
//!
//! ```no_run
//! use videovector::{Engine, IngestOptions};
//!
//! let engine = Engine::open("data")?;
//! let index = engine.indexes().create("archive", None)?;
//! let opts = IngestOptions::new().index(index.index_id.as_str());
//! let result = engine.videos().ingest("fixtures/media/bikes.mp4", &opts)?;
//! for segment in &result.segments {
//!     println!("{} {:.2}-{:.2}s {:?}", segment.segment_id, segment.start, segment.end, segment.thumbnail_path);
//! }
//! # Ok::<(), videovector::Error>(())
//! ```

pub mod delivery;
mod engine;
mod error;
mod extraction;
mod ids;
mod jobs;
mod media;
mod ml;
mod pipeline;
mod search;
mod segment;
#[cfg(feature = "server")]
pub mod server;
mod store;
pub mod tools;
mod types;

pub use engine::{
    Batch, Connectors, Embeddings, Engine, EngineOptions, Events, Exports, Imports, Indexes, IngestResult, Jobs,
    PromptRuns, Prompts, Search, SegmentEmbedding, SegmentQuery, SqlSearch, StatusSnapshot, Submission, TextEmbedding,
    TextEmbeddings, Transcript, VideoEmbeddings, Videos, Webhooks,
};
pub use error::{Error, ErrorKind, Result};
pub use extraction::MAX_REPLY_TOKENS as DEFAULT_MAX_REPLY_TOKENS;
pub use ids::{IndexId, JobId, LlmCallId, PromptId, RetryId, RunId, SegmentId, VideoId};
pub use ml::llm::{DEFAULT_LANGUAGE_MODEL, HOSTED_MODEL_NAMES};
pub use ml::{ModelChoice, Precision, DEFAULT_ASR_MODEL, DEFAULT_TEXT_MODEL, DEFAULT_VISUAL_MODEL};
pub use pipeline::{IngestOptions, OutputConfig};
pub use search::{
    Aggregation, FilterHit, FilterResponse, FilterSearch, ImageInput, ImageSearch, Modality, ModalityMatch,
    MultiRunSearch, MultimodalSearch, ScoreKind, SearchHit, SearchResponse, SqlGenerate, SqlQuery, TextSearch,
    DEFAULT_PAGE_SIZE, DEFAULT_TOP_K, MAX_MULTI_RUN_TOP_K, MAX_QUERY_CHARS, MAX_TOP_K, RRF_K,
};
pub use segment::{AudioSegmentation, PauseConfig, SegmentationConfig, ShotConfig, SmartConfig, VideoSegmentation};
pub use store::{AnnConfig, AnnScalar};
pub use types::filter::{Condition, FieldType, MatchedFieldInstance, MAX_CONDITIONS};
pub use types::sql::{
    SqlCatalog, SqlColumn, SqlDraft, SqlLimits, SqlResult, SqlTable, DEFAULT_SQL_ROWS, MAX_SQL_ROWS, SQL_TIME_LIMIT_MS,
};
pub use types::{
    AudioInfo, Event, EventType, FailedSegment, Index, Job, JobKind, JobProgress, JobStage, JobStatus, LlmCall, Media,
    MediaInfo, MediaType, ModelRef, NewPrompt, Page, PageRequest, Phrase, Prompt, PromptRun, PromptUpdate, PromptUsage,
    RunEstimate, RunRequest, RunStatus, RunTarget, SchemaCheck, SchemaViolation, Scope, Segment, SegmentKind,
    SegmentResult, SegmentRetry, SemanticIndexing, Space, Status, VideoInfo, VideoLevel, VideoResult,
    DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};

/// Not API: the engine's inner stages, for the crate's own benches, examples and model-parity
/// tests. No stability promise of any kind.
#[doc(hidden)]
pub mod internals {
    pub mod media {
        pub use crate::media::*;
    }
    pub mod ml {
        pub use crate::ml::*;
    }
    pub mod segment {
        pub use crate::segment::*;
    }
    pub mod ann {
        pub use crate::store::sqlite::ann::{AnnConfig, AnnIndex, AnnScalar};
    }
    /// Checked filters and their reference evaluation over a result's JSON.
    pub mod filter {
        pub use crate::types::filter::*;
    }
    use crate::pipeline::analyse::analyse;
    pub use crate::pipeline::analyse::{Analysis, ANALYSIS_SIZE};

    use crate::{Engine, Result};

    /// `n` deterministic pseudo-random unit vectors of `dims` dimensions (for benches).
    pub fn unit_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dims)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    /// How many times the calling thread built an ANN index from all of a space's rows.
    pub fn ann_full_builds() -> u64 {
        crate::store::sqlite::vectors::FULL_BUILDS.with(|n| n.get())
    }

    /// Analyse a file with nobody to cancel it.
    pub fn analyse_file(
        path: &std::path::Path,
        shots: &crate::ShotConfig,
        model: Option<&crate::ml::transnet::TransNet>,
    ) -> Result<Analysis> {
        analyse(path, shots, model, &crate::jobs::JobContext::detached())
    }

    /// [`analyse_file`] of the audio alone (no video decoded), as transcribing a file does.
    pub fn analyse_audio_file(path: &std::path::Path) -> Result<Analysis> {
        crate::pipeline::analyse::analyse_audio(path, &crate::jobs::JobContext::detached())
    }

    /// The sentence encoder's model reference (loading it).
    pub fn text_model_ref(engine: &Engine) -> Result<Option<crate::ModelRef>> {
        Ok(engine.core().models.text()?.map(|m| m.model_ref().clone()))
    }

    /// Fill the playground with `vectors.len()` synthetic one-second segments, `per_media` per
    /// media item, each with its vector in `space` (for benches of search at scale). Returns the
    /// segments in the order of `vectors`.
    pub fn seed_playground(
        engine: &Engine,
        vectors: &[Vec<f32>],
        per_media: usize,
        model: &crate::ModelRef,
        space: crate::Space,
    ) -> Result<Vec<crate::SegmentId>> {
        let mut made = Vec::with_capacity(vectors.len());
        use crate::store::{Completed, NewMedia, NewSegment, NewVector};
        let stores = engine.stores();
        let info = crate::MediaInfo {
            media_type: crate::MediaType::Video,
            container: "synthetic".into(),
            duration: None,
            video: None,
            audio: None,
        };
        for (m, chunk) in vectors.chunks(per_media).enumerate() {
            let hash = format!("synthetic-{m}-{}", crate::ids::new("h"));
            let media = stores.catalog.insert_media(&NewMedia {
                scope: &crate::Scope::Playground,
                title: "synthetic",
                source_path: "synthetic",
                content_hash: &hash,
                size_bytes: 1,
                idempotency_key: None,
                request_json: "{}",
            })?;
            let segments: Vec<NewSegment> = (0..chunk.len() as i64)
                .map(|i| NewSegment {
                    segment_id: crate::SegmentId::generate(),
                    kind: crate::SegmentKind::Video,
                    start_us: i * 1_000_000,
                    end_us: (i + 1) * 1_000_000,
                    segmentation_type: "fixed".into(),
                    keyframe_us: None,
                    keyframe_frame: None,
                    thumbnail_path: None,
                })
                .collect();
            stores.catalog.complete_media(
                &media.video_id,
                &Completed {
                    info: &info,
                    duration_us: chunk.len() as i64 * 1_000_000,
                    segmentation_json: "{}",
                    gif_path: None,
                    warnings: &[],
                    segments: &segments,
                },
            )?;
            let rows: Vec<NewVector<'_>> = segments
                .iter()
                .zip(chunk)
                .map(|(s, v)| NewVector { segment_id: &s.segment_id, vector: v, source_text: Some("synthetic") })
                .collect();
            stores.vectors.upsert(&crate::Scope::Playground, space, model, &rows)?;
            made.extend(segments.into_iter().map(|s| s.segment_id));
        }
        stores.vectors.flush()?;
        Ok(made)
    }

    /// A completed prompt run over the playground whose result for `segments[i]` is `docs[i]`,
    /// stored as a run would store it, without a model (for tests and benches of filters). The
    /// engine must have no workers (`EngineOptions::workers(0)`): the run's job is cancelled
    /// before anything could run it.
    pub fn seed_run_results(
        engine: &Engine,
        schema: serde_json::Value,
        segments: &[crate::SegmentId],
        docs: &[serde_json::Value],
    ) -> Result<crate::RunId> {
        use crate::types::filter::flatten;
        use crate::types::{JobKind, JobRequest};
        let stores = engine.stores();
        let prompt = engine
            .prompts()
            .create(&crate::NewPrompt::new("seeded", "Seeded results, written without a model.", schema), None)?;
        let mut videos: Vec<crate::VideoId> = Vec::new();
        let segs: Vec<crate::Segment> =
            segments.iter().map(|s| stores.catalog.segment(s.as_str())).collect::<Result<_>>()?;
        for s in &segs {
            if videos.last() != Some(&s.video_id) {
                videos.push(s.video_id.clone());
            }
        }
        let request = crate::RunRequest::new(prompt.prompt_id.as_str(), crate::RunTarget::Playground);
        let run =
            crate::PromptRun::pending(request, prompt, None, "seeded".into(), videos.len() as u64, crate::store::now());
        let job = JobRequest { kind: JobKind::PromptRun, video_id: None, index_id: None, request_json: "{}".into() };
        let (run, _) =
            stores.prompts.create_run(&crate::store::NewRun { run: &run, videos: &videos, idempotency: None }, &job)?;
        if let Some(job) = &run.job_id {
            stores.jobs.cancel_job(job.as_str())?;
        }
        for (s, doc) in segs.iter().zip(docs) {
            let text: Vec<String> = flatten(doc).iter().map(|l| format!("{}: {}", l.instance, l.preview())).collect();
            stores.prompts.save_segment_result(&crate::SegmentResult {
                run_id: run.run_id.clone(),
                prompt_id: run.prompt_id.clone(),
                segment_id: s.segment_id.clone(),
                video_id: s.video_id.clone(),
                video_name: "synthetic".into(),
                start_time: s.start,
                end_time: s.end,
                metadata: doc.clone(),
                metadata_text: text.join("\n"),
                field_extraction_succeeded: true,
                field_extraction_error: None,
                attempts: 1,
                executed_at: crate::store::now(),
            })?;
        }
        stores.prompts.set_run_status(&run.run_id, crate::RunStatus::Completed, None)?;
        Ok(run.run_id)
    }
}
