"""CLIP image tower speed: videovector (candle) against the reference (HF transformers on torch),
same ViT-B/32-sized random checkpoint, same inputs, same machine, one run.

    .venv-ref/bin/python scripts/compare_clip_speed.py [--threads N]

The checkpoint is written by the Rust example (target/bench-models/clip-vit-b32-random); both
sides compute projected image features for batches of 1 and 32.
"""
import argparse
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

ours = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "clip_speed", "--", DIR, "1", "32"],
                      cwd=ROOT, check=True, capture_output=True, text=True).stdout
ours = [json.loads(l) for l in ours.splitlines() if l.strip()]

model = CLIPModel.from_pretrained(DIR).eval()
rows = []
for o in ours:
    batch = o["batch"]
    k = torch.arange(batch * 3 * 224 * 224, dtype=torch.float64)
    pixels = (0.5 * torch.sin(0.01 * k) + 0.25 * torch.cos(0.003 * k)).float().reshape(batch, 3, 224, 224)
    with torch.no_grad():
        def feats():
            out = model.vision_model(pixel_values=pixels).pooler_output
            return model.visual_projection(out)
        first = feats()[0, :4].tolist()
        reps = 20 if batch == 1 else 3
        start = time.perf_counter()
        for _ in range(reps):
            feats()
        secs = (time.perf_counter() - start) / reps
    rows.append((batch, o["images_per_second"], batch / secs, max(abs(a - b) for a, b in zip(first, o["first_features"]))))

print(f"threads: torch {torch.get_num_threads()}, candle: all cores; torch {torch.__version__}")
print(f"{'batch':>5} {'videovector img/s':>18} {'transformers img/s':>19} {'ratio':>6} {'max |diff| (4 values)':>22}")
for batch, a, b, d in rows:
    print(f"{batch:>5} {a:>18.1f} {b:>19.1f} {a / b:>6.2f} {d:>22.2e}")
