//! Shot-boundary detection: hard cuts by adaptive HSV content change, gradual transitions
//! (fades, dissolves) by a linear-blend test, with flashes and camera motion rejected.
//!
//! The detector is fed frames one by one ([`ShotDetector::push`]) and keeps only a short ring of
//! recent frames, so memory does not depend on the length of the video; it records a handful of
//! numbers per frame ([`FrameStats`]) and decides the cuts from those at the end ([`ShotDetector::finish`]).
//!
//! Hard cuts follow PySceneDetect's AdaptiveDetector: the mean absolute HSV change between two
//! frames (`content`) must exceed `min_content` and be `adaptive_ratio` times the average change
//! of the `window` frames before or after, and `busy_side_ratio` times the other side's (so a cut
//! into a busy shot counts, and motion that merely starts does not). Two tests are added on top:
//! - a flash (the frames after the change look like the frames before it, within `flash_window`
//!   frames) is not a cut, in either direction;
//! - a gradual transition is found where, over `gradual_window` frames, the picture and its colour
//!   histogram change a lot *and* the middle frame is the average of the two ends: a dissolve or
//!   a fade is a linear blend, a pan or a zoom is not. A fade out to black and back in is one cut,
//!   at the darkest frame.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::media::VideoFrame;
use crate::ml::transnet::{resize_for_transnet, ShotScorer, TransNet};

/// Tuning of content-aware detection. Defaults were checked on the fixtures (see `fixtures/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShotConfig {
    /// Least mean absolute HSV change (0-255 scale) for a hard cut. Default 15 (PySceneDetect's `min_content_val`).
    pub min_content: f32,
    /// How many times the local average change a hard cut must be. Default 3.0 (PySceneDetect's `adaptive_threshold`).
    pub adaptive_ratio: f32,
    /// Frames on each side that make up the local averages. Default 2.
    pub window: usize,
    /// How many times the average change on the busier side a hard cut must also be. Default 1.3.
    pub busy_side_ratio: f32,
    /// Shortest shot in seconds; of two cuts closer than this the weaker goes. Default 0.6 (15 frames at 25 fps).
    pub min_shot_duration: f64,
    /// Frames after (and before) a change that are searched for a return to the old picture. Default 8.
    pub flash_window: usize,
    /// A change is a flash when some frame within `flash_window` differs from the other side by less
    /// than this share of the change itself. Default 0.5.
    pub flash_similarity: f32,
    /// Length in frames of the window over which gradual transitions are measured. Default 16.
    pub gradual_window: usize,
    /// Least mean absolute RGB change (0-255) between the ends of that window. Default 16.
    pub gradual_min_change: f32,
    /// Largest distance of the middle frame from the average of the two ends, as a share of the
    /// change between the ends. Default 0.25 (a hard cut inside the window scores 0.5).
    pub gradual_max_nonlinearity: f32,
    /// Least colour-histogram change (0-1) between the ends of the window. Default 0.2.
    pub gradual_min_histogram_change: f32,
    /// Mean luma (0-255) under which a frame counts as black, for fades through black. Default 24.
    pub dark_luma: f32,
    /// Use TransNetV2 when its weights can be found (see the module documentation). Default true.
    pub neural: bool,
    /// Transition probability above which TransNetV2 marks a frame. Default 0.5 (the reference's).
    pub neural_threshold: f32,
    /// A TransNetV2 window is skipped when none of its frames changes by this share of
    /// `min_content` (HSV) or of `gradual_min_change` (over the gradual window): there is
    /// nothing in it a cut could be. 0 scores every window. Default 0.25.
    pub neural_gate: f32,
}

impl Default for ShotConfig {
    fn default() -> Self {
        ShotConfig {
            min_content: 15.0,
            adaptive_ratio: 3.0,
            window: 2,
            busy_side_ratio: 1.3,
            min_shot_duration: 0.6,
            flash_window: 8,
            flash_similarity: 0.5,
            gradual_window: 16,
            gradual_min_change: 16.0,
            gradual_max_nonlinearity: 0.25,
            gradual_min_histogram_change: 0.2,
            dark_luma: 24.0,
            neural: true,
            neural_threshold: 0.5,
            neural_gate: 0.25,
        }
    }
}

