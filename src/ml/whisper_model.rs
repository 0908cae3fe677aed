//! Whisper's encoder and decoder (OpenAI's `model.py`), loaded from HF names, with a key-value
//! cache for the decoder's self-attention: each decoding step runs only the new token against
//! the cached keys and values of the tokens before it, and cross-attention keys and values are
//! computed once per window. (candle's own Whisper runs every token of the window again at
//! every step: quadratic in the length of the transcript.) On the CPU, attention, GELU and the
//! vocabulary product run on the kernels in `cpu.rs`.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{embedding, Conv1d, Conv1dConfig, Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::whisper::Config;

use super::layer_norm;
use super::quant::{Linear, Precision};

/// Multi-head attention; the key projection has no bias.
#[derive(Debug, Clone)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: usize,
}

impl Attention {
    /// `keys`: the precision of the key and value projections, `rest` that of the others.
    fn load(n_state: usize, n_head: usize, vb: VarBuilder, keys: Precision, rest: Precision) -> Result<Self> {
        let linear = |bias, vb, precision| Linear::load(n_state, n_state, bias, vb, precision);
        Ok(Attention {
            query: linear(true, vb.pp("q_proj"), rest)?,
            key: linear(false, vb.pp("k_proj"), keys)?,
            value: linear(true, vb.pp("v_proj"), keys)?,
            out: linear(true, vb.pp("out_proj"), rest)?,
            n_head,
        })
    }

    /// `[batch, ctx, state]` to `[batch, head, ctx, state / head]`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, s) = x.dims3()?;
        x.reshape((b, n, self.n_head, s / self.n_head))?.transpose(1, 2)
    }

    /// Attention of the queries `q` `[1, n, state]` over the keys `k` and values `v`
    /// `[1, m, state]` (the projections, not yet split into heads), then the output
    /// projection. With `causal` = `Some(offset)`, query `i` sees keys `0..=offset + i`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, causal: Option<usize>) -> Result<Tensor> {
        let wv = if q.device().is_cpu() {
            super::cpu::attention(q, k, v, self.n_head, causal)?
        } else {
            let (q, k, v) = (self.heads(q)?, self.heads(k)?, self.heads(v)?);
            let scale = (q.dim(D::Minus1)? as f64).powf(-0.25);
            let q = (q * scale)?;
            let k = (k.transpose(2, 3)? * scale)?;
            let mut qk = q.contiguous()?.matmul(&k.contiguous()?)?;
            if let Some(offset) = causal {
                let (n, m) = (qk.dim(2)?, qk.dim(3)?);
                let mask: Vec<f32> = (0..n)
                    .flat_map(|i| (0..m).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 }))
                    .collect();
                qk = qk.broadcast_add(&Tensor::from_vec(mask, (n, m), qk.device())?)?;
            }
            let w = candle_nn::ops::softmax_last_dim(&qk)?;
            w.matmul(&v.contiguous()?)?.transpose(1, 2)?.flatten_from(2)?
        };
        self.out.forward(&wv)
    }
}

/// GELU as Whisper has it (the exact, erf one).
fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        super::cpu::gelu(x)
    } else {
        x.gelu_erf()
    }
}

/// Keys and values of one attention, `[1, tokens, state]` each.
type KeyValues = (Tensor, Tensor);

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

impl Block {
    /// A block with its linear layers in `precision`, except cross-attention's keys and values,
    /// which are f32: they are computed once per window over its 1500 audio positions, where
    /// the 8-bit product is slower than the f32 one.
    fn load(n_state: usize, n_head: usize, cross: bool, vb: VarBuilder, precision: Precision) -> Result<Self> {
        let cross = if cross {
            Some((
                Attention::load(n_state, n_head, vb.pp("encoder_attn"), Precision::F32, precision)?,
                layer_norm(n_state, vb.pp("encoder_attn_layer_norm"))?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn: Attention::load(n_state, n_head, vb.pp("self_attn"), precision, precision)?,
            attn_ln: layer_norm(n_state, vb.pp("self_attn_layer_norm"))?,
            cross,
            fc1: Linear::load(n_state, 4 * n_state, true, vb.pp("fc1"), precision)?,
            fc2: Linear::load(4 * n_state, n_state, true, vb.pp("fc2"), precision)?,
            mlp_ln: layer_norm(n_state, vb.pp("final_layer_norm"))?,
        })
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        x + self.fc2.forward(&gelu(&self.fc1.forward(&self.mlp_ln.forward(x)?)?)?)?
    }

    /// An encoder block: self-attention over the whole window, no mask.
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.attn_ln.forward(x)?;
        let a = &self.attn;
        let out = a.attend(&a.query.forward(&h)?, &a.key.forward(&h)?, &a.value.forward(&h)?, None)?;
        self.mlp(&(x + out)?)
    }

    /// A decoder block over new tokens: self-attention against `cache` (grown by the new keys
    /// and values), then cross-attention against the window's `cross` keys and values.
    fn decode(&self, x: &Tensor, cache: &mut Option<KeyValues>, cross: &KeyValues, fed: usize) -> Result<Tensor> {
        let h = self.attn_ln.forward(x)?;
        let a = &self.attn;
        let (k, v) = (a.key.forward(&h)?, a.value.forward(&h)?);
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
            None => (k, v),
        };
        let causal = (x.dim(1)? > 1).then_some(fed);
        let out = a.attend(&a.query.forward(&h)?, &k, &v, causal)?;
        *cache = Some((k, v));
        let mut x = (x + out)?;
        if let Some((c, ln)) = &self.cross {
            let q = c.query.forward(&ln.forward(&x)?)?;
            x = (&x + c.attend(&q, &cross.0, &cross.1, None)?)?;
        }
        self.mlp(&x)
    }
}

