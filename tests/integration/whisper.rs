//! Whisper against the reference implementation (HF transformers on the same converted weights,
//! `scripts/golden/whisper_golden.py`) and against the LibriVox transcripts: mel features,
//! encoder output, first-step logits, word error rate, and no text from silence, tone or noise.

use std::path::Path;

use candle_core::{Device, IndexOp};
use serde_json::Value;
use videovector::internals::media::{decode, DecodeOptions, Flow, FrameSink, VideoFrame};
use videovector::internals::ml::whisper::{mel_filters, WhisperModel, WHISPER_FILES};
use videovector::internals::ml::{source, DEFAULT_ASR_MODEL};

use crate::common::fixture;

fn golden() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/whisper_tiny_en_golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub fn tiny_en() -> WhisperModel {
    let files = source::resolve(DEFAULT_ASR_MODEL, &WHISPER_FILES[..1], &source::search_dirs(None))
        .expect("whisper tiny.en is fetched by scripts/fetch_models.sh");
    WhisperModel::load(&files, &Device::Cpu).unwrap()
}

struct Pcm(Vec<f32>);

impl FrameSink for Pcm {
    fn video_frame(&mut self, _f: &VideoFrame<'_>) -> videovector::Result<Flow> {
        Ok(Flow::Continue)
    }
    fn audio_samples(&mut self, s: &[f32]) -> videovector::Result<Flow> {
        self.0.extend_from_slice(s);
        Ok(Flow::Continue)
    }
}

pub fn pcm(name: &str) -> Vec<f32> {
    let mut sink = Pcm(Vec::new());
    decode(&fixture(name), &DecodeOptions { video: false, ..Default::default() }, &mut sink).unwrap();
    sink.0
}

/// Lower case, hyphens to spaces, no punctuation, "mr" as "mister": the reference's spelling.
pub fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('-', " ")
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .map(|w| match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "dr" => "doctor".to_string(),
            w => w.to_string(),
        })
        .collect()
}

/// Word-level edit distance.
pub fn word_errors(hyp: &[String], reference: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=reference.len()).collect();
    for (i, h) in hyp.iter().enumerate() {
        let mut cur = vec![i + 1; reference.len() + 1];
        for (j, r) in reference.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(h != r)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[reference.len()]
}

#[test]
fn features_encoder_and_first_logits_match_the_reference() {
    let g = golden();
    let mut model = tiny_en();
    let audio = pcm("librivox/sense_and_sensibility_01_austen_64kb-0870.wav");
    assert_eq!(audio.len(), g["audio"]["samples"].as_u64().unwrap() as usize);
    let mel = model.mel(&audio).unwrap();
    assert_eq!(mel.dims(), &[1, 80, 3000]);
    let m = mel.i(0).unwrap().to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for s in g["features"]["samples"].as_array().unwrap() {
        let (b, f, v) =
            (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize, s[2].as_f64().unwrap() as f32);
        worst = worst.max((m[b][f] - v).abs());
    }
    assert!(worst < 2e-3, "log-mel features differ from the reference by {worst}");

    let enc = model.encode(&mel).unwrap();
    let e = enc.i(0).unwrap().to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for s in g["encoder_output"]["samples"].as_array().unwrap() {
        let (t, d, v) =
            (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize, s[2].as_f64().unwrap() as f32);
        worst = worst.max((e[t][d] - v).abs());
    }
    assert!(worst < 2e-2, "encoder output differs from the reference by {worst}");

    let prompt: Vec<u32> =
        g["first_step"]["prompt"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let logits = model.next_logits(&prompt, &enc, true).unwrap().to_vec1::<f32>().unwrap();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top: Vec<u64> = order[..5].iter().map(|&i| i as u64).collect();
    let expected: Vec<u64> =
        g["first_step"]["top10_ids"].as_array().unwrap()[..5].iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(top, expected, "top first tokens");
    let d = (logits[order[0]] - g["first_step"]["top10_logits"][0].as_f64().unwrap() as f32).abs();
    assert!(d < 5e-2, "first logit differs by {d}");
}

#[test]
fn mel_filters_are_slaney_like_the_reference() {
    let g = golden();
    let f = mel_filters(16_000.0, 400, 80);
    for (m, expected) in g["mel_filters"]["row_sums"].as_array().unwrap().iter().enumerate() {
        let sum: f32 = f[m * 201..(m + 1) * 201].iter().sum();
        assert!((f64::from(sum) - expected.as_f64().unwrap()).abs() < 1e-6, "row {m}: {sum} vs {expected}");
    }
}

#[test]
fn word_error_rate_on_librivox_is_low_and_silence_gives_no_text() {
    let mut model = tiny_en();
    let listing = std::fs::read_to_string(fixture("librivox/transcription")).unwrap();
    let (mut errors, mut words) = (0, 0);
    let mut report = Vec::new();
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        // "<text> (<utterance id>)"
        let (text, id) = line.rsplit_once('(').unwrap();
        let text = text.replace("<s>", "").replace("</s>", "");
        let id = id.trim_end_matches(')').trim();
        let audio = pcm(&format!("librivox/{id}.wav"));
        let out = model.transcribe(&audio).unwrap();
        let hyp: String = out.phrases.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" ");
        let (h, r) = (normalise(&hyp), normalise(&text));
        errors += word_errors(&h, &r);
        words += r.len();
        report.push(format!("{id}: {hyp:?}"));
        // Timestamps are inside the audio and in order.
        let secs = audio.len() as f64 / 16_000.0;
        assert!(out.phrases.windows(2).all(|w| w[0].end <= w[1].start + 1e-9), "{:?}", out.phrases);
        assert!(out.phrases.iter().all(|p| p.start >= 0.0 && p.end <= secs + 0.02), "{:?}", out.phrases);
    }
    let wer = errors as f64 / words as f64;
    assert!(wer <= 0.15, "WER {wer:.3} ({errors}/{words})\n{}", report.join("\n"));
    for name in ["silence.wav", "tone.wav", "noise.wav"] {
        let out = model.transcribe(&pcm(name)).unwrap();
        assert!(
            out.phrases.is_empty(),
            "{name} gave text: {:?} (no-speech {:.2}, logprob {:.2})",
            out.phrases,
            out.no_speech_prob,
            out.avg_logprob
        );
    }
}

