//! Audio loudness per 10 ms and pause finding: where audio may be cut without splitting a word.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::media::ANALYSIS_SAMPLE_RATE;

/// Hop of the loudness measure in microseconds (10 ms, 160 samples at 16 kHz).
pub const ENERGY_HOP_US: i64 = 10_000;
const HOP_SAMPLES: usize = (ANALYSIS_SAMPLE_RATE as usize) / 100;

/// Tuning of pause-based audio segmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PauseConfig {
    /// Shortest silence, in seconds, that counts as a pause. Default 0.3.
    pub min_pause: f64,
    /// Shortest audio segment in seconds; shorter pieces join a neighbour. Default 2.
    pub min_duration: f64,
    /// Longest audio segment in seconds; longer speech is cut at its quietest 10 ms. Default 30
    /// (one Whisper window).
    pub max_duration: f64,
}

impl Default for PauseConfig {
    fn default() -> Self {
        PauseConfig { min_pause: 0.3, min_duration: 2.0, max_duration: 30.0 }
    }
}

impl PauseConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.min_pause > 0.0 && self.min_duration >= 0.0 && self.max_duration > self.min_duration) {
            return Err(Error::invalid("pauses", "need min_pause > 0 and 0 <= min_duration < max_duration"));
        }
        Ok(())
    }
}

/// Loudness of a 16 kHz mono stream in dBFS per 10 ms hop, built incrementally.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioEnergy {
    db: Vec<f32>,
    acc: f64,
    acc_n: usize,
}

impl AudioEnergy {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, samples: &[f32]) {
        for &s in samples {
            self.acc += f64::from(s) * f64::from(s);
            self.acc_n += 1;
            if self.acc_n == HOP_SAMPLES {
                self.close_hop();
            }
        }
    }

    fn close_hop(&mut self) {
        let mean = self.acc / self.acc_n.max(1) as f64;
        self.db.push((10.0 * (mean + 1e-10).log10()) as f32);
        self.acc = 0.0;
        self.acc_n = 0;
    }

    /// Close the last partial hop and return dBFS per hop.
    pub fn finish(mut self) -> Vec<f32> {
        if self.acc_n > 0 {
            self.close_hop();
        }
        self.db
    }
}

