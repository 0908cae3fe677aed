//! Whisper against the reference implementation (HF transformers on the same converted weights,
//! `scripts/golden/whisper_golden.py`) and against the LibriVox transcripts: mel features,
//! encoder output, first-step logits, word error rate, and no text from silence, tone or noise.

use std::path::Path;

use candle_core::{Device, IndexOp};
use serde_json::Value;
use videovector::internals::media::decode_audio;
use videovector::internals::ml::whisper::{mel_filters, WhisperModel, WHISPER_FILES};
use videovector::internals::ml::{source, Precision, DEFAULT_ASR_MODEL};

use crate::common::fixture;

fn golden() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/whisper_tiny_en_golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub fn tiny_en() -> WhisperModel {
    tiny_en_with(Precision::F32)
}

fn tiny_en_with(precision: Precision) -> WhisperModel {
    let files = source::resolve(DEFAULT_ASR_MODEL, &WHISPER_FILES[..1], &source::search_dirs(None))
        .expect("whisper tiny.en is fetched by scripts/fetch_models.sh");
    WhisperModel::load_with(&files, &Device::Cpu, precision).unwrap()
}

pub fn pcm(name: &str) -> Vec<f32> {
    decode_audio(&fixture(name)).unwrap()
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
    let logits = model.next_logits(&prompt, &enc).unwrap().to_vec1::<f32>().unwrap();
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

/// Word errors and reference words of `model` over the LibriVox utterances, with what it heard;
/// checks the timestamps on the way.
fn librivox_errors(model: &mut WhisperModel) -> (usize, usize, Vec<String>) {
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
    (errors, words, report)
}

/// Low WER on LibriVox, 8-bit decoder weights at most one word worse than f32, and no text from
/// silence, a tone or noise.
#[test]
fn word_error_rate_on_librivox_is_low_in_f32_and_int8_and_silence_gives_no_text() {
    let mut model = tiny_en();
    let (errors, words, report) = librivox_errors(&mut model);
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

    let mut int8 = tiny_en_with(Precision::Int8);
    assert_eq!(int8.precision(), Precision::Int8);
    let (int8_errors, _, report) = librivox_errors(&mut int8);
    assert!(
        int8_errors <= errors + 1,
        "int8: {int8_errors} of {words} words wrong, f32: {errors}\n{}",
        report.join("\n")
    );
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

/// `secs` of 16 kHz audio from `f(t)`.
fn synth(secs: f64, f: impl Fn(f64) -> f64) -> Vec<f32> {
    (0..(secs * 16_000.0) as usize).map(|i| f(i as f64 / 16_000.0) as f32).collect()
}

fn sine(hz: f64, t: f64) -> f64 {
    (2.0 * std::f64::consts::PI * hz * t).sin()
}

/// A note with three harmonics, a 10 ms attack and an exponential decay.
fn note(hz: f64, t: f64) -> f64 {
    let envelope = (t / 0.01).min(1.0) * (-t * 4.0).exp();
    envelope * (sine(hz, t) + 0.5 * sine(2.0 * hz, t) + 0.25 * sine(3.0 * hz, t)) / 1.75
}

/// Signals that hold no speech: steady tones of several pitches and levels, a chord, mains
/// hum, a square wave, a click track and two synthetic melodies.
fn not_speech() -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for hz in [110.0, 440.0, 1000.0, 3000.0] {
        for amp in [0.02, 0.5] {
            out.push((format!("sine {hz} Hz at {amp}"), synth(5.0, move |t| amp * sine(hz, t))));
        }
    }
    out.push(("A major chord".into(), synth(5.0, |t| 0.2 * (sine(440.0, t) + sine(554.37, t) + sine(659.26, t)))));
    out.push((
        "50 Hz hum with harmonics".into(),
        synth(6.0, |t| (1..=10).map(|n| 0.3 / n as f64 * sine(50.0 * n as f64, t)).sum()),
    ));
    out.push(("220 Hz square wave".into(), synth(4.0, |t| 0.3 * sine(220.0, t).signum())));
    out.push(("click track, 120 bpm".into(), synth(8.0, |t| if t % 0.5 < 0.001 { 0.8 } else { 0.0 })));
    let scale = [261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25];
    out.push((
        "a scale of plucked notes, 250 ms each".into(),
        synth(8.0, move |t| 0.5 * note(scale[(t / 0.25) as usize % 8], t % 0.25)),
    ));
    out.push((
        "an arpeggio of held organ notes, 500 ms each".into(),
        synth(8.0, move |t| {
            let hz = scale[[0, 2, 4, 7][(t / 0.5) as usize % 4]];
            0.3 * (sine(hz, t) + 0.5 * sine(2.0 * hz, t) + 0.3 * sine(4.0 * hz, t))
        }),
    ));
    out
}

#[test]
fn tones_chords_hums_clicks_and_melodies_give_no_text_and_speech_still_does() {
    let mut model = tiny_en();
    let mut failures = Vec::new();
    for (name, audio) in not_speech() {
        let shape = model.sound_shape(&model.mel(&audio).unwrap(), audio.len()).unwrap();
        let out = model.transcribe(&audio).unwrap();
        println!("{name}: {shape:?} {:?}", out.phrases);
        if !out.phrases.is_empty() {
            failures.push(format!("{name} gave {:?} ({shape:?})", out.phrases));
        }
    }
    // Every window of real speech still goes to the model.
    let listing = std::fs::read_to_string(fixture("librivox/transcription")).unwrap();
    for id in listing.lines().filter_map(|l| l.rsplit_once('(')).map(|(_, id)| id.trim_end_matches(')').trim()) {
        let audio = pcm(&format!("librivox/{id}.wav"));
        let shape = model.sound_shape(&model.mel(&audio).unwrap(), audio.len()).unwrap();
        println!("{id}: {shape:?}");
        if !shape.may_hold_speech() {
            failures.push(format!("speech in {id} was taken for no speech ({shape:?})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
