//! Cut a media timeline into segments: fixed spans, shots (content-aware), smart spans, audio pauses.
//!
//! Input is what the analysis pass measured per video frame ([`FrameStats`]) and per 10 ms of audio
//! ([`AudioEnergy`]); output is a list of [`Span`]s that tile `[0, duration]`. Nothing here decodes.

mod audio;
mod keyframe;
mod plan;
mod shots;

pub use audio::{leading_silence, AudioEnergy, PauseConfig, ENERGY_HOP_US};
pub use keyframe::{choose_keyframe, frame_quality};
pub use plan::{audio_spans, fixed_spans, smart_spans, spans_from_cuts, validate_tiling, video_spans, SmartConfig};
pub use shots::{Cut, CutKind, FrameStats, ShotConfig, ShotDetector};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A half-open time span `[start_us, end_us)` in microseconds from the start of the media.
///
/// Integer microseconds keep spans exact: one segment's end is bit-for-bit the next one's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start_us: i64,
    pub end_us: i64,
}

impl Span {
    pub fn new(start_us: i64, end_us: i64) -> Self {
        Span { start_us, end_us }
    }

    pub fn duration_us(&self) -> i64 {
        self.end_us - self.start_us
    }
}

pub use crate::types::{AudioSegmentation, VideoSegmentation};

impl std::str::FromStr for VideoSegmentation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "smart" => Ok(VideoSegmentation::Smart),
            "fixed" => Ok(VideoSegmentation::Fixed),
            "content_aware" => Ok(VideoSegmentation::ContentAware),
            _ => Err(Error::invalid(
                "video_segmentation_type",
                format!("{s:?} is not one of smart, fixed, content_aware"),
            )),
        }
    }
}

impl std::str::FromStr for AudioSegmentation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fixed" => Ok(AudioSegmentation::Fixed),
            "content_aware" => Ok(AudioSegmentation::ContentAware),
            _ => Err(Error::invalid("audio_segmentation_type", format!("{s:?} is not one of fixed, content_aware"))),
        }
    }
}

/// How to segment media: the API's segmentation fields plus the tuning of each method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentationConfig {
    /// Default `smart`.
    pub video_segmentation_type: VideoSegmentation,
    /// Default `content_aware`.
    pub audio_segmentation_type: AudioSegmentation,
    /// Seconds per span; required when `video_segmentation_type` is `fixed`.
    pub video_segment_duration: Option<f64>,
    /// Seconds per span; required when `audio_segmentation_type` is `fixed`.
    pub audio_segment_duration: Option<f64>,
    pub shots: ShotConfig,
    pub smart: SmartConfig,
    pub pauses: PauseConfig,
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        SegmentationConfig {
            video_segmentation_type: VideoSegmentation::Smart,
            audio_segmentation_type: AudioSegmentation::ContentAware,
            video_segment_duration: None,
            audio_segment_duration: None,
            shots: ShotConfig::default(),
            smart: SmartConfig::default(),
            pauses: PauseConfig::default(),
        }
    }
}

impl SegmentationConfig {
    /// Check the request the way the API does: durations required for `fixed`, positive and finite.
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, value: Option<f64>, required: bool| -> Result<()> {
            match value {
                None if required => Err(Error::invalid(field, "required when the segmentation type is fixed")),
                Some(v) if !(v.is_finite() && v > 0.0) => {
                    Err(Error::invalid(field, format!("must be a positive number of seconds, got {v}")))
                }
                Some(v) if v > 86_400.0 => {
                    Err(Error::invalid(field, format!("must be at most 86400 seconds, got {v}")))
                }
                _ => Ok(()),
            }
        };
        check(
            "video_segment_duration",
            self.video_segment_duration,
            self.video_segmentation_type == VideoSegmentation::Fixed,
        )?;
        check(
            "audio_segment_duration",
            self.audio_segment_duration,
            self.audio_segmentation_type == AudioSegmentation::Fixed,
        )?;
        self.shots.validate()?;
        self.smart.validate()?;
        self.pauses.validate()
    }
}

pub use crate::types::{secs_to_us, us_to_secs};
