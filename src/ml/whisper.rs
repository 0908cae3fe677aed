//! Speech to text with Whisper (the model in `whisper_model.rs`): log-mel features, greedy
//! decoding with timestamps under OpenAI's timestamp rules, language detection for
//! multilingual models, and the guards against invented text (a loudness gate and a
//! sound-shape gate before the model, no-speech probability, average log-probability,
//! repetition loops and held sounds).
//!
//! One call transcribes one window of at most 30 s (the audio segmentation cuts at pauses, so
//! windows never split a word) into phrases with times relative to the window start. When a
//! pass over the window stops early (its text ends with a complete phrase before the end of
//! the audio, or reaches the token limit), the next pass starts at the last timestamp, as
//! OpenAI's and faster-whisper's seek loops do, so nothing after it is lost.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper as w;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::cpu;
use super::quant::Precision;
use super::source::ModelFiles;
use super::whisper_model::{DecodeState, Model};
use super::{model_err, ModelRef};
use crate::error::{Error, Result};

/// Files a Whisper folder (HF layout) must hold.
pub const WHISPER_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// Decoding guards, OpenAI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecodeConfig {
    /// A window whose no-speech probability is above this *and* whose average log-probability
    /// is below `logprob_threshold` is silence. Default 0.6.
    pub no_speech_threshold: f64,
    /// Default -1.0.
    pub logprob_threshold: f64,
    /// Text whose gzip-style compression ratio (bytes / distinct 4-grams proxy) is above this is
    /// a repetition loop and is cut back to its first occurrence. Default 2.4.
    pub compression_ratio_threshold: f64,
    /// Latest first timestamp, in seconds. Default 1.0.
    pub max_initial_timestamp: f64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            no_speech_threshold: w::NO_SPEECH_THRESHOLD,
            logprob_threshold: w::LOGPROB_THRESHOLD,
            compression_ratio_threshold: w::COMPRESSION_RATIO_THRESHOLD,
            max_initial_timestamp: 1.0,
        }
    }
}

/// A timed piece of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phrase {
    /// Seconds from the start of the window (or of the media, once placed).
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// What one window gave (`language`, `no_speech_prob` and `avg_logprob` are those of its
/// first pass).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTranscript {
    pub phrases: Vec<Phrase>,
    pub language: Option<String>,
    pub no_speech_prob: f64,
    pub avg_logprob: f64,
}

/// One decoding pass over (the rest of) a window, and how much of it the pass covered.
struct Pass {
    transcript: WindowTranscript,
    /// Seconds from the start of the pass: the whole rest of the window, or up to the last
    /// timestamp of a pass that stopped early.
    covered: f64,
}

/// The shortest rest of a window worth another pass (a word is longer).
const MIN_PASS_SAMPLES: usize = w::SAMPLE_RATE / 5;

/// A loaded Whisper model with its tokenizer and mel filters. Cloning shares the weights (the
/// tensors are reference-counted): a clone is another decoder over the same memory.
#[derive(Clone)]
pub struct WhisperModel {
    model: Model,
    tokenizer: Tokenizer,
    /// Mel filters transposed, `[n_fft / 2 + 1, n_mels]`.
    filters_t: Tensor,
    /// DFT matrices (cos, -sin), `[n_fft, n_fft / 2 + 1]`.
    dft: (Tensor, Tensor),
    device: Device,
    config: w::Config,
    decode: DecodeConfig,
    sot: u32,
    eot: u32,
    transcribe: Option<u32>,
    no_timestamps: u32,
    no_speech: Option<u32>,
    /// First timestamp token (`<|0.00|>`); timestamps step by 20 ms.
    timestamp_begin: u32,
    /// Language tokens (`<|en|>`, ...) for multilingual models.
    languages: Vec<(String, u32)>,
    /// Tokens never generated (the model's suppress list plus special tokens).
    suppress: Vec<u32>,
    /// Tokens not allowed as the first text token (a blank, end of text).
    begin_suppress: Vec<u32>,
    model_ref: ModelRef,
    precision: Precision,
}