impl ShotConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(field, format!("must be a non-negative number, got {v}")))
            }
        };
        positive("shots.min_content", self.min_content.into())?;
        positive("shots.adaptive_ratio", self.adaptive_ratio.into())?;
        positive("shots.busy_side_ratio", self.busy_side_ratio.into())?;
        positive("shots.min_shot_duration", self.min_shot_duration)?;
        positive("shots.flash_similarity", self.flash_similarity.into())?;
        positive("shots.gradual_min_change", self.gradual_min_change.into())?;
        positive("shots.gradual_max_nonlinearity", self.gradual_max_nonlinearity.into())?;
        positive("shots.gradual_min_histogram_change", self.gradual_min_histogram_change.into())?;
        positive("shots.dark_luma", self.dark_luma.into())?;
        positive("shots.neural_gate", self.neural_gate.into())?;
        if !(self.neural_threshold > 0.0 && self.neural_threshold < 1.0) {
            return Err(Error::invalid("shots.neural_threshold", "must be between 0 and 1 (exclusive)"));
        }
        if self.gradual_window < 2 || self.gradual_window > 250 {
            return Err(Error::invalid("shots.gradual_window", "must be between 2 and 250 frames"));
        }
        if self.flash_window > 250 || self.window > 250 {
            return Err(Error::invalid("shots.flash_window", "windows must be at most 250 frames"));
        }
        Ok(())
    }
}

/// What the detector measured on one frame. Change measures refer to this frame and earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FrameStats {
    pub time_us: i64,
    /// Mean absolute HSV change from the previous frame (0-255).
    pub content: f32,
    /// Least HSV change between the previous frame and any of the next `flash_window` frames.
    pub flash_forward: f32,
    /// Least HSV change between this frame and any of the `flash_window` frames before the previous one.
    pub flash_backward: f32,
    /// Mean absolute RGB change between this frame and the one `gradual_window` frames earlier.
    pub gradual: f32,
    /// Distance of the window's middle frame from the average of its ends (0-255).
    pub nonlinearity: f32,
    /// Colour-histogram change between this frame and the one `gradual_window` frames earlier (0-1).
    pub histogram_change: f32,
    /// Mean luma (0-255).
    pub luma: f32,
    /// Keyframe quality (see [`super::frame_quality`]).
    pub quality: f32,
    /// TransNetV2's probability that this frame is part of a transition; `None` where it did not
    /// run (no model, or a window the gate skipped).
    pub transition: Option<f32>,
}

/// Whether a cut is abrupt or the middle of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutKind {
    Hard,
    Gradual,
}

/// A shot boundary: the first frame of the new shot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    pub frame: usize,
    pub time_us: i64,
    pub kind: CutKind,
    /// Strength of the evidence: the adaptive ratio for hard cuts, the change for gradual ones.
    pub score: f32,
}

/// Side of the small descriptor used by the flash and gradual tests.
const SMALL_SIDE: usize = 64;
const H_BINS: usize = 16;
const S_BINS: usize = 8;
const V_BINS: usize = 8;

/// What the ring keeps of each recent frame.
struct Descriptor {
    hsv: Vec<u8>,
    small_hsv: Vec<u8>,
    small_rgb: Vec<u8>,
    histogram: [f32; H_BINS + S_BINS + V_BINS],
}

/// Streaming shot detector: [`push`](Self::push) every frame in order, then [`finish`](Self::finish).
pub struct ShotDetector<'m> {
    config: ShotConfig,
    stats: Vec<FrameStats>,
    ring: VecDeque<Descriptor>,
    ring_len: usize,
    /// TransNetV2's windows, when it runs.
    neural: Option<ShotScorer<'m>>,
    /// Frames at the network's size waiting until the rules know whether they are a flash.
    pending: VecDeque<Vec<u8>>,
    /// The last frame given to the network that was not a flash, and the first frame index past
    /// the flash being replaced.
    last_steady: Option<Vec<u8>>,
    flash_until: usize,
    /// The model's first failure; the rest of the video is not scored.
    error: Option<Error>,
}

impl<'m> ShotDetector<'m> {
    /// The rule-based detector alone.
    pub fn new(config: ShotConfig) -> Self {
        Self::with_model(config, None)
    }

