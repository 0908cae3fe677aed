"""CLIP image tower speed: videovector (candle) against the reference (HF transformers on torch),
same ViT-B/32-sized random checkpoint, same inputs, same machine, one run.

    .venv-ref/bin/python scripts/compare_clip_speed.py [--threads N]

The checkpoint is written by the Rust example (target/bench-models/clip-vit-b32-random); both
sides compute projected image features for batches of 1 and 32, first with f32 weights, then
with 8-bit linear layers: ours are ggml's Q8_0 (`--int8`), torch's are its dynamic int8
quantization (`torch.ao.quantization.quantize_dynamic` on every `nn.Linear`), the nearest
thing torch offers. Each 8-bit row gives the lowest cosine, over the batch, of its features to
the same side's f32 features.
"""
import argparse
import copy
import json
import os
import subprocess
import time

import torch
from transformers import CLIPModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "target", "bench-models", "clip-vit-b32-random")

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=os.cpu_count())
args = ap.parse_args()
torch.set_num_threads(args.threads)
env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))


def ours(*flags):
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "clip_speed", "--", DIR, *flags, "1", "32"],
                         cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def pixels(batch):
    k = torch.arange(batch * 3 * 224 * 224, dtype=torch.float64)
    return (0.5 * torch.sin(0.01 * k) + 0.25 * torch.cos(0.003 * k)).float().reshape(batch, 3, 224, 224)


def features(model, x):
    with torch.no_grad():
        return model.visual_projection(model.vision_model(pixel_values=x).pooler_output)


def time_torch(model, batch):
    x = pixels(batch)
    first = features(model, x)
    reps = 20 if batch == 1 else 3
    start = time.perf_counter()
    for _ in range(reps):
        features(model, x)
    return batch * reps / (time.perf_counter() - start), first


ours_f32, ours_int8 = ours(), ours("--int8")
model = CLIPModel.from_pretrained(DIR).eval()
quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)

print(f"threads: {args.threads} (torch {torch.get_num_threads()}); torch {torch.__version__}")
print(f"{'weights':>7} {'batch':>5} {'videovector img/s':>18} {'transformers img/s':>19} {'ratio':>6} "
      f"{'ours: cos to f32':>16} {'torch: cos to f32':>17} {'max |diff| vs torch f32':>23}")
for rows, name in [(ours_f32, "f32"), (ours_int8, "int8")]:
    for o in rows:
        batch = o["batch"]
        rate, feats = time_torch(model if name == "f32" else quantized, batch)
        reference = features(model, pixels(batch))
        torch_cos = torch.nn.functional.cosine_similarity(feats, reference).min().item()
        diff = max(abs(a - b) for a, b in zip(reference[0, :4].tolist(), o["first_features"]))
        print(f"{name:>7} {batch:>5} {o['images_per_second']:>18.1f} {rate:>19.1f} {o['images_per_second'] / rate:>6.2f} "
              f"{o['min_cosine_to_f32']:>16.5f} {torch_cos:>17.5f} {diff:>23.2e}")