impl WhisperModel {
    /// Load an HF Whisper folder (`model.safetensors`) or a CTranslate2 one (`model.bin`,
    /// converted to HF names in memory).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        Self::load_with(files, device, Precision::F32)
    }

    /// [`WhisperModel::load`] with the decoder's linear layers and vocabulary product in
    /// `precision`. (The encoder stays f32: over a window's 1500 positions candle's 8-bit
    /// product is not faster than the f32 one for most of its shapes.)
    pub fn load_with(files: &ModelFiles, device: &Device, precision: Precision) -> Result<Self> {
        let id = &files.id;
        let (vb, hf_config) = if files.dir.join("model.bin").is_file() {
            let (tensors, config) = super::ct2::load_ct2_folder(&files.dir, id, device)?;
            (VarBuilder::from_tensors(tensors, DType::F32, device), config)
        } else {
            let cfg_path = files.dir.join("config.json");
            let config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?)
                    .map_err(|e| model_err(id, format!("config.json: {e}")))?;
            let weights = files.dir.join("model.safetensors");
            (super::mmap_weights(id, &weights, device)?, config)
        };
        let config: w::Config =
            serde_json::from_value(hf_config.clone()).map_err(|e| model_err(id, format!("config.json: {e}")))?;
        let begin_suppress: Vec<u32> = hf_config
            .get("begin_suppress_tokens")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let weights_file = if files.dir.join("model.bin").is_file() { "model.bin" } else { "model.safetensors" };
        let model = Model::load(&vb, &config, Precision::F32, precision)
            .map_err(|e| super::weights_err(id, &files.dir.join(weights_file), e))?;
        let tokenizer = Tokenizer::from_file(files.dir.join("tokenizer.json")).map_err(|e| model_err(id, e))?;
        let token = |t: &str| tokenizer.token_to_id(t);
        let need = |t: &str| token(t).ok_or_else(|| model_err(id, format!("tokenizer.json has no {t} token")));
        let (sot, eot, no_timestamps) = (need(w::SOT_TOKEN)?, need(w::EOT_TOKEN)?, need(w::NO_TIMESTAMPS_TOKEN)?);
        let timestamp_begin = need("<|0.00|>").unwrap_or(no_timestamps + 1);
        let no_speech = w::NO_SPEECH_TOKENS.iter().find_map(|t| token(t));
        let languages: Vec<(String, u32)> =
            LANGUAGES.iter().filter_map(|l| token(&format!("<|{l}|>")).map(|id| (l.to_string(), id))).collect();
        let mut suppress = config.suppress_tokens.clone();
        // Special tokens between <|endoftext|> and the timestamps are never text.
        suppress.extend((eot + 1..timestamp_begin).filter(|&t| t != no_timestamps));
        suppress.sort_unstable();
        suppress.dedup();
        let bins = w::N_FFT / 2 + 1;
        let filters = mel_filters(w::SAMPLE_RATE as f64, w::N_FFT, config.num_mel_bins);
        let build = || -> candle_core::Result<(Tensor, (Tensor, Tensor))> {
            let filters_t = Tensor::from_vec(filters, (config.num_mel_bins, bins), device)?.t()?.contiguous()?;
            let (mut c, mut s) = (Vec::with_capacity(w::N_FFT * bins), Vec::with_capacity(w::N_FFT * bins));
            for n in 0..w::N_FFT {
                for k in 0..bins {
                    let a = 2.0 * std::f64::consts::PI * (k * n % w::N_FFT) as f64 / w::N_FFT as f64;
                    c.push(a.cos() as f32);
                    s.push(-a.sin() as f32);
                }
            }
            Ok((
                filters_t,
                (Tensor::from_vec(c, (w::N_FFT, bins), device)?, Tensor::from_vec(s, (w::N_FFT, bins), device)?),
            ))
        };
        let (filters_t, dft) = build().map_err(|e| model_err(id, e))?;
        let transcribe = token(w::TRANSCRIBE_TOKEN);
        Ok(WhisperModel {
            precision,
            model,
            tokenizer,
            filters_t,
            dft,
            device: device.clone(),
            transcribe,
            decode: DecodeConfig::default(),
            sot,
            eot,
            no_timestamps,
            no_speech,
            timestamp_begin,
            languages,
            suppress,
            begin_suppress,
            model_ref: ModelRef { id: files.id.clone(), revision: files.revision.clone(), dims: config.d_model },
            config,
        })
    }

    /// The number format of the decoder's linear layers and vocabulary product.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn model_ref(&self) -> &ModelRef {
        &self.model_ref
    }

    /// English-only checkpoints have 51864 tokens, multilingual ones 51865 or more (their
    /// tokenizers list language tokens either way).
    pub fn is_multilingual(&self) -> bool {
        self.config.vocab_size >= 51865 && !self.languages.is_empty()
    }

    /// Log-mel features `[1, n_mels, 3000]` of up to 30 s of 16 kHz audio, computed as the
    /// reference does: zero-pad to 30 s, centred STFT (reflect padding, periodic Hann, n_fft 400,
    /// hop 160, last frame dropped), power, Slaney mel filters, log10, floor at max - 8, (x + 4) / 4.
    /// The DFT and the filters run as matrix products on the model's device.
    pub fn mel(&self, pcm: &[f32]) -> Result<Tensor> {
        self.log_mel(pcm, w::N_FRAMES).map_err(|e| model_err(&self.model_ref.id, e))
    }

    /// The first `frames` frames of [`WhisperModel::mel`] (the same values: the padding's
    /// frames are never the loudest).
    fn log_mel(&self, pcm: &[f32], frames: usize) -> candle_core::Result<Tensor> {
        let (n_fft, hop, n_mels) = (w::N_FFT, w::HOP_LENGTH, self.config.num_mel_bins);
        let mut samples = pcm[..pcm.len().min(w::N_SAMPLES)].to_vec();
        samples.resize(w::N_SAMPLES, 0.0);
        let pad = n_fft / 2;
        let n = samples.len();
        // Reflect padding: x[pad..1] before, x[n-2..n-pad-1] after.
        let mut padded = Vec::with_capacity(n + 2 * pad);
        padded.extend((1..=pad).rev().map(|i| samples[i]));
        padded.extend_from_slice(&samples);
        padded.extend((n - pad - 1..n - 1).rev().map(|i| samples[i]));
        let frames = frames.clamp(1, w::N_FRAMES); // of 1 + n / hop, the last one dropped
        let hann: Vec<f32> = (0..n_fft)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32)
            .collect();
        let mut windows = Vec::with_capacity(frames * n_fft);
        for f in 0..frames {
            windows.extend(padded[f * hop..f * hop + n_fft].iter().zip(&hann).map(|(x, h)| x * h));
        }
        let windows = Tensor::from_vec(windows, (frames, n_fft), &self.device)?;
        let (cos, sin) = &self.dft;
        let re = windows.matmul(cos)?;
        let im = windows.matmul(sin)?;
        let power = (re.sqr()? + im.sqr()?)?; // [frames, bins]
        let mel = power.matmul(&self.filters_t)?; // [frames, n_mels]
        let log = (mel.clamp(1e-10f32, f32::INFINITY)?.log()? / std::f64::consts::LN_10)?;
        let max = log.max_all()?.to_scalar::<f32>()?;
        let log = log.clamp(max - 8.0, f32::INFINITY)?;
        let log = ((log + 4.0)? / 4.0)?;
        log.t()?.contiguous()?.reshape((1, n_mels, frames))
    }

    /// Transcribe one window of at most 30 s, if [`WhisperModel::may_hold_speech`] says it may.
    pub fn transcribe(&mut self, pcm: &[f32]) -> Result<WindowTranscript> {
        if !self.may_hold_speech(pcm)? {
            return Ok(WindowTranscript { phrases: Vec::new(), language: None, no_speech_prob: 1.0, avg_logprob: 0.0 });
        }
        self.transcribe_speech(pcm)
    }

    /// Whether audio (at most 30 s) is worth sending to the model: its loudest 10 ms is above
    /// [`SPEECH_FLOOR_DBFS`] (on digital silence Whisper is known to invent a "you" or a "thank
    /// you") and its sound has the shape of speech ([`SoundShape`]: not a tone, a hum or clicks).
    pub fn may_hold_speech(&self, pcm: &[f32]) -> Result<bool> {
        if loudest_hop_dbfs(pcm) < SPEECH_FLOOR_DBFS {
            return Ok(false);
        }
        let frames = (pcm.len() / w::HOP_LENGTH).min(w::N_FRAMES);
        let mel = self.log_mel(pcm, frames).map_err(|e| model_err(&self.model_ref.id, e))?;
        Ok(self.sound_shape(&mel, pcm.len())?.may_hold_speech())
    }

    /// Transcribe one window of at most 30 s without the gates, pass after pass: a pass that
    /// stops early is followed by one from its last timestamp.
    pub fn transcribe_speech(&mut self, pcm: &[f32]) -> Result<WindowTranscript> {
        let id = self.model_ref.id.clone();
        let pcm = &pcm[..pcm.len().min(w::N_SAMPLES)];
        let rate = w::SAMPLE_RATE as f64;
        let mut out: Option<WindowTranscript> = None;
        let mut seek = 0;
        while pcm.len() - seek >= MIN_PASS_SAMPLES || out.is_none() {
            let rest = &pcm[seek..];
            if out.is_some() && loudest_hop_dbfs(rest) < SPEECH_FLOOR_DBFS {
                break;
            }
            let mel = self.mel(rest)?;
            let pass = self.decode_window(&mel, rest.len() as f64 / rate).map_err(|e| model_err(&id, e))?;
            let offset = seek as f64 / rate;
            let phrases = pass.transcript.phrases.into_iter().map(|p| Phrase {
                start: p.start + offset,
                end: p.end + offset,
                text: p.text,
            });
            match &mut out {
                Some(out) => out.phrases.extend(phrases),
                None => out = Some(WindowTranscript { phrases: phrases.collect(), ..pass.transcript }),
            }
            // At least one 20 ms step forward, so a pass can never repeat itself.
            seek += ((pass.covered * rate) as usize).clamp(320, rest.len());
            if seek >= pcm.len() {
                break;
            }
        }
        Ok(out.expect("one pass at least"))
    }

    /// The shape of the sound in a window's log-mel features (`samples` long before padding).
    pub fn sound_shape(&self, mel: &Tensor, samples: usize) -> Result<SoundShape> {
        let bands = mel.i(0).and_then(|m| m.to_vec2::<f32>()).map_err(|e| model_err(&self.model_ref.id, e))?;
        Ok(SoundShape::of(&bands, (samples / w::HOP_LENGTH).min(w::N_FRAMES)))
    }

    /// Encoder output for a mel window (exposed for golden checks).
    pub fn encode(&mut self, mel: &Tensor) -> Result<Tensor> {
        self.model.encoder.forward(mel).map_err(|e| model_err(&self.model_ref.id, e))
    }

    /// Logits of the next token after `tokens`, given encoder output `audio`.
    pub fn next_logits(&mut self, tokens: &[u32], audio: &Tensor) -> Result<Tensor> {
        let decoder = &self.model.decoder;
        let logits = decoder.start(audio).and_then(|mut state| decoder.feed(&mut state, tokens));
        logits.map_err(|e| model_err(&self.model_ref.id, e))
    }

    /// Feed the prompt (start, then for multilingual models the detected language and the
    /// transcribe task): its tokens, the language and the logits of the first text token.
    fn prompt(&self, state: &mut DecodeState) -> candle_core::Result<(Vec<u32>, Option<String>, Tensor)> {
        let decoder = &self.model.decoder;
        let mut tokens = vec![self.sot];
        let mut logits = decoder.feed(state, &tokens)?;
        if !self.is_multilingual() {
            return Ok((tokens, Some("en".into()), logits));
        }
        let ids: Vec<u32> = self.languages.iter().map(|(_, id)| *id).collect();
        let scores = logits.index_select(&Tensor::new(ids.as_slice(), &self.device)?, 0)?.to_vec1::<f32>()?;
        let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        let mut rest = vec![self.languages[best].1];
        rest.extend(self.transcribe);
        logits = decoder.feed(state, &rest)?;
        tokens.extend(rest);
        Ok((tokens, Some(self.languages[best].0.clone()), logits))
    }

    fn decode_window(&mut self, mel: &Tensor, window_secs: f64) -> candle_core::Result<Pass> {
        let audio = self.model.encoder.forward(mel)?;
        let mut state = self.model.decoder.start(&audio)?;
        let (mut tokens, language, mut logits) = self.prompt(&mut state)?;
        let prompt_len = tokens.len();
        let vocab = self.config.vocab_size;
        let mut mask = vec![0f32; vocab];
        for &t in &self.suppress {
            if (t as usize) < vocab {
                mask[t as usize] = f32::NEG_INFINITY;
            }
        }
        mask[self.no_timestamps as usize] = f32::NEG_INFINITY;
        let base_mask = mask;
        let max_ts = ((window_secs / 0.02).ceil() as u32).min(1500);
        let mut sum_logprob = 0f64;
        let mut generated = 0usize;
        let mut no_speech_prob = 0f64;
        let limit = self.config.max_target_positions / 2;
        // The step's logits, mask and masked logits, on the host: one copy of the logits per
        // step, and the rules, the choice and its log-probability read them in place.
        let mut mask = base_mask.clone();
        let mut scores = vec![0f32; vocab];
        for step in 0..limit {
            if step > 0 {
                logits = self.model.decoder.feed(&mut state, &tokens[tokens.len() - 1..])?;
            }
            let step_logits = logits.to_vec1::<f32>()?;
            if step == 0 {
                if let Some(ns) = self.no_speech {
                    // The no-speech probability is read at the first step after the prompt, as OpenAI does.
                    let lp = step_logits[ns as usize] - cpu::log_sum_exp(&step_logits);
                    no_speech_prob = f64::from(lp.exp());
                }
            }
            mask.copy_from_slice(&base_mask);
            if tokens.len() == prompt_len || tokens[prompt_len..].iter().all(|&t| t >= self.timestamp_begin) {
                for &t in &self.begin_suppress {
                    if let Some(v) = mask.get_mut(t as usize) {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            self.apply_timestamp_rules(&tokens[prompt_len..], &step_logits, &mut mask, max_ts);
            for ((s, l), m) in scores.iter_mut().zip(&step_logits).zip(&mask) {
                *s = l + m;
            }
            let next =
                scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(self.eot);
            tokens.push(next);
            if next == self.eot {
                break;
            }
            sum_logprob += f64::from(scores[next as usize] - cpu::log_sum_exp(&scores));
            generated += 1;
        }
        let avg_logprob = if generated == 0 { 0.0 } else { sum_logprob / generated as f64 };
        let silent = no_speech_prob > self.decode.no_speech_threshold && avg_logprob < self.decode.logprob_threshold;
        let sampled: Vec<u32> = tokens[prompt_len..].iter().copied().take_while(|&t| t != self.eot).collect();
        let (kept, covered) =
            if silent { (&sampled[..0], window_secs) } else { seek(&sampled, self.timestamp_begin, window_secs) };
        let phrases = self.phrases(kept)?;
        Ok(Pass { transcript: WindowTranscript { phrases, language, no_speech_prob, avg_logprob }, covered })
    }

    /// OpenAI's `ApplyTimestampRules`: timestamps come in pairs and never go back, the first
    /// token is a timestamp no later than `max_initial_timestamp`, and when the timestamps
    /// together are likelier than any text token, a timestamp comes next.
    fn apply_timestamp_rules(&self, sampled: &[u32], logits: &[f32], mask: &mut [f32], max_ts: u32) {
        let tb = self.timestamp_begin as usize;
        let vocab = mask.len();
        let is_ts = |t: u32| t >= self.timestamp_begin;
        let last_ts = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = sampled.len() < 2 || sampled.get(sampled.len() - 2).is_some_and(|&t| is_ts(t));
        if last_ts {
            if penultimate_ts {
                mask[tb..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            } else {
                mask[..self.eot as usize].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            }
        }
        if let Some(&prev) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            // Non-decreasing; a closing timestamp may repeat the opening one only if text was between.
            let floor = if last_ts && !penultimate_ts { prev } else { prev + 1 };
            mask[tb..(floor as usize).min(vocab)].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        }
        if sampled.is_empty() {
            mask[..tb].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            let max_initial = tb + (self.decode.max_initial_timestamp / 0.02).round() as usize;
            mask[(max_initial + 1).min(vocab)..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        }
        // No timestamp beyond the end of the audio.
        mask[(tb + max_ts as usize + 1).min(vocab)..].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        // Against the log-softmax of the masked logits; its normaliser is on both sides.
        let timestamps: Vec<f32> = logits[tb..].iter().zip(&mask[tb..]).map(|(l, m)| l + m).collect();
        let ts_total = cpu::log_sum_exp(&timestamps);
        let text_max = logits[..tb].iter().zip(&mask[..tb]).map(|(l, m)| l + m).fold(f32::NEG_INFINITY, f32::max);
        if ts_total > text_max {
            mask[..tb].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
        }
    }

    /// Split generated tokens into timed phrases; text after a last unclosed timestamp runs to
    /// the end of the window.
    fn phrases(&self, sampled: &[u32]) -> candle_core::Result<Vec<Phrase>> {
        let secs = |t: u32| f64::from(t - self.timestamp_begin) * 0.02;
        let mut phrases = Vec::new();
        let mut start: Option<f64> = None;
        let mut text: Vec<u32> = Vec::new();
        for &t in sampled {
            if t == self.eot {
                break;
            }
            if t >= self.timestamp_begin {
                match start {
                    Some(s) if !text.is_empty() => {
                        phrases.push((s, secs(t), std::mem::take(&mut text)));
                        start = None;
                    }
                    _ => start = Some(secs(t)),
                }
            } else if t < self.eot {
                text.push(t);
            }
        }
        if !text.is_empty() {
            let s = start.unwrap_or(0.0);
            phrases.push((s, s, text));
        }
        let mut out = Vec::new();
        for (s, e, ids) in phrases {
            let decoded = self.tokenizer.decode(&ids, true).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let text = cut_repetition(decoded.trim(), self.decode.compression_ratio_threshold);
            if !text.is_empty() && !is_babble(&text) {
                out.push(Phrase { start: s, end: e.max(s), text });
            }
        }
        Ok(out)
    }
}

/// What a window's log-mel features say about whether it can hold speech. Speech is loud for
/// stretches of a syllable or more, spreads over many bands (harmonics, formants, fricatives)
/// and keeps changing within those stretches. A steady tone, a chord or a hum is sustained
/// but does not change; a synthetic melody changes only where a note ends; a click is never
/// sustained. Whisper, given any of these, tends to invent a word ("Aaaah", "you").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoundShape {
    /// 10 ms frames inside loud stretches of at least [`SoundShape::MIN_STRETCH`] frames.
    pub sustained: usize,
    /// Of those, the frames whose spectrum is broad and differs from 30 ms before.
    pub moving: usize,
}

impl SoundShape {
    /// A loud stretch this many frames long (80 ms) or longer counts as sustained.
    pub const MIN_STRETCH: usize = 8;
    /// A frame is loud within this much (log10 units: 30 dB) of the loudest frame.
    const LOUD: f32 = 3.0;
    /// A frame is broad with at least this many bands within 20 dB of its peak band.
    const BROAD_BANDS: usize = 10;
    /// A frame moves when its bands differ from 30 ms before by this much on average (log10
    /// units: 2 dB).
    const MOVING: f32 = 0.2;
    /// Speech: at least 150 ms of moving frames...
    const MIN_MOVING: usize = 15;
    /// ...and at least this share of the sustained frames.
    const MIN_MOVING_SHARE: f64 = 0.35;

    /// From log-mel features `[band][frame]` (Whisper's scale: (log10 + 4) / 4) over the first
    /// `frames` frames.
    pub fn of(mel: &[Vec<f32>], frames: usize) -> SoundShape {
        let frames = mel.iter().map(Vec::len).min().unwrap_or(0).min(frames);
        // Back to log10 units.
        let at = |b: usize, t: usize| mel[b][t] * 4.0;
        // Loudness: the log of the mean power over the bands (not the mean of the logs, which
        // a broadband click would dwarf a tone with).
        let energy: Vec<f32> = (0..frames)
            .map(|t| ((0..mel.len()).map(|b| 10f32.powf(at(b, t))).sum::<f32>() / mel.len().max(1) as f32).log10())
            .collect();
        let loudest = energy.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let loud: Vec<bool> = energy.iter().map(|&e| e >= loudest - Self::LOUD).collect();
        let mut shape = SoundShape { sustained: 0, moving: 0 };
        let mut t = 0;
        while t < frames {
            if !loud[t] {
                t += 1;
                continue;
            }
            let start = t;
            while t < frames && loud[t] {
                t += 1;
            }
            if t - start < Self::MIN_STRETCH {
                continue;
            }
            shape.sustained += t - start;
            for u in start + 3..t {
                let peak = (0..mel.len()).map(|b| at(b, u)).fold(f32::NEG_INFINITY, f32::max);
                let broad = (0..mel.len()).filter(|&b| at(b, u) >= peak - 2.0).count() >= Self::BROAD_BANDS;
                let change = (0..mel.len()).map(|b| (at(b, u) - at(b, u - 3)).abs()).sum::<f32>() / mel.len() as f32;
                if broad && change >= Self::MOVING {
                    shape.moving += 1;
                }
            }
        }
        shape
    }

    /// Whether the window is worth sending to the model.
    pub fn may_hold_speech(&self) -> bool {
        self.moving >= Self::MIN_MOVING && self.moving as f64 >= Self::MIN_MOVING_SHARE * self.sustained as f64
    }
}

/// Loudness (dBFS) under which a 10 ms stretch cannot hold speech.
pub const SPEECH_FLOOR_DBFS: f32 = -50.0;

/// dBFS of the loudest 10 ms (160 samples) of a window.
pub fn loudest_hop_dbfs(pcm: &[f32]) -> f32 {
    pcm.chunks(160)
        .map(|c| 10.0 * (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32 + 1e-10).log10())
        .fold(-100.0, f32::max)
}

/// How much of a window one pass covered, and the tokens to keep (OpenAI's seek rule; tokens
/// from `timestamp_begin` on are timestamps, 20 ms apart). A pass whose text ends with one
/// timestamp closing a phrase covered the whole window. One that ends otherwise (two
/// timestamps: the model left the next phrase for the next window; or text cut off by the
/// token limit) covered up to its last complete phrase: the next pass starts at that phrase's
/// closing timestamp, and what came after it is dropped.
fn seek(sampled: &[u32], timestamp_begin: u32, window_secs: f64) -> (&[u32], f64) {
    let is_ts = |t: u32| t >= timestamp_begin;
    let n = sampled.len();
    let one_closing = n >= 2 && !is_ts(sampled[n - 2]) && is_ts(sampled[n - 1]);
    let last_pair = (1..n).rev().find(|&i| is_ts(sampled[i - 1]) && is_ts(sampled[i]));
    match last_pair {
        Some(i) if !one_closing => (&sampled[..i], f64::from(sampled[i - 1] - timestamp_begin) * 0.02),
        _ => (sampled, window_secs),
    }
}

/// Cut a repetition loop ("the the the the ...", a phrase said over and over) back to its first
/// occurrence: when the text compresses too well (bytes over the bytes of its distinct word
/// 3-grams, a zlib-free stand-in for OpenAI's gzip ratio), keep the longest prefix that does not.
pub fn cut_repetition(text: &str, threshold: f64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let ratio = |ws: &[&str]| -> f64 {
        if ws.len() < 6 {
            return 1.0;
        }
        let grams: std::collections::HashSet<&[&str]> = ws.windows(3).collect();
        ws.len() as f64 / grams.len().max(1) as f64
    };
    if ratio(&words) <= threshold {
        return text.to_string();
    }
    let mut keep = words.len();
    while keep > 0 && ratio(&words[..keep]) > threshold.min(1.5) {
        keep -= 1;
    }
    // Drop the trailing words of an unfinished repeat: keep whole first cycle.
    words[..keep.max(1)].join(" ")
}

/// Whether a phrase is one sound said over and over: a character held ("Aaaaah", "Hmmmm") or
/// a syllable repeated ("la la la la", "ha-ha-ha-ha"). That is a decoding loop, the text
/// Whisper invents for a held tone or a hum, and is dropped like a repeated phrase. Three
/// repeats ("no no no") and held letters inside real words are kept.
pub fn is_babble(text: &str) -> bool {
    if text.chars().any(|c| c.is_numeric()) {
        return false; // "10000" is a number, not a held sound
    }
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).flat_map(char::to_lowercase).collect();
    let mut runs: Vec<(char, usize)> = Vec::new();
    for c in letters {
        match runs.last_mut() {
            Some((last, n)) if *last == c => *n += 1,
            _ => runs.push((c, 1)),
        }
    }
    let held = runs.iter().any(|&(_, n)| n >= 4);
    if held && runs.len() <= 3 {
        return true;
    }
    // One unit of at most three sounds, four times or more.
    let sounds: Vec<char> = runs.iter().map(|&(c, _)| c).collect();
    (1..=3).any(|unit| {
        sounds.len() >= 4 * unit
            && sounds.len().is_multiple_of(unit)
            && sounds.chunks(unit).all(|c| c == &sounds[..unit])
    })
}

/// Slaney-style mel filterbank (librosa's default, what Whisper was trained with), row-major
/// `[n_mels, n_fft / 2 + 1]`.
pub fn mel_filters(sample_rate: f64, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let hz_to_mel = |f: f64| {
        let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
        if f < min_log_hz {
            f / f_sp
        } else {
            min_log_hz / f_sp + (f / min_log_hz).ln() / ((6.4f64).ln() / 27.0)
        }
    };
    let mel_to_hz = |m: f64| {
        let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
        let min_log_mel = min_log_hz / f_sp;
        if m < min_log_mel {
            m * f_sp
        } else {
            min_log_hz * ((m - min_log_mel) * ((6.4f64).ln() / 27.0)).exp()
        }
    };
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * sample_rate / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (a, b, c) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (c - a);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - a) / (b - a);
            let upper = (c - f) / (c - b);
            out[m * bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

/// Language codes in Whisper's token order.
const LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi",
    "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml",
    "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs",
    "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am",
    "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_that_stops_early_is_resumed_at_its_last_complete_phrase() {
        const TS: u32 = 1000; // <|0.00|>; <|k * 0.02|> is TS + k
        let (hello, world, again) = (7, 8, 9);
        // Text closed by one timestamp: the whole window is done.
        let done = [TS, hello, TS + 100, TS + 100, world, TS + 250];
        assert_eq!(seek(&done, TS, 30.0), (&done[..], 30.0));
        // Two timestamps at the end: the model left what follows 5.00 s for the next pass.
        let early = [TS, hello, TS + 100, TS + 120, world, TS + 250, TS + 250];
        assert_eq!(seek(&early, TS, 30.0), (&early[..6], 5.0));
        // Cut off by the token limit in the middle of a phrase: back to the last closed one.
        let cut = [TS, hello, TS + 100, TS + 100, world, again, again];
        assert_eq!(seek(&cut, TS, 30.0), (&cut[..3], 2.0));
        // No complete phrase at all: nothing to go back to.
        let open = [TS, hello, world];
        assert_eq!(seek(&open, TS, 30.0), (&open[..], 30.0));
        assert_eq!(seek(&[], TS, 12.5), (&[][..], 12.5));
    }

    #[test]
    fn repetition_loops_are_cut_and_normal_text_is_kept() {
        let normal = "he was not an ill disposed young man unless to be rather cold hearted";
        assert_eq!(cut_repetition(normal, 2.4), normal);
        let looped = "thank you for watching ".repeat(12);
        let cut = cut_repetition(looped.trim(), 2.4);
        assert!(cut.split_whitespace().count() <= 8, "{cut}");
        assert!(cut.starts_with("thank you for watching"));
    }

    #[test]
    fn one_sound_over_and_over_is_babble_and_words_are_not() {
        for babble in
            ["Aaaaaaaaaaaaaah", "AAAAAAAAAA!", "Hmmmm.", "Ooooh...", "la la la la", "Ha-ha-ha-ha-ha", "nanananana"]
        {
            assert!(is_babble(babble), "{babble:?}");
        }
        for words in ["no no no", "Mmm.", "Aah", "Bye bye.", "Sooooo good to see you", "Ahhhh, I see", "10,000.", ""] {
            assert!(!is_babble(words), "{words:?}");
        }
    }

    #[test]
    fn sustained_changing_broad_sound_is_speech_like_and_a_steady_one_is_not() {
        let frames = 200;
        // A steady broad sound (a chord of many harmonics): sustained, never moving.
        let steady: Vec<Vec<f32>> = (0..80).map(|b| vec![if b % 4 == 0 { 0.5 } else { 0.2 }; frames]).collect();
        let shape = SoundShape::of(&steady, frames);
        assert_eq!((shape.sustained, shape.moving), (frames, 0));
        assert!(!shape.may_hold_speech());
        // The same bands with their levels changing every 50 ms: moving.
        let moving: Vec<Vec<f32>> =
            (0..80).map(|b| (0..frames).map(|t| if (b + t / 5) % 4 == 0 { 0.5 } else { 0.2 }).collect()).collect();
        assert!(SoundShape::of(&moving, frames).may_hold_speech());
        // Short bursts (clicks) are never sustained.
        let clicks: Vec<Vec<f32>> =
            (0..80).map(|_| (0..frames).map(|t| if t % 50 < 3 { 0.5 } else { -1.0 }).collect()).collect();
        assert_eq!(SoundShape::of(&clicks, frames).sustained, 0);
    }

    #[test]
    fn mel_filters_have_the_slaney_shape() {
        let f = mel_filters(16_000.0, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        // Every filter is a non-negative triangle with one peak; the first starts at bin 0.
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!(row.iter().any(|&v| v > 0.0), "filter {m} is empty");
        }
        assert_eq!(f[0], 0.0);
    }
}
