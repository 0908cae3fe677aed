//! The tokenizer of a GGUF model, rebuilt from the vocabulary stored inside the file
//! (`tokenizer.ggml.*`): a byte-level BPE for the `gpt2` tokenizer model (Qwen2, Llama 3), and
//! the token trie that llguidance computes masks over.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use serde_json::{json, Value};
use tokenizers::Tokenizer;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// The split rule that runs before byte-level BPE, by `tokenizer.ggml.pre` (llama.cpp's names).
fn pre_tokenizer_regex(pre: &str) -> Option<&'static str> {
    match pre {
        "qwen2" | "deepseek-r1-qwen" => Some(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        "llama-bpe" | "llama3" | "smaug-bpe" => Some(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        _ => None,
    }
}

/// GPT-2's map from bytes to the printable characters byte-level BPE vocabularies are written in,
/// inverted: character to byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable.into_iter().zip(chars).map(|(b, c)| (char::from_u32(c).expect("valid code point"), b as u8)).collect()
}

/// A model's vocabulary: text to tokens, tokens to bytes, and the stop tokens.
pub(crate) struct Vocab {
    tokenizer: Tokenizer,
    /// Each token's bytes; control tokens are `0xFF` + their text (llguidance's convention).
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    ids: HashMap<String, TokenId>,
    /// Tokens that end a reply: EOS and the family's end-of-turn tokens.
    pub stop: Vec<TokenId>,
    env: TokEnv,
}

impl Vocab {
    /// Read the vocabulary of `path`'s GGUF header.
    pub fn from_gguf(path: &str, content: &gguf_file::Content) -> Result<Self> {
        let bad = |what: String| Error::Model { model: path.to_string(), message: what };
        let md = |key: &str| content.metadata.get(key).ok_or_else(|| bad(format!("the GGUF header has no {key}")));
        let model = md("tokenizer.ggml.model")?.to_string().map_err(|e| bad(e.to_string()))?.clone();
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer model {model:?} is not supported (only byte-level BPE, `gpt2`, as in Qwen2 and Llama 3)"
            )));
        }
        let pre = content
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_else(|| "default".into());
        let regex = pre_tokenizer_regex(&pre)
            .ok_or_else(|| bad(format!("pre-tokenizer {pre:?} is not supported (qwen2, llama-bpe)")))?;
        let strings = |key: &str| -> Result<Vec<String>> {
            md(key)?
                .to_vec()
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| bad(format!("{key}: {e}"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .map(|t| t.to_i32().map_err(|e| bad(e.to_string())))
                .collect::<Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let eos = md("tokenizer.ggml.eos_token_id")?.to_u32().map_err(|e| bad(e.to_string()))?;

        let to_byte = unicode_to_byte();
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut special = Vec::with_capacity(tokens.len());
        let mut added = Vec::new();
        let mut vocab = serde_json::Map::new();
        for (id, (tok, ty)) in tokens.iter().zip(types.iter().chain(std::iter::repeat(&1))).enumerate() {
            vocab.insert(tok.clone(), json!(id));
            let (b, is_special) = match *ty {
                TOKEN_CONTROL => {
                    added.push(json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                        "rstrip": false, "normalized": false, "special": true}));
                    let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    b.extend_from_slice(tok.as_bytes());
                    (b, true)
                }
                TOKEN_USER_DEFINED => {
                    added.push(json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                        "rstrip": false, "normalized": false, "special": false}));
                    (tok.as_bytes().to_vec(), false)
                }
                _ => (tok.chars().map(|c| to_byte.get(&c).copied().unwrap_or(b'?')).collect(), false),
            };
            bytes.push(b);
            special.push(is_special);
        }
        let spec = json!({
            "version": "1.0",
            "added_tokens": added,
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
            ]},
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": Value::Object(vocab), "merges": merges}
        });
        let tokenizer = Tokenizer::from_bytes(spec.to_string().as_bytes())
            .map_err(|e| bad(format!("cannot build its tokenizer: {e}")))?;
        let ids: HashMap<String, TokenId> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as TokenId)).collect();
        let mut stop = vec![eos];
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"] {
            if let Some(&id) = ids.get(name) {
                if !stop.contains(&id) {
                    stop.push(id);
                }
            }
        }
        let mut info = TokRxInfo::new(tokens.len() as u32, eos);
        info.tok_bos = content.metadata.get("tokenizer.ggml.bos_token_id").and_then(|v| v.to_u32().ok());
        let trie = TokTrie::from(&info, &bytes);
        let env: TokEnv = Arc::new(TrieEnv { trie, tokenizer: tokenizer.clone() });
        Ok(Vocab { tokenizer, bytes, special, ids, stop, env })
    }

    /// Tokens of `text`; control tokens written in it (`<|im_start|>`) become those tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<TokenId>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Internal(format!("cannot tokenize a prompt: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `tokens`, control tokens left out.
    pub fn decode(&self, tokens: &[TokenId]) -> String {
        let mut out = Vec::new();
        for &t in tokens {
            if let Some(b) = self.bytes.get(t as usize) {
                if !self.special[t as usize] {
                    out.extend_from_slice(b);
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The id of a token written as text (`<|im_start|>`), if the vocabulary has it.
    pub fn id(&self, token: &str) -> Option<TokenId> {
        self.ids.get(token).copied()
    }

    /// What llguidance needs: the token trie and a tokenizer.
    pub fn env(&self) -> &TokEnv {
        &self.env
    }
}

struct TrieEnv {
    trie: TokTrie,
    tokenizer: Tokenizer,
}

impl TokenizerEnv for TrieEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        let text = String::from_utf8_lossy(s);
        self.tokenizer.encode(text.as_ref(), false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_map_is_a_bijection_over_all_256_bytes() {
        let m = unicode_to_byte();
        assert_eq!(m.len(), 256);
        let mut seen: Vec<u8> = m.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        // Space is written as 'Ġ' (U+0120) and newline as 'Ċ' (U+010A) in GPT-2 vocabularies.
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
    }
}
