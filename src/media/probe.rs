//! Probe a file: container, duration, streams and their parameters.

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::types::{AudioInfo, MediaInfo, MediaType, VideoInfo};

/// Probe `path`. Empty, truncated, corrupt and non-media files give [`Error::Media`] naming the file.
pub fn probe(path: &Path) -> Result<MediaInfo> {
    super::init();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::media(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(Error::media(path, "the file is empty (0 bytes)"));
    }
    if super::is_still_image(path) {
        let (width, height) =
            image::image_dimensions(path).map_err(|e| Error::media(path, format!("cannot read image header: {e}")))?;
        let format = image::ImageReader::open(path)
            .ok()
            .and_then(|r| r.with_guessed_format().ok())
            .and_then(|r| r.format())
            .map(|f| format!("{f:?}").to_lowercase())
            .unwrap_or_default();
        return Ok(MediaInfo {
            media_type: MediaType::Image,
            container: format.clone(),
            duration: None,
            video: Some(VideoInfo { codec: format, width, height, frame_rate: 0.0, frame_count: Some(1), rotation: 0 }),
            audio: None,
        });
    }
    let input = open_input(path)?;
    let video = input
        .streams()
        .filter(is_real_video)
        .max_by_key(|s| s.parameters().medium() == ff::media::Type::Video)
        .map(|s| video_info(path, &s))
        .transpose()?;
    let audio = input.streams().best(ff::media::Type::Audio).map(|s| audio_info(path, &s)).transpose()?;
    let media_type = match (&video, &audio) {
        (Some(_), _) => MediaType::Video,
        (None, Some(_)) => MediaType::Audio,
        (None, None) => return Err(Error::media(path, "no video or audio stream found: is this a media file?")),
    };
    let duration = (input.duration() > 0).then(|| input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE));
    Ok(MediaInfo { media_type, container: input.format().name().to_string(), duration, video, audio })
}

pub(super) fn open_input(path: &Path) -> Result<ff::format::context::Input> {
    ff::format::input(path).map_err(|e| Error::media(path, format!("FFmpeg cannot open it: {e}")))
}

/// A video stream that carries moving pictures, not the cover art that audio files attach.
pub(super) fn is_real_video(stream: &ff::format::stream::Stream) -> bool {
    stream.parameters().medium() == ff::media::Type::Video
        && !stream.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC)
}

fn codec_name(params: &ff::codec::Parameters) -> String {
    params.id().name().to_string()
}

/// A codec context for a stream, not opened yet; `what` names the stream in errors.
pub(super) fn codec_context(
    path: &Path,
    stream: &ff::format::stream::Stream,
    what: &str,
) -> Result<ff::codec::context::Context> {
    ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| Error::media(path, format!("bad {what} stream parameters: {e}")))
}

fn video_info(path: &Path, stream: &ff::format::stream::Stream) -> Result<VideoInfo> {
    let decoder = codec_context(path, stream, "video")?
        .decoder()
        .video()
        .map_err(|e| Error::media(path, format!("no decoder for the video stream: {e}")))?;
    let rate = rational_to_f64(stream.avg_frame_rate()).or_else(|| rational_to_f64(stream.rate())).unwrap_or(0.0);
    Ok(VideoInfo {
        codec: codec_name(&stream.parameters()),
        width: decoder.width(),
        height: decoder.height(),
        frame_rate: rate,
        frame_count: u64::try_from(stream.frames()).ok().filter(|&n| n > 0),
        rotation: rotation(stream),
    })
}

fn audio_info(path: &Path, stream: &ff::format::stream::Stream) -> Result<AudioInfo> {
    let decoder = codec_context(path, stream, "audio")?
        .decoder()
        .audio()
        .map_err(|e| Error::media(path, format!("no decoder for the audio stream: {e}")))?;
    Ok(AudioInfo { codec: codec_name(&stream.parameters()), channels: decoder.channels(), sample_rate: decoder.rate() })
}

pub(super) fn rational_to_f64(r: ff::Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r.numerator()) / f64::from(r.denominator()))
}

/// Clockwise display rotation from the stream's display matrix, as `ffmpeg` itself applies it.
fn rotation(stream: &ff::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            // SAFETY: a display matrix is nine 32-bit integers; the length is checked above.
            let ccw = unsafe { ff::ffi::av_display_rotation_get(side.data().as_ptr().cast::<i32>()) };
            if ccw.is_finite() {
                let cw = (-ccw).round() as i64;
                return (((cw % 360) + 360) % 360 / 90 * 90) as u32;
            }
        }
    }
    0
}
