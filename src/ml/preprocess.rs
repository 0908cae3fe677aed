//! CLIP image preprocessing exactly as the reference (HF `CLIPImageProcessor` on PIL) does it:
//! resize the shortest edge with PIL's bicubic resampling, centre-crop, rescale, normalise.
//!
//! PIL's resampling is reproduced bit for bit: the same antialiased bicubic kernel (a = -0.5,
//! support scaled by the downscale factor), the same fixed-point coefficients (22 fractional
//! bits), horizontal pass first with a rounded 8-bit intermediate, then the vertical pass.

use image::RgbImage;
use serde::Deserialize;

/// The fields of `preprocessor_config.json` that CLIP uses. Defaults are openai CLIP's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct PreprocessConfig {
    pub do_resize: bool,
    pub size: SizeSpec,
    pub do_center_crop: bool,
    pub crop_size: CropSize,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// PIL filter id; 3 is bicubic, the only one CLIP checkpoints use.
    pub resample: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    ShortestEdge { shortest_edge: u32 },
    Square(u32),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CropSize {
    HeightWidth { height: u32, width: u32 },
    Square(u32),
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            do_resize: true,
            size: SizeSpec::ShortestEdge { shortest_edge: 224 },
            do_center_crop: true,
            crop_size: CropSize::HeightWidth { height: 224, width: 224 },
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            resample: 3,
        }
    }
}

impl PreprocessConfig {
    fn crop(&self) -> (u32, u32) {
        match self.crop_size {
            CropSize::HeightWidth { height, width } => (height, width),
            CropSize::Square(s) => (s, s),
        }
    }

    /// Output side length (height, width) of [`preprocess`].
    pub fn output_size(&self) -> (u32, u32) {
        self.crop()
    }
}

/// Preprocess one RGB image into a CHW `f32` buffer of `output_size()`.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let mut img = img.clone();
    if cfg.do_resize {
        let (w, h) = (img.width(), img.height());
        let (nw, nh) = match cfg.size {
            // transformers' get_resize_output_image_size: the long edge is truncated with int().
            SizeSpec::ShortestEdge { shortest_edge: s } => {
                if w <= h {
                    (s, (u64::from(s) * u64::from(h) / u64::from(w)) as u32)
                } else {
                    ((u64::from(s) * u64::from(w) / u64::from(h)) as u32, s)
                }
            }
            SizeSpec::Square(s) => (s, s),
        };
        img = resize_bicubic(&img, nw, nh);
    }
    if cfg.do_center_crop {
        img = center_crop(&img, cfg.crop());
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    let scale = if cfg.do_rescale { cfg.rescale_factor } else { 1.0 };
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            // Rescale in f64 then cast (numpy promotes uint8 * float to float64), normalise in f32.
            let mut v = (f64::from(px.0[c]) * scale) as f32;
            if cfg.do_normalize {
                v = (v - cfg.image_mean[c]) / cfg.image_std[c];
            }
            out[c * w * h + i] = v;
        }
    }
    out
}

/// Centre crop as transformers does it: offsets `(size - crop) / 2` rounded down; a crop larger
/// than the image pads with zeros around it.
fn center_crop(img: &RgbImage, (ch, cw): (u32, u32)) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let top = (h - i64::from(ch)).div_euclid(2);
    let left = (w - i64::from(cw)).div_euclid(2);
    RgbImage::from_fn(cw, ch, |x, y| {
        let (sx, sy) = (left + i64::from(x), top + i64::from(y));
        if (0..w).contains(&sx) && (0..h).contains(&sy) {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// PIL's `precompute_coeffs` for the bicubic filter, converted to fixed point as
/// `normalize_coeffs_8bpc` does: per output pixel, the first input index and its integer weights.
fn coefficients(in_size: u32, out_size: u32) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = (((center + support + 0.5) as i64).min(i64::from(in_size)) as usize).saturating_sub(xmin);
            let mut k: Vec<f64> = (0..xmax).map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|w| *w /= total);
            }
            let fixed = k
                .iter()
                .map(|&w| {
                    let v = w * f64::from(1u32 << PRECISION_BITS);
                    (if w < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL `Image.resize(size, BICUBIC)` on an 8-bit RGB image. Pillow runs the horizontal pass
/// first unless the height shrinks by more than twice as much as the width (then vertical
/// first), with a rounded 8-bit image between the passes; the order changes results by +-1.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let (dh, dw) = (i64::from(h) - i64::from(height), i64::from(w) - i64::from(width));
    let vertical_first = dh > 0 && dh > 2 * dw;
    let (mut data, mut cur_w, mut cur_h) = (img.as_raw().clone(), w, h);
    let passes: [bool; 2] = if vertical_first { [false, true] } else { [true, false] };
    for horizontal in passes {
        if horizontal && cur_w != width {
            data = resample_horizontal(&data, cur_w, cur_h, width);
            cur_w = width;
        } else if !horizontal && cur_h != height {
            data = resample_vertical(&data, cur_w, cur_h, height);
            cur_h = height;
        }
    }
    RgbImage::from_raw(width, height, data).expect("sizes match")
}

fn resample_horizontal(src: &[u8], w: u32, h: u32, width: u32) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let coeffs = coefficients(w, width);
    let mut out = vec![0u8; width as usize * h as usize * 3];
    for y in 0..h as usize {
        let row = &src[y * w as usize * 3..];
        for (x, (xmin, k)) in coeffs.iter().enumerate() {
            for c in 0..3 {
                let acc = k
                    .iter()
                    .enumerate()
                    .fold(half, |acc, (i, &kv)| acc + i64::from(row[(xmin + i) * 3 + c]) * i64::from(kv));
                out[(y * width as usize + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

fn resample_vertical(src: &[u8], w: u32, h: u32, height: u32) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let coeffs = coefficients(h, height);
    let stride = w as usize * 3;
    let mut out = vec![0u8; stride * height as usize];
    for (y, (ymin, k)) in coeffs.iter().enumerate() {
        for i in 0..stride {
            let acc = k
                .iter()
                .enumerate()
                .fold(half, |acc, (j, &kv)| acc + i64::from(src[(ymin + j) * stride + i]) * i64::from(kv));
            out[y * stride + i] = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(512, 224), (640, 335), (300, 224), (224, 224), (100, 224)] {
            for (_, k) in coefficients(i, o) {
                let sum: i64 = k.iter().map(|&v| i64::from(v)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{i}->{o}: {sum}");
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_sizes_follow_the_shortest_edge() {
        let img = RgbImage::from_pixel(640, 427, image::Rgb([10, 128, 250]));
        let out = resize_bicubic(&img, 335, 224);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
        let cfg = PreprocessConfig::default();
        let t = preprocess(&img, &cfg);
        assert_eq!(t.len(), 3 * 224 * 224);
        let expect = (10.0f32 / 255.0 - cfg.image_mean[0]) / cfg.image_std[0];
        assert!((t[0] - expect).abs() < 1e-6);
    }
}
