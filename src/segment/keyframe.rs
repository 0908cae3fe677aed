//! Pick the frame that represents a segment: sharp, well exposed, textured, away from transitions.

use super::FrameStats;

/// Mean luma below or above which a frame is black or blown out (0-255).
const DARK: f32 = 20.0;
const BRIGHT: f32 = 235.0;
/// Luma standard deviation under which a frame is flat (a fade, a title card's background).
const FLAT_STD: f32 = 12.0;

/// Mean luma (0-255) and a quality score (higher is better) of an RGB frame.
///
/// Quality is the mean absolute Laplacian of luma (sharpness: blur and motion blur lower it),
/// scaled down for low contrast and set near zero for black, blown-out or flat frames.
pub fn frame_quality(rgb: &[u8], width: usize, height: usize) -> (f32, f32) {
    if width < 3 || height < 3 || rgb.len() < width * height * 3 {
        return (0.0, 0.0);
    }
    let luma: Vec<f32> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let n = luma.len() as f32;
    let mean = luma.iter().sum::<f32>() / n;
    let var = luma.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let std = var.sqrt();
    let mut lap = 0.0f32;
    for y in 1..height - 1 {
        let row = y * width;
        for x in 1..width - 1 {
            let c = luma[row + x];
            let l = luma[row + x - 1] + luma[row + x + 1] + luma[row - width + x] + luma[row + width + x] - 4.0 * c;
            lap += l.abs();
        }
    }
    let sharpness = lap / ((width - 2) * (height - 2)) as f32;
    let exposure = if !(DARK..=BRIGHT).contains(&mean) || std < FLAT_STD { 0.01 } else { 1.0 };
    let contrast = (std / 40.0).min(1.0);
    (mean, (sharpness + 0.1) * contrast * exposure)
}

/// Index (into `stats`) of the best keyframe among frames `first..end`.
///
/// Frames within a few frames of either end are skipped when the segment is long enough (that is
/// where fades and dissolves live), and the score is weighted gently towards the middle.
pub fn choose_keyframe(stats: &[FrameStats], first: usize, end: usize) -> usize {
    let end = end.min(stats.len());
    if first + 1 >= end {
        return first.min(stats.len().saturating_sub(1));
    }
    let len = end - first;
    let margin = (len / 8).min(8);
    let (lo, hi) = (first + margin, end - margin);
    let mut best = (lo + hi) / 2;
    let mut best_score = f32::NEG_INFINITY;
    for (i, st) in stats.iter().enumerate().take(hi).skip(lo) {
        let pos = (i - first) as f32 / (len - 1) as f32;
        let centre_weight = 1.0 - 0.3 * (2.0 * pos - 1.0).abs();
        let score = st.quality * centre_weight;
        if score > best_score {
            best_score = score;
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: impl Fn(usize, usize) -> [u8; 3], w: usize, h: usize) -> Vec<u8> {
        let f = &f;
        (0..h).flat_map(|y| (0..w).flat_map(move |x| f(x, y))).collect()
    }

    #[test]
    fn black_and_flat_frames_score_below_textured_ones() {
        let (w, h) = (32, 24);
        let black = frame(|_, _| [0, 0, 0], w, h);
        let flat = frame(|_, _| [120, 120, 120], w, h);
        let checker = frame(
            |x, y| {
                if (x / 4 + y / 4) % 2 == 0 {
                    [30, 30, 30]
                } else {
                    [220, 220, 220]
                }
            },
            w,
            h,
        );
        let blurred = frame(
            |x, _| {
                let v = (x * 255 / w) as u8;
                [v, v, v]
            },
            w,
            h,
        );
        let q = |f: &[u8]| frame_quality(f, w, h).1;
        assert!(q(&checker) > 10.0 * q(&black));
        assert!(q(&checker) > 10.0 * q(&flat));
        assert!(q(&checker) > q(&blurred), "sharp edges beat a smooth ramp");
    }

    #[test]
    fn keyframe_avoids_dark_frames_at_the_ends() {
        let mut stats: Vec<FrameStats> =
            (0..40).map(|_| FrameStats { quality: 5.0, ..FrameStats::default() }).collect();
        stats[1].quality = 100.0; // inside the margin: a transition frame
        stats[25].quality = 9.0;
        assert_eq!(choose_keyframe(&stats, 0, 40), 25);
        assert_eq!(choose_keyframe(&stats, 7, 8), 7);
    }
}
