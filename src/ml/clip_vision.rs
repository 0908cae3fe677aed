//! CLIP's image tower (HF `CLIPVisionModel` and the visual projection) with its linear layers
//! in f32 or 8-bit ([`Precision`]). On the CPU, attention and the quick GELU run on the kernels
//! in `cpu.rs`; other devices use candle's operations.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, VarBuilder};
use candle_transformers::models::clip::vision_model::ClipVisionConfig;

use super::layer_norm;
use super::quant::{Linear, Precision};

#[derive(Debug, Clone)]
struct Layer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn load(c: &ClipVisionConfig, vb: VarBuilder, precision: Precision) -> Result<Self> {
        let (e, i) = (c.embed_dim, c.intermediate_size);
        let attn = vb.pp("self_attn");
        let linear = |inputs, outputs, vb| Linear::load(inputs, outputs, true, vb, precision);
        Ok(Layer {
            ln1: layer_norm(e, vb.pp("layer_norm1"))?,
            q: linear(e, e, attn.pp("q_proj"))?,
            k: linear(e, e, attn.pp("k_proj"))?,
            v: linear(e, e, attn.pp("v_proj"))?,
            out: linear(e, e, attn.pp("out_proj"))?,
            ln2: layer_norm(e, vb.pp("layer_norm2"))?,
            fc1: linear(e, i, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(i, e, vb.pp("mlp").pp("fc2"))?,
            heads: c.num_attention_heads,
        })
    }

    /// `x` `[batch, tokens, embed]`: self-attention over each image's tokens, then the MLP.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.ln1.forward(x)?;
        let (q, k, v) = (self.q.forward(&h)?, self.k.forward(&h)?, self.v.forward(&h)?);
        let a = if x.device().is_cpu() {
            super::cpu::attention(&q, &k, &v, self.heads, None)?
        } else {
            let split = |t: &Tensor| -> Result<Tensor> {
                let (b, n, s) = t.dims3()?;
                t.reshape((b, n, self.heads, s / self.heads))?.transpose(1, 2)?.contiguous()
            };
            let scale = ((q.dim(D::Minus1)? / self.heads) as f64).powf(-0.5);
            let scores = (split(&q)?.matmul(&split(&k)?.t()?.contiguous()?)? * scale)?;
            let w = candle_nn::ops::softmax_last_dim(&scores)?;
            w.matmul(&split(&v)?)?.transpose(1, 2)?.flatten_from(2)?
        };
        let x = (x + self.out.forward(&a)?)?;
        let h = self.fc1.forward(&self.ln2.forward(&x)?)?;
        let h = if h.device().is_cpu() {
            super::cpu::quick_gelu(&h)?
        } else {
            (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
        };
        x + self.fc2.forward(&h)?
    }
}

/// The image tower: patch embedding, class token and positions, transformer layers, the class
/// token's final state, the projection into the shared space.
#[derive(Debug, Clone)]
pub struct VisionTower {
    patches: Conv2d,
    class: Tensor,
    positions: Tensor,
    pre_ln: LayerNorm,
    layers: Vec<Layer>,
    post_ln: LayerNorm,
    projection: Linear,
}

impl VisionTower {
    /// The tower under `vb` (the checkpoint's root: `vision_model.*` and `visual_projection`).
    pub fn load(vb: VarBuilder, c: &ClipVisionConfig, projection_dim: usize, precision: Precision) -> Result<Self> {
        let m = vb.pp("vision_model");
        let emb = m.pp("embeddings");
        let e = c.embed_dim;
        let tokens = (c.image_size / c.patch_size).pow(2) + 1;
        let conv = Conv2dConfig { stride: c.patch_size, ..Default::default() };
        Ok(VisionTower {
            patches: Conv2d::new(
                emb.pp("patch_embedding").get((e, c.num_channels, c.patch_size, c.patch_size), "weight")?,
                None,
                conv,
            ),
            class: emb.get(e, "class_embedding")?,
            positions: emb.pp("position_embedding").get((tokens, e), "weight")?,
            pre_ln: layer_norm(e, m.pp("pre_layrnorm"))?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::load(c, m.pp("encoder").pp("layers").pp(i), precision))
                .collect::<Result<_>>()?,
            post_ln: layer_norm(e, m.pp("post_layernorm"))?,
            projection: Linear::load(e, projection_dim, false, vb.pp("visual_projection"), precision)?,
        })
    }

    /// Projected features `[n, projection_dim]` of preprocessed images `[n, channels, h, w]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let n = pixels.dim(0)?;
        let patches = self.patches.forward(pixels)?.flatten_from(2)?.transpose(1, 2)?;
        let class = self.class.reshape((1, 1, ()))?.expand((n, 1, self.class.dim(0)?))?;
        let x = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.positions)?;
        let mut x = self.pre_ln.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let pooled = self.post_ln.forward(&x.i((.., 0, ..))?)?;
        self.projection.forward(&pooled)
    }
}
