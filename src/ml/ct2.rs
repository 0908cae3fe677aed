//! Read CTranslate2 Whisper models (`model.bin`) and convert them to the HF tensor layout that
//! our Whisper (`whisper_model.rs`) loads: in memory at load time, or to an HF folder with
//! `videovector convert-whisper`. The byte layout is documented in `docs/ctranslate2.md`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::model_err;
use crate::error::{Error, Result};

/// One variable of a `model.bin`: shape, dtype code and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    /// 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
    pub dtype: u8,
    pub data: Vec<u8>,
}

/// A parsed `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub binary_version: u32,
    pub spec: String,
    pub revision: u32,
    pub variables: HashMap<String, Variable>,
    pub aliases: HashMap<String, String>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::media(
                self.path,
                format!("truncated CTranslate2 model: wanted {n} bytes at offset {}", self.pos),
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// A string: u16 length including the trailing NUL, then the bytes.
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let bytes = self.take(n)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::media(self.path, format!("bad string in CTranslate2 model: {e}")))
    }
}

/// Parse a CTranslate2 `model.bin` (binary versions 4 to 6).
pub fn read_model_bin(path: &Path) -> Result<Ct2Model> {
    let buf = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut r = Reader { buf: &buf, pos: 0, path };
    let binary_version = r.u32()?;
    if !(4..=6).contains(&binary_version) {
        return Err(Error::media(
            path,
            format!("CTranslate2 binary version {binary_version} is not supported (4 to 6 are)"),
        ));
    }
    let spec = r.string()?;
    let revision = r.u32()?;
    let n = r.u32()? as usize;
    let mut variables = HashMap::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let shape = (0..rank).map(|_| r.u32().map(|d| d as usize)).collect::<Result<Vec<_>>>()?;
        let dtype = r.u8()?;
        let bytes = r.u32()? as usize;
        let data = r.take(bytes)?.to_vec();
        variables.insert(name, Variable { shape, dtype, data });
    }
    let mut aliases = HashMap::new();
    if r.pos < buf.len() {
        let n = r.u32()? as usize;
        for _ in 0..n {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
    }
    Ok(Ct2Model { binary_version, spec, revision, variables, aliases })
}

impl Variable {
    /// Values as f32 (f16 and bf16 widened exactly).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            0 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            4 => d.chunks_exact(2).map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            5 => d.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect(),
            _ => return None,
        })
    }

    /// A scalar integer flag.
    fn scalar_i64(&self) -> Option<i64> {
        match (self.dtype, self.data.len()) {
            (3, 4) => Some(i64::from(i32::from_le_bytes(self.data[..4].try_into().ok()?))),
            (2, 2) => Some(i64::from(i16::from_le_bytes(self.data[..2].try_into().ok()?))),
            (1, 1) => Some(i64::from(self.data[0] as i8)),
            (0, 4) => Some(f32::from_le_bytes(self.data[..4].try_into().ok()?) as i64),
            _ => None,
        }
    }
}

