//! Tools on files outside any index: shot detection with its measurements, transcription of a
//! file, and conversion of a CTranslate2 Whisper folder.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::pipeline::analyse::{Analysis, ANALYSIS_SIZE};
pub use crate::segment::{Cut, CutKind, FrameStats};

use crate::error::Result;
use crate::ml::Role;
use crate::{Engine, Phrase};

/// Probe and decode a file once, as ingest's first pass does: per-frame measurements, the cuts
/// found with the default shot settings (TransNetV2 when its weights are in the model folders,
/// else the rules), loudness per 10 ms.
pub fn detect_shots(path: &Path) -> Result<Analysis> {
    detect_shots_with(path, &Default::default(), shot_model(&crate::ModelChoice::Default)?.as_ref())
}

/// TransNetV2 as `choice` says: from the model folders (`VIDEOVECTOR_MODELS`, the repository's
/// `models/`; `Ok(None)` when its weights are not there), from a folder or weights file, or none.
pub fn shot_model(choice: &crate::ModelChoice) -> Result<Option<crate::ml::transnet::TransNet>> {
    crate::ml::transnet::load_choice(choice, &crate::ml::source::search_dirs(None))
}

/// [`detect_shots`] with these settings and this TransNetV2 (`None`: the rules alone).
pub fn detect_shots_with(
    path: &Path,
    shots: &crate::ShotConfig,
    model: Option<&crate::ml::transnet::TransNet>,
) -> Result<Analysis> {
    crate::pipeline::analyse::analyse(path, shots, model, &crate::jobs::JobContext::detached())
}

/// What [`transcribe_file`] heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileTranscript {
    pub phrases: Vec<Phrase>,
    /// Length of the audio in seconds.
    pub audio_seconds: f64,
}

/// Transcribe a file without ingesting it, with the engine's speech model: its audio is cut at
/// pauses (the default content-aware audio segmentation) and each window is transcribed. No
/// video is decoded.
pub fn transcribe_file(engine: &Engine, path: &Path) -> Result<FileTranscript> {
    let models = &engine.core().models;
    let mut whisper = models.speech()?.ok_or_else(|| models.missing(Role::Speech))?;
    let (phrases, audio_seconds) = crate::pipeline::transcribe::transcribe_file(path, &mut whisper)?;
    Ok(FileTranscript { phrases, audio_seconds })
}

/// Load the engine's speech model now (it is otherwise loaded on first use), so that a timed
/// [`transcribe_file`] after it measures transcription alone.
pub fn load_speech_model(engine: &Engine) -> Result<()> {
    let models = &engine.core().models;
    models.speech()?.ok_or_else(|| models.missing(Role::Speech)).map(drop)
}

/// Convert a CTranslate2 Whisper folder (`model.bin`) into an HF one (`model.safetensors`).
pub fn convert_whisper_folder(from: &Path, to: &Path) -> Result<()> {
    crate::ml::ct2::convert_whisper_folder(from, to)
}
