//! The nouns of the engine as plain records: indexes, media, segments, vectors, jobs, events,
//! pages, in exact units (integer microseconds) with the API's field names.
//!
//! Backend-neutral: every store produces these, the pipeline and search consume them. This
//! module imports nothing else from the crate but `error` and `ids`.

mod event;
pub mod filter;
mod job;
mod media;
mod page;
mod prompt;
mod segment;
pub mod sql;
mod vector;

pub use event::{Event, EventType, NewEvent};
pub(crate) use job::JobRequest;
pub use job::{Job, JobKind, JobProgress, JobStage, JobStatus};
pub use media::{AudioInfo, Index, Media, MediaInfo, MediaType, Status, VideoInfo};
pub use page::{Page, PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
pub use prompt::{
    FailedSegment, LlmCall, NewPrompt, Prompt, PromptRun, PromptUpdate, PromptUsage, RunEstimate, RunRequest,
    RunStatus, RunTarget, SchemaCheck, SchemaViolation, SegmentResult, SegmentRetry, SemanticIndexing, VideoLevel,
    VideoResult,
};
pub use segment::{AudioSegmentation, Phrase, Segment, SegmentKind, VideoSegmentation};
pub use vector::{ModelRef, Space};

use serde::{Deserialize, Serialize};

use crate::ids::IndexId;

/// Where media lives and what a search covers: one index, or the playground (media that belongs
/// to no index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Index(IndexId),
    Playground,
}

impl Scope {
    /// The scope of media with this `index_id`.
    pub fn of(index_id: Option<&IndexId>) -> Scope {
        index_id.map_or(Scope::Playground, |i| Scope::Index(i.clone()))
    }

    pub fn index_id(&self) -> Option<&IndexId> {
        match self {
            Scope::Index(id) => Some(id),
            Scope::Playground => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Index(id) => write!(f, "index {id}"),
            Scope::Playground => f.write_str("the playground"),
        }
    }
}

/// Seconds to microseconds, rounded.
pub fn secs_to_us(secs: f64) -> i64 {
    (secs * 1e6).round() as i64
}

/// Microseconds to seconds, for reporting `start` / `end`.
pub fn us_to_secs(us: i64) -> f64 {
    us as f64 / 1e6
}

/// An enum whose values are the API's strings: `as_str`, `FromStr` (an error naming `field`),
/// `Display` and serde, written once.
macro_rules! api_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident ($field:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The API's string for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::error::Error;
            fn from_str(s: &str) -> crate::error::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::error::Error::invalid(
                        $field,
                        format!("{s:?} is not one of {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use api_enum;
