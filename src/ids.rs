//! Resource ids in the API's shape: a prefix (`idx`, `vid`, `seg`) and 16 random hex digits.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new id such as `vid_3f9a0c12d4e5b678`. Unique within a process by a counter and across
/// processes by the per-process random keys of the standard library's `RandomState`, mixed with the clock.
pub fn new(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{prefix}_{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_prefix_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::new("seg")).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.starts_with("seg_") && id.len() == 20));
    }
}
