//! Transcription at ingest: the audio segments (cut at pauses) are the windows Whisper hears;
//! their phrases are stored with media-relative times, and each segment of the media gets the
//! text spoken during it, embedded into the transcript space.
//!
//! Audio is decoded again here, one window at a time (at most 30 s in memory).

use std::path::Path;

use crate::embed::whisper::{Phrase, WhisperModel};
use crate::error::{Error, Result};
use crate::media::{self, DecodeOptions, Flow, FrameSink, VideoFrame, ANALYSIS_SAMPLE_RATE};
use crate::segment::secs_to_us;
use crate::store::{NewPhrase, NewVector, Segment, SegmentKind, Space};
use crate::Engine;

/// Longest window Whisper hears (its context).
const WINDOW_US: i64 = 30_000_000;

/// A window: the audio segment it belongs to and its bounds in microseconds.
type Window = (Option<String>, i64, i64);

/// Collects the samples of one window after another and hands each full window over.
struct Windows<'a> {
    bounds: Vec<Window>,
    current: usize,
    buffer: Vec<f32>,
    position_us: i64,
    samples_seen: u64,
    on_window: &'a mut dyn FnMut(&Window, &[f32]) -> Result<()>,
}

impl Windows<'_> {
    fn flush(&mut self) -> Result<()> {
        if let Some(b) = self.bounds.get(self.current) {
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
        for &s in samples {
            self.position_us = (self.samples_seen as i64 * 1_000_000) / i64::from(ANALYSIS_SAMPLE_RATE);
            self.samples_seen += 1;
            while self.current < self.bounds.len() && self.position_us >= self.bounds[self.current].2 {
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

/// Windows over a media item's audio segments, each at most 30 s (longer segments, possible with
/// fixed audio segmentation, are split evenly).
fn windows(audio_segments: &[Segment]) -> Vec<Window> {
    let mut out = Vec::new();
    for s in audio_segments {
        let len = s.end_us - s.start_us;
        let pieces = ((len + WINDOW_US - 1) / WINDOW_US).max(1);
        for k in 0..pieces {
            let a = s.start_us + len * k / pieces;
            let b = s.start_us + len * (k + 1) / pieces;
            out.push((Some(s.segment_id.clone()), a, b));
        }
    }
    out
}

/// Transcribe `path` window by window: decode its audio once, hand each window's samples to
/// Whisper, and return every phrase with media-relative times in microseconds (clamped to its
/// window), the window it came from and the language heard.
fn transcribe_windows(path: &Path, bounds: Vec<Window>, whisper: &mut WhisperModel) -> Result<Vec<NewPhrase>> {
    let mut phrases = Vec::new();
    let mut on_window = |(segment, start_us, end_us): &Window, pcm: &[f32]| -> Result<()> {
        let out = whisper.transcribe(pcm)?;
        for Phrase { start, end, text } in out.phrases {
            let s = (start_us + secs_to_us(start)).min(*end_us);
            let e = (start_us + secs_to_us(end)).clamp(s, *end_us);
            phrases.push(NewPhrase {
                window_segment_id: segment.clone(),
                start_us: s,
                end_us: e,
                text,
                language: out.language.clone(),
            });
        }
        Ok(())
    };
    let mut sink =
        Windows { bounds, current: 0, buffer: Vec::new(), position_us: 0, samples_seen: 0, on_window: &mut on_window };
    media::decode(path, &DecodeOptions { video: false, audio: true, ..DecodeOptions::default() }, &mut sink)?;
    while sink.current < sink.bounds.len() {
        sink.flush()?;
    }
    drop(sink);
    Ok(phrases)
}

impl Engine {
    /// Transcribe a completed media item with `model`: store its phrases and the transcript
    /// vectors of its segments. Returns the number of phrases.
    pub(crate) fn transcribe_media(
        &self,
        video_id: &str,
        path: &Path,
        model: &std::sync::Mutex<WhisperModel>,
    ) -> Result<usize> {
        let media = self.catalog().get_media(video_id)?;
        let audio_segments = self.catalog().all_segments(video_id, SegmentKind::Audio)?;
        if audio_segments.is_empty() {
            return Ok(0);
        }
        let mut whisper = model.lock().unwrap_or_else(|p| p.into_inner());
        let model_ref = whisper.model_ref().clone();
        let phrases = transcribe_windows(path, windows(&audio_segments), &mut whisper)?;
        drop(whisper);
        self.catalog().set_phrases(video_id, &model_ref, &phrases)?;
        self.embed_transcripts(video_id, media.index_id.as_deref())?;
        Ok(phrases.len())
    }

    /// Embed, for each primary segment of a media item (video segments, or audio segments of an
    /// audio file), the text spoken during it: the phrases whose middle falls inside it, so that
    /// no phrase is split between segments.
    pub(crate) fn embed_transcripts(&self, video_id: &str, index_id: Option<&str>) -> Result<()> {
        let phrases = self.catalog().phrases(video_id)?;
        if phrases.is_empty() {
            return Ok(());
        }
        let mut segments = self.catalog().all_segments(video_id, SegmentKind::Video)?;
        if segments.is_empty() {
            segments = self.catalog().all_segments(video_id, SegmentKind::Audio)?;
        }
        let texts: Vec<(String, String)> = segments
            .iter()
            .filter_map(|s| {
                let said: Vec<&str> = phrases
                    .iter()
                    .filter(|p| {
                        let mid = (p.start + p.end) / 2.0;
                        mid >= s.start && (mid < s.end || (s.index as usize == segments.len() - 1 && mid <= s.end))
                    })
                    .map(|p| p.text.as_str())
                    .collect();
                (!said.is_empty()).then(|| (s.segment_id.clone(), said.join(" ")))
            })
            .collect();
        if texts.is_empty() {
            return Ok(());
        }
        let encoder = self.text_model()?.ok_or_else(|| crate::vectors::missing(self, Space::Transcript))?;
        let vectors = encoder.embed(&texts.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>())?;
        let rows: Vec<NewVector<'_>> = texts
            .iter()
            .zip(&vectors)
            .map(|((segment_id, text), v)| NewVector { segment_id, vector: v, source_text: Some(text) })
            .collect();
        let scope = crate::store::vectors::scope_of(index_id).to_string();
        self.add_vectors(&scope, Space::Transcript, encoder.model_ref(), &rows)
    }
}

/// What `transcript VIDEO_ID` prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transcript {
    pub video_id: String,
    pub phrases: Vec<crate::store::StoredPhrase>,
}

impl Engine {
    /// The transcript of a media item (empty when it had no speech or was not transcribed).
    pub fn transcript(&self, video_id: &str) -> Result<Transcript> {
        self.catalog().get_media(video_id)?;
        Ok(Transcript { video_id: video_id.to_string(), phrases: self.catalog().phrases(video_id)? })
    }
}

/// Decide whether to transcribe: `Ok(Some(model))` to go ahead.
pub(crate) fn speech_model(
    engine: &Engine,
    enable: Option<bool>,
) -> Result<Option<std::sync::Arc<std::sync::Mutex<WhisperModel>>>> {
    match enable {
        Some(false) => Ok(None),
        None => engine.asr_model(),
        Some(true) => engine.asr_model()?.map(Some).ok_or_else(|| Error::ModelMissing {
            model: crate::embed::DEFAULT_ASR_MODEL.into(),
            missing: vec!["model.bin or model.safetensors".into(), "config.json".into(), "tokenizer.json".into()],
            hint: engine
                .asr_off_reason()
                .unwrap_or_else(|| "transcription was asked for but the speech model is turned off".into()),
        }),
    }
}

/// Transcribe a file without ingesting it: analyse its audio, cut it at pauses (the default
/// content-aware audio segmentation), transcribe each window. Returns the phrases (seconds from
/// the start) and the audio duration in seconds. Used by the `asr` command and ASR comparisons.
pub fn transcribe_file(path: &Path, model: &std::sync::Mutex<WhisperModel>) -> Result<(Vec<Phrase>, f64)> {
    let analysis = crate::ingest::analyse(path, &Default::default(), &mut |_| {})?;
    let config = crate::segment::SegmentationConfig::default();
    let spans = crate::segment::audio_spans(&config, &analysis.audio_db, analysis.duration_us);
    let segments: Vec<Segment> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| Segment {
            segment_id: format!("window_{i}"),
            video_id: String::new(),
            run_id: None,
            kind: SegmentKind::Audio,
            index: i as u32,
            start: crate::segment::us_to_secs(s.start_us),
            end: crate::segment::us_to_secs(s.end_us),
            start_us: s.start_us,
            end_us: s.end_us,
            segmentation_type: "content_aware".into(),
            keyframe_time: None,
            keyframe_frame: None,
            thumbnail_path: None,
        })
        .collect();
    let mut whisper = model.lock().unwrap_or_else(|p| p.into_inner());
    let phrases = transcribe_windows(path, windows(&segments), &mut whisper)?
        .into_iter()
        .map(|p| Phrase {
            start: crate::segment::us_to_secs(p.start_us),
            end: crate::segment::us_to_secs(p.end_us),
            text: p.text,
        })
        .collect();
    Ok((phrases, crate::segment::us_to_secs(analysis.duration_us)))
}
