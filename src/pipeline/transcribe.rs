//! Stage 5, transcribe: the audio segments (cut at pauses) are the windows Whisper hears; their
//! phrases are stored with media-relative times, and each primary segment of the media gets the
//! text spoken during it, embedded into the transcript space.
//!
//! Audio is decoded again here, one window at a time (at most 30 s in memory). The Whisper
//! decoder is this job's own (from the engine's pool), so no lock is held that others wait on.

use std::path::Path;

use super::embed::embed_texts;
use crate::error::Result;
use crate::ids::SegmentId;
use crate::jobs::JobContext;
use crate::media::{self, DecodeOptions, Flow, FrameSink, VideoFrame, ANALYSIS_SAMPLE_RATE};
use crate::ml::whisper::{Phrase as TimedText, WhisperModel};
use crate::ml::{Models, SpeechModel};
use crate::store::{all_segments, NewPhrase, Stores};
use crate::types::{secs_to_us, us_to_secs, JobStage, Media, Phrase, Scope, Segment, SegmentKind, Space};

/// Longest window Whisper hears (its context).
const WINDOW_US: i64 = 30_000_000;

/// A window: the audio segment it belongs to and its bounds in microseconds.
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
            let position_us = (self.samples_seen as i64 * 1_000_000) / i64::from(ANALYSIS_SAMPLE_RATE);
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

/// Transcribe `path` window by window: decode its audio once, hand each window's samples to
/// Whisper, and return every phrase with media-relative times in microseconds (clamped to its
/// window), the window it came from and the language heard.
fn transcribe_windows(
    path: &Path,
    bounds: Vec<Window>,
    whisper: &mut WhisperModel,
    ctx: &JobContext,
) -> Result<Vec<NewPhrase>> {
    let mut phrases = Vec::new();
    let mut on_window = |w: &Window, pcm: &[f32]| -> Result<()> {
        let out = whisper.transcribe(pcm)?;
        for TimedText { start, end, text } in out.phrases {
            let s = (w.start_us + secs_to_us(start)).min(w.end_us);
            let e = (w.start_us + secs_to_us(end)).clamp(s, w.end_us);
            phrases.push(NewPhrase {
                window_segment_id: w.segment.clone(),
                start_us: s,
                end_us: e,
                text,
                language: out.language.clone(),
            });
        }
        Ok(())
    };
    let mut sink = Windows { bounds, current: 0, buffer: Vec::new(), samples_seen: 0, on_window: &mut on_window, ctx };
    media::decode(path, &DecodeOptions { video: false, audio: true, ..DecodeOptions::default() }, &mut sink)?;
    while sink.current < sink.bounds.len() {
        sink.flush()?;
    }
    drop(sink);
    Ok(phrases)
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

/// Transcribe a file without ingesting it: analyse its audio, cut it at pauses (the default
/// content-aware audio segmentation), transcribe each window. Returns the phrases (seconds from
/// the start) and the audio duration in seconds.
pub(crate) fn transcribe_file(path: &Path, whisper: &mut WhisperModel) -> Result<(Vec<Phrase>, f64)> {
    let ctx = JobContext::detached();
    let analysis = super::analyse::analyse(path, &Default::default(), None, &ctx)?;
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
    fn long_segments_split_into_even_windows_of_at_most_30_s() {
        let w = windows(&[(None, 0, 10_000_000), (None, 10_000_000, 75_000_000)]);
        let spans: Vec<(i64, i64)> = w.iter().map(|w| (w.start_us, w.end_us)).collect();
        assert_eq!(
            spans,
            vec![(0, 10_000_000), (10_000_000, 31_666_666), (31_666_666, 53_333_333), (53_333_333, 75_000_000)]
        );
    }
}