#[test]
fn word_errors_counts_edits() {
    let w = |s: &str| normalise(s);
    assert_eq!(word_errors(&w("a b c"), &w("a b c")), 0);
    assert_eq!(word_errors(&w("a x c"), &w("a b c")), 1);
    assert_eq!(word_errors(&w("a c"), &w("a b c")), 1);
    assert_eq!(word_errors(&w("Mr. Dashwood-Smith"), &w("mister dashwood smith")), 0);
}

#[test]
fn the_multilingual_base_model_detects_english_and_transcribes_better() {
    let files = source::resolve("openai/whisper-base", &WHISPER_FILES[..1], &source::search_dirs(None))
        .expect("whisper base is fetched (joined from two packages) by scripts/fetch_models.sh");
    let mut model = WhisperModel::load(&files, &Device::Cpu).unwrap();
    assert!(model.is_multilingual());
    let listing = std::fs::read_to_string(fixture("librivox/transcription")).unwrap();
    let (mut errors, mut words) = (0, 0);
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let (text, id) = line.rsplit_once('(').unwrap();
        let text = text.replace("<s>", "").replace("</s>", "");
        let out = model.transcribe(&pcm(&format!("librivox/{}.wav", id.trim_end_matches(')').trim()))).unwrap();
        assert_eq!(out.language.as_deref(), Some("en"), "language detected for {id}");
        let hyp: String = out.phrases.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" ");
        errors += word_errors(&normalise(&hyp), &normalise(&text));
        words += normalise(&text).len();
    }
    let wer = errors as f64 / words as f64;
    assert!(wer <= 0.05, "base WER {wer:.3} ({errors}/{words})");
}

#[test]
fn a_converted_hf_folder_loads_and_agrees_with_the_ctranslate2_one() {
    let ct2 = source::resolve(DEFAULT_ASR_MODEL, &WHISPER_FILES[..1], &source::search_dirs(None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    videovector::internals::ml::ct2::convert_whisper_folder(&ct2.dir, dir.path()).unwrap();
    for f in WHISPER_FILES {
        assert!(dir.path().join(f).is_file(), "{f} written");
    }
    let hf = source::resolve(dir.path().to_str().unwrap(), WHISPER_FILES, &[]).unwrap();
    let mut a = WhisperModel::load(&ct2, &Device::Cpu).unwrap();
    let mut b = WhisperModel::load(&hf, &Device::Cpu).unwrap();
    let audio = pcm("librivox/sense_and_sensibility_01_austen_64kb-0880.wav");
    let (ta, tb) = (a.transcribe(&audio).unwrap(), b.transcribe(&audio).unwrap());
    assert_eq!(ta.phrases, tb.phrases, "same weights, same transcript");
    assert!(!ta.phrases.is_empty());
}
