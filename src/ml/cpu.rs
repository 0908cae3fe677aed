//! CPU kernels for the transformer steps candle runs slowly on the CPU.
//!
//! - [`attention`]: softmax(q·kᵀ/√d)·v head by head, in blocks of query rows, so a block's
//!   scores stay in cache between the two matrix products (candle writes the whole
//!   `[heads, n, m]` score tensor, reads it back for the softmax and again for the product
//!   with v). Queries, keys and values are read in place from the `[n, state]` projections
//!   (no split into heads, no transposed copy of the keys), and the output is written in the
//!   `[n, state]` layout the output projection reads.
//! - [`gelu`]: the exact (erf) GELU, in parallel chunks. candle's `gelu` is the tanh
//!   approximation and its `gelu_erf` runs on one thread through libm. [`quick_gelu`] is
//!   CLIP's x·σ(1.702·x) in one pass (candle takes three, on one thread).
//!
//! Both use one exponential, [`exp`] (Cephes' `expf`: a range reduction and a degree-6
//! polynomial, within 2 ulp), written so that the compiler vectorises it. The loops are
//! compiled three times: for AVX-512, for AVX2 with FMA and for the baseline, chosen at run
//! time. Other devices keep candle's own operations (the callers check the device).

use candle_core::{bail, Device, Result, Storage, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// `fn $name(args)`: `$body(args)` compiled for the best instruction set this CPU has
/// (AVX-512, AVX2 with FMA, or the baseline), chosen at run time.
macro_rules! best_of {
    (fn $name:ident($($arg:ident: $ty:ty),*) = $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn narrow($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { wide($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

best_of!(fn softmax_best(xs: &mut [f32]) = softmax_slice);
best_of!(fn max_best(xs: &[f32], max: &mut f32) = max_of);
best_of!(fn sum_exp_best(xs: &[f32], max: f32, sum: &mut f32) = sum_exp);
best_of!(fn gelu_best(xs: &mut [f32]) = gelu_slice);
best_of!(fn quick_gelu_best(xs: &mut [f32]) = quick_gelu_slice);
best_of!(fn dot_rows_best(rows: &[f32], x: &[f32], out: &mut [f32]) = dot_rows);
best_of!(fn attend_few_best(q: &[f32], k: &[f32], v: &[f32], s: Shape, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) = attend_few);
best_of!(fn attend_head_best(q: &[f32], k: &[f32], v: &[f32], s: Shape, h: usize, visible: usize, scores: &mut Vec<f32>, o: &mut [f32]) = attend_head);

/// Query rows per task: a 64-row block of scores over 1500 keys is 375 KiB, within L2 (32 rows
/// took 5% longer, 128 rows 5% less, with fewer tasks to share out).
const ROWS: usize = 64;

/// Up to this many query rows (a decoding step, a prompt) are attended row by row with dot
/// products: the matrix-product kernels pack their operands first, which costs more than it
/// saves for one row.
const FEW: usize = 4;

/// Runs `f` over the f32 elements of `t` (made contiguous), which must be on the CPU.
fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { bail!("a CPU kernel was given a tensor on {:?}", t.device()) };
    let all = cpu.as_slice::<f32>()?;
    Ok(f(&all[layout.start_offset()..layout.start_offset() + t.elem_count()]))
}

/// Multi-head attention on the CPU: `q` `[b, n, state]`, `k` and `v` `[b, m, state]`, `heads`
/// heads of `state / heads` channels, scores scaled by 1/√(state / heads); the queries of batch
/// item `i` attend its own keys and values. With `causal` = `Some(offset)`, query row `r` sees
/// keys `0..=offset + r` only (a decoder fed `n` tokens after `offset` cached ones). Returns
/// `[b, n, state]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: Option<usize>) -> Result<Tensor> {
    let (b, n, state) = q.dims3()?;
    let (kb, m, kstate) = k.dims3()?;
    if b != kb || kstate != state || v.dims() != k.dims() || heads == 0 || state % heads != 0 {
        bail!("attention: q {:?}, k {:?}, v {:?} with {heads} heads", q.dims(), k.dims(), v.dims());
    }
    let mut out = vec![0f32; b * n * state];
    let shape = Shape { m, state, heads, causal };
    with_slice(q, |q| {
        with_slice(k, |k| {
            with_slice(v, |v| {
                out.par_chunks_mut(n * state).enumerate().for_each(|(i, out)| {
                    let (kv, len) = (i * m * state, m * state);
                    attend(&q[i * n * state..][..n * state], &k[kv..][..len], &v[kv..][..len], shape, out)
                })
            })
        })
    })???;
    Tensor::from_vec(out, (b, n, state), &Device::Cpu)
}

#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    state: usize,
    heads: usize,
    causal: Option<usize>,
}

fn attend(q: &[f32], k: &[f32], v: &[f32], s: Shape, out: &mut [f32]) {
    let Shape { m, state, heads, causal } = s;
    let d = state / heads;
    let scale = (d as f32).powf(-0.5);
    if out.len() == state && m >= HEADS_APART {
        let visible = causal.map_or(m, |offset| (offset + 1).min(m));
        out.par_chunks_mut(d).enumerate().for_each_init(Vec::new, |scores: &mut Vec<f32>, (h, o)| {
            attend_head_best(q, k, v, s, h, visible, scores, o)
        });
        return;
    }
    out.par_chunks_mut(ROWS * state).enumerate().for_each_init(Vec::new, |scores: &mut Vec<f32>, (block, rows)| {
        let first = block * ROWS;
        let n = rows.len() / state;
        if n <= FEW {
            return attend_few_best(q, k, v, s, first, scores, rows);
        }
        scores.resize(n * m, 0.0);
        for h in 0..heads {
            // SAFETY: every pointer and stride below addresses inside its slice: q rows
            // first..first + n and k, v rows 0..m, columns h·d..(h + 1)·d of `state`; scores is
            // n × m; the output block is rows 0..n of `rows`, columns h·d..(h + 1)·d.
            unsafe {
                // scores = q[first.., h] · k[.., h]ᵀ · scale
                gemm(
                    n,
                    m,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    q.as_ptr().add(first * state + h * d),
                    1,
                    state as isize,
                    k.as_ptr().add(h * d),
                    state as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for (i, row) in scores.chunks_exact_mut(m).enumerate() {
                let visible = causal.map_or(m, |offset| (offset + first + i + 1).min(m));
                softmax(row, visible);
            }
            // SAFETY: as above.
            unsafe {
                gemm(
                    n,
                    d,
                    m,
                    rows.as_mut_ptr().add(h * d),
                    1,
                    state as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    m as isize,
                    v.as_ptr().add(h * d),
                    1,
                    state as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
    });
}

/// Attention of query rows `first..` (as many as `out` holds) one at a time: scores by dot
/// products, softmax, then the weighted sum of the values.
#[inline(always)]
fn attend_few(q: &[f32], k: &[f32], v: &[f32], s: Shape, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    let Shape { m, state, heads, causal } = s;
    let d = state / heads;
    for (i, out_row) in out.chunks_exact_mut(state).enumerate() {
        let row = first + i;
        let visible = causal.map_or(m, |offset| (offset + row + 1).min(m));
        for (h, o) in out_row.chunks_exact_mut(d).enumerate() {
            attend_head(&q[row * state..][..state], k, v, s, h, visible, scores, o);
        }
    }
}

/// Head `h` of one query row `q` (`state` elements) over the first `visible` keys, into `o`
/// (that head's `state / heads` output channels).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: Shape,
    h: usize,
    visible: usize,
    scores: &mut Vec<f32>,
    o: &mut [f32],
) {
    let d = s.state / s.heads;
    let scale = (d as f32).powf(-0.5);
    scores.resize(visible, 0.0);
    let q = &q[h * d..][..d];
    for (j, score) in scores.iter_mut().enumerate() {
        *score = dot(q, &k[j * s.state + h * d..][..d]) * scale;
    }
    softmax_slice(scores);
    o.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        o.iter_mut().zip(&v[j * s.state + h * d..][..d]).for_each(|(o, &x)| *o += p * x);
    }
}

/// One query row (a decoding step) over at least this many keys has its heads shared out over
/// the threads: a decoder's cross-attention reads 1500 keys and values per head, which would
/// otherwise run on one thread while the others wait.
const HEADS_APART: usize = 256;

/// Rows of `weights` `[rows, state]` dotted with `x` (`state` elements): a decoder's logits
/// over its vocabulary, `[rows]`. The product reads every weight once, so its speed is that
/// of memory; the rows are split over the threads (candle runs a one-row product on one).
pub fn logits(x: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let (rows, state) = weights.dims2()?;
    if x.elem_count() != state {
        bail!("logits: x {:?} against weights {:?}", x.dims(), weights.dims());
    }
    // Four chunks a thread at least, so a 384-row layer is shared out too.
    let chunk = rows.div_ceil(4 * rayon::current_num_threads()).clamp(32, 2048);
    let mut out = vec![0f32; rows];
    with_slice(x, |x| {
        with_slice(weights, |w| {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(c, o)| dot_rows_best(&w[c * chunk * state..][..o.len() * state], x, o))
        })
    })??;
    Tensor::from_vec(out, rows, &Device::Cpu)
}

/// Up to this many rows, [`linear`] runs the product with dot products; beyond, the
/// matrix-product kernels' packing pays for itself. The rows and a tile of weights stay in the
/// 1 MiB L2 of this CPU (64 rows of 3,072 inputs are 768 KiB).
pub const FEW_ROWS: usize = 64;

/// `x · wᵀ (+ bias)` for a few rows of `x` (`[.., inputs]`, at most [`FEW_ROWS`] rows) and
/// `w` `[outputs, inputs]` as stored (a linear layer's weight), on the CPU.
///
/// The matrix-product kernels pack both operands into panels on every call. For a few rows
/// (one image's 50 tokens in CLIP, a decoder's prompt) packing the weights costs as much as
/// the product (a third of CLIP's time at batch 1). Here a tile of 4 rows of `x` and 4 rows of
/// `w` is dotted in 16 running sums in registers, reading both in place; the weight rows are
/// shared out over the threads.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (outputs, inputs) = w.dims2()?;
    let rows = x.elem_count() / inputs.max(1);
    if x.dims().last() != Some(&inputs) || rows > FEW_ROWS || bias.is_some_and(|b| b.dims() != [outputs]) {
        bail!("linear: x {:?}, weight {:?}, bias {:?}", x.dims(), w.dims(), bias.map(|b| b.dims()));
    }
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("x has a last dimension") = outputs;
    if rows == 0 || outputs == 0 {
        return Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu);
    }
    // Column blocks of whole tiles (of 4 columns with AVX-512, 3 with AVX2), four a thread at least.
    let block = outputs.div_ceil(4 * rayon::current_num_threads()).next_multiple_of(12);
    let blocks: Vec<Vec<f32>> = with_slice(x, |x| {
        with_slice(w, |w| {
            (0..outputs.div_ceil(block))
                .into_par_iter()
                .map(|b| {
                    let cols = block.min(outputs - b * block);
                    let mut out = vec![0f32; rows * cols];
                    products_best(x, &w[b * block * inputs..][..cols * inputs], inputs, &mut out);
                    out
                })
                .collect()
        })
    })??;
    let mut out = vec![0f32; rows * outputs];
    for (b, part) in blocks.iter().enumerate() {
        let cols = part.len() / rows.max(1);
        for (o, p) in out.chunks_exact_mut(outputs).zip(part.chunks_exact(cols)) {
            o[b * block..][..cols].copy_from_slice(p);
        }
    }
    if let Some(bias) = bias {
        let bias = bias.to_vec1::<f32>()?;
        for o in out.chunks_exact_mut(outputs) {
            o.iter_mut().zip(&bias).for_each(|(o, b)| *o += b);
        }
    }
    Tensor::from_vec(out, dims, &Device::Cpu)
}

/// Rows and weight rows per tile of [`linear`].
const TILE: usize = 4;

/// `out[r][c]` = x row `r` · w row `c` (`x` `[rows, k]`, `w` `[cols, k]`, `out` `[rows, cols]`),
/// with the best kernel this CPU has.
fn products_best(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { x86::products_512(x, w, k, out) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { x86::products_256(x, w, k, out) };
        }
    }
    products_portable(x, w, k, out);
}

fn products_portable(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
    let cols = w.len() / k;
    for (o, xr) in out.chunks_exact_mut(cols).zip(x.chunks_exact(k)) {
        dot_rows(w, xr, o);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The tiles of [`super::linear`] in AVX-512 and AVX2 (with FMA) intrinsics: fused
    //! multiply-adds, which the portable loops cannot ask for without making the baseline call
    //! a software `fma`.
    use std::arch::x86_64::*;

    use super::TILE;

    /// Tiles of `R` x rows by `C` w rows in 512-bit lanes, the tail of `k` masked.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_512<const R: usize, const C: usize>(x: *const f32, w: *const f32, k: usize) -> [[f32; C]; R] {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut i = 0;
        while i < k {
            let left = k - i;
            let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
            let mut wv = [_mm512_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, w.add(c * k + i));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(r * k + i));
                for (a, v) in acc.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xv, *v, *a);
                }
            }
            i += 16;
        }
        // Loops, not `map`: a closure would not inherit this function's target features.
        let mut sums = [[0f32; C]; R];
        for (s, a) in sums.iter_mut().zip(&acc) {
            for (s, a) in s.iter_mut().zip(a) {
                *s = _mm512_reduce_add_ps(*a);
            }
        }
        sums
    }

    /// Tiles of `R` x rows by `C` w rows in 256-bit lanes, the tail of `k` in scalars.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_256<const R: usize, const C: usize>(x: *const f32, w: *const f32, k: usize) -> [[f32; C]; R] {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let full = k / 8 * 8;
        let mut i = 0;
        while i < full {
            let mut wv = [_mm256_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(w.add(c * k + i));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_ps(x.add(r * k + i));
                for (a, v) in acc.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(xv, *v, *a);
                }
            }
            i += 8;
        }
        let mut sums = [[0f32; C]; R];
        for (r, (sums, acc)) in sums.iter_mut().zip(&acc).enumerate() {
            for (c, (s, a)) in sums.iter_mut().zip(acc).enumerate() {
                let quad = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
                let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
                *s = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)));
                for j in full..k {
                    *s += *x.add(r * k + j) * *w.add(c * k + j);
                }
            }
        }
        sums
    }

    /// Every tile of `out` (`[rows, cols]`), weight tiles outermost so that a tile's weight
    /// rows stay in L1 while all the rows of `x` pass by.
    macro_rules! products {
        ($name:ident, $tile:ident, $feature:literal, $c:expr) => {
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
                const C: usize = $c;
                let (rows, cols) = (x.len() / k, w.len() / k);
                let put = |out: &mut [f32], r0: usize, c0: usize, tile: &[[f32; C]]| {
                    for (r, row) in tile.iter().enumerate() {
                        out[(r0 + r) * cols + c0..][..C].copy_from_slice(row);
                    }
                };
                let mut c0 = 0;
                while c0 + C <= cols {
                    let wp = w.as_ptr().add(c0 * k);
                    let mut r0 = 0;
                    while r0 + TILE <= rows {
                        put(out, r0, c0, &$tile::<TILE, C>(x.as_ptr().add(r0 * k), wp, k));
                        r0 += TILE;
                    }
                    for r in r0..rows {
                        put(out, r, c0, &$tile::<1, C>(x.as_ptr().add(r * k), wp, k));
                    }
                    c0 += C;
                }
                for c in c0..cols {
                    let wp = w.as_ptr().add(c * k);
                    for r in 0..rows {
                        out[r * cols + c] = $tile::<1, 1>(x.as_ptr().add(r * k), wp, k)[0][0];
                    }
                }
            }
        };
    }
    products!(products_512, tile_512, "avx512f", TILE);
    // 16 registers in AVX2: 4 x 3 sums, 3 weight vectors and one of x.
    products!(products_256, tile_256, "avx2,fma", 3);
}

