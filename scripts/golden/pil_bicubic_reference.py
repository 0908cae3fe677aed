#!/usr/bin/env python3
"""Pillow's 8-bit BICUBIC `Image.resize` written out in NumPy, checked bit-exact
against Pillow on the fixture photos and on synthetic sizes.

This is the resize step of the slow CLIP image processor (transformers
`CLIPImageProcessorPil` -> `image_transforms.resize` -> `PIL.Image.resize(size,
resample=3, reducing_gap=None)`); our Rust preprocessing reproduces it. Source it
follows: Pillow 13.0.0 `src/libImaging/Resample.c` (`bicubic_filter`,
`precompute_coeffs`, `normalize_coeffs_8bpc`, `_ImagingResampleHorizontal_8bpc`,
`_ImagingResampleVertical_8bpc`, `ImagingResampleInner`).

    .venv-ref/bin/python scripts/golden/pil_bicubic_reference.py
"""

import math
import os
import sys

import numpy as np
from PIL import Image

PRECISION_BITS = 32 - 8 - 2  # 22


def bicubic(x):
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def coeffs(in_size, out_size):
    """(xmin, int32 weights) per output pixel; box is the whole input."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # antialiasing: the kernel widens when downscaling
    support = 2.0 * filterscale
    inv = 1.0 / filterscale
    out = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C (int) truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [bicubic((x + xmin - center + 0.5) * inv) for x in range(xmax)]
        ww = sum(w)  # summed left to right in double, like the C loop
        if ww != 0.0:
            w = [v / ww for v in w]
        # to fixed point: round half away from zero
        k = [int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << PRECISION_BITS)) for v in w]
        out.append((xmin, np.array(k, dtype=np.int64)))
    return out


def clip8(ss):
    return np.clip(ss >> PRECISION_BITS, 0, 255).astype(np.uint8)  # arithmetic shift = floor


def pass_axis(a, out_size, axis):
    """One separable pass over `axis` of a uint8 HxWxC array; result is uint8 again."""
    a = np.moveaxis(a, axis, 0).astype(np.int64)
    res = []
    for xmin, k in coeffs(a.shape[0], out_size):
        ss = (1 << (PRECISION_BITS - 1)) + np.tensordot(k, a[xmin:xmin + len(k)], axes=(0, 0))
        res.append(clip8(ss))
    return np.moveaxis(np.stack(res), 0, axis)


def resize_bicubic(a, out_w, out_h):
    in_h, in_w = a.shape[:2]
    need_h = out_w != in_w
    need_v = out_h != in_h
    # Pillow >= 12 runs the vertical pass first when the height shrinks by more
    # than twice as many pixels as the width does
    horizontal_first = not ((in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2)
    if horizontal_first:
        if need_h:
            a = pass_axis(a, out_w, 1)
        if need_v:
            a = pass_axis(a, out_h, 0)
    else:
        if need_v:
            a = pass_axis(a, out_h, 0)
        if need_h:
            a = pass_axis(a, out_w, 1)
    return a


def shortest_edge_size(w, h, size=224):
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)  # (w, h)


def check(img, out_w, out_h, label):
    want = np.array(img.resize((out_w, out_h), resample=Image.Resampling.BICUBIC, reducing_gap=None))
    got = resize_bicubic(np.array(img), out_w, out_h)
    ok = np.array_equal(want, got)
    print(f"{label}: {img.size} -> {(out_w, out_h)} {'bit-exact' if ok else 'DIFFERS'}")
    return ok


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ok = True
    for f in ("astronaut.png", "chelsea.png", "rocket.jpg"):
        img = Image.open(os.path.join(root, "fixtures", "media", f)).convert("RGB")
        ok &= check(img, *shortest_edge_size(*img.size), f)
    rng = np.random.default_rng(0)
    # tall (vertical pass first), upscaling, odd sizes, single axis
    for (w, h), out in [((300, 900), None), ((100, 80), None), ((451, 300), (451, 224)),
                        ((225, 1000), None), ((640, 427), (335, 224))]:
        img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        ow, oh = out if out is not None else shortest_edge_size(w, h)
        ok &= check(img, ow, oh, f"random {w}x{h}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
