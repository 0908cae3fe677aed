//! Resource ids in the API's shape: a prefix (`idx`, `vid`, `seg`, `job`) and 16 random hex
//! digits, each kind its own type so that a video id cannot be passed where an index id goes.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new id such as `vid_3f9a0c12d4e5b678`. Unique within a process by a counter and across
/// processes by the per-process random keys of the standard library's `RandomState`, mixed with the clock.
pub(crate) fn new(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{prefix}_{:016x}", h.finish())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of new ids of this kind.
            pub const PREFIX: &'static str = $prefix;

            pub(crate) fn generate() -> Self {
                $name(new($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An index (`idx_...`).
    IndexId,
    "idx"
);
id_type!(
    /// A media item (`vid_...`).
    VideoId,
    "vid"
);
id_type!(
    /// A segment (`seg_...`).
    SegmentId,
    "seg"
);
id_type!(
    /// A job (`job_...`).
    JobId,
    "job"
);
id_type!(
    /// A prompt (`prompt_...`).
    PromptId,
    "prompt"
);
id_type!(
    /// A prompt run (`run_...`).
    RunId,
    "run"
);
id_type!(
    /// A retry of one segment of a prompt run (`retry_...`).
    RetryId,
    "retry"
);
id_type!(
    /// One language-model call (`llm_...`).
    LlmCallId,
    "llm"
);

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_prefix_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::new("seg")).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.starts_with("seg_") && id.len() == 20));
        assert!(super::VideoId::generate().starts_with("vid_"));
    }
}