#[inline(always)]
fn dot_rows(rows: &[f32], x: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(x.len())) {
        *o = dot(row, x);
    }
}

/// Σ aᵢbᵢ, in 16 running sums (so it vectorises).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let (a, b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a.remainder().iter().zip(b.remainder()).map(|(x, y)| x * y).sum();
    for (a, b) in a.zip(b) {
        for ((l, x), y) in lanes.iter_mut().zip(a).zip(b) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// log Σ eˣⁱ, computed around the largest xᵢ; -∞ entries (masked tokens) count for nothing,
/// and it is -∞ when all are.
pub fn log_sum_exp(xs: &[f32]) -> f32 {
    let mut max = f32::NEG_INFINITY;
    max_best(xs, &mut max);
    if max == f32::NEG_INFINITY || max.is_nan() {
        return max;
    }
    let mut sum = 0.0;
    sum_exp_best(xs, max, &mut sum);
    max + sum.ln()
}

#[inline(always)]
fn max_of(xs: &[f32], max: &mut f32) {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(x);
        }
    }
    *max = lanes.iter().copied().fold(tail, f32::max);
}

/// Σ e^(xᵢ - max); terms under e⁻⁸⁷ (-∞ ones among them) are 0.
#[inline(always)]
fn sum_exp(xs: &[f32], max: f32, sum: &mut f32) {
    const LANES: usize = 16;
    let term = |x: f32| if x - max < -87.0 { 0.0 } else { exp(x - max) };
    let mut lanes = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| term(x)).sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += term(x);
        }
    }
    *sum = lanes.iter().sum::<f32>() + tail;
}

