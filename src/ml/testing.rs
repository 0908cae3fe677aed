//! Random-weight checkpoints in the HF layout, for speed measurements where no real weights can
//! be had (CLIP): full-size models whose numbers mean nothing but whose cost is real.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::clip::{ClipConfig, ClipModel};

use crate::error::{Error, Result};

/// HF `config.json` of openai/clip-vit-base-patch32 (the fields the engine reads).
pub const VIT_B32_CONFIG: &str = r#"{
  "architectures": ["CLIPModel"],
  "model_type": "clip",
  "projection_dim": 512,
  "logit_scale_init_value": 2.6592,
  "text_config": {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                  "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                  "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1},
  "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "image_size": 224, "patch_size": 32, "num_channels": 3, "hidden_act": "quick_gelu"}
}"#;

/// A ViT-B/32-sized CLIP with random weights (candle's initialisation), in memory.
pub fn random_vit_b32() -> candle_core::Result<VarMap> {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    // Tensors candle only reads when present (else it draws fresh ones on every load): create
    // them first so that the map is the whole model.
    vb.pp("vision_model.embeddings").get_with_hints(
        768,
        "class_embedding",
        candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
    )?;
    vb.get_with_hints((), "logit_scale", candle_nn::Init::Const(2.6592))?;
    ClipModel::new(vb, &ClipConfig::vit_base_patch32())?;
    Ok(map)
}

/// Write a ViT-B/32-sized CLIP with random weights (candle's default initialisers) into `dir`,
/// with the tiny test tokenizer and the standard preprocessing. Skipped when already there.
pub fn write_random_vit_b32(dir: &Path, tokenizer_json: &Path, preprocessor_json: &Path) -> Result<()> {
    let weights = dir.join("model.safetensors");
    if weights.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let map = random_vit_b32().map_err(|e| super::model_err("random-vit-b32", e))?;
    map.save(&weights).map_err(|e| super::model_err("random-vit-b32", e))?;
    std::fs::write(dir.join("config.json"), VIT_B32_CONFIG).map_err(|e| Error::io(dir, e))?;
    for (from, name) in [(tokenizer_json, "tokenizer.json"), (preprocessor_json, "preprocessor_config.json")] {
        std::fs::copy(from, dir.join(name)).map_err(|e| Error::io(from, e))?;
    }
    Ok(())
}
