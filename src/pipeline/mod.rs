//! The ingest pipeline for one media item, as stages whose input is the previous one's output:
//!
//! ```text
//! path -> analyse (probe + one decode pass) -> plan (spans, keyframes) -> extract (thumbnails,
//!      preview) -> store (segments, media completed) -> embed (keyframe vectors) -> transcribe
//!      (phrases, transcript vectors)
//! ```
//!
//! Each stage is a module; this one holds the request types and [`run`], which drives the stages
//! for one job and decides what a failure at each point means.

pub(crate) mod analyse;
pub(crate) mod embed;
pub(crate) mod extract;
pub(crate) mod plan;
pub(crate) mod transcribe;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::VideoId;
use crate::jobs::{JobContext, StopReason};
use crate::ml::{Models, Role};
use crate::segment::SegmentationConfig;
use crate::store::{Completed, Stores};
use crate::types::{JobStage, Media, MediaType, Scope, Space, Status};

/// Options of one ingest call. Defaults are the API's: smart video segmentation, content-aware audio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct IngestOptions {
    /// Index id or name; `None` ingests playground media (no index).
    pub index: Option<String>,
    /// Title to store; default: the file name.
    pub title: Option<String>,
    /// A retry with the same key returns the same media item instead of ingesting again.
    pub idempotency_key: Option<String>,
    /// The API's `enable_transcription`: `None` (default) transcribes when a speech model is
    /// available, `Some(true)` requires one, `Some(false)` turns transcription off.
    pub enable_transcription: Option<bool>,
    pub segmentation: SegmentationConfig,
    pub output: OutputConfig,
}

/// Sizes of what ingest writes to disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OutputConfig {
    /// Longer side of keyframe thumbnails in pixels. Default 480.
    pub thumbnail_size: u32,
    /// JPEG quality of thumbnails, 1-100. Default 85.
    pub thumbnail_quality: u8,
    /// Frames in the preview GIF; 0 turns previews off. Default 24.
    pub gif_frames: u32,
    /// Longer side of preview GIF frames in pixels. Default 160.
    pub gif_size: u32,
    /// Display time of each GIF frame in milliseconds. Default 250.
    pub gif_frame_ms: u32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { thumbnail_size: 480, thumbnail_quality: 85, gif_frames: 24, gif_size: 160, gif_frame_ms: 250 }
    }
}

impl IngestOptions {
    /// Options with every default: smart video and content-aware audio segmentation, the
    /// playground, transcription when a speech model is there.
    pub fn new() -> Self {
        IngestOptions::default()
    }

    /// Ingest into this index (id or name).
    pub fn index(mut self, index: impl Into<String>) -> Self {
        self.index = Some(index.into());
        self
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn enable_transcription(mut self, enable: bool) -> Self {
        self.enable_transcription = Some(enable);
        self
    }

    pub fn segmentation(mut self, segmentation: SegmentationConfig) -> Self {
        self.segmentation = segmentation;
        self
    }

    pub fn output(mut self, output: OutputConfig) -> Self {
        self.output = output;
        self
    }
}

/// What an ingest job runs: one file into one media row, with the caller's options. Stored as
/// the job's request (and with the media) so that a resumed job runs exactly as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IngestRequest {
    pub video_id: VideoId,
    pub path: String,
    pub options: IngestOptions,
}

/// Run an ingest job: every stage for one media item. Analysis, planning and extraction either
/// complete the media (segments stored with it in one transaction) or fail it with an error
/// naming the file; embedding and transcription come after, and their failures become warnings
/// on the completed media. A media item already completed (a job run again after a crash) only
/// gets what it still lacks.
pub(crate) fn run(stores: &Stores, models: &Models, req: &IngestRequest, ctx: &JobContext) -> Result<()> {
    let path = Path::new(&req.path);
    let media = stores.catalog.media(&req.video_id)?;
    if media.status != Status::Completed {
        stores.catalog.start_media(&req.video_id, &req.path)?;
        if let Err(e) = segment_media(stores, models, &req.video_id, path, &req.options, ctx) {
            stores.blobs.remove_media(&req.video_id)?;
            match (&e, ctx.stop_reason()) {
                (Error::Cancelled, Some(StopReason::Shutdown)) => stores.catalog.reset_media(&req.video_id)?,
                (Error::Cancelled, _) => stores.catalog.fail_media(&req.video_id, "the ingest was cancelled")?,
                (e, _) if e.is_store_failure() => {}
                (e, _) => stores.catalog.fail_media(&req.video_id, &e.to_string())?,
            }
            return Err(e);
        }
    }
    let media = stores.catalog.media(&req.video_id)?;
    let mut warnings = Vec::new();
    embed_keyframes(stores, models, &media, ctx, &mut warnings)?;
    if media.media_type != Some(MediaType::Image) {
        transcribe(stores, models, &media, path, req.options.enable_transcription, ctx, &mut warnings)?;
    }
    if !warnings.is_empty() {
        stores.catalog.add_media_warnings(&req.video_id, &warnings)?;
    }
    ctx.progress(JobStage::Done, 1.0);
    Ok(())
}

