//! Stage 2, plan: cut the analysed timeline into video spans (each with its keyframe) and audio
//! spans, and check that they tile it.

use super::analyse::Analysis;
use crate::error::Result;
use crate::media::MediaType;
use crate::segment::{audio_spans, choose_keyframe, validate_tiling, video_spans, SegmentationConfig, Span};

/// Segments planned for a file, before they are written.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Video spans, each with the frame index of its keyframe (none for a still image).
    pub video: Vec<(Span, Option<usize>)>,
    pub audio: Vec<Span>,
}

/// Cut the analysed timeline into video spans (each with its keyframe's frame index) and audio spans.
pub fn plan(analysis: &Analysis, config: &SegmentationConfig) -> Result<Plan> {
    let d = analysis.duration_us;
    let video = match analysis.info.media_type {
        MediaType::Image => vec![(Span::new(0, 0), None)],
        MediaType::Audio => Vec::new(),
        MediaType::Video => {
            let times: Vec<i64> = analysis.frames.iter().map(|f| f.time_us).collect();
            let spans = video_spans(config, &analysis.cuts, &times, &analysis.audio_db, d);
            spans
                .into_iter()
                .map(|s| {
                    let first = times.partition_point(|&t| t < s.start_us);
                    let end = times.partition_point(|&t| t < s.end_us).max(first + 1);
                    (s, Some(choose_keyframe(&analysis.frames, first, end)))
                })
                .collect()
        }
    };
    let audio = if analysis.info.audio.is_some() { audio_spans(config, &analysis.audio_db, d) } else { Vec::new() };
    let video_only: Vec<Span> = video.iter().map(|(s, _)| *s).collect();
    if !video_only.is_empty() {
        validate_tiling(&video_only, d)?;
    }
    if !audio.is_empty() {
        validate_tiling(&audio, d)?;
    }
    Ok(Plan { video, audio })
}
