//! Stage 5, transcribe: the audio segments (cut at pauses) that may hold speech are packed,
//! consecutive ones together, into windows of up to 30 s, the length Whisper hears at once
//! (one encoder pass per window, however short: a window per segment cost an encoder pass per
//! pause). Windows still never cut a word. Each phrase is stored with media-relative times
//! and the audio segment its middle falls in, and each primary segment of the media gets the
//! text spoken during it, embedded into the transcript space.
//!
//! Audio is decoded again here, one segment at a time (at most 30 s of packed audio and one
//! segment in memory). The Whisper decoder is this job's own (from the engine's pool), so no
//! lock is held that others wait on.

use std::path::Path;

use super::embed::embed_texts;
use crate::error::Result;
use crate::ids::SegmentId;
use crate::jobs::JobContext;
use crate::media::{self, DecodeOptions, Flow, FrameSink, VideoFrame, ANALYSIS_SAMPLE_RATE};
use crate::ml::whisper::{Phrase as TimedText, WhisperModel};
use crate::ml::{Models, SpeechModel};
use crate::segment::leading_silence;
use crate::store::{all_segments, NewPhrase, Stores};
use crate::types::{secs_to_us, us_to_secs, JobStage, Media, Phrase, Scope, Segment, SegmentKind, Space};

/// Longest window Whisper hears (its context).
const WINDOW_US: i64 = 30_000_000;
const WINDOW_SAMPLES: usize = 30 * ANALYSIS_SAMPLE_RATE as usize;
/// Silence kept before the first loud sound of a window, for soft onsets. Whisper stamps the
/// first words of a window at 0.00 when they start this close to it, so this is also how early
/// such a phrase may be said to start.
const LEAD_US: i64 = 200_000;

/// An audio segment (or a piece of one longer than 30 s) and its bounds in microseconds.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    segment: Option<SegmentId>,
    start_us: i64,
    end_us: i64,
}

/// Collects the samples of one window after another and hands each full window over.
struct Windows<'a> {
    bounds: Vec<Window>,
    current: usize,
    buffer: Vec<f32>,
    samples_seen: u64,
    on_window: &'a mut dyn FnMut(&Window, &[f32]) -> Result<()>,
    ctx: &'a JobContext,
}

impl Windows<'_> {
    fn flush(&mut self) -> Result<()> {
        if let Some(b) = self.bounds.get(self.current) {
            self.ctx.check()?;
            self.ctx.progress(JobStage::Transcribing, self.current as f32 / self.bounds.len().max(1) as f32);
            (self.on_window)(b, &self.buffer)?;
        }
        self.buffer.clear();
        self.current += 1;
        Ok(())
    }
}

impl FrameSink for Windows<'_> {
    fn video_frame(&mut self, _frame: &VideoFrame<'_>) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    fn audio_samples(&mut self, samples: &[f32]) -> Result<Flow> {
        self.ctx.check()?;
        for &s in samples {
            let position_us = media::samples_to_us(self.samples_seen);
            self.samples_seen += 1;
            while self.current < self.bounds.len() && position_us >= self.bounds[self.current].end_us {
                self.flush()?;
            }
            if self.current >= self.bounds.len() {
                return Ok(Flow::Stop);
            }
            self.buffer.push(s);
        }
        Ok(Flow::Continue)
    }
}

/// Windows over audio segments, each at most 30 s (longer segments, possible with fixed audio
/// segmentation, are split evenly).
fn windows(audio_segments: &[(Option<SegmentId>, i64, i64)]) -> Vec<Window> {
    let mut out = Vec::new();
    for (segment, start_us, end_us) in audio_segments {
        let len = end_us - start_us;
        let pieces = ((len + WINDOW_US - 1) / WINDOW_US).max(1);
        for k in 0..pieces {
            out.push(Window {
                segment: segment.clone(),
                start_us: start_us + len * k / pieces,
                end_us: start_us + len * (k + 1) / pieces,
            });
        }
    }
    out
}