    /// TransNetV2 decides the cuts when `model` is given and `config.neural` is on; the rules
    /// still measure every frame (flashes, black, keyframe quality, the gate).
    pub fn with_model(config: ShotConfig, model: Option<&'m TransNet>) -> Self {
        let ring_len = (config.flash_window + 2).max(config.gradual_window + 1);
        let neural = model.filter(|_| config.neural).map(ShotScorer::new);
        ShotDetector {
            config,
            stats: Vec::new(),
            ring: VecDeque::with_capacity(ring_len + 1),
            ring_len,
            neural,
            pending: VecDeque::new(),
            last_steady: None,
            flash_until: 0,
            error: None,
        }
    }

    /// Measure one frame. Frames must come in presentation order and share one size.
    pub fn push(&mut self, frame: &VideoFrame<'_>) {
        self.measure(frame);
        if self.neural.is_some() && self.error.is_none() {
            self.pending.push_back(resize_for_transnet(frame.rgb, frame.width as usize, frame.height as usize));
            // A frame's flash verdict needs the frames up to `flash_window` after it.
            while self.pending.len() > self.config.flash_window + 1 {
                self.feed_network();
            }
        }
    }

    /// Give the network the oldest pending frame, or, when the rules see it as part of a flash
    /// (the picture before it comes back within `flash_window` frames), the last frame before
    /// the flash: TransNetV2 reads a flash next to a cut as the transition and misses the cut.
    fn feed_network(&mut self) {
        let Some(small) = self.pending.pop_front() else { return };
        let j = self.stats.len() - self.pending.len() - 1;
        let ShotDetector { config, stats, neural, error, last_steady, flash_until, .. } = self;
        // The frame that ends a flash does not start another one.
        if j > *flash_until {
            if let Some(end) = flash_end(config, stats, j) {
                *flash_until = end;
            }
        }
        let small = match last_steady.as_ref() {
            Some(steady) if j < *flash_until => steady.clone(),
            _ => {
                *last_steady = Some(small.clone());
                small
            }
        };
        if let (Some(scorer), None) = (neural.as_mut(), &error) {
            if let Err(e) = scorer.push_gated(small, |range| worth_scoring(config, stats, range)) {
                *error = Some(e);
            }
        }
    }

    fn measure(&mut self, frame: &VideoFrame<'_>) {
        let desc = describe(frame);
        let (luma, quality) = super::frame_quality(frame.rgb, frame.width as usize, frame.height as usize);
        let i = self.stats.len();
        let mut st = FrameStats { time_us: frame.time_us, luma, quality, ..FrameStats::default() };
        st.flash_forward = f32::INFINITY;
        st.flash_backward = f32::INFINITY;
        let same_size = |d: &Descriptor| d.hsv.len() == desc.hsv.len();
        if let Some(prev) = self.ring.back().filter(|d| same_size(d)) {
            st.content = hsv_change(&prev.hsv, &desc.hsv);
        }
        // Ring holds frames i-1, i-2, ... at positions len-1, len-2, ...
        let back = |k: usize| -> Option<&Descriptor> { self.ring.len().checked_sub(k).and_then(|p| self.ring.get(p)) };
        for k in 1..=self.config.flash_window {
            // This frame is k frames after frame j = i - k: it may show frame j - 1's picture again.
            if let (Some(before), true) = (back(k + 1), i > k) {
                let change = hsv_change(&before.small_hsv, &desc.small_hsv);
                let j = i - k;
                self.stats[j].flash_forward = self.stats[j].flash_forward.min(change);
                st.flash_backward = st.flash_backward.min(change);
            }
        }
        let l = self.config.gradual_window;
        if let (Some(start), Some(mid)) = (back(l), back(l / 2)) {
            if same_size(start) && same_size(mid) {
                st.gradual = mean_abs_diff(&start.small_rgb, &desc.small_rgb);
                st.nonlinearity = blend_distance(&start.small_rgb, &mid.small_rgb, &desc.small_rgb);
                st.histogram_change = histogram_change(&start.histogram, &desc.histogram);
            }
        }
        self.stats.push(st);
        if self.ring.len() == self.ring_len {
            self.ring.pop_front();
        }
        self.ring.push_back(desc);
    }

