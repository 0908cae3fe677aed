//! videovector: a local-first, embedded video search engine.
//!
//! An [`Engine`] opened on a data folder ingests media files (video, audio, still images) through
//! FFmpeg, cuts them into segments (`smart`, `fixed` or `content_aware`), picks a keyframe per
//! segment and keeps everything in a SQLite catalog beside its thumbnails.
//!
//! ```no_run
//! use videovector::{Engine, IngestOptions};
//!
//! let engine = Engine::open("data")?;
//! let index = engine.indexes().create("archive", None)?;
//! let opts = IngestOptions { index: Some(index.index_id), ..Default::default() };
//! let result = engine.media().ingest("fixtures/media/bikes.mp4", &opts)?;
//! for segment in &result.segments {
//!     println!("{} {:.2}-{:.2}s {:?}", segment.segment_id, segment.start, segment.end, segment.thumbnail_path);
//! }
//! # Ok::<(), videovector::Error>(())
//! ```

pub mod embed;
pub mod engine;
pub mod error;
mod ids;
pub mod ingest;
pub mod media;
pub mod search;
pub mod segment;
pub mod store;
pub mod transcribe;
pub mod vectors;

pub use engine::{Batch, Engine, IngestResult, SegmentQuery, StatusSnapshot};
pub use error::{Error, ErrorKind, Result};
pub use ingest::{IngestOptions, OutputConfig, Progress};
pub use media::{MediaInfo, MediaType};
pub use segment::{AudioSegmentation, SegmentationConfig, VideoSegmentation};
pub use store::{Index, Media, Page, PageRequest, Segment, SegmentKind, Space, Status};
pub use vectors::{EngineOptions, ModelChoice};