fn sinusoids(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let increment = 10000f32.ln() / (channels / 2 - 1) as f32;
    let inv: Vec<f32> = (0..channels / 2).map(|i| (i as f32 * -increment).exp()).collect();
    let inv = Tensor::new(inv.as_slice(), device)?.unsqueeze(0)?;
    let t = Tensor::arange(0, length as u32, device)?.to_dtype(candle_core::DType::F32)?.unsqueeze(1)?;
    let scaled = t.broadcast_mul(&inv)?;
    Tensor::cat(&[scaled.sin()?, scaled.cos()?], 1)
}

/// The audio encoder: two convolutions, sinusoidal positions, transformer blocks.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<Block>,
    ln_post: LayerNorm,
}

impl Encoder {
    fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<Self> {
        let conv = |cin: usize, stride: usize, vb: VarBuilder| -> Result<Conv1d> {
            let config = Conv1dConfig { padding: 1, stride, groups: 1, dilation: 1, cudnn_fwd_algo: None };
            Ok(Conv1d::new(vb.get((cfg.d_model, cin, 3), "weight")?, Some(vb.get(cfg.d_model, "bias")?), config))
        };
        Ok(Encoder {
            conv1: conv(cfg.num_mel_bins, 1, vb.pp("conv1"))?,
            conv2: conv(cfg.d_model, 2, vb.pp("conv2"))?,
            positions: sinusoids(cfg.max_source_positions, cfg.d_model, vb.device())?,
            blocks: (0..cfg.encoder_layers)
                .map(|i| {
                    Block::load(
                        cfg.d_model,
                        cfg.encoder_attention_heads,
                        false,
                        vb.pp(format!("layers.{i}")),
                        precision,
                    )
                })
                .collect::<Result<_>>()?,
            ln_post: layer_norm(cfg.d_model, vb.pp("layer_norm"))?,
        })
    }

    /// `[1, n_mels, frames]` log-mel features to `[1, frames / 2, state]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let x = gelu(&self.conv1.forward(mel)?)?;
        let x = gelu(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, x.dim(1)?)?)?;
        for block in &self.blocks {
            x = block.encode(&x)?;
        }
        self.ln_post.forward(&x)
    }
}

/// The text decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    tokens: Embedding,
    /// The token embeddings in 8 bits, for the vocabulary product, when the decoder is 8-bit.
    vocab: Option<candle_core::quantized::QMatMul>,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

/// One window's decoding: the cross-attention keys and values of its audio, the self-attention
/// cache of the tokens fed so far, and how many there are.
pub struct DecodeState {
    cross: Vec<KeyValues>,
    cache: Vec<Option<KeyValues>>,
    fed: usize,
}

impl DecodeState {
    /// Tokens fed so far.
    pub fn len(&self) -> usize {
        self.fed
    }

    pub fn is_empty(&self) -> bool {
        self.fed == 0
    }
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<Self> {
        let tokens = embedding(cfg.vocab_size, cfg.d_model, vb.pp("embed_tokens"))?;
        let vocab = Linear::new(tokens.embeddings().clone(), None, precision)?.into_int8();
        Ok(Decoder {
            tokens,
            vocab,
            positions: vb.get((cfg.max_target_positions, cfg.d_model), "embed_positions.weight")?,
            blocks: (0..cfg.decoder_layers)
                .map(|i| {
                    Block::load(cfg.d_model, cfg.decoder_attention_heads, true, vb.pp(format!("layers.{i}")), precision)
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(cfg.d_model, vb.pp("layer_norm"))?,
        })
    }

    /// Start decoding a window whose encoder output is `audio`.
    pub fn start(&self, audio: &Tensor) -> Result<DecodeState> {
        let cross = self
            .blocks
            .iter()
            .map(|b| match &b.cross {
                Some((c, _)) => Ok((c.key.forward(audio)?, c.value.forward(audio)?)),
                None => candle_core::bail!("a decoder block without cross-attention"),
            })
            .collect::<Result<_>>()?;
        Ok(DecodeState { cross, cache: vec![None; self.blocks.len()], fed: 0 })
    }

    /// Feed `tokens` after those already fed; the logits `[vocab]` of the token after them.
    pub fn feed(&self, state: &mut DecodeState, tokens: &[u32]) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 {
            candle_core::bail!("no tokens to feed");
        }
        let device = self.positions.device();
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let mut x = self.tokens.forward(&ids)?.broadcast_add(&self.positions.narrow(0, state.fed, n)?)?;
        for ((block, cache), cross) in self.blocks.iter().zip(state.cache.iter_mut()).zip(&state.cross) {
            x = block.decode(&x, cache, cross, state.fed)?;
        }
        state.fed += n;
        let last = self.ln.forward(&x.narrow(1, n - 1, 1)?)?.squeeze(0)?; // [1, state]
        if let Some(vocab) = &self.vocab {
            vocab.forward(&last)?.squeeze(0)
        } else if last.device().is_cpu() {
            super::cpu::logits(&last, self.tokens.embeddings())
        } else {
            last.matmul(&self.tokens.embeddings().t()?)?.squeeze(0)
        }
    }
}

/// Whisper: the encoder and the cached decoder.
#[derive(Debug, Clone)]
pub struct Model {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Model {
    /// The model with its encoder's and its decoder's linear layers in these precisions.
    pub fn load(vb: &VarBuilder, cfg: &Config, encoder: Precision, decoder: Precision) -> Result<Self> {
        Ok(Model {
            encoder: Encoder::load(vb.pp("model.encoder"), cfg, encoder)?,
            decoder: Decoder::load(vb.pp("model.decoder"), cfg, decoder)?,
        })
    }
}
