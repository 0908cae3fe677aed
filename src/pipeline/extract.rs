//! Stage 3, extract: a second decode pass that converts only the chosen frames, writing one
//! keyframe thumbnail per video segment (as soon as its frame is decoded) and the preview GIF
//! through the blob store, and turning the plan into segment records.

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;

use super::analyse::Analysis;
use super::plan::Plan;
use super::OutputConfig;
use crate::error::{Error, Result};
use crate::ids::{SegmentId, VideoId};
use crate::jobs::JobContext;
use crate::media::{
    self, encode_gif, encode_jpeg, resize_within, rotate, DecodeOptions, Flow, FrameSink, MediaType, VideoFrame,
};
use crate::segment::SegmentationConfig;
use crate::store::{BlobKey, BlobStore, NewSegment};
use crate::types::SegmentKind;

/// What the second pass wants from a frame.
enum Want {
    /// The keyframe of video segment `i`: stored as soon as it is decoded.
    Thumbnail(usize),
    /// Frame `i` of the preview GIF: kept (small) until the end.
    Gif(usize),
}

struct ExtractSink<'a> {
    targets: BTreeMap<u64, Vec<Want>>,
    rotation: u32,
    video_id: &'a VideoId,
    segments: &'a mut [NewSegment],
    blobs: &'a dyn BlobStore,
    gif: Vec<Option<RgbImage>>,
    output: &'a OutputConfig,
    ctx: &'a JobContext,
}

impl FrameSink for ExtractSink<'_> {
    fn wants_frame(&mut self, index: u64, _time_us: i64) -> bool {
        self.targets.contains_key(&index)
    }

    fn video_frame(&mut self, frame: &VideoFrame<'_>) -> Result<Flow> {
        self.ctx.check()?;
        let Some(wants) = self.targets.remove(&frame.index) else {
            return Ok(Flow::Continue);
        };
        let img = RgbImage::from_raw(frame.width, frame.height, frame.rgb.to_vec())
            .ok_or_else(|| Error::Internal("the decoder delivered a frame of the wrong size".into()))?;
        let img = rotate(img, self.rotation);
        for want in wants {
            match want {
                Want::Thumbnail(i) => {
                    let segment = &mut self.segments[i];
                    let key = BlobKey::Thumbnail(self.video_id, &segment.segment_id);
                    segment.thumbnail_path =
                        Some(self.blobs.put(&key, &encode_jpeg(&img, self.output.thumbnail_quality)?)?);
                }
                Want::Gif(i) => self.gif[i] = Some(resize_within(&img, self.output.gif_size)),
            }
        }
        Ok(if self.targets.is_empty() { Flow::Stop } else { Flow::Continue })
    }
}

/// Store thumbnails (one per video segment) and the preview GIF; return the segment records
/// and the preview's locator.
///
/// Only the preview's small frames are held in memory; each thumbnail is stored as soon as its
/// frame is decoded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extract(
    path: &Path,
    blobs: &dyn BlobStore,
    video_id: &VideoId,
    analysis: &Analysis,
    plan: &Plan,
    config: &SegmentationConfig,
    output: &OutputConfig,
    fresh: bool,
    ctx: &JobContext,
) -> Result<(Vec<NewSegment>, Option<String>)> {
    // An ingest replaces everything the media had; a run's own segmentation adds thumbnails
    // beside the ingest ones and makes no preview.
    if fresh {
        blobs.remove_media(video_id)?;
    }
    let method = config.video_segmentation_type.as_str();
    let mut segments: Vec<NewSegment> = plan
        .video
        .iter()
        .map(|(span, key)| NewSegment {
            segment_id: SegmentId::generate(),
            kind: SegmentKind::Video,
            start_us: span.start_us,
            end_us: span.end_us,
            segmentation_type: method.to_string(),
            keyframe_us: Some(key.map_or(0, |k| analysis.frames[k].time_us)),
            keyframe_frame: Some(key.unwrap_or(0) as u64),
            thumbnail_path: None,
        })
        .collect();
    let mut gif_frames = Vec::new();
    match analysis.info.media_type {
        MediaType::Image => {
            let img = resize_within(&media::load_image(path)?, output.thumbnail_size);
            let key = BlobKey::Thumbnail(video_id, &segments[0].segment_id);
            segments[0].thumbnail_path = Some(blobs.put(&key, &encode_jpeg(&img, output.thumbnail_quality)?)?);
        }
        MediaType::Video => {
            let mut targets: BTreeMap<u64, Vec<Want>> = BTreeMap::new();
            for (i, (_, key)) in plan.video.iter().enumerate() {
                if let Some(k) = key {
                    targets.entry(*k as u64).or_default().push(Want::Thumbnail(i));
                }
            }
            let n = analysis.frames.len();
            let gif_count = if fresh { (output.gif_frames as usize).min(n) } else { 0 };
            for g in 0..gif_count {
                let frame = (g * n + n / 2) / gif_count.max(1);
                targets.entry(frame.min(n - 1) as u64).or_default().push(Want::Gif(g));
            }
            let rotation = analysis.info.video.as_ref().map_or(0, |v| v.rotation);
            let mut sink = ExtractSink {
                targets,
                rotation,
                video_id,
                segments: &mut segments,
                blobs,
                gif: vec![None; gif_count],
                output,
                ctx,
            };
            let opts = DecodeOptions { max_side: output.thumbnail_size, video: true, audio: false, fast: false };
            media::decode(path, &opts, &mut sink)?;
            gif_frames = sink.gif.into_iter().flatten().collect();
        }
        _ => {}
    }
    segments.extend(plan.audio.iter().map(|span| NewSegment {
        segment_id: SegmentId::generate(),
        kind: SegmentKind::Audio,
        start_us: span.start_us,
        end_us: span.end_us,
        segmentation_type: config.audio_segmentation_type.as_str().to_string(),
        keyframe_us: None,
        keyframe_frame: None,
        thumbnail_path: None,
    }));
    let gif_path = if gif_frames.is_empty() {
        None
    } else {
        Some(blobs.put(&BlobKey::Preview(video_id), &encode_gif(&gif_frames, output.gif_frame_ms)?)?)
    };
    Ok((segments, gif_path))
}