/// Transcribe `path` window by window: decode its audio once, pack the segments that may hold
/// speech into windows, hand each window to Whisper, and return every phrase with
/// media-relative times in microseconds (clamped to its window), the segment it was said in and
/// the language heard.
fn transcribe_windows(
    path: &Path,
    bounds: Vec<Window>,
    whisper: &mut WhisperModel,
    ctx: &JobContext,
) -> Result<Vec<NewPhrase>> {
    let mut phrases = Vec::new();
    let mut pack = Pack::default();
    let mut on_window = |w: &Window, pcm: &[f32]| -> Result<()> {
        let speech = whisper.may_hold_speech(pcm)?;
        if !speech || !pack.takes(w, pcm) {
            pack.transcribe(whisper, &mut phrases)?;
        }
        if speech {
            pack.push(w, pcm);
        }
        Ok(())
    };
    let mut sink = Windows { bounds, current: 0, buffer: Vec::new(), samples_seen: 0, on_window: &mut on_window, ctx };
    media::decode(path, &DecodeOptions { video: false, audio: true, ..DecodeOptions::default() }, &mut sink)?;
    while sink.current < sink.bounds.len() {
        sink.flush()?;
    }
    drop(sink);
    pack.transcribe(whisper, &mut phrases)?;
    Ok(phrases)
}

/// Consecutive audio segments waiting to be heard as one window.
#[derive(Default)]
struct Pack {
    parts: Vec<Window>,
    pcm: Vec<f32>,
}

impl Pack {
    /// Whether `w` can join: it follows the last part and the window stays within 30 s.
    fn takes(&self, w: &Window, pcm: &[f32]) -> bool {
        self.parts.last().is_none_or(|last| last.end_us == w.start_us) && self.pcm.len() + pcm.len() <= WINDOW_SAMPLES
    }

    /// Add `w`; a window opens at most [`LEAD_US`] before its first loud sound.
    fn push(&mut self, w: &Window, pcm: &[f32]) {
        let mut w = w.clone();
        let mut pcm = pcm;
        if self.parts.is_empty() {
            let skip = leading_silence(pcm, LEAD_US);
            w.start_us += media::samples_to_us(skip as u64);
            pcm = &pcm[skip..];
        }
        self.parts.push(w);
        self.pcm.extend_from_slice(pcm);
    }

    /// Transcribe the window (if any) and empty it.
    fn transcribe(&mut self, whisper: &mut WhisperModel, phrases: &mut Vec<NewPhrase>) -> Result<()> {
        let (Some(first), Some(last)) = (self.parts.first(), self.parts.last()) else { return Ok(()) };
        let (start_us, end_us) = (first.start_us, last.end_us);
        let out = whisper.transcribe_speech(&self.pcm)?;
        for TimedText { start, end, text } in out.phrases {
            let s = (start_us + secs_to_us(start)).min(end_us);
            let e = (start_us + secs_to_us(end)).clamp(s, end_us);
            let middle = s + (e - s) / 2;
            let part = self.parts.iter().find(|p| middle < p.end_us).unwrap_or(last);
            phrases.push(NewPhrase {
                window_segment_id: part.segment.clone(),
                start_us: s,
                end_us: e,
                text,
                language: out.language.clone(),
            });
        }
        self.parts.clear();
        self.pcm.clear();
        Ok(())
    }
}

/// Transcribe a completed media item: store its phrases and the transcript vectors of its
/// segments. Returns the number of phrases.
pub(crate) fn transcribe_media(
    stores: &Stores,
    models: &Models,
    whisper: &mut SpeechModel<'_>,
    media: &Media,
    path: &Path,
    ctx: &JobContext,
) -> Result<usize> {
    let audio = all_segments(stores.catalog.as_ref(), &media.video_id, SegmentKind::Audio)?;
    if audio.is_empty() {
        return Ok(0);
    }
    let bounds = windows(&audio.iter().map(|s| (Some(s.segment_id.clone()), s.start_us, s.end_us)).collect::<Vec<_>>());
    let model_ref = whisper.model_ref().clone();
    let phrases = transcribe_windows(path, bounds, whisper, ctx)?;
    stores.catalog.set_phrases(&media.video_id, &model_ref, &phrases)?;
    embed_transcripts(stores, models, media)?;
    Ok(phrases.len())
}