/// Analyse, plan, extract and store: the part of an ingest that makes a media item `completed`.
fn segment_media(
    stores: &Stores,
    models: &Models,
    video_id: &VideoId,
    path: &Path,
    opts: &IngestOptions,
    ctx: &JobContext,
) -> Result<()> {
    let shot_model = models.shots_for(&opts.segmentation.shots)?;
    let analysis = analyse::analyse(path, &opts.segmentation.shots, shot_model.as_deref(), ctx)?;
    let plan = plan::plan(&analysis, &opts.segmentation)?;
    ctx.progress(JobStage::Extracting, 0.0);
    let (segments, gif) = extract::extract(
        path,
        stores.blobs.as_ref(),
        video_id,
        &analysis,
        &plan,
        &opts.segmentation,
        &opts.output,
        true,
        ctx,
    )?;
    ctx.check()?;
    let settings = serde_json::to_string(&opts.segmentation)
        .map_err(|e| Error::Internal(format!("segmentation settings: {e}")))?;
    let warnings: Vec<String> = (analysis.decode_errors > 0)
        .then(|| {
            format!("{}: {} packets could not be decoded and were skipped", path.display(), analysis.decode_errors)
        })
        .into_iter()
        .collect();
    stores.catalog.complete_media(
        video_id,
        &Completed {
            info: &analysis.info,
            duration_us: analysis.duration_us,
            segmentation_json: &settings,
            gif_path: gif.as_deref(),
            warnings: &warnings,
            segments: &segments,
        },
    )
}

/// Keyframe vectors of the media's scope that are still missing (this media's, and any an
/// earlier kill left out). Failing here leaves the media completed, to be embedded later.
fn embed_keyframes(
    stores: &Stores,
    models: &Models,
    media: &Media,
    ctx: &JobContext,
    warnings: &mut Vec<String>,
) -> Result<()> {
    ctx.progress(JobStage::Embedding, 0.0);
    let scope = Scope::of(media.index_id.as_ref());
    let embedded = stores
        .catalog
        .thumbnails_without_vector(Some(&scope), Space::Visual)
        .and_then(|todo| embed::embed_thumbnails(stores, models, &todo, ctx));
    match embedded {
        Ok(done) => {
            warnings.extend(done.skipped.into_iter().map(|s| format!("a keyframe was not embedded: {s}")));
            if let Some(reason) = models.off_reason(Role::Visual) {
                warnings.push(format!(
                    "keyframes were not embedded: no visual model ({}): {reason}",
                    crate::ml::DEFAULT_VISUAL_MODEL
                ));
            }
        }
        Err(e @ Error::Cancelled) => return Err(e),
        Err(e) => warnings.push(format!("keyframes were not embedded: {e}; run `videovector embed` to retry")),
    }
    Ok(())
}

/// Transcribe speech when asked for (`Some(true)`: a speech model is required), or by default
/// when a speech model is there. Skipped when the media already has a transcript.
pub(crate) fn transcribe(
    stores: &Stores,
    models: &Models,
    media: &Media,
    path: &Path,
    enable: Option<bool>,
    ctx: &JobContext,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if enable == Some(false) || !stores.catalog.phrases(&media.video_id)?.is_empty() {
        return Ok(());
    }
    match models.speech() {
        Ok(Some(mut whisper)) => {
            ctx.progress(JobStage::Transcribing, 0.0);
            match transcribe::transcribe_media(stores, models, &mut whisper, media, path, ctx) {
                Ok(_) => {}
                Err(e @ Error::Cancelled) => return Err(e),
                Err(e) if e.is_store_failure() => return Err(e),
                Err(e) => warnings.push(format!("speech was not transcribed: {e}")),
            }
        }
        Ok(None) if enable == Some(true) => {
            warnings.push(format!("speech was not transcribed: {}", models.missing(Role::Speech)))
        }
        Ok(None) => {
            if let Some(reason) = models.off_reason(Role::Speech) {
                warnings.push(format!(
                    "speech was not transcribed: no speech model ({}): {reason}",
                    crate::ml::DEFAULT_ASR_MODEL
                ));
            }
        }
        Err(e) => warnings.push(format!("speech was not transcribed: {e}")),
    }
    Ok(())
}
