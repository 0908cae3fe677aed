//! Still images: decoding (files, query images, stored thumbnails), orientation, resizing and the
//! JPEG and GIF encoders of thumbnails and previews.

use std::io::Cursor;
use std::path::Path;

use image::{codecs::gif::GifEncoder, codecs::jpeg::JpegEncoder, Delay, Frame, RgbImage};

use crate::error::{Error, Result};

/// Load a still image file as 8-bit RGB (alpha composited onto white).
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader.decode().map_err(|e| Error::media(path, format!("cannot decode image: {e}")))?;
    Ok(flatten_alpha(img))
}

/// Decode encoded image bytes as 8-bit RGB (alpha composited onto white, as the reference CLIP
/// processor does); `name` says where the bytes came from in the error.
pub(crate) fn decode_image_bytes(bytes: &[u8], name: &str) -> std::result::Result<RgbImage, String> {
    image::load_from_memory(bytes).map(flatten_alpha).map_err(|e| format!("cannot decode {name} as an image: {e}"))
}

/// RGB with any alpha composited onto white.
pub fn flatten_alpha(img: image::DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u32::from(p[3]);
        let mix = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
    })
}

/// Turn a frame upright by its clockwise display rotation (0, 90, 180 or 270 degrees).
pub(crate) fn rotate(img: RgbImage, degrees: u32) -> RgbImage {
    match degrees {
        90 => image::imageops::rotate90(&img),
        180 => image::imageops::rotate180(&img),
        270 => image::imageops::rotate270(&img),
        _ => img,
    }
}

/// Resize to fit `max_side` on the longer side (never upscaling).
pub(crate) fn resize_within(img: &RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = super::fit_within(img.width(), img.height(), max_side);
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// Encode a thumbnail.
pub(crate) fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality.clamp(1, 100)).encode_image(img).map_err(|e| {
        Error::Internal(format!("JPEG encoding of a {}x{} thumbnail failed: {e}", img.width(), img.height()))
    })?;
    Ok(buf)
}

/// Encode a looping preview GIF.
pub(crate) fn encode_gif(frames: &[RgbImage], frame_ms: u32) -> Result<Vec<u8>> {
    let fail = |e: image::ImageError| Error::Internal(format!("GIF encoding of a preview failed: {e}"));
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = GifEncoder::new_with_speed(&mut buf, 20);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(fail)?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(frame_ms, 1))).map_err(fail)?;
        }
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_become_white() {
        let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0])));
        assert_eq!(flatten_alpha(img).get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn bytes_that_are_not_an_image_name_their_source() {
        let err = decode_image_bytes(b"not an image", "image_data").unwrap_err();
        assert!(err.contains("image_data"), "{err}");
    }
}
