#!/usr/bin/env python3
"""Golden outputs of the reference CLIP implementation (HF transformers) for a tiny
deterministic random-weight checkpoint.

No CLIP weights can be had on this project's machines, so the Rust tests regenerate
a tiny checkpoint from a formula, run it through our CLIP code and compare with the
numbers this script gets from `transformers.CLIPModel` on the very same weights.

Run it from the repository root with the reference environment (not part of CI):

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install -r scripts/golden/requirements.txt
    .venv-ref/bin/python scripts/golden/clip_golden.py

The photos it reads are the ignored fixtures `fixtures/media/{astronaut.png,
chelsea.png,rocket.jpg}` (scikit-image 0.24.0's sample data, made by fixtures/make.sh);
their SHA-256 is recorded in the golden file.

It (re)writes, all deterministic (running it twice gives identical files):

  tests/golden/clip_tiny/config.json               HF CLIPModel config (tiny sizes)
  tests/golden/clip_tiny/tokenizer.json            WordLevel tokenizer, 64 ids
  tests/golden/clip_tiny/tokenizer_config.json     so AutoTokenizer picks the fast generic class
  tests/golden/clip_tiny/preprocessor_config.json  the standard openai CLIP one
  tests/golden/clip_tiny_tensors.json              state-dict entries in generation order
  tests/golden/clip_tiny_golden.json               the golden outputs

The weights are never written into the repository: the script saves them as
`model.safetensors` next to a copy of the three files above in a temporary folder,
reloads that folder with `CLIPModel.from_pretrained` (proving the layout loads end to
end) and computes every golden value with the reloaded model.

Weight formula (the Rust generator reproduces exactly this)
-----------------------------------------------------------
Instantiate `CLIPModel(config)` and walk the entries of `model.state_dict()` in sorted
name order (Python `sorted` on the str names, i.e. by code point). Names ending in
`position_ids` are buffers and are skipped (in transformers 5 they are non-persistent
and do not appear in the state dict at all; they keep their arange defaults). For an
entry `name` with `numel` elements:

    k    = np.arange(numel, dtype=np.float64)
    h    = sum(name.encode("utf-8")) % 97
    base = np.sin(0.618 * k + 0.37 * h)            # float64, row-major over shape
    name == "logit_scale"                 -> 2.6592 (scalar)
    name ends with ".bias"                -> 0.01 * base
    LayerNorm weight: ends with ".weight" and contains one of "layer_norm",
      "layrnorm", "layernorm" ("final_layer_norm" is covered by "layer_norm")
                                          -> 1.0 + 0.05 * base
    everything else (embeddings, class_embedding, patch conv, projections, linear
      weights)                            -> 0.15 * base
    then cast to float32 (one rounding, at the end); load_state_dict(strict=True).

Inputs and outputs
------------------
* model_only: pixel_values of shape [2, 3, 224, 224], value at flat row-major index k
  = 0.5 * sin(0.01 * k) + 0.25 * cos(0.003 * k) in float64, cast to float32. Outputs
  are the projected image features, `visual_projection(vision_model(pixel_values)
  .pooler_output)` (16-d, before L2 normalisation; equal to `get_image_features(...)
  .pooler_output` in transformers 5, checked), and the same L2-normalised.
* texts: input_ids from the tokenizer (template `<|startoftext|> $A <|endoftext|>`,
  no padding) and projected text features `text_projection(text_model(ids)
  .pooler_output)` per text, batch of 1 each.
* images: the slow PIL/NumPy image processor (`CLIPImageProcessorPil` in transformers
  5; `CLIPImageProcessor` is the torchvision one there) loaded from the folder, its
  pixel_values shape, per-channel mean and population std (float64 over the float32
  values), the values at 512 positions (c, y, x) = ((i*7)%3, (i*37)%224, (i*101)%224),
  and the projected image features (raw and L2-normalised).

Everything runs on CPU in float32, eager attention, model.eval(), torch.no_grad().
"""

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import PIL
import PIL.features
import safetensors
import safetensors.torch
import tokenizers
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, CLIPConfig, CLIPModel, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden")
MODEL_DIR = os.path.join(GOLDEN_DIR, "clip_tiny")
MEDIA_DIR = os.path.join(ROOT, "fixtures", "media")

