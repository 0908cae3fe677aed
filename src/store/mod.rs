//! Storage: the SQLite catalog ([`Catalog`]) and the files beside it ([`Layout`]: thumbnails, previews).
//!
//! The store knows nothing about video: it keeps records and files that the pipeline hands it.

pub mod ann;
mod catalog;
mod layout;
pub mod transcripts;
pub mod vectors;

pub use catalog::{Catalog, Completed, MediaScope, NewMedia, NewSegment};
pub(crate) use layout::write_atomic;
pub use layout::Layout;
pub use transcripts::{KeywordHit, NewPhrase, StoredPhrase};
pub use vectors::{Fingerprint, HitRow, NewVector, Space};

use serde::{Deserialize, Serialize};

use crate::media::{MediaInfo, MediaType};

/// A named collection of media, the boundary for search (`idx_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub index_id: String,
    pub name: String,
    pub created_at: String,
    /// Media items in the index, whatever their status.
    pub video_count: u64,
}

/// Processing status of a media item, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Status::Pending),
            "processing" => Some(Status::Processing),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// An ingested file (`vid_...`). Playground media has no `index_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub video_id: String,
    pub index_id: Option<String>,
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

/// Whether a segment cuts the picture timeline or the sound timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    Video,
    Audio,
}

impl SegmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentKind::Video => "video",
            SegmentKind::Audio => "audio",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "video" => Some(SegmentKind::Video),
            "audio" => Some(SegmentKind::Audio),
            _ => None,
        }
    }
}

/// A time span of one media item (`seg_...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub segment_id: String,
    pub video_id: String,
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
    /// JPEG of the keyframe on disk (video segments).
    pub thumbnail_path: Option<String>,
}

/// One page of a cursor-paginated listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// `limit` and `cursor` of a listing request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Items per page, 1 to [`MAX_PAGE_LIMIT`]. Default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Largest `limit` a listing accepts.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// `limit` when none is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
