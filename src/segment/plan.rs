//! Turn cuts into spans for each segmentation type, and check that spans tile the timeline.

use serde::{Deserialize, Serialize};

use super::audio::{find_pauses, pause_cuts, ENERGY_HOP_US};
use super::{secs_to_us, AudioSegmentation, Cut, CutKind, SegmentationConfig, Span, VideoSegmentation};
use crate::error::{Error, Result};

/// The `smart` rule: start from shots, then
/// 1. while some segment is shorter than `min_duration` (and there are two or more), remove the
///    weaker of its two boundaries (hard cuts are stronger than gradual ones, then by score);
/// 2. split every segment longer than `max_duration` into equal pieces, moving each split point
///    to the quietest audio within a quarter piece of it (a pause where there is one), so that
///    speech is not cut mid-word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmartConfig {
    /// Shortest smart segment in seconds. Default 3.
    pub min_duration: f64,
    /// Longest smart segment in seconds. Default 30.
    pub max_duration: f64,
}

impl Default for SmartConfig {
    fn default() -> Self {
        SmartConfig { min_duration: 3.0, max_duration: 30.0 }
    }
}

impl SmartConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.min_duration >= 0.0 && self.max_duration > 0.0 && self.max_duration >= 2.0 * self.min_duration) {
            return Err(Error::invalid("smart", "need 0 <= min_duration and max_duration >= 2 * min_duration"));
        }
        Ok(())
    }
}

/// Spans between consecutive cut times over `[0, duration_us]`. Cuts outside `(0, duration_us)`
/// and repeated cuts are ignored.
pub fn spans_from_cuts(cuts: &[i64], duration_us: i64) -> Vec<Span> {
    let mut bounds = vec![0i64];
    for &c in cuts {
        if c > *bounds.last().expect("starts with 0") && c < duration_us {
            bounds.push(c);
        }
    }
    bounds.push(duration_us.max(0));
    bounds.windows(2).map(|w| Span::new(w[0], w[1])).collect()
}

/// Spans of `step_us` over `[0, duration_us]`; with `frame_times`, each boundary moves to the
/// first frame at or after it so that a segment holds whole frames. The last span is shorter,
/// never empty.
pub fn fixed_spans(step_us: i64, duration_us: i64, frame_times: Option<&[i64]>) -> Vec<Span> {
    let step = step_us.max(1);
    let mut cuts = Vec::new();
    let mut t = step;
    while t < duration_us {
        let snapped = match frame_times {
            Some(times) => times.get(times.partition_point(|&f| f < t)).copied().unwrap_or(duration_us),
            None => t,
        };
        cuts.push(snapped);
        t += step;
    }
    spans_from_cuts(&cuts, duration_us)
}

/// Video spans for the configured `video_segmentation_type`.
pub fn video_spans(
    config: &SegmentationConfig,
    cuts: &[Cut],
    frame_times: &[i64],
    audio_db: &[f32],
    duration_us: i64,
) -> Vec<Span> {
    match config.video_segmentation_type {
        VideoSegmentation::Fixed => {
            let step = secs_to_us(config.video_segment_duration.unwrap_or(config.smart.max_duration));
            fixed_spans(step, duration_us, Some(frame_times))
        }
        VideoSegmentation::ContentAware => {
            spans_from_cuts(&cuts.iter().map(|c| c.time_us).collect::<Vec<_>>(), duration_us)
        }
        VideoSegmentation::Smart => smart_spans(&config.smart, cuts, frame_times, audio_db, duration_us),
    }
}

/// Audio spans for the configured `audio_segmentation_type`.
pub fn audio_spans(config: &SegmentationConfig, audio_db: &[f32], duration_us: i64) -> Vec<Span> {
    match config.audio_segmentation_type {
        AudioSegmentation::Fixed => {
            let step = secs_to_us(config.audio_segment_duration.unwrap_or(config.pauses.max_duration));
            fixed_spans(step, duration_us, None)
        }
        AudioSegmentation::ContentAware => {
            spans_from_cuts(&pause_cuts(audio_db, duration_us, &config.pauses), duration_us)
        }
    }
}