/// The exact GELU, x·Φ(x), of a CPU tensor (any shape), in parallel chunks.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    elementwise(x, gelu_best)
}

/// CLIP's "quick" GELU, x·σ(1.702·x), of a CPU tensor (any shape), in parallel chunks.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    elementwise(x, quick_gelu_best)
}

/// `f` applied in place to a copy of `x`, in parallel chunks.
fn elementwise(x: &Tensor, f: fn(&mut [f32])) -> Result<Tensor> {
    let mut out = vec![0f32; x.elem_count()];
    with_slice(x, |xs| {
        out.par_chunks_mut(16 * 1024).zip(xs.par_chunks(16 * 1024)).for_each(|(o, x)| {
            o.copy_from_slice(x);
            f(o);
        })
    })?;
    Tensor::from_vec(out, x.shape(), &Device::Cpu)
}

/// Softmax of `row[..visible]` in place; the rest of the row is set to zero.
fn softmax(row: &mut [f32], visible: usize) {
    let (live, hidden) = row.split_at_mut(visible);
    hidden.fill(0.0);
    softmax_best(live);
}

#[inline(always)]
fn softmax_slice(xs: &mut [f32]) {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut sums = [0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c) {
            *x = exp(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    xs.iter_mut().for_each(|x| *x *= inv);
}

#[inline(always)]
fn gelu_slice(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2)));
}