/// Embed, for each primary segment of a media item, the text spoken during it: the phrases
/// whose middle falls inside it, so that no phrase is split between segments.
pub(crate) fn embed_transcripts(stores: &Stores, models: &Models, media: &Media) -> Result<()> {
    let phrases = stores.catalog.phrases(&media.video_id)?;
    if phrases.is_empty() {
        return Ok(());
    }
    let segments = all_segments(stores.catalog.as_ref(), &media.video_id, media.primary_kind())?;
    let texts = spoken_per_segment(&segments, &phrases);
    embed_texts(stores, models, &Scope::of(media.index_id.as_ref()), Space::Transcript, &texts)
}

/// The text spoken in each segment (segments with none are left out).
pub(crate) fn spoken_per_segment(segments: &[Segment], phrases: &[Phrase]) -> Vec<(SegmentId, String)> {
    segments
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let said: Vec<&str> = phrases
                .iter()
                .filter(|p| s.holds(secs_to_us((p.start + p.end) / 2.0), i + 1 == segments.len()))
                .map(|p| p.text.as_str())
                .collect();
            (!said.is_empty()).then(|| (s.segment_id.clone(), said.join(" ")))
        })
        .collect()
}

/// Transcribe a file without ingesting it: analyse its audio (no video is decoded), cut it at
/// pauses (the default content-aware audio segmentation), transcribe each window. Returns the phrases (seconds from
/// the start) and the audio duration in seconds.
pub(crate) fn transcribe_file(path: &Path, whisper: &mut WhisperModel) -> Result<(Vec<Phrase>, f64)> {
    let ctx = JobContext::detached();
    let analysis = super::analyse::analyse_audio(path, &ctx)?;
    let config = crate::segment::SegmentationConfig::default();
    let spans = crate::segment::audio_spans(&config, &analysis.audio_db, analysis.duration_us);
    let bounds = windows(&spans.iter().map(|s| (None, s.start_us, s.end_us)).collect::<Vec<_>>());
    let phrases = transcribe_windows(path, bounds, whisper, &ctx)?
        .into_iter()
        .map(|p| Phrase {
            start: us_to_secs(p.start_us),
            end: us_to_secs(p.end_us),
            text: p.text,
            language: p.language,
        })
        .collect();
    Ok((phrases, us_to_secs(analysis.duration_us)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_consecutive_segments_within_30_s_share_a_window() {
        let w = |a: i64, b: i64| Window { segment: None, start_us: a * 1_000_000, end_us: b * 1_000_000 };
        let pcm = |secs: usize| vec![0f32; secs * ANALYSIS_SAMPLE_RATE as usize];
        let mut pack = Pack::default();
        assert!(pack.takes(&w(0, 12), &pcm(12)));
        pack.push(&w(0, 12), &pcm(12));
        assert!(pack.takes(&w(12, 30), &pcm(18)), "exactly 30 s");
        assert!(!pack.takes(&w(12, 31), &pcm(19)), "31 s");
        assert!(!pack.takes(&w(14, 20), &pcm(6)), "a gap: the segment between held no speech");
    }

    #[test]
    fn long_segments_split_into_even_windows_of_at_most_30_s() {
        let w = windows(&[(None, 0, 10_000_000), (None, 10_000_000, 75_000_000)]);
        let spans: Vec<(i64, i64)> = w.iter().map(|w| (w.start_us, w.end_us)).collect();
        assert_eq!(
            spans,
            vec![(0, 10_000_000), (10_000_000, 31_666_666), (31_666_666, 53_333_333), (53_333_333, 75_000_000)]
        );
    }
}
