//! Probe and decode media: all FFmpeg code of the crate lives in this module.
//!
//! The rest of the crate sees plain Rust values: [`MediaInfo`] from [`probe`], RGB frames and
//! 16 kHz mono PCM from [`decode`], and still images from [`load_image`].

mod decode;
mod image;
mod probe;

pub(crate) use self::image::{decode_image_bytes, encode_gif, encode_jpeg, resize_within, rotate};
pub use self::image::{flatten_alpha, load_image};
pub use crate::types::{AudioInfo, MediaInfo, MediaType, VideoInfo};
pub use decode::{
    decode, decode_audio, samples_to_us, DecodeOptions, Flow, FrameSink, VideoFrame, ANALYSIS_SAMPLE_RATE,
};
pub use probe::probe;

use std::path::Path;
use std::sync::Once;

/// Initialise FFmpeg once per process and keep its own logging quiet: errors reach users through
/// [`Error`] values that name the file, not through FFmpeg's stderr.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

/// Whether the file is a still image (PNG or JPEG) by its magic bytes, whatever its extension.
pub fn is_still_image(path: &Path) -> bool {
    let Ok(reader) = ::image::ImageReader::open(path) else {
        return false;
    };
    let Ok(reader) = reader.with_guessed_format() else {
        return false;
    };
    matches!(reader.format(), Some(::image::ImageFormat::Png | ::image::ImageFormat::Jpeg))
}

/// Size that fits `(width, height)` inside `max_side` on its longer side, keeping the aspect ratio,
/// with even dimensions (some pixel formats need them) and never upscaling.
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longer = width.max(height).max(1);
    let scale = (max_side as f64 / longer as f64).min(1.0);
    let even = |v: f64| ((v.round() as u32) & !1).max(2);
    (even(width as f64 * scale), even(height as f64 * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: (u32, u32, u32), expected: (u32, u32)) {
        assert_eq!(fit_within(input.0, input.1, input.2), expected, "fit_within{input:?}");
    }

    #[test]
    fn fit_within_keeps_aspect_and_even_sizes() {
        check((640, 272, 256), (256, 108));
        check((1280, 720, 256), (256, 144));
        check((176, 144, 256), (176, 144));
        check((720, 1280, 256), (144, 256));
        check((1, 1, 256), (2, 2));
    }
}