/// See [`SmartConfig`] for the rule.
pub fn smart_spans(
    config: &SmartConfig,
    cuts: &[Cut],
    frame_times: &[i64],
    audio_db: &[f32],
    duration_us: i64,
) -> Vec<Span> {
    let min_us = secs_to_us(config.min_duration);
    let max_us = secs_to_us(config.max_duration);
    let strength = |c: &Cut| (c.kind == CutKind::Hard, c.score);
    // Boundaries between consecutive segments, with their strength; segment k is bounds[k-1]..bounds[k].
    let mut bounds: Vec<Cut> = cuts.iter().filter(|c| c.time_us > 0 && c.time_us < duration_us).copied().collect();
    let seg = |bounds: &[Cut], k: usize| {
        let start = if k == 0 { 0 } else { bounds[k - 1].time_us };
        let end = bounds.get(k).map_or(duration_us, |c| c.time_us);
        end - start
    };
    while !bounds.is_empty() {
        let shortest = (0..=bounds.len()).min_by_key(|&k| (seg(&bounds, k), k)).expect("at least one segment");
        if seg(&bounds, shortest) >= min_us {
            break;
        }
        let remove = match (shortest.checked_sub(1), (shortest < bounds.len()).then_some(shortest)) {
            (Some(l), Some(r)) => {
                if strength(&bounds[l]).partial_cmp(&strength(&bounds[r])) == Some(std::cmp::Ordering::Greater) {
                    r
                } else {
                    l
                }
            }
            (Some(l), None) => l,
            (None, Some(r)) => r,
            (None, None) => unreachable!("bounds is not empty"),
        };
        bounds.remove(remove);
    }
    let quiet = QuietFinder::new(audio_db);
    let mut times: Vec<i64> = Vec::new();
    let mut start = 0i64;
    for end in bounds.iter().map(|c| c.time_us).chain(std::iter::once(duration_us)) {
        let len = end - start;
        if len > max_us {
            let pieces = (len + max_us - 1) / max_us;
            let piece = len / pieces;
            for k in 1..pieces {
                let ideal = start + k * piece;
                // Neighbouring pieces stay within max_duration however far both split points move.
                let radius = (piece / 4).min((max_us - piece) / 2);
                let t = quiet.near(ideal, radius).unwrap_or(ideal);
                let snapped = frame_times.get(frame_times.partition_point(|&f| f < t)).copied().unwrap_or(t);
                if snapped > *times.last().unwrap_or(&start) && snapped < end {
                    times.push(snapped);
                }
            }
        }
        if end < duration_us {
            times.push(end);
        }
        start = end;
    }
    spans_from_cuts(&times, duration_us)
}

/// Finds the quietest moment of the audio near a time: the middle of a pause when one is in
/// reach, else the quietest 10 ms hop.
struct QuietFinder<'a> {
    db: &'a [f32],
    pauses: Vec<(usize, usize)>,
}

impl<'a> QuietFinder<'a> {
    fn new(db: &'a [f32]) -> Self {
        QuietFinder { db, pauses: find_pauses(db, 0.2) }
    }

    fn near(&self, ideal_us: i64, radius_us: i64) -> Option<i64> {
        let (lo, hi) = (ideal_us - radius_us, ideal_us + radius_us);
        let pause = self
            .pauses
            .iter()
            .map(|&(s, e)| (s + e) as i64 * ENERGY_HOP_US / 2)
            .filter(|c| (lo..=hi).contains(c))
            .min_by_key(|c| (c - ideal_us).abs());
        if pause.is_some() {
            return pause;
        }
        // Hops whose start lies inside [lo, hi].
        let a = ((lo.max(0) + ENERGY_HOP_US - 1) / ENERGY_HOP_US) as usize;
        let b = ((hi / ENERGY_HOP_US + 1) as usize).min(self.db.len()).max(a);
        let ideal_hop = ideal_us / ENERGY_HOP_US;
        (a..b)
            .min_by(|&x, &y| {
                self.db[x].total_cmp(&self.db[y]).then((x as i64 - ideal_hop).abs().cmp(&(y as i64 - ideal_hop).abs()))
            })
            .map(|h| h as i64 * ENERGY_HOP_US)
    }
}