    /// Per-frame measurements so far.
    pub fn stats(&self) -> &[FrameStats] {
        &self.stats
    }

    /// Decide the cuts and hand back the per-frame measurements (for keyframe choice). Fails
    /// when TransNetV2 failed on a window.
    pub fn finish(mut self) -> Result<(Vec<Cut>, Vec<FrameStats>)> {
        while !self.pending.is_empty() {
            self.feed_network();
        }
        let ShotDetector { config, mut stats, neural, error, .. } = self;
        if let Some(e) = error {
            return Err(e);
        }
        let Some(scorer) = neural else {
            let cuts = detect_cuts(&config, &stats);
            return Ok((cuts, stats));
        };
        let scores = scorer.finish_gated(|range| worth_scoring(&config, &stats, range))?;
        for (st, score) in stats.iter_mut().zip(scores) {
            st.transition = score;
        }
        let cuts = neural_cuts(&config, &stats);
        Ok((cuts, stats))
    }
}

/// When frame `j` starts a flash (a change `adaptive_ratio` times the changes before it, whose
/// old picture comes back), the index of the frame that brings the picture back: frames `j..end`
/// are the flash.
fn flash_end(config: &ShotConfig, stats: &[FrameStats], j: usize) -> Option<usize> {
    let change = |i: usize| stats[i].content >= config.min_content;
    if j == 0 || !change(j) || stats[j].flash_forward >= config.flash_similarity * stats[j].content {
        return None;
    }
    let calm = mean_change(&stats[j.saturating_sub(config.window).max(1)..j]);
    if stats[j].content < config.adaptive_ratio * calm {
        return None;
    }
    (j + 1..(j + 1 + config.flash_window).min(stats.len()))
        .find(|&k| change(k) && stats[k].flash_backward < config.flash_similarity * stats[k].content)
}

/// Whether a TransNetV2 window that scores `range` can hold a cut: some frame in it (or in the
/// gradual window after it, where a dissolve's change shows) changes by `neural_gate` of what
/// the rules call a change.
fn worth_scoring(config: &ShotConfig, stats: &[FrameStats], range: std::ops::Range<usize>) -> bool {
    if config.neural_gate <= 0.0 {
        return true;
    }
    let hi = (range.end + 1 + config.gradual_window).min(stats.len());
    let lo = range.start.min(hi);
    stats[lo..hi].iter().any(|s| {
        s.content >= config.neural_gate * config.min_content
            || s.gradual >= config.neural_gate * config.gradual_min_change
    })
}

/// Seconds between the middle of a fade out and that of the fade in after it, at most, for the
/// two to be one transition through black.
const MAX_FADE_THROUGH_BLACK_SECS: f64 = 3.0;