LOGIT_SCALE = 2.6592
# the constants of the weight formula (see the docstring)
WEIGHT_SCALE, BIAS_SCALE, LAYER_NORM_SCALE = 0.15, 0.01, 0.05
PHASE_STEP, PHASE_PER_HASH, HASH_MODULUS = 0.618, 0.37, 97
TEXTS = ["a photo of a cat", "a red rocket on the street", "an astronaut"]
IMAGES = ["astronaut.png", "chelsea.png", "rocket.jpg"]
N_SAMPLES = 512

# ids 2..62 (61 words); id 0 "<unk>", 1 "<|startoftext|>", 63 "<|endoftext|>".
WORDS = [
    "a", "an", "the", "photo", "of", "cat", "dog", "red", "rocket", "astronaut",
    "coffee", "cup", "car", "bike", "man", "woman", "street", "city", "flower", "tree",
    "sky", "blue", "green", "on", "in", "with", "and", "at", "night", "day",
    "picture", "image", "white", "black", "yellow", "person", "people", "house", "road",
    "water", "beach", "sea", "mountain", "snow", "sun", "horse", "bird", "boat", "train",
    "bus", "table", "room", "window", "door", "sitting", "standing", "running", "big",
    "small", "two", "space",
]
UNK, BOS, EOS = "<unk>", "<|startoftext|>", "<|endoftext|>"

CONFIG = {
    "architectures": ["CLIPModel"],
    "model_type": "clip",
    "projection_dim": 16,
    "logit_scale_init_value": LOGIT_SCALE,
    "initializer_factor": 1.0,
    "torch_dtype": "float32",
    "text_config": {
        "model_type": "clip_text_model",
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "projection_dim": 16,
        "bos_token_id": 1,
        "eos_token_id": 63,
        "pad_token_id": 63,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 224,
        "patch_size": 32,
        "num_channels": 3,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "projection_dim": 16,
    },
}

# Without it AutoTokenizer picks CLIPTokenizer for model_type "clip", which expects
# BPE and mangles this WordLevel tokenizer.
TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": BOS,
    "eos_token": EOS,
    "pad_token": EOS,
    "unk_token": UNK,
    "model_max_length": 77,
}

PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": 224},
}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")


def build_tokenizer():
    vocab = {UNK: 0, BOS: 1}
    for i, w in enumerate(WORDS):
        vocab[w] = 2 + i
    vocab[EOS] = 63
    assert len(WORDS) == 61 and len(set(WORDS)) == 61 and len(vocab) == 64
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, 1), (EOS, 63)],
    )
    tok.add_special_tokens([UNK, BOS, EOS])
    return tok


def rule_for(name):
    if name == "logit_scale":
        return "logit_scale"
    if name.endswith(".bias"):
        return "bias"
    if name.endswith(".weight") and any(
        s in name for s in ("layer_norm", "layrnorm", "layernorm", "final_layer_norm")
    ):
        return "layer_norm_weight"
    return "weight"


def formula_tensor(name, shape):
    numel = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    rule = rule_for(name)
    if rule == "logit_scale":
        return np.array(LOGIT_SCALE, dtype=np.float64).reshape(shape).astype(np.float32), rule
    k = np.arange(numel, dtype=np.float64)
    h = sum(name.encode("utf-8")) % HASH_MODULUS
    base = np.sin(PHASE_STEP * k + PHASE_PER_HASH * h).reshape(shape)
    if rule == "bias":
        v = BIAS_SCALE * base
    elif rule == "layer_norm_weight":
        v = 1.0 + LAYER_NORM_SCALE * base
    else:
        v = WEIGHT_SCALE * base
    return v.astype(np.float32), rule


def fill_weights(model):
    sd = model.state_dict()
    new_sd, entries, skipped = {}, [], []
    for name in sorted(sd.keys()):
        t = sd[name]
        if name.endswith("position_ids"):
            skipped.append(name)
            continue
        shape = list(t.shape)
        arr, rule = formula_tensor(name, shape)
        new_sd[name] = torch.from_numpy(arr)
        entries.append({"name": name, "shape": shape, "rule": rule})
    # non-persistent buffers (position_ids in transformers 5) are not in the state dict
    buffers = sorted(n for n, _ in model.named_buffers())
    new_sd.update({n: sd[n] for n in skipped})
    model.load_state_dict(new_sd, strict=True)
    return entries, skipped, buffers


def fl(t):
    """A float32 tensor as nested Python floats (each exactly the float32 value)."""
    return t.detach().to(torch.float32).cpu().numpy().astype(np.float64).tolist()


def l2n(t):
    return t / t.norm(p=2, dim=-1, keepdim=True)


