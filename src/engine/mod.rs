//! The engine: one data folder, and resource handles shaped like the SDK's
//! (`engine.indexes()`, `engine.videos()`, `engine.search()`, `engine.embeddings()`,
//! `engine.jobs()`, `engine.events()`).
//!
//! `Engine` is a cheap clone over shared state and `Send + Sync`: one engine serves many threads.
//! Long work (an ingest) runs as jobs on the engine's worker threads.

mod automations;
mod collections;
mod delivery;
mod embeddings;
mod indexes;
mod jobs;
mod markers;
mod prompts;
mod search;
mod videos;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use automations::Automations;
pub use collections::Collections;
pub use delivery::{Connectors, Exports, Imports, Webhooks};
pub use embeddings::{Embeddings, SegmentEmbedding, TextEmbedding, TextEmbeddings, VideoEmbeddings};
pub use indexes::Indexes;
pub use jobs::{Events, Jobs};
pub use markers::Markers;
pub use prompts::{PromptRuns, Prompts};
pub use search::{Search, SqlSearch};
pub use videos::{Batch, IngestResult, SegmentQuery, StatusSnapshot, Submission, Transcript, Videos};

use crate::error::{Error, Result};
use crate::jobs::{JobContext, Runner, WorkerPool};
use crate::ml::{ModelChoice, Models, Precision};
use crate::pipeline::IngestRequest;
use crate::store::{AnnConfig, Stores};
use crate::types::{Job, JobKind};

/// Engine settings beyond the data folder. `EngineOptions::default()` or the builder methods:
/// `EngineOptions::new().visual_model(ModelChoice::Off).workers(2)`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Image-text model for keyframes and text queries. Default: [`crate::DEFAULT_VISUAL_MODEL`] when present.
    pub visual_model: ModelChoice,
    /// Sentence encoder for transcripts and metadata. Default: [`crate::DEFAULT_TEXT_MODEL`] when present.
    pub text_model: ModelChoice,
    /// Speech-to-text model. Default: [`crate::DEFAULT_ASR_MODEL`] when present.
    pub asr_model: ModelChoice,
    /// Shot-boundary model (TransNetV2) for `content_aware` and `smart` segmentation. Default:
    /// `transnetv2` in the model folders when present, else the rule-based detector; `Off`: the
    /// rules alone (about 40x faster on a CPU, less accurate on busy footage).
    pub shot_model: ModelChoice,
    /// HNSW settings of the embedded vector store.
    pub ann: AnnConfig,
    /// Weights of CLIP's image tower and Whisper's decoder: [`Precision::F32`] (default, the
    /// checkpoint as it is) or [`Precision::Int8`] (8-bit linear layers, quantized at load: 2.4x
    /// and 1.6x the images per second at batch 1 and 32 on a CPU, features at cosine 0.9995 or
    /// more to the f32 ones; 35% less time per Whisper decoding step, WER unchanged).
    pub precision: Precision,
    /// Longest reply of the language model, in tokens, per extraction call. Default
    /// [`crate::DEFAULT_MAX_REPLY_TOKENS`]; a reply cut short fails its segment.
    pub max_reply_tokens: usize,
    /// Worker threads that run jobs (ingests). Default 1: each ingest already uses every core
    /// (decoding, shot detection and embedding run in parallel). 0 runs no jobs: such an engine
    /// can read, search and queue work for another engine on the same folder.
    pub workers: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            visual_model: ModelChoice::Default,
            text_model: ModelChoice::Default,
            asr_model: ModelChoice::Default,
            shot_model: ModelChoice::Default,
            ann: AnnConfig::default(),
            precision: Precision::F32,
            max_reply_tokens: crate::extraction::MAX_REPLY_TOKENS,
            workers: 1,
        }
    }
}

impl EngineOptions {
    pub fn new() -> Self {
        EngineOptions::default()
    }

    pub fn visual_model(mut self, choice: ModelChoice) -> Self {
        self.visual_model = choice;
        self
    }