/// Cuts from TransNetV2's scores. A run of frames above `neural_threshold` is one transition;
/// its cut is the frame after the first half of the run (for a hard cut, marked on the last
/// frame of the old shot, the first frame of the new one), hard when a frame of it changes by
/// `min_content`, else gradual. A short run that the rules see as a
/// flash (the old picture comes back) is dropped; two gradual transitions with black between them
/// (a fade out and a fade in) are one cut at the middle of the black.
fn neural_cuts(config: &ShotConfig, stats: &[FrameStats]) -> Vec<Cut> {
    let n = stats.len();
    let above = |i: usize| stats[i].transition.is_some_and(|s| s > config.neural_threshold);
    // Longest gap between a fade out and a fade in that still makes them one transition.
    let max_fade = frames_for(MAX_FADE_THROUGH_BLACK_SECS, stats);
    let mut cuts: Vec<Cut> = Vec::new();
    let mut i = 0;
    while i < n {
        if !above(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && above(i) {
            i += 1;
        }
        let len = i - start;
        let frame = start + len.div_ceil(2).max(1);
        if frame >= n {
            continue;
        }
        let score = stats[start..i].iter().filter_map(|s| s.transition).fold(0.0, f32::max);
        // Abrupt when some frame of the run changes as much as a hard cut must; else a blend.
        let abrupt = stats[start..=frame].iter().any(|s| s.content >= config.min_content);
        let kind = if abrupt { CutKind::Hard } else { CutKind::Gradual };
        if kind == CutKind::Hard && is_flash_edge(config, &stats[frame]) {
            continue;
        }
        let cut = Cut { frame, time_us: stats[frame].time_us, kind, score };
        let fade = |c: &Cut| c.kind == CutKind::Gradual;
        if let Some(prev) =
            cuts.last_mut().filter(|p| fade(p) && fade(&cut) && frame.saturating_sub(p.frame) <= max_fade)
        {
            if let Some(mid) = middle_of_black(config, stats, prev.frame, frame) {
                *prev = Cut {
                    frame: mid,
                    time_us: stats[mid].time_us,
                    kind: CutKind::Gradual,
                    score: prev.score.max(score),
                };
                continue;
            }
        }
        cuts.push(cut);
    }
    enforce_min_shot(config, stats, cuts)
}

/// Decide cuts from per-frame measurements. See the module documentation for the rules.
pub fn detect_cuts(config: &ShotConfig, stats: &[FrameStats]) -> Vec<Cut> {
    if stats.len() < 2 {
        return Vec::new();
    }
    let transitions = gradual_transitions(config, stats);
    // A hard change at the edge of a blend (a dissolve that ends on a jump, black to picture in a
    // fade) belongs to that transition, not to a second cut.
    let inside = |c: &Cut| transitions.iter().any(|t| (t.first..=t.last + 1).contains(&c.frame));
    let mut candidates: Vec<Cut> = hard_cuts(config, stats).into_iter().filter(|c| !inside(c)).collect();
    candidates.extend(transitions.iter().map(|t| t.cut));
    enforce_min_shot(config, stats, candidates)
}

/// Average change over `frames`, at least 1 (a still shot does not make every change a spike).
fn mean_change(frames: &[FrameStats]) -> f32 {
    (frames.iter().map(|s| s.content).sum::<f32>() / frames.len().max(1) as f32).max(1.0)
}

/// Whether the change into this frame is the start or end of a flash: within `flash_window`
/// frames the picture comes back to what it was on the other side.
fn is_flash_edge(config: &ShotConfig, st: &FrameStats) -> bool {
    st.flash_forward.min(st.flash_backward) < config.flash_similarity * st.content
}

/// The middle of the black frames around the darkest frame of `from..=to`, when that frame is
/// black (a fade out and a fade in through black are one cut, there).
fn middle_of_black(config: &ShotConfig, stats: &[FrameStats], from: usize, to: usize) -> Option<usize> {
    let is_dark = |j: usize| stats[j].luma <= config.dark_luma;
    let darkest = (from..=to).min_by(|&a, &b| stats[a].luma.total_cmp(&stats[b].luma)).filter(|&d| is_dark(d))?;
    let lo = (0..=darkest).rev().take_while(|&j| is_dark(j)).last().unwrap_or(darkest);
    let hi = (darkest..stats.len()).take_while(|&j| is_dark(j)).last().unwrap_or(darkest);
    Some((lo + hi) / 2)
}

fn hard_cuts(config: &ShotConfig, stats: &[FrameStats]) -> Vec<Cut> {
    let n = stats.len();
    let mut cuts = Vec::new();
    for i in 1..n {
        let d = stats[i].content;
        if d < config.min_content {
            continue;
        }
        // Average change on each side. A cut into (or out of) a busy shot is a step far above
        // the calm side and still clearly above the busy one; motion that starts or stops is a
        // step above one side only.
        let left = mean_change(&stats[i.saturating_sub(config.window).max(1)..i]);
        let right = mean_change(&stats[i + 1..(i + 1 + config.window).min(n)]);
        let (calm, busy) = (left.min(right), left.max(right));
        let ratio = d / calm;
        if ratio < config.adaptive_ratio || d / busy < config.busy_side_ratio {
            continue;
        }
        if is_flash_edge(config, &stats[i]) {
            continue;
        }
        cuts.push(Cut { frame: i, time_us: stats[i].time_us, kind: CutKind::Hard, score: ratio });
    }
    cuts
}

/// A gradual transition: the frames it spans and where its cut goes.
struct Transition {
    first: usize,
    last: usize,
    cut: Cut,
}

fn gradual_transitions(config: &ShotConfig, stats: &[FrameStats]) -> Vec<Transition> {
    let l = config.gradual_window;
    let n = stats.len();
    let is_candidate = |i: usize| {
        let s = &stats[i];
        i >= l
            && s.gradual >= config.gradual_min_change
            && s.nonlinearity <= config.gradual_max_nonlinearity * s.gradual
            && s.histogram_change >= config.gradual_min_histogram_change
    };
    let cut_at = |frame: usize, score: f32| Cut { frame, time_us: stats[frame].time_us, kind: CutKind::Gradual, score };
    let mut transitions: Vec<Transition> = Vec::new();
    let mut i = 0;
    while i < n {
        if !is_candidate(i) {
            i += 1;
            continue;
        }
        // A run of window ends that pass; the transition spans their windows, the cut sits at the
        // middle of the window centres.
        // A run may have gaps of up to a quarter window: one frame just under a threshold does
        // not split a dissolve in two.
        let start = i;
        let mut last = i;
        let mut peak = 0.0f32;
        while i < n && i <= last + l / 4 {
            if is_candidate(i) {
                peak = peak.max(stats[i].gradual);
                last = i;
            }
            i += 1;
        }
        i = last + 1;
        let first = start - l;
        let centre = (start + last) / 2 - l / 2;
        // A fade out and a fade in around black frames are one transition: cut at the middle of the black.
        if let Some(prev) = transitions.last_mut().filter(|p| first <= p.last + l) {
            if let Some(mid) = middle_of_black(config, stats, prev.cut.frame.min(centre), centre) {
                *prev = Transition { first: prev.first, last, cut: cut_at(mid, prev.cut.score.max(peak)) };
                continue;
            }
        }
        transitions.push(Transition { first, last, cut: cut_at(centre, peak) });
    }
    transitions
}

/// Keep cuts at least `min_shot_duration` apart (and from the start), stronger ones first:
/// hard cuts before gradual ones, then by score.
fn enforce_min_shot(config: &ShotConfig, stats: &[FrameStats], mut candidates: Vec<Cut>) -> Vec<Cut> {
    let min_gap = frames_for(config.min_shot_duration, stats);
    candidates.sort_by(|a, b| {
        (a.kind == CutKind::Gradual)
            .cmp(&(b.kind == CutKind::Gradual))
            .then(b.score.total_cmp(&a.score))
            .then(a.frame.cmp(&b.frame))
    });
    let mut kept: Vec<Cut> = Vec::new();
    for c in candidates {
        if c.frame >= min_gap && kept.iter().all(|k| k.frame.abs_diff(c.frame) >= min_gap) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| c.frame);
    kept
}

/// Number of frames covering `secs` at the stream's median frame spacing (at least 1).
fn frames_for(secs: f64, stats: &[FrameStats]) -> usize {
    if stats.len() < 2 {
        return 1;
    }
    let mut steps: Vec<i64> = stats.windows(2).map(|w| w[1].time_us - w[0].time_us).collect();
    let mid = steps.len() / 2;
    let step = *steps.select_nth_unstable(mid).1;
    ((secs * 1e6 / step.max(1) as f64).round() as usize).max(1)
}

fn describe(frame: &VideoFrame<'_>) -> Descriptor {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let hsv = to_hsv(frame.rgb);
    let factor = w.max(h).div_ceil(SMALL_SIDE).max(1);
    let small_rgb = box_downsample(frame.rgb, w, h, factor);
    let small_hsv = to_hsv(&small_rgb);
    let mut histogram = [0f32; H_BINS + S_BINS + V_BINS];
    for px in hsv.chunks_exact(3) {
        histogram[(px[0] as usize * H_BINS / 180).min(H_BINS - 1)] += 1.0;
        histogram[H_BINS + px[1] as usize * S_BINS / 256] += 1.0;
        histogram[H_BINS + S_BINS + px[2] as usize * V_BINS / 256] += 1.0;
    }
    let total = (hsv.len() / 3).max(1) as f32;
    histogram.iter_mut().for_each(|v| *v /= total);
    Descriptor { hsv, small_hsv, small_rgb, histogram }
}

/// RGB to HSV with OpenCV's 8-bit ranges (H 0-179, S and V 0-255), as PySceneDetect sees frames.
fn to_hsv(rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len());
    for px in rgb.chunks_exact(3) {
        let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
        let v = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = v - min;
        let s = if v == 0 { 0 } else { div(255 * delta + v / 2, v) };
        let h = if delta == 0 {
            0
        } else {
            let h = if v == r {
                div(60 * (g - b), delta)
            } else if v == g {
                120 + div(60 * (b - r), delta)
            } else {
                240 + div(60 * (r - g), delta)
            };
            (if h < 0 { h + 360 } else { h }) / 2
        };
        out.extend_from_slice(&[h as u8, s as u8, v as u8]);
    }
    out
}

