//! CLIP in the HF layout: the image tower embeds keyframes, the text tower embeds queries, into
//! one space. The text tower is candle's; the image tower is ours (`clip_vision.rs`: 8-bit
//! weights on request, CPU kernels). This module maps HF `config.json` onto them, loads the
//! tokenizer and preprocessing of the checkpoint, and batches.

use candle_core::{Device, Tensor};
use candle_transformers::models::clip::{text_model, vision_model, ClipConfig};
use image::RgbImage;
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::clip_vision::VisionTower;
use super::preprocess::{preprocess, PreprocessConfig};
use super::quant::Precision;
use super::source::ModelFiles;
use super::{model_err, ModelRef};
use crate::error::{Error, Result};

/// Files a CLIP model folder must hold.
pub const CLIP_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"];

/// Images per forward pass of the image tower.
pub const IMAGE_BATCH: usize = 32;

/// HF `CLIPConfig` (`config.json`), the fields candle's model needs.
#[derive(Debug, Clone, Deserialize)]
pub struct HfClipConfig {
    pub text_config: HfTextConfig,
    pub vision_config: HfVisionConfig,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HfTextConfig {
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    #[serde(default = "default_text_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_text_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_text_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HfVisionConfig {
    #[serde(default = "default_vision_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_vision_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

// HF's CLIPConfig defaults (those of openai/clip-vit-base-patch32).
fn default_projection_dim() -> usize {
    512
}
fn default_logit_scale() -> f32 {
    2.6592
}
fn default_vocab() -> usize {
    49408
}
fn default_text_hidden() -> usize {
    512
}
fn default_text_intermediate() -> usize {
    2048
}
fn default_positions() -> usize {
    77
}
fn default_layers() -> usize {
    12
}
fn default_text_heads() -> usize {
    8
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_vision_hidden() -> usize {
    768
}
fn default_vision_intermediate() -> usize {
    3072
}
fn default_vision_heads() -> usize {
    12
}
fn default_image_size() -> usize {
    224
}
fn default_patch() -> usize {
    32
}
fn default_channels() -> usize {
    3
}

impl HfClipConfig {
    fn to_candle(&self, id: &str) -> Result<ClipConfig> {
        for act in [&self.text_config.hidden_act, &self.vision_config.hidden_act] {
            if act != "quick_gelu" {
                return Err(model_err(
                    id,
                    format!(
                        "hidden_act {act:?} is not supported: candle's CLIP implements quick_gelu (openai checkpoints)"
                    ),
                ));
            }
        }
        let t = &self.text_config;
        let v = &self.vision_config;
        Ok(ClipConfig {
            text_config: text_model::ClipTextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                activation: text_model::Activation::QuickGelu,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                projection_dim: self.projection_dim,
            },
            vision_config: vision_model::ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: text_model::Activation::QuickGelu,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: self.projection_dim,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            logit_scale_init_value: self.logit_scale_init_value,
            image_size: v.image_size,
        })
    }
}

/// A loaded CLIP model with its tokenizer and preprocessing.
pub struct ClipEncoder {
    text: text_model::ClipTextTransformer,
    text_projection: candle_nn::Linear,
    vision: VisionTower,
    precision: Precision,
    tokenizer: Tokenizer,
    preprocess: PreprocessConfig,
    max_tokens: usize,
    /// Token that ends a text; its position's state is the text's embedding.
    eos_token: u32,
    device: Device,
    model_ref: ModelRef,
}

impl ClipEncoder {
    /// The model in `files` with f32 weights.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        Self::load_with(files, device, Precision::F32)
    }

    /// The model in `files`, its image tower's linear layers in `precision`.
    pub fn load_with(files: &ModelFiles, device: &Device, precision: Precision) -> Result<Self> {
        let id = &files.id;
        let read = |name: &str| -> Result<String> {
            let p = files.dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
        };
        let hf: HfClipConfig =
            serde_json::from_str(&read("config.json")?).map_err(|e| model_err(id, format!("config.json: {e}")))?;
        let preprocess: PreprocessConfig = serde_json::from_str(&read("preprocessor_config.json")?)
            .map_err(|e| model_err(id, format!("preprocessor_config.json: {e}")))?;
        if preprocess.resample != 3 {
            return Err(model_err(
                id,
                format!("preprocessor_config.json: resample {} is not bicubic (3)", preprocess.resample),
            ));
        }
        let config = hf.to_candle(id)?;
        let weights = files.dir.join("model.safetensors");
        let vb = super::mmap_weights(id, &weights, device)?;
        let (text, text_projection, vision) = (|| {
            let text = text_model::ClipTextTransformer::new(vb.pp("text_model"), &config.text_config)?;
            let projection = candle_nn::linear_no_bias(
                config.text_config.embed_dim,
                config.text_config.projection_dim,
                vb.pp("text_projection"),
            )?;
            let vision = VisionTower::load(vb.clone(), &config.vision_config, hf.projection_dim, precision)?;
            candle_core::Result::Ok((text, projection, vision))
        })()
        .map_err(|e| super::weights_err(id, &weights, e))?;
        let tokenizer = Tokenizer::from_file(files.dir.join("tokenizer.json")).map_err(|e| model_err(id, e))?;
        let eos_token = hf.text_config.eos_token_id.unwrap_or((hf.text_config.vocab_size - 1) as u32);
        Ok(ClipEncoder {
            text,
            text_projection,
            vision,
            precision,
            tokenizer,
            preprocess,
            max_tokens: hf.text_config.max_position_embeddings,
            eos_token,
            device: device.clone(),
            model_ref: ModelRef { id: files.id.clone(), revision: files.revision.clone(), dims: hf.projection_dim },
        })
    }

    pub fn model_ref(&self) -> &ModelRef {
        &self.model_ref
    }

    /// The number format of the image tower's linear layers.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// Projected image features before normalisation, for preprocessed CHW tensors `[n, 3, h, w]`.
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        self.vision.forward(pixels).map_err(|e| model_err(&self.model_ref.id, e))
    }

