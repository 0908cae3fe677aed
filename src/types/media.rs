//! Indexes, media items and what a probe reads off a file.

use serde::{Deserialize, Serialize};

use crate::ids::{IndexId, VideoId};

/// A named collection of media, the boundary for search (`idx_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Index {
    pub index_id: IndexId,
    pub name: String,
    pub created_at: String,
    /// Media items in the index, whatever their status.
    pub video_count: u64,
}

super::api_enum! {
    /// Processing status of a media item, as the API names it.
    pub enum Status ("status") {
        /// Recorded; waiting for a worker.
        Pending = "pending",
        Processing = "processing",
        Completed = "completed",
        Failed = "failed",
    }
}

super::api_enum! {
    /// What kind of media a file is. Serialised as the API's `media_type`.
    pub enum MediaType ("media_type") {
        Video = "video",
        Audio = "audio",
        Image = "image",
    }
}

/// An ingested file (`vid_...`). Playground media has no `index_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Media {
    pub video_id: VideoId,
    pub index_id: Option<IndexId>,
    pub title: String,
    pub source_path: String,
    /// SHA-256 of the file's bytes, hex.
    pub content_hash: String,
    pub size_bytes: u64,
    /// Known once probed.
    pub media_type: Option<MediaType>,
    pub status: Status,
    /// Why processing failed, naming the file.
    pub error: Option<String>,
    /// Seconds; the exact timeline length that segments tile (0 for images).
    pub duration: Option<f64>,
    pub metadata: Option<MediaInfo>,
    /// Path of the preview GIF (the API's `/videos/{id}/gif`), for video.
    pub gif_path: Option<String>,
    pub idempotency_key: Option<String>,
    /// Problems that did not stop the ingest, such as packets that could not be decoded.
    pub warnings: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Media {
    /// The kind of segment that stands for this media in search and embeddings: audio segments
    /// for audio files, video segments otherwise.
    pub fn primary_kind(&self) -> super::SegmentKind {
        match self.media_type {
            Some(MediaType::Audio) => super::SegmentKind::Audio,
            _ => super::SegmentKind::Video,
        }
    }
}

/// The facts a probe reads off a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MediaInfo {
    pub media_type: MediaType,
    /// Container format as FFmpeg names it (`mov,mp4,m4a,3gp,3g2,mj2`, `wav`, `png`, ...).
    pub container: String,
    /// Duration in seconds from the container, when it declares one. The exact duration used for
    /// segmentation comes from decoding (see [`Media::duration`]).
    pub duration: Option<f64>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VideoInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Average frame rate in frames per second (0 when the container does not say).
    pub frame_rate: f64,
    /// Frame count declared by the container, if any.
    pub frame_count: Option<u64>,
    /// Clockwise rotation in degrees (0, 90, 180 or 270) that displays the picture upright.
    pub rotation: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AudioInfo {
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
}