/// IEEE half to f32, exact.
fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = (h >> 10) & 0x1f;
    let frac = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((u32::from(exp) + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Flags a Whisper `model.bin` carries, with the values HF's Whisper implies.
const EXPECTED_FLAGS: &[(&str, i64)] = &[
    ("decoder/activation", 3),
    ("decoder/alibi", 0),
    ("decoder/pre_norm", 1),
    ("decoder/scale_embeddings", 0),
    ("decoder/start_from_zero_embedding", 0),
];

/// The HF tensors (name -> f32 tensor) and an HF `config.json` for a CTranslate2 Whisper model.
/// `ct2_config` is the CTranslate2 `config.json` (suppress lists).
pub fn whisper_to_hf(
    m: &Ct2Model,
    ct2_config: &Value,
    id: &str,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, Value)> {
    if m.spec != "WhisperSpec" {
        return Err(model_err(id, format!("not a Whisper model: spec {:?}", m.spec)));
    }
    let get = |name: &str| -> Result<(&Vec<usize>, Vec<f32>)> {
        let name = m.aliases.get(name).map_or(name, String::as_str);
        let v = m.variables.get(name).ok_or_else(|| model_err(id, format!("model.bin has no variable {name}")))?;
        let values =
            v.to_f32().ok_or_else(|| model_err(id, format!("{name}: dtype {} is not a float type", v.dtype)))?;
        Ok((&v.shape, values))
    };
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let put = |out: &mut HashMap<String, Tensor>, name: String, shape: &[usize], values: Vec<f32>| -> Result<()> {
        let t = Tensor::from_vec(values, shape, device).map_err(|e| model_err(id, e))?;
        out.insert(name, t);
        Ok(())
    };
    for (from, to) in [
        ("encoder/conv1/weight", "model.encoder.conv1.weight"),
        ("encoder/conv1/bias", "model.encoder.conv1.bias"),
        ("encoder/conv2/weight", "model.encoder.conv2.weight"),
        ("encoder/conv2/bias", "model.encoder.conv2.bias"),
        ("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight"),
        ("encoder/layer_norm/gamma", "model.encoder.layer_norm.weight"),
        ("encoder/layer_norm/beta", "model.encoder.layer_norm.bias"),
        ("decoder/embeddings/weight", "model.decoder.embed_tokens.weight"),
        ("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight"),
        ("decoder/layer_norm/gamma", "model.decoder.layer_norm.weight"),
        ("decoder/layer_norm/beta", "model.decoder.layer_norm.bias"),
    ] {
        let (shape, v) = get(from)?;
        put(&mut out, to.to_string(), shape, v)?;
    }
    let d_model = m
        .variables
        .get("encoder/conv1/bias")
        .map(|v| v.shape[0])
        .ok_or_else(|| model_err(id, "no encoder/conv1/bias"))?;
    let layers = |stack: &str| -> usize {
        let prefix = format!("{stack}/layer_");
        m.variables
            .keys()
            .filter_map(|n| n.strip_prefix(&prefix)?.split('/').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |x| x + 1)
    };
    let (enc_layers, dec_layers) = (layers("encoder"), layers("decoder"));
    // Split a fused [k*d, d] weight / [k*d] bias into k parts; `skip_bias` marks the k projection,
    // which has no bias in HF (CTranslate2 stores zeros there; anything else is refused).
    let split = |out: &mut HashMap<String, Tensor>,
                 base: &str,
                 names: &[&str],
                 skip_bias: Option<usize>|
     -> Result<()> {
        let (_, w) = get(&format!("{base}/weight"))?;
        let (_, b) = get(&format!("{base}/bias"))?;
        for (k, name) in names.iter().enumerate() {
            put(
                out,
                format!("{name}.weight"),
                &[d_model, d_model],
                w[k * d_model * d_model..(k + 1) * d_model * d_model].to_vec(),
            )?;
            let bias = b[k * d_model..(k + 1) * d_model].to_vec();
            if Some(k) == skip_bias {
                if bias.iter().any(|&x| x != 0.0) {
                    return Err(model_err(id, format!("{base}: the key bias is not zero; HF's k_proj has no bias")));
                }
            } else {
                put(out, format!("{name}.bias"), &[d_model], bias)?;
            }
        }
        Ok(())
    };
    for (stack, n) in [("encoder", enc_layers), ("decoder", dec_layers)] {
        for i in 0..n {
            let (c, h) = (format!("{stack}/layer_{i}"), format!("model.{stack}.layers.{i}"));
            split(
                &mut out,
                &format!("{c}/self_attention/linear_0"),
                &[&format!("{h}.self_attn.q_proj"), &format!("{h}.self_attn.k_proj"), &format!("{h}.self_attn.v_proj")],
                Some(1),
            )?;
            for (from, to) in [
                ("self_attention/layer_norm/gamma", "self_attn_layer_norm.weight"),
                ("self_attention/layer_norm/beta", "self_attn_layer_norm.bias"),
                ("self_attention/linear_1/weight", "self_attn.out_proj.weight"),
                ("self_attention/linear_1/bias", "self_attn.out_proj.bias"),
                ("ffn/layer_norm/gamma", "final_layer_norm.weight"),
                ("ffn/layer_norm/beta", "final_layer_norm.bias"),
                ("ffn/linear_0/weight", "fc1.weight"),
                ("ffn/linear_0/bias", "fc1.bias"),
                ("ffn/linear_1/weight", "fc2.weight"),
                ("ffn/linear_1/bias", "fc2.bias"),
            ] {
                let (shape, v) = get(&format!("{c}/{from}"))?;
                put(&mut out, format!("{h}.{to}"), shape, v)?;
            }
            if stack == "decoder" {
                split(
                    &mut out,
                    &format!("{c}/attention/linear_1"),
                    &[&format!("{h}.encoder_attn.k_proj"), &format!("{h}.encoder_attn.v_proj")],
                    Some(0),
                )?;
                for (from, to) in [
                    ("attention/layer_norm/gamma", "encoder_attn_layer_norm.weight"),
                    ("attention/layer_norm/beta", "encoder_attn_layer_norm.bias"),
                    ("attention/linear_0/weight", "encoder_attn.q_proj.weight"),
                    ("attention/linear_0/bias", "encoder_attn.q_proj.bias"),
                    ("attention/linear_2/weight", "encoder_attn.out_proj.weight"),
                    ("attention/linear_2/bias", "encoder_attn.out_proj.bias"),
                ] {
                    let (shape, v) = get(&format!("{c}/{from}"))?;
                    put(&mut out, format!("{h}.{to}"), shape, v)?;
                }
            }
        }
    }
    for (flag, expected) in EXPECTED_FLAGS {
        if let Some(v) = m.variables.get(*flag).and_then(Variable::scalar_i64) {
            if v != *expected {
                return Err(model_err(id, format!("{flag} = {v}, but HF Whisper needs {expected}")));
            }
        }
    }
    let heads = |stack: &str| {
        m.variables.get(&format!("{stack}/num_heads")).and_then(Variable::scalar_i64).unwrap_or(6) as usize
    };
    let shape_of = |n: &str| m.variables.get(n).map(|v| v.shape.clone()).unwrap_or_default();
    let vocab = shape_of("decoder/embeddings/weight")[0];
    let config = json!({
        "_name_or_path": id,
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": d_model,
        "encoder_layers": enc_layers,
        "decoder_layers": dec_layers,
        "encoder_attention_heads": heads("encoder"),
        "decoder_attention_heads": heads("decoder"),
        "encoder_ffn_dim": shape_of("encoder/layer_0/ffn/linear_0/weight")[0],
        "decoder_ffn_dim": shape_of("decoder/layer_0/ffn/linear_0/weight")[0],
        "num_mel_bins": shape_of("encoder/conv1/weight")[1],
        "max_source_positions": shape_of("encoder/position_encodings/encodings")[0],
        "max_target_positions": shape_of("decoder/position_encodings/encodings")[0],
        "vocab_size": vocab,
        "scale_embedding": false,
        "tie_word_embeddings": true,
        "suppress_tokens": ct2_config.get("suppress_ids").cloned().unwrap_or(json!([])),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin").cloned().unwrap_or(json!([])),
    });
    Ok((out, config))
}

/// Write an HF Whisper folder (`model.safetensors`, `config.json`, `tokenizer.json`) converted
/// from a CTranslate2 folder (`model.bin`, `config.json`, `tokenizer.json`).
pub fn convert_whisper_folder(src: &Path, dst: &Path) -> Result<()> {
    let (tensors, config) = load_ct2_folder(src, &src.display().to_string(), &Device::Cpu)?;
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let weights = dst.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|e| model_err(&weights.display().to_string(), e))?;
    let text = serde_json::to_string_pretty(&config).expect("json serialises");
    std::fs::write(dst.join("config.json"), text).map_err(|e| Error::io(dst, e))?;
    std::fs::copy(src.join("tokenizer.json"), dst.join("tokenizer.json"))
        .map_err(|e| Error::io(src.join("tokenizer.json"), e))?;
    Ok(())
}

/// Tensors and HF config of a CTranslate2 Whisper folder.
pub fn load_ct2_folder(dir: &Path, id: &str, device: &Device) -> Result<(HashMap<String, Tensor>, Value)> {
    let model = read_model_bin(&dir.join("model.bin"))?;
    let cfg_path = dir.join("config.json");
    let ct2_config: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?)
            .map_err(|e| model_err(id, format!("{}: {e}", cfg_path.display())))?;
    whisper_to_hf(&model, &ct2_config, id, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_widen_exactly() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0000, 0.0),
            (0x3555, 0.333_251_95),
        ] {
            assert_eq!(half_to_f32(h), f, "{h:#06x}");
        }
        assert!(half_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn a_truncated_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.bin");
        let mut bytes = 6u32.to_le_bytes().to_vec();
        bytes.extend(12u16.to_le_bytes());
        bytes.extend(b"Whisper");
        std::fs::write(&p, &bytes).unwrap();
        let err = read_model_bin(&p).unwrap_err().to_string();
        assert!(err.contains("model.bin") && err.contains("truncated"), "{err}");
    }
}
