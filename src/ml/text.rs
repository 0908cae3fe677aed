//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 by default): tokenize, encode,
//! mean-pool over real tokens, L2-normalise. For transcript and metadata text and for queries
//! against them.

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::source::ModelFiles;
use super::{model_err, ModelRef};
use crate::error::{Error, Result};

/// Files a text model folder must hold.
pub const TEXT_MODEL_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// Longest input in tokens; longer text is truncated (sentence-transformers' `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// A loaded sentence encoder.
pub struct TextEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    model_ref: ModelRef,
}

impl TextEncoder {
    /// Load a BERT-family sentence encoder from a folder in the HF layout.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        let config_path = files.dir.join("config.json");
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?)
                .map_err(|e| model_err(&files.id, format!("{}: {e}", config_path.display())))?;
        let weights = files.dir.join("model.safetensors");
        let vb = super::mmap_weights(&files.id, &weights, device)?;
        let model = BertModel::load(vb, &config).map_err(|e| super::weights_err(&files.id, &weights, e))?;
        let mut tokenizer =
            Tokenizer::from_file(files.dir.join("tokenizer.json")).map_err(|e| model_err(&files.id, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(|e| model_err(&files.id, e))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        Ok(TextEncoder {
            model,
            tokenizer,
            device: device.clone(),
            model_ref: ModelRef { id: files.id.clone(), revision: files.revision.clone(), dims: config.hidden_size },
        })
    }

    pub fn model_ref(&self) -> &ModelRef {
        &self.model_ref
    }

    /// Unit vectors for `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let id = &self.model_ref.id;
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| model_err(id, e))?;
        let n = encodings.len();
        let len = encodings[0].get_ids().len();
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
            let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            // Mean over the tokens the mask keeps (padding excluded), as sentence-transformers pools.
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?;
            let pooled = summed.broadcast_div(&counts)?;
            super::l2_normalize(&pooled)?.to_vec2::<f32>()
        };
        run().map_err(|e| model_err(id, e))
    }
}