/// Silence threshold in dBFS for these hops, or `None` when the audio has no contrast
/// (all silence or one continuous sound) and so no pauses to find.
///
/// The threshold sits 35% of the way from the noise floor (2nd percentile) to the loud level
/// (90th percentile), at least 6 dB above the floor: it adapts to quiet and noisy recordings alike.
pub fn silence_threshold(db: &[f32]) -> Option<f32> {
    if db.is_empty() {
        return None;
    }
    let mut sorted = db.to_vec();
    sorted.sort_by(f32::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let (floor, loud) = (pick(0.02), pick(0.90));
    if loud - floor < 10.0 || loud < -60.0 {
        return None;
    }
    Some(floor + ((loud - floor) * 0.35).max(6.0))
}

/// Pauses as hop ranges `[start, end)` of at least `min_pause`, not touching either end of the audio.
pub fn find_pauses(db: &[f32], min_pause: f64) -> Vec<(usize, usize)> {
    let Some(threshold) = silence_threshold(db) else {
        return Vec::new();
    };
    let min_hops = ((min_pause * 1e6) / ENERGY_HOP_US as f64).round().max(1.0) as usize;
    let mut pauses = Vec::new();
    let mut i = 0;
    while i < db.len() {
        if db[i] >= threshold {
            i += 1;
            continue;
        }
        let start = i;
        while i < db.len() && db[i] < threshold {
            i += 1;
        }
        if i - start >= min_hops && start > 0 && i < db.len() {
            pauses.push((start, i));
        }
    }
    pauses
}

/// Cut times in microseconds for pause-based audio segmentation of `[0, duration_us]`.
///
/// Walking forward, the segment is cut at the middle of each pause once it is at least
/// `min_duration` long; when no pause comes before `max_duration`, it is cut at the quietest hop
/// in the allowed range. A last piece shorter than `min_duration` joins the one before.
pub fn pause_cuts(db: &[f32], duration_us: i64, config: &PauseConfig) -> Vec<i64> {
    let hop_of = |us: i64| (us / ENERGY_HOP_US) as usize;
    let min_us = (config.min_duration * 1e6) as i64;
    let max_us = (config.max_duration * 1e6) as i64;
    let pauses = find_pauses(db, config.min_pause);
    let mut centres = pauses.iter().map(|&(s, e)| (s + e) as i64 * ENERGY_HOP_US / 2).peekable();
    let mut cuts = Vec::new();
    let mut start = 0i64;
    loop {
        if duration_us - start <= max_us {
            // Take the pauses that remain while the pieces stay long enough.
            while let Some(c) = centres.next_if(|&c| c < duration_us) {
                if c - start >= min_us {
                    cuts.push(c);
                    start = c;
                }
            }
            break;
        }
        let limit = start + max_us;
        match centres.next_if(|&c| c <= limit) {
            Some(c) if c - start >= min_us => {
                cuts.push(c);
                start = c;
            }
            Some(_) => {}
            None => {
                let (lo, hi) = (hop_of(start + min_us), hop_of(limit).min(db.len()));
                // Latest of the quietest hops: on flat audio this cuts at the limit, not just past the minimum.
                let quietest =
                    (lo..hi).rev().min_by(|&a, &b| db[a].total_cmp(&db[b])).map_or(limit, |h| h as i64 * ENERGY_HOP_US);
                let cut = quietest.clamp(start + min_us.max(1), limit);
                cuts.push(cut);
                start = cut;
            }
        }
    }
    if let Some(&last) = cuts.last() {
        if duration_us - last < min_us {
            cuts.pop();
        }
    }
    cuts
}

/// Samples of leading silence in a stretch of 16 kHz audio that may be dropped before it is
/// heard, keeping `margin_us` before the first loud 10 ms hop (by `silence_threshold` over the
/// stretch itself). Zero when the stretch has no contrast. Audio segments are cut in the middle
/// of pauses, so a window opens with up to half a pause of silence: Whisper tends to stamp the
/// first words of a window at 0.00 however late they come, which put phrases a second or more
/// early.
pub fn leading_silence(pcm: &[f32], margin_us: i64) -> usize {
    let mut energy = AudioEnergy::new();
    energy.push(pcm);
    let db = energy.finish();
    let Some(threshold) = silence_threshold(&db) else { return 0 };
    let onset = db.iter().position(|&d| d >= threshold).unwrap_or(0);
    let margin_hops = (margin_us / ENERGY_HOP_US) as usize;
    (onset.saturating_sub(margin_hops) * HOP_SAMPLES).min(pcm.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dB per 10 ms hop from (seconds, level) pieces.
    fn track(pieces: &[(f64, f32)]) -> Vec<f32> {
        pieces.iter().flat_map(|&(secs, level)| std::iter::repeat_n(level, (secs * 100.0).round() as usize)).collect()
    }

    fn check(pieces: &[(f64, f32)], config: &PauseConfig, expected_secs: &[f64]) {
        let db = track(pieces);
        let duration = db.len() as i64 * ENERGY_HOP_US;
        let cuts: Vec<f64> = pause_cuts(&db, duration, config).iter().map(|&c| c as f64 / 1e6).collect();
        assert_eq!(cuts, expected_secs, "pieces {pieces:?}");
    }

    #[test]
    fn cuts_at_the_middle_of_each_pause() {
        let speech = -20.0;
        let quiet = -80.0;
        check(
            &[(3.0, speech), (1.0, quiet), (4.0, speech), (0.5, quiet), (3.0, speech)],
            &PauseConfig::default(),
            &[3.5, 8.25],
        );
    }

    #[test]
    fn short_pieces_join_and_long_speech_is_split_at_its_quietest_point() {
        let cfg = PauseConfig { min_pause: 0.3, min_duration: 2.0, max_duration: 10.0 };
        // The pause after 1 s of speech is too early, and cutting at the later one would leave
        // 1.25 s at the end: no cut at all.
        check(&[(1.0, -20.0), (0.5, -80.0), (5.0, -20.0), (0.5, -80.0), (1.0, -20.0)], &cfg, &[]);
        check(&[(3.0, -20.0), (0.5, -80.0), (5.0, -20.0), (0.5, -80.0), (1.0, -20.0)], &cfg, &[3.25]);
        // 25 s of speech with one dip at 6 s: cut there, then the quietest hop of the next 10 s.
        let db = track(&[(6.0, -20.0), (0.1, -35.0), (18.9, -20.0)]);
        let cuts = pause_cuts(&db, db.len() as i64 * ENERGY_HOP_US, &cfg);
        assert_eq!(cuts, vec![6_090_000, 16_080_000], "flat speech is cut at the limit, not into short pieces");
    }

    #[test]
    fn silence_and_steady_tone_have_no_pauses() {
        assert!(find_pauses(&track(&[(5.0, -100.0)]), 0.3).is_empty());
        assert!(find_pauses(&track(&[(5.0, -12.0)]), 0.3).is_empty());
    }

    #[test]
    fn leading_silence_stops_a_margin_before_the_first_loud_hop() {
        let rate = ANALYSIS_SAMPLE_RATE as usize;
        // 1.5 s of faint noise, then 1 s of a loud tone.
        let mut pcm: Vec<f32> = (0..rate * 3 / 2).map(|i| if i % 2 == 0 { 1e-4 } else { -1e-4 }).collect();
        pcm.extend((0..rate).map(|i| 0.5 * (i as f32 * 0.07).sin()));
        assert_eq!(leading_silence(&pcm, 400_000), rate * 11 / 10, "1.5 s of silence less 0.4 s of margin");
        // A margin longer than the silence keeps all of it.
        assert_eq!(leading_silence(&pcm, 2_000_000), 0);
        // Speech from the first sample, or no contrast at all: nothing to drop.
        assert_eq!(leading_silence(&pcm[rate * 3 / 2..], 400_000), 0);
        assert_eq!(leading_silence(&vec![0.0; rate], 400_000), 0);
    }
}