def image_features(model, pixel_values):
    pooled = model.vision_model(pixel_values=pixel_values).pooler_output
    feats = model.visual_projection(pooled)
    alt = model.get_image_features(pixel_values=pixel_values)
    alt = alt.pooler_output if hasattr(alt, "pooler_output") else alt
    assert torch.equal(feats, alt), "get_image_features disagrees with visual_projection(pooler_output)"
    return feats


def text_features(model, input_ids):
    pooled = model.text_model(input_ids=input_ids).pooler_output
    feats = model.text_projection(pooled)
    alt = model.get_text_features(input_ids=input_ids)
    alt = alt.pooler_output if hasattr(alt, "pooler_output") else alt
    assert torch.equal(feats, alt), "get_text_features disagrees with text_projection(pooler_output)"
    return feats


def sha(a):
    """SHA-256 of a uint8 array's bytes, row-major (HWC for images)."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def manual_preprocess(path):
    """Same pipeline as CLIPImageProcessorPil written out, to pin down what it does."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(224 * long / short)  # truncation (get_resize_output_image_size)
    nh, nw = (new_long, 224) if w <= h else (224, new_long)
    decoded = np.array(img)  # HWC uint8
    img = img.resize((nw, nh), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    a = np.array(img)  # HWC uint8
    stages = {"decoded_rgb_sha256": sha(decoded), "resized_rgb_sha256": sha(a)}
    top, left = (nh - 224) // 2, (nw - 224) // 2
    a = a[top:top + 224, left:left + 224].transpose(2, 0, 1)
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(PREPROCESSOR["image_mean"], dtype=np.float32)
    std = np.array(PREPROCESSOR["image_std"], dtype=np.float32)
    x = ((x.T - mean) / std).T
    stages["cropped_rgb_sha256"] = sha(a.transpose(1, 2, 0))
    return x, stages, (nh, nw), (top, left)


def main():
    torch.set_num_threads(1)  # determinism of reductions across runs
    os.makedirs(MODEL_DIR, exist_ok=True)

    # 1. the checked-in description of the checkpoint
    write_json(os.path.join(MODEL_DIR, "config.json"), CONFIG)
    write_json(os.path.join(MODEL_DIR, "preprocessor_config.json"), PREPROCESSOR)
    write_json(os.path.join(MODEL_DIR, "tokenizer_config.json"), TOKENIZER_CONFIG)
    tok = build_tokenizer()
    tok.save(os.path.join(MODEL_DIR, "tokenizer.json"), pretty=True)

    # 2. the tokenizer loads through transformers and yields [1, ..., 63]
    fast = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(MODEL_DIR, "tokenizer.json"),
        unk_token=UNK, bos_token=BOS, eos_token=EOS, pad_token=EOS,
    )
    auto = AutoTokenizer.from_pretrained(MODEL_DIR)
    texts = []
    for t in TEXTS:
        ids = fast(t)["input_ids"]
        ids2 = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json")).encode(t).ids
        ids3 = auto(t)["input_ids"]
        assert ids == ids2 == ids3, (ids, ids2, ids3)
        assert ids[0] == 1 and ids[-1] == 63 and 0 not in ids, ids
        texts.append({"text": t, "input_ids": ids})

    # 3. deterministic weights, saved outside the repo and reloaded end to end
    config = CLIPConfig.from_pretrained(MODEL_DIR)
    model = CLIPModel(config).eval()
    entries, skipped, buffers = fill_weights(model)
    write_json(
        os.path.join(GOLDEN_DIR, "clip_tiny_tensors.json"),
        {
            "order": "sorted state_dict names",
            "formula": {
                "base": "sin(phase_step * k + phase_per_hash * (sum of the name's UTF-8 bytes % hash_modulus)), "
                        "k = 0..numel-1 row-major, float64, cast to float32 after scaling",
                "phase_step": PHASE_STEP,
                "phase_per_hash": PHASE_PER_HASH,
                "hash_modulus": HASH_MODULUS,
                "rules": {
                    "weight": f"{WEIGHT_SCALE} * base",
                    "bias": f"{BIAS_SCALE} * base",
                    "layer_norm_weight": f"1.0 + {LAYER_NORM_SCALE} * base",
                    "logit_scale": f"{LOGIT_SCALE} (scalar)",
                },
                "weight_scale": WEIGHT_SCALE,
                "bias_scale": BIAS_SCALE,
                "layer_norm_scale": LAYER_NORM_SCALE,
                "logit_scale": LOGIT_SCALE,
            },
            "skipped": skipped,
            "buffers_not_in_state_dict": sorted(set(buffers) - set(skipped)),
            "tensors": entries,
        },
    )
    tmp = tempfile.mkdtemp(prefix="clip_tiny_")
    try:
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
            shutil.copy(os.path.join(MODEL_DIR, f), tmp)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        model = CLIPModel.from_pretrained(tmp, attn_implementation="eager", dtype=torch.float32).eval()
        reloaded = model.state_dict()
        for e in entries:
            want, _ = formula_tensor(e["name"], e["shape"])
            assert torch.equal(reloaded[e["name"]], torch.from_numpy(want)), e["name"]
        proc = CLIPImageProcessorPil.from_pretrained(tmp)
    finally:
        shutil.rmtree(tmp)
    assert proc.backend == "pil"

    out = {
        "description": "scripts/golden/clip_golden.py on the formula checkpoint tests/golden/clip_tiny",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "PIL": PIL.__version__,
            "numpy": np.__version__,
            "libjpeg": PIL.features.version("jpg"),
            "libjpeg_turbo": PIL.features.version("libjpeg_turbo"),
            "zlib": PIL.features.version("zlib"),
        },
        "logit_scale": LOGIT_SCALE,
    }

    with torch.no_grad():
        # model_only
        n = 2 * 3 * 224 * 224
        k = np.arange(n, dtype=np.float64)
        pv = (0.5 * np.sin(0.01 * k) + 0.25 * np.cos(0.003 * k)).astype(np.float32).reshape(2, 3, 224, 224)
        feats = image_features(model, torch.from_numpy(pv))
        out["model_only"] = {
            "pixel_values_shape": [2, 3, 224, 224],
            "pixel_values_formula": "float32(0.5*sin(0.01*k) + 0.25*cos(0.003*k)), k = flat row-major index, float64 math",
            "pixel_values_first8": fl(torch.from_numpy(pv.reshape(-1)[:8])),
            "image_embeds": fl(feats),
            "image_embeds_normalized": fl(l2n(feats)),
        }

        # texts
        for t in texts:
            tf = text_features(model, torch.tensor([t["input_ids"]], dtype=torch.long))
            t["text_embeds"] = fl(tf[0])
            t["text_embeds_normalized"] = fl(l2n(tf)[0])
        out["texts"] = texts

        # images
        positions = [((i * 7) % 3, (i * 37) % 224, (i * 101) % 224) for i in range(N_SAMPLES)]
        images = []
        img_norm = []
        for fname in IMAGES:
            path = os.path.join(MEDIA_DIR, fname)
            with Image.open(path) as im:
                orig_mode, (ow, oh) = im.mode, im.size
                pixel_values = proc(images=im, return_tensors="pt")["pixel_values"]
            assert pixel_values.dtype == torch.float32
            manual, stages, resized, crop = manual_preprocess(path)
            assert np.array_equal(manual, pixel_values[0].numpy()), f"manual pipeline differs on {fname}"
            p = pixel_values[0].numpy().astype(np.float64)
            f = image_features(model, pixel_values)
            img_norm.append(l2n(f)[0])
            images.append({
                "file": "fixtures/media/" + fname,
                "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                "original_mode": orig_mode,
                "original_size_hw": [oh, ow],
                "resized_size_hw": list(resized),
                **stages,
                "crop_top_left": list(crop),
                "pixel_values_shape": list(pixel_values.shape),
                "channel_mean": [float(p[c].mean()) for c in range(3)],
                "channel_std": [float(p[c].std()) for c in range(3)],
                "samples": [[c, y, x, float(p[c, y, x])] for (c, y, x) in positions],
                "image_embeds": fl(f[0]),
                "image_embeds_normalized": fl(l2n(f)[0]),
            })
        out["images"] = images
        out["sample_positions"] = "(c, y, x) = ((i*7)%3, (i*37)%224, (i*101)%224), i = 0..511; samples are [c, y, x, value]"

        # similarity of normalised embeddings (texts x images), no logit scale
        tn = torch.stack([torch.tensor(t["text_embeds_normalized"], dtype=torch.float32) for t in texts])
        out["cosine_text_image"] = fl(tn @ torch.stack(img_norm).T)

    write_json(os.path.join(GOLDEN_DIR, "clip_tiny_golden.json"), out)
    print(f"{len(entries)} tensors, skipped {skipped}, wrote {GOLDEN_DIR}")


if __name__ == "__main__":
    main()