    pub fn text_model(mut self, choice: ModelChoice) -> Self {
        self.text_model = choice;
        self
    }

    pub fn asr_model(mut self, choice: ModelChoice) -> Self {
        self.asr_model = choice;
        self
    }

    pub fn shot_model(mut self, choice: ModelChoice) -> Self {
        self.shot_model = choice;
        self
    }

    pub fn ann(mut self, ann: AnnConfig) -> Self {
        self.ann = ann;
        self
    }

    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    pub fn max_reply_tokens(mut self, tokens: usize) -> Self {
        self.max_reply_tokens = tokens.max(1);
        self
    }

    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }
}

/// What jobs and handles share: the stores and the models.
pub(crate) struct Core {
    pub root: PathBuf,
    pub stores: Stores,
    pub models: Models,
    pub delivery: Arc<crate::delivery::db::Db>,
}

impl Core {
    /// Run one job: dispatch on its kind, then persist vector indexes.
    fn run_job(&self, job: &Job, ctx: &JobContext) -> Result<()> {
        let outcome = match job.kind {
            JobKind::Ingest => {
                let req: IngestRequest = serde_json::from_value(job.request.clone()).map_err(|e| {
                    Error::Internal(format!("job {} has an ingest request this build cannot read: {e}", job.job_id))
                })?;
                crate::pipeline::run(&self.stores, &self.models, &req, ctx)
            }
            JobKind::PromptRun => {
                let req: crate::extraction::RunJob = serde_json::from_value(job.request.clone()).map_err(|e| {
                    Error::Internal(format!("job {} has a run request this build cannot read: {e}", job.job_id))
                })?;
                crate::extraction::run(&self.stores, &self.models, &req.run_id, ctx)
            }
            JobKind::SegmentRetry => {
                let req: crate::extraction::RetryJob = serde_json::from_value(job.request.clone()).map_err(|e| {
                    Error::Internal(format!("job {} has a retry request this build cannot read: {e}", job.job_id))
                })?;
                let retry = self.stores.prompts.retry(&req.retry_id)?;
                crate::extraction::retry(&self.stores, &self.models, &retry, ctx)
            }
            JobKind::Import => {
                let req: crate::delivery::imports::ImportJobRequest = serde_json::from_value(job.request.clone())
                    .map_err(|e| {
                        Error::Internal(format!("job {} has an import request this build cannot read: {e}", job.job_id))
                    })?;
                delivery::run_import(self, &req.import_id, ctx)
            }
            JobKind::Export => {
                let req: crate::delivery::exports::ExportJobRequest = serde_json::from_value(job.request.clone())
                    .map_err(|e| {
                        Error::Internal(format!("job {} has an export request this build cannot read: {e}", job.job_id))
                    })?;
                delivery::run_export(self, &req.export_id, ctx)
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::Internal(format!(
                "job {} is of kind {}, which this build does not run",
                job.job_id, job.kind
            ))),
        };
        // ANN files are caches: a failure to save one costs a rebuild later, not the job.
        let _ = self.stores.vectors.flush();
        outcome
    }
}

struct Inner {
    root: PathBuf,
    core: Arc<Core>,
    // Dropped before the pool: no deliveries are sent once the engine is closing.
    _dispatcher: Option<crate::delivery::webhooks::Dispatcher>,
    pool: WorkerPool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Workers stop first (their jobs go back to pending), then indexes are saved.
        let _ = self.core.stores.vectors.flush();
    }
}

/// An open data folder. All state lives on disk: opening the same folder again, in this
/// process or another, sees everything. Cheap to clone; clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("data_dir", &self.inner.root).finish_non_exhaustive()
    }
}