/// `ceil(2^24 / d)` for d in 1..=255: with it, `n / d` for |n| < 2^16 is a multiply and a shift.
const RECIPROCALS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut d = 1;
    while d < 256 {
        t[d] = (1u64 << 24).div_ceil(d as u64);
        d += 1;
    }
    t
};

/// `n / d` rounded toward zero, exactly as integer division, for |n| < 2^16 and 1 <= d <= 255:
/// the reciprocal's error stays under 1/256 while a non-integer quotient is at least 1/255 from
/// the next integer.
#[inline]
fn div(n: i32, d: i32) -> i32 {
    let q = ((u64::from(n.unsigned_abs()) * RECIPROCALS[d as usize]) >> 24) as i32;
    if n < 0 {
        -q
    } else {
        q
    }
}

/// Mean of |dH| (on the hue circle), |dS| and |dV| over all pixels, averaged over the three channels.
fn hsv_change(a: &[u8], b: &[u8]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let mut sum = [0u64; 3];
    for (pa, pb) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
        let dh = pa[0].abs_diff(pb[0]);
        sum[0] += u64::from(dh.min(180 - dh.min(180)));
        sum[1] += u64::from(pa[1].abs_diff(pb[1]));
        sum[2] += u64::from(pa[2].abs_diff(pb[2]));
    }
    let px = (a.len() / 3) as f32;
    // Hue spans 0-179 with a circular distance of at most 90: scale it to 0-255 like S and V.
    (sum[0] as f32 * 255.0 / 90.0 + sum[1] as f32 + sum[2] as f32) / (3.0 * px)
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f32 {
    let sum: u64 = a.iter().zip(b).map(|(&x, &y)| u64::from(x.abs_diff(y))).sum();
    sum as f32 / a.len().max(1) as f32
}

