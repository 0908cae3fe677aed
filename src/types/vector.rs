//! Embedding spaces and the model that made a vector.

use serde::{Deserialize, Serialize};

super::api_enum! {
    /// An embedding space: what a vector describes and which kind of query it answers.
    pub enum Space ("space") {
        /// Keyframes, by the image tower of an image-text model (CLIP).
        Visual = "visual",
        /// What was said in a segment, by the sentence encoder.
        Transcript = "transcript",
        /// Prompt-run metadata rendered as text, by the sentence encoder.
        Metadata = "metadata",
    }
}

/// Which model made a vector: every stored vector carries this, so that vectors of different
/// models are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelRef {
    pub id: String,
    pub revision: String,
    pub dims: usize,
}

impl ModelRef {
    pub fn new(id: impl Into<String>, revision: impl Into<String>, dims: usize) -> Self {
        ModelRef { id: id.into(), revision: revision.into(), dims }
    }
}