impl Engine {
    /// Open (creating if needed) the data folder at `dir` with default models and one worker.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EngineOptions::default())
    }

    /// Open the data folder at `dir` with these options. Jobs that a crash left unfinished are
    /// picked up again by this engine's workers.
    pub fn open_with(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let stores = Stores::embedded(&root, options.ann)?;
        let mut models = Models::new(options.visual_model, options.text_model, options.asr_model, root.clone());
        models.max_reply_tokens = options.max_reply_tokens;
        models.precision = options.precision;
        models.set_shot_model(options.shot_model);
        let delivery = Arc::new(crate::delivery::db::Db::open(&root)?);
        let core = Arc::new(Core { root: root.clone(), stores, models, delivery });
        let runner: Runner = {
            let core = core.clone();
            Arc::new(move |job: &Job, ctx: &JobContext| core.run_job(job, ctx))
        };
        let pool = WorkerPool::start(options.workers, core.stores.jobs.clone(), runner)?;
        // Webhooks and automations are driven by engines that run jobs; a read-only engine (0
        // workers) leaves them to one that does. The driver holds the engine weakly: it never
        // keeps a closed engine open.
        let mut failed = None;
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let dispatcher = if options.workers > 0 {
                let weak = weak.clone();
                let mut driver = automations::Driver::default();
                let tick = move || {
                    if let Some(inner) = weak.upgrade() {
                        driver.tick(&Engine { inner });
                    }
                };
                match crate::delivery::webhooks::Dispatcher::start(
                    core.delivery.clone(),
                    core.stores.clone(),
                    Box::new(tick),
                ) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                }
            } else {
                None
            };
            Inner { root, core, _dispatcher: dispatcher, pool }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(Engine { inner }),
        }
    }

    pub(crate) fn core(&self) -> &Core {
        &self.inner.core
    }

    pub(crate) fn stores(&self) -> &Stores {
        &self.inner.core.stores
    }

    pub(crate) fn pool(&self) -> &WorkerPool {
        &self.inner.pool
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.inner.root
    }

    /// `client.indexes`: create, list, retrieve, delete.
    pub fn indexes(&self) -> Indexes<'_> {
        Indexes::new(self)
    }

    /// `client.videos`: ingest, retrieve, list, delete, segments, transcripts.
    pub fn videos(&self) -> Videos<'_> {
        Videos::new(self)
    }

    /// `client.search`: text, keyword, image and multimodal search.
    pub fn search(&self) -> Search<'_> {
        Search::new(self)
    }

    /// `client.embeddings`: raw vectors, and (re-)embedding keyframes.
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings::new(self)
    }

    /// `client.prompts`: extraction schemas with instructions.
    pub fn prompts(&self) -> Prompts<'_> {
        Prompts::new(self)
    }

    /// `client.prompt_runs`: prompts executed over media with a local language model.
    pub fn prompt_runs(&self) -> PromptRuns<'_> {
        PromptRuns::new(self)
    }

    /// Long-running work: list, get, cancel, wait.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs::new(self)
    }

    /// The event log: every state change of media and jobs.
    pub fn events(&self) -> Events<'_> {
        Events::new(self)
    }

    /// `client.connectors`: a local folder, S3, Azure Blob or GCS.
    pub fn connectors(&self) -> Connectors<'_> {
        Connectors::new(self)
    }

    /// `client.import_jobs`: a connector's files imported into an index.
    pub fn imports(&self) -> Imports<'_> {
        Imports::new(self)
    }

    /// `client.exports`: an index or a run written to a file or a connector.
    pub fn exports(&self) -> Exports<'_> {
        Exports::new(self)
    }

    /// Named sets of processed media across indexes, with search scoped to one.
    pub fn collections(&self) -> Collections<'_> {
        Collections::new(self)
    }

    /// Markers: a colour and a note on media, segments, prompts, runs, results or their fields.
    pub fn markers(&self) -> Markers<'_> {
        Markers::new(self)
    }

    /// Import and export automations of indexes.
    pub fn automations(&self) -> Automations<'_> {
        Automations::new(self)
    }

    /// `client.webhooks`: signed event deliveries with retries.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks::new(self)
    }

    /// The store's own consistency check (for tools and tests after a crash).
    pub fn check(&self) -> Result<()> {
        self.stores().catalog.check()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_is_send_sync_and_clone() {
        fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync_clone::<super::Engine>();
    }
}
