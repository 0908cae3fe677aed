//! Segments (time spans of a media item) and the phrases of a transcript.

use serde::{Deserialize, Serialize};

use crate::ids::{SegmentId, VideoId};

super::api_enum! {
    /// Whether a segment cuts the picture timeline or the sound timeline.
    pub enum SegmentKind ("kind") {
        Video = "video",
        Audio = "audio",
    }
}

/// A time span of one media item (`seg_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Segment {
    pub segment_id: SegmentId,
    pub video_id: VideoId,
    /// The prompt run that produced this segmentation; `None` for the ingest segmentation.
    pub run_id: Option<String>,
    pub kind: SegmentKind,
    /// Position in the media's timeline, from 0.
    pub index: u32,
    /// Seconds from the start of the media.
    pub start: f64,
    pub end: f64,
    /// Exact bounds in microseconds: `end_us` of one segment is `start_us` of the next.
    pub start_us: i64,
    pub end_us: i64,
    /// `smart`, `fixed` or `content_aware`.
    pub segmentation_type: String,
    /// Time of the representative frame (video segments).
    pub keyframe_time: Option<f64>,
    /// Index of that frame in decode order.
    pub keyframe_frame: Option<u64>,
    /// JPEG of the keyframe (video segments): where the blob store keeps it.
    pub thumbnail_path: Option<String>,
}

impl Segment {
    /// Whether the instant `time_us` falls in this segment (the last segment holds its end).
    pub(crate) fn holds(&self, time_us: i64, is_last: bool) -> bool {
        time_us >= self.start_us && (time_us < self.end_us || (is_last && time_us <= self.end_us))
    }
}

/// A timed phrase of a transcript: the API's transcript item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Phrase {
    /// Seconds from the start of the media.
    pub start: f64,
    pub end: f64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The API's `video_segmentation_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoSegmentation {
    /// Shots, merged and split into a target length range (see `SmartConfig`). The API's default.
    #[default]
    Smart,
    /// Spans of `video_segment_duration` seconds.
    Fixed,
    /// One segment per shot (see `ShotConfig`).
    ContentAware,
}

/// The API's `audio_segmentation_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSegmentation {
    /// Spans of `audio_segment_duration` seconds.
    Fixed,
    /// Cut at pauses (see `PauseConfig`), so that no word is split.
    #[default]
    ContentAware,
}

impl VideoSegmentation {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoSegmentation::Smart => "smart",
            VideoSegmentation::Fixed => "fixed",
            VideoSegmentation::ContentAware => "content_aware",
        }
    }
}

impl AudioSegmentation {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioSegmentation::Fixed => "fixed",
            AudioSegmentation::ContentAware => "content_aware",
        }
    }
}