/// Mean |mid - (start + end) / 2|: zero when `mid` is a linear blend halfway between the ends.
fn blend_distance(start: &[u8], mid: &[u8], end: &[u8]) -> f32 {
    let sum: u64 = start
        .iter()
        .zip(mid)
        .zip(end)
        .map(|((&s, &m), &e)| u64::from((2 * i32::from(m) - i32::from(s) - i32::from(e)).unsigned_abs()))
        .sum();
    sum as f32 / (2.0 * start.len().max(1) as f32)
}

fn histogram_change(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / 6.0
}

/// Average `factor` x `factor` blocks of an RGB image.
fn box_downsample(rgb: &[u8], w: usize, h: usize, factor: usize) -> Vec<u8> {
    let (sw, sh) = (w / factor, h / factor);
    let mut out = Vec::with_capacity(sw * sh * 3);
    for y in 0..sh {
        for x in 0..sw {
            let mut acc = [0u32; 3];
            for dy in 0..factor {
                let row = ((y * factor + dy) * w + x * factor) * 3;
                for px in rgb[row..row + factor * 3].chunks_exact(3) {
                    acc[0] += u32::from(px[0]);
                    acc[1] += u32::from(px[1]);
                    acc[2] += u32::from(px[2]);
                }
            }
            let n = (factor * factor) as u32;
            out.extend(acc.iter().map(|&v| ((v + n / 2) / n) as u8));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_hsv(rgb: [u8; 3], expected: [u8; 3]) {
        assert_eq!(to_hsv(&rgb), expected.to_vec(), "hsv of {rgb:?}");
    }

    #[test]
    fn hsv_matches_opencv_ranges() {
        check_hsv([255, 0, 0], [0, 255, 255]);
        check_hsv([0, 255, 0], [60, 255, 255]);
        check_hsv([0, 0, 255], [120, 255, 255]);
        check_hsv([128, 128, 128], [0, 0, 128]);
        check_hsv([0, 0, 0], [0, 0, 0]);
        check_hsv([255, 0, 255], [150, 255, 255]);
    }

    #[test]
    fn reciprocal_division_equals_integer_division() {
        for d in 1..=255 {
            for n in -65_535..=65_535 {
                assert_eq!(div(n, d), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn hue_distance_wraps_around_the_circle() {
        // Hue 1 and hue 179 are 2 apart on the circle, not 178.
        let a = [1u8, 0, 0];
        let b = [179u8, 0, 0];
        let near = hsv_change(&a, &b);
        let c = [91u8, 0, 0];
        let far = hsv_change(&a, &c);
        assert!(near < far / 10.0, "near {near} far {far}");
    }

    #[test]
    fn blend_distance_is_zero_for_a_linear_blend_and_half_the_change_for_a_cut() {
        let a = vec![0u8; 30];
        let b = vec![200u8; 30];
        let half = vec![100u8; 30];
        assert_eq!(blend_distance(&a, &half, &b), 0.0);
        assert_eq!(blend_distance(&a, &a, &b), 100.0, "a cut inside the window scores half the change");
        assert_eq!(mean_abs_diff(&a, &b), 200.0);
    }

    fn synthetic_stats(contents: &[f32]) -> Vec<FrameStats> {
        contents
            .iter()
            .enumerate()
            .map(|(i, &c)| FrameStats {
                time_us: i as i64 * 40_000,
                content: c,
                flash_forward: c,
                flash_backward: c,
                luma: 100.0,
                ..FrameStats::default()
            })
            .collect()
    }

    #[test]
    fn hard_cut_needs_min_content_and_adaptive_ratio() {
        let mut c = vec![2.0f32; 60];
        c[30] = 40.0; // clear cut
        c[45] = 10.0; // spike below min_content
        let cuts = detect_cuts(&ShotConfig::default(), &synthetic_stats(&c));
        assert_eq!(cuts.iter().map(|c| c.frame).collect::<Vec<_>>(), vec![30]);
    }

    #[test]
    fn sustained_motion_is_not_a_cut() {
        // A pan: large change on every frame, no spike above its neighbours.
        let c = vec![30.0f32; 60];
        assert!(detect_cuts(&ShotConfig::default(), &synthetic_stats(&c)).is_empty());
    }

    #[test]
    fn a_cut_into_a_busy_shot_counts_but_motion_starting_does_not() {
        // Regression: a calm shot cut into a shot that changes by ~60 every frame averaged to a
        // ratio under 3 and was missed.
        let mut c = vec![5.0f32; 40];
        c.extend(vec![60.0f32; 40]);
        c[40] = 92.0;
        assert_eq!(
            detect_cuts(&ShotConfig::default(), &synthetic_stats(&c)).iter().map(|c| c.frame).collect::<Vec<_>>(),
            vec![40]
        );
        // A pan that starts: the change steps up once and stays there.
        c[40] = 62.0;
        assert!(detect_cuts(&ShotConfig::default(), &synthetic_stats(&c)).is_empty());
    }

    #[test]
    fn flash_is_not_a_cut() {
        let mut stats = synthetic_stats(&[2.0; 60]);
        stats[30].content = 60.0;
        stats[30].flash_forward = 3.0; // frame 32 looks like frame 29 again
        stats[32].content = 60.0;
        stats[32].flash_backward = 3.0;
        assert!(detect_cuts(&ShotConfig::default(), &stats).is_empty());
    }

    #[test]
    fn cuts_closer_than_min_shot_keep_the_stronger() {
        let mut c = vec![2.0f32; 80];
        c[30] = 30.0;
        c[36] = 60.0;
        c[60] = 40.0;
        let cuts = detect_cuts(&ShotConfig::default(), &synthetic_stats(&c));
        assert_eq!(cuts.iter().map(|c| c.frame).collect::<Vec<_>>(), vec![36, 60]);
    }
}