#[inline(always)]
fn quick_gelu_slice(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x /= 1.0 + exp(-1.702 * *x));
}

/// eˣ (Cephes' `expf`), for x in [-87, 88] (clamped there: e⁻⁸⁷ is 1.6e-38, and larger
/// arguments do not occur after a softmax's max is taken off).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // n = round(x / ln 2), by the 1.5·2²³ trick (vectorises where `round` does not).
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// erf(x) (Abramowitz and Stegun 7.1.26: absolute error under 1.5e-7, 5e-7 in f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4_f32;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_7;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::D;

    #[test]
    fn exp_and_erf_are_within_a_few_ulp_of_libm() {
        let mut worst_exp = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst_exp = worst_exp.max(((got - want) / want).abs());
            x += 0.001_7;
        }
        assert!(worst_exp < 3e-7, "exp: relative error {worst_exp}");
        assert_eq!(exp(-1000.0), (-87f32).exp(), "clamped, not garbage");
        let mut worst_erf = 0f64;
        let mut x = -6.0f64;
        while x < 6.0 {
            let want = libm_erf(x);
            worst_erf = worst_erf.max((f64::from(erf(x as f32)) - want).abs());
            x += 0.000_9;
        }
        assert!(worst_erf < 6e-7, "erf: absolute error {worst_erf}");
    }

    /// erf by its series and continued fraction in f64, as a reference.
    fn libm_erf(x: f64) -> f64 {
        // erf = 1 - erfc; erfc from the Numerical Recipes Chebyshev fit (relative error 1.2e-7
        // would not do): use the Taylor series near zero and the continued fraction beyond.
        let a = x.abs();
        let v = if a < 3.0 {
            let mut sum = 0f64;
            let mut term = a;
            let mut k = 0f64;
            while term.abs() > 1e-17 {
                sum += term / (2.0 * k + 1.0);
                k += 1.0;
                term *= -a * a / k;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0f64;
            for k in (1..60).rev() {
                f = f64::from(k) / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }

    /// The same attention in candle's operations: heads, scaled scores, mask, softmax.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: Option<usize>) -> Tensor {
        let split = |x: &Tensor| {
            let (b, n, s) = x.dims3().unwrap();
            x.reshape((b, n, heads, s / heads)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap()
        };
        let (n, m, state) = (q.dim(1).unwrap(), k.dim(1).unwrap(), q.dim(2).unwrap());
        let scale = ((state / heads) as f64).powf(-0.5);
        let scores =
            (split(q).matmul(&split(k).transpose(2, 3).unwrap().contiguous().unwrap()).unwrap() * scale).unwrap();
        let scores = match causal {
            Some(offset) => {
                let mask: Vec<f32> = (0..n)
                    .flat_map(|i| (0..m).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 }))
                    .collect();
                scores.broadcast_add(&Tensor::from_vec(mask, (n, m), &Device::Cpu).unwrap()).unwrap()
            }
            None => scores,
        };
        let w = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        w.matmul(&split(v)).unwrap().transpose(1, 2).unwrap().flatten_from(2).unwrap()
    }

    #[test]
    fn attention_matches_candles_operations() {
        let dev = Device::Cpu;
        // Sizes that leave a partial block of rows and a partial chunk of lanes; an encoder
        // (no mask), a decoder prompt (causal after cached tokens) and one decoding step.
        // A batch of three images' tokens, each attending its own keys only. One step over
        // 300 keys has its heads shared out: cross-attention, and self-attention after 260
        // cached tokens (the last 39 keys hidden).
        for (b, n, m, causal) in [
            (1, 75, 75, None),
            (1, 5, 12, Some(7)),
            (1, 3, 30, Some(2)),
            (1, 1, 40, None),
            (3, 50, 50, None),
            (1, 1, 300, None),
            (1, 1, 300, Some(260)),
        ] {
            let q = Tensor::randn(0f32, 1.0, (b, n, 48), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (b, m, 48), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, (b, m, 48), &dev).unwrap();
            let got = attention(&q, &k, &v, 6, causal).unwrap();
            let want = reference(&q, &k, &v, 6, causal);
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "b {b}, n {n}, m {m}, causal {causal:?}: differs by {diff}");
        }
        let q = Tensor::zeros((1, 3, 48), candle_core::DType::F32, &dev).unwrap();
        assert!(attention(&q, &q, &q, 5, None).is_err(), "48 channels do not split into 5 heads");
        let two = Tensor::zeros((2, 3, 48), candle_core::DType::F32, &dev).unwrap();
        assert!(attention(&two, &q, &q, 6, None).is_err(), "two batch items of queries, one of keys");
    }

    #[test]
    fn log_sum_exp_matches_candles_and_skips_masked_entries() {
        let x = Tensor::randn(0f32, 4.0, 51_865, &Device::Cpu).unwrap();
        let mut xs = x.to_vec1::<f32>().unwrap();
        let want = x.exp().unwrap().sum_all().unwrap().log().unwrap().to_scalar::<f32>().unwrap();
        let got = log_sum_exp(&xs);
        assert!((got - want).abs() < 1e-4 * want.abs(), "{got} against {want}");
        // Masking every entry but three leaves the log-sum of those three.
        let kept = [7, 20_000, 51_864];
        for (i, x) in xs.iter_mut().enumerate() {
            if !kept.contains(&i) {
                *x = f32::NEG_INFINITY;
            }
        }
        let three = kept.iter().map(|&i| f64::from(xs[i]).exp()).sum::<f64>().ln() as f32;
        assert!((log_sum_exp(&xs) - three).abs() < 1e-5, "{} against {three}", log_sum_exp(&xs));
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 40]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn a_linear_layer_of_few_rows_is_candles_product() {
        let dev = Device::Cpu;
        // Inputs that leave a tail of lanes (7, 40, 390) and none (384); rows and outputs that
        // leave partial tiles; one row, and the most this kernel takes.
        for (rows, inputs, outputs) in [(1, 40, 5), (2, 7, 13), (5, 384, 130), (50, 390, 769), (FEW_ROWS, 96, 24)] {
            let x = Tensor::randn(0f32, 1.0, (1, rows, inputs), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (outputs, inputs), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, outputs, &dev).unwrap();
            let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
            for bias in [None, Some(&b)] {
                let got = linear(&x, &w, bias).unwrap();
                assert_eq!(got.dims(), [1, rows, outputs]);
                let want = match bias {
                    Some(b) => want.broadcast_add(b).unwrap(),
                    None => want.clone(),
                };
                let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(
                    diff < 1e-3,
                    "{rows}x{inputs} by {outputs}x{inputs}, bias {}: differs by {diff}",
                    bias.is_some()
                );
            }
        }
        let w = Tensor::zeros((8, 16), candle_core::DType::F32, &dev).unwrap();
        let empty = Tensor::zeros((0, 16), candle_core::DType::F32, &dev).unwrap();
        assert_eq!(linear(&empty, &w, None).unwrap().dims(), [0, 8], "an empty batch gives an empty product");
        let too_many = Tensor::zeros((FEW_ROWS + 1, 16), candle_core::DType::F32, &dev).unwrap();
        assert!(linear(&too_many, &w, None).is_err(), "more rows than the kernel takes");
        let narrow = Tensor::zeros((2, 15), candle_core::DType::F32, &dev).unwrap();
        assert!(linear(&narrow, &w, None).is_err(), "15 inputs against weights of 16");
    }

    #[test]
    fn the_avx2_and_avx512_tiles_agree_with_the_portable_loop() {
        // `linear` runs the best kernel only; this runs each one this CPU has, on shapes with
        // partial tiles of rows (7) and of columns (3 and 4 wide), and tails of 8 and 16 lanes.
        let (rows, k, cols) = (7, 45, 14);
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let w: Vec<f32> = (0..cols * k).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        let mut want = vec![0f32; rows * cols];
        products_portable(&x, &w, k, &mut want);
        let check = |got: &[f32], kernel: &str| {
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((g - e).abs() < 1e-4, "{kernel}: row {} column {}: {g} against {e}", i / cols, i % cols);
            }
        };
        #[cfg(target_arch = "x86_64")]
        {
            let mut got = vec![0f32; rows * cols];
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { x86::products_256(&x, &w, k, &mut got) };
                check(&got, "avx2");
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                unsafe { x86::products_512(&x, &w, k, &mut got) };
                check(&got, "avx512");
            }
        }
        let mut got = vec![0f32; rows * cols];
        products_best(&x, &w, k, &mut got);
        check(&got, "best");
    }

    #[test]
    fn logits_are_the_product_with_the_weights() {
        let w = Tensor::randn(0f32, 1.0, (5000, 40), &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 40), &Device::Cpu).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap().squeeze(0).unwrap();
        let diff = (logits(&x, &w).unwrap() - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
        assert!(logits(&x.narrow(1, 0, 39).unwrap(), &w).is_err(), "39 values against rows of 40");
    }

    #[test]
    fn gelu_is_the_erf_gelu_and_quick_gelu_the_sigmoid_one() {
        let x = Tensor::randn(0f32, 3.0, (3, 20_001), &Device::Cpu).unwrap();
        let diff = (gelu(&x).unwrap() - x.gelu_erf().unwrap()).unwrap().abs().unwrap();
        let worst = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(worst < 1e-5, "differs from candle's gelu_erf by {worst}");
        let want = (&x * candle_nn::ops::sigmoid(&(&x * 1.702).unwrap()).unwrap()).unwrap();
        let diff = (quick_gelu(&x).unwrap() - want).unwrap().abs().unwrap();
        let worst = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(worst < 1e-5, "quick GELU differs from x·σ(1.702x) by {worst}");
    }
}