/// Check the segment invariant: spans tile `[0, duration_us]` in order, without gaps or overlaps,
/// each non-empty. Media of zero duration (a still image) has exactly one span `[0, 0]`.
pub fn validate_tiling(spans: &[Span], duration_us: i64) -> Result<()> {
    let fail = |msg: String| Err(Error::Internal(format!("segments do not tile the timeline: {msg}")));
    if duration_us == 0 {
        return if spans == [Span::new(0, 0)] {
            Ok(())
        } else {
            fail(format!("zero-length media needs one span [0, 0], got {spans:?}"))
        };
    }
    let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
        return fail("no spans".into());
    };
    if first.start_us != 0 || last.end_us != duration_us {
        return fail(format!("spans cover {}..{} instead of 0..{duration_us}", first.start_us, last.end_us));
    }
    for (i, s) in spans.iter().enumerate() {
        if s.end_us <= s.start_us {
            return fail(format!("span {i} is empty: {s:?}"));
        }
        if let Some(next) = spans.get(i + 1) {
            if next.start_us != s.end_us {
                return fail(format!("gap or overlap between span {i} ({s:?}) and {next:?}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cut(secs: f64, kind: CutKind, score: f32) -> Cut {
        Cut { frame: 0, time_us: secs_to_us(secs), kind, score }
    }

    fn starts(spans: &[Span]) -> Vec<f64> {
        spans.iter().map(|s| s.start_us as f64 / 1e6).collect()
    }

    #[test]
    fn fixed_spans_snap_to_frames_and_keep_a_short_last_span() {
        let frames: Vec<i64> = (0..300).map(|i| i * 33_367).collect(); // 29.97 fps
        let spans = fixed_spans(4_000_000, 10_010_000, Some(&frames));
        assert_eq!(starts(&spans), vec![0.0, 4.004_04, 8.008_08]);
        assert_eq!(spans.last().unwrap().end_us, 10_010_000);
        let spans = fixed_spans(2_000_000, 5_000_000, None);
        assert_eq!(spans.iter().map(|s| s.duration_us()).collect::<Vec<_>>(), vec![2_000_000, 2_000_000, 1_000_000]);
    }

    #[test]
    fn smart_merges_short_shots_across_their_weaker_boundary() {
        let cfg = SmartConfig { min_duration: 3.0, max_duration: 30.0 };
        // Shots: 0-5, 5-6 (short), 6-12. The boundary at 6 is weaker, so 5-6 joins 6-12.
        let cuts = [cut(5.0, CutKind::Hard, 9.0), cut(6.0, CutKind::Hard, 4.0)];
        assert_eq!(starts(&smart_spans(&cfg, &cuts, &[], &[], 12_000_000)), vec![0.0, 5.0]);
        // A gradual boundary is weaker than any hard one.
        let cuts = [cut(5.0, CutKind::Gradual, 90.0), cut(6.0, CutKind::Hard, 4.0)];
        assert_eq!(starts(&smart_spans(&cfg, &cuts, &[], &[], 12_000_000)), vec![0.0, 6.0]);
    }

    #[test]
    fn smart_splits_long_shots_at_a_pause() {
        let cfg = SmartConfig { min_duration: 3.0, max_duration: 30.0 };
        // 70 s of speech at -20 dB with a pause at 24.0-26.0 s: three pieces, the first cut in the middle of the pause.
        let mut db = vec![-20.0f32; 7000];
        db[2400..2600].iter_mut().for_each(|v| *v = -80.0);
        let spans = smart_spans(&cfg, &[], &[], &db, 70_000_000);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].end_us, 25_000_000);
        validate_tiling(&spans, 70_000_000).unwrap();
    }

    proptest! {
        #[test]
        fn every_method_tiles_the_timeline(
            duration_ms in 1i64..600_000,
            cut_ms in proptest::collection::vec(0i64..600_000, 0..40),
            step_ms in 1i64..60_000,
            min_s in 0.0f64..5.0,
        ) {
            let duration = duration_ms * 1000;
            let cuts: Vec<Cut> = {
                let mut c: Vec<i64> = cut_ms.iter().map(|m| m * 1000).collect();
                c.sort();
                c.dedup();
                c.into_iter().enumerate().map(|(i, t)| Cut { frame: i, time_us: t, kind: if i % 3 == 0 { CutKind::Gradual } else { CutKind::Hard }, score: (i % 7) as f32 }).collect()
            };
            let frame_times: Vec<i64> = (0..duration / 40_000).map(|i| i * 40_000).collect();
            let db: Vec<f32> = (0..duration / ENERGY_HOP_US).map(|i| if i % 250 < 40 { -70.0 } else { -20.0 }).collect();
            let smart = SmartConfig { min_duration: min_s, max_duration: 2.0 * min_s + 1.0 };
            let times: Vec<i64> = cuts.iter().map(|c| c.time_us).collect();
            for spans in [
                spans_from_cuts(&times, duration),
                fixed_spans(step_ms * 1000, duration, Some(&frame_times)),
                fixed_spans(step_ms * 1000, duration, None),
                smart_spans(&smart, &cuts, &frame_times, &db, duration),
                spans_from_cuts(&pause_cuts(&db, duration, &Default::default()), duration),
            ] {
                prop_assert!(validate_tiling(&spans, duration).is_ok(), "{:?}", validate_tiling(&spans, duration));
            }
            let smart_spans = smart_spans(&smart, &cuts, &frame_times, &db, duration);
            if smart_spans.len() > 1 {
                for s in &smart_spans {
                    prop_assert!(s.duration_us() <= secs_to_us(smart.max_duration) + 40_000, "{s:?} longer than max");
                }
            }
        }
    }
}