    /// Unit vectors for images, preprocessed in parallel and embedded in batches of [`IMAGE_BATCH`].
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let (h, w) = self.preprocess.output_size();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(IMAGE_BATCH) {
            let pixels: Vec<f32> =
                chunk.par_iter().map(|img| preprocess(img, &self.preprocess)).collect::<Vec<_>>().concat();
            let t = Tensor::from_vec(pixels, (chunk.len(), 3, h as usize, w as usize), &self.device)
                .map_err(|e| model_err(&self.model_ref.id, e))?;
            let features = self.image_features(&t)?;
            let unit = super::l2_normalize(&features)
                .and_then(|t| t.to_vec2::<f32>())
                .map_err(|e| model_err(&self.model_ref.id, e))?;
            out.extend(unit);
        }
        Ok(out)
    }

    /// Token ids of a text as the model sees it: the tokenizer's own special tokens, cut to the
    /// context length with the end token kept last.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| model_err(&self.model_ref.id, e))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > self.max_tokens {
            ids.truncate(self.max_tokens);
            *ids.last_mut().expect("max_tokens > 0") = self.eos_token;
        }
        Ok(ids)
    }

    /// Projected text features before normalisation for one text.
    pub fn text_features(&self, text: &str) -> Result<Tensor> {
        let ids = self.token_ids(text)?;
        let n = ids.len();
        let t = Tensor::from_vec(ids, (1, n), &self.device).map_err(|e| model_err(&self.model_ref.id, e))?;
        t.apply(&self.text).and_then(|h| h.apply(&self.text_projection)).map_err(|e| model_err(&self.model_ref.id, e))
    }

    /// Unit vectors for texts (one forward pass each: no padding, so no mask to get wrong).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        texts
            .iter()
            .map(|t| {
                let f = self.text_features(t)?;
                super::l2_normalize(&f)
                    .and_then(|u| u.squeeze(0)?.to_vec1::<f32>())
                    .map_err(|e| model_err(&self.model_ref.id, e))
            })
            .collect()
    }
}
