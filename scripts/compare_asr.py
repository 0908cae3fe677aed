#!/usr/bin/env python3
"""Compare videovector's Whisper with faster-whisper on the very same CTranslate2 weights.

Run it with the peers' virtual environment:

    scripts/compare_asr.sh [OPTIONS]          # creates .venv-peers/ if faster-whisper is missing
    .venv-peers/bin/python scripts/compare_asr.py [OPTIONS]

Both read the CTranslate2 folder given by --model-dir (model.bin, config.json,
tokenizer.json). faster-whisper (through ctranslate2) also wants the model's vocabulary
(vocabulary.json), which our folders do not ship: it is written from tokenizer.json, with
the timestamp tokens <|0.00|> .. <|30.00|> appended as CTranslate2's converter does, into a
temporary folder of symlinks to the model's files. models/ is never written.

Implementations (rows):
  videovector          `videovector --asr-model DIR --visual-model off asr FILE --json`, one
                       process per file (RAYON_NUM_THREADS=--threads). Greedy decoding with
                       timestamps; the audio is cut at pauses into windows of at most 30 s.
                       `seconds` is the time the process reports for decode + transcription
                       (model load and start-up excluded); `videovector (process)` is the wall
                       time of the whole subprocess (start-up and model load included, once
                       per file).
  faster-whisper       WhisperModel(DIR, device="cpu", compute_type="float32" (with --int8:
                       "int8", and videovector runs with --precision int8),
                       cpu_threads=--threads); transcribe(beam_size=1, best_of=1,
                       temperature=0.0, condition_on_previous_text=False, vad_filter=False,
                       word_timestamps=False, language="en") - the same greedy search. The time
                       is that of transcribe() including consuming the segment generator (the
                       audio decode through PyAV included); the model is loaded once, before
                       (its load time is printed apart). 30 s windows one after another.
  faster-whisper beam5 the same with beam_size=5 (faster-whisper's default beam width),
                       best_of=5; everything else as above (single temperature, no fallback).

One untimed warm-up run per implementation comes first. With --repeat N each file is
transcribed N times and the median time is kept (the text is that of the first run).

Accuracy: word error rate (jiwer) after normalising both sides: lower case, <s> and </s>
dropped, hyphens to spaces, other punctuation dropped, "mr" -> "mister", "mrs" -> "missus".
LibriVox: the 5 utterances pooled (total edits / total reference words). slideshow.mp4:
against the 5 references concatenated in the order the clip plays them.

Speed: real-time factor = processing seconds / audio seconds (lower is faster), summed over
the LibriVox files; the ratio column is a row's RTF over faster-whisper greedy's RTF (above 1:
slower than faster-whisper).

Memory: peak resident set. videovector: the largest of its processes (one per file, from
wait4); faster-whisper: this Python process after all its runs (interpreter, PyAV, ctranslate2
and the model together).
"""

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

try:
    import ctranslate2
    import faster_whisper
    import jiwer
    import tokenizers
    from faster_whisper import WhisperModel
except ImportError:
    # Started with another interpreter (e.g. `python3 scripts/...`): use the venv's.
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() \
            and os.environ.get("COMPARE_ASR_REEXEC") != "1":
        os.environ["COMPARE_ASR_REEXEC"] = "1"
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit("faster-whisper / jiwer are not importable; run scripts/compare_asr.sh, which "
             "creates .venv-peers/ from scripts/requirements-peers.txt")

VV = "videovector"
VV_PROC = "videovector (process)"
FW = "faster-whisper"
FW5 = "faster-whisper beam5"
DECODING = {
    VV: "greedy",
    VV_PROC: "greedy, incl. start+load",
    FW: "greedy",
    FW5: "beam 5",
}


# ---------------------------------------------------------------- text

def normalise(text):
    t = text.lower().replace("<s>", " ").replace("</s>", " ")
    t = re.sub(r"[-\u2010-\u2015]", " ", t)
    t = t.replace("'", "").replace("\u2019", "")
    t = re.sub(r"[^\w\s]", " ", t)
    words = {"mr": "mister", "mrs": "missus"}
    return " ".join(words.get(w, w) for w in t.split())


def wer(refs, hyps):
    """Pooled WER of normalised texts (an empty hypothesis counts as all deletions)."""
    refs = [normalise(r) for r in refs]
    hyps = [normalise(h) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return out.wer, out.substitutions + out.deletions + out.insertions, sum(len(r.split()) for r, _ in pairs)


def read_references(path):
    refs = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(.*?)\s*\(([^()]+)\)\s*$", line)
        if m:
            refs[m.group(2)] = m.group(1).replace("<s>", "").replace("</s>", "").strip()
    return refs


def slideshow_order(fixtures, refs):
    """Utterance ids in the order slideshow.mp4 plays them (ground_truth.json, else sorted)."""
    gt = fixtures.parent / "ground_truth.json"
    try:
        speech = json.loads(gt.read_text())["files"]["slideshow.mp4"]["speech"]
        order = [Path(s["file"]).stem for s in speech]
        if all(u in refs for u in order):
            return order
    except (OSError, KeyError, ValueError, TypeError):
        pass
    return sorted(refs)


# ---------------------------------------------------------------- videovector

def run_videovector(binary, model_dir, data_dir, path, threads, precision):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [str(binary), "--data-dir", str(data_dir), "--asr-model", str(model_dir), "--precision", precision,
           "--visual-model", "off", "asr", str(path), "--json"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak resident set
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        sys.exit(f"videovector failed on {path} ({proc.returncode}):\n{stderr}")
    res = json.loads(stdout)
    text = " ".join(p["text"].strip() for p in res["phrases"]).strip()
    return {"seconds": res["seconds"], "wall": wall, "audio_seconds": res["audio_seconds"], "text": text,
            "peak_rss_mib": usage.ru_maxrss / 1024}


# ---------------------------------------------------------------- faster-whisper

def ct2_folder_for_faster_whisper(model_dir, tmp):
    """A folder faster-whisper can load: symlinks to model_dir's files, plus vocabulary.json
    made from tokenizer.json when the folder has no vocabulary of its own."""
    out = Path(tmp) / model_dir.name
    out.mkdir()
    for f in model_dir.iterdir():
        if f.is_file() and not f.name.startswith("."):
            (out / f.name).symlink_to(f.resolve())
    if not any((out / n).exists() for n in ("vocabulary.json", "vocabulary.txt")):
        tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        by_id = {i: s for s, i in tok.get_vocab(with_added_tokens=True).items()}
        if sorted(by_id) != list(range(len(by_id))):
            sys.exit(f"{model_dir / 'tokenizer.json'}: token ids are not contiguous")
        tokens = [by_id[i] for i in range(len(by_id))]
        # CTranslate2's Whisper converter appends the timestamp tokens (<|0.00|> .. <|30.00|>)
        # that older tokenizer.json files lack.
        have = sum(1 for s in tokens if re.fullmatch(r"<\|\d+\.\d\d\|>", s))
        tokens += ["<|%.2f|>" % (i * 0.02) for i in range(have, 1501)]
        (out / "vocabulary.json").write_text(json.dumps(tokens))
    return out


FW_COMMON = dict(temperature=0.0, condition_on_previous_text=False, vad_filter=False,
                 word_timestamps=False, language="en")
FW_SEARCH = {FW: dict(beam_size=1, best_of=1), FW5: dict(beam_size=5, best_of=5)}


def run_faster_whisper(model, path, search):
    t0 = time.perf_counter()
    segments, info = model.transcribe(str(path), **FW_SEARCH[search], **FW_COMMON)
    texts = [s.text.strip() for s in segments]  # the generator does the work
    secs = time.perf_counter() - t0
    return {"seconds": secs, "audio_seconds": info.duration, "text": " ".join(texts).strip()}


# ---------------------------------------------------------------- driver

def timed(fn, repeat):
    runs = [fn() for _ in range(repeat)]
    first = dict(runs[0])
    first["seconds"] = statistics.median(r["seconds"] for r in runs)
    if "wall" in first:
        first["wall"] = statistics.median(r["wall"] for r in runs)
    return first


def summarise(results, impl, key, ids, refs):
    rows = [results[impl][u] for u in ids]
    audio = sum(r["audio_seconds"] for r in rows)
    secs = sum(r[key] for r in rows)
    w, edits, nref = wer([refs[u] for u in ids], [r["text"] for r in rows])
    return {"wer": w, "edits": edits, "ref_words": nref, "audio_seconds": audio, "seconds": secs,
            "rtf": secs / audio if audio else float("nan")}


def print_table(title, summary, model_name, wer_label):
    print(f"\n{title}")
    head = ["implementation", "model", "decoding", wer_label, "audio s", "proc s", "RTF", "RTF / fw greedy"]
    base = summary[FW]["rtf"]
    body = []
    for impl, s in summary.items():
        body.append([impl, model_name, DECODING[impl], f"{s['wer'] * 100:.2f}% ({s['edits']}/{s['ref_words']})",
                     f"{s['audio_seconds']:.2f}", f"{s['seconds']:.2f}", f"{s['rtf']:.4f}",
                     f"{s['rtf'] / base:.2f}x"])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in body:
        print(line(r))
    print(f"speed ratio videovector/faster-whisper (greedy RTF): {summary[VV]['rtf'] / base:.2f} in-process, "
          f"{summary[VV_PROC]['rtf'] / base:.2f} whole process")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "whisper-tiny.en",
                    help="CTranslate2 Whisper folder both implementations load (default: %(default)s)")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "videovector",
                    help="videovector binary (default: %(default)s)")
    ap.add_argument("--media", type=Path, default=ROOT / "fixtures" / "media",
                    help="folder with librivox/ and slideshow.mp4 (default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "vv-asr",
                    help="videovector --data-dir (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2,
                    help="CPU threads for both: faster-whisper cpu_threads, videovector "
                         "RAYON_NUM_THREADS (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per file, median time kept (default: 1)")
    ap.add_argument("--no-beam5", action="store_true", help="skip the faster-whisper beam_size=5 row")
    ap.add_argument("--int8", action="store_true",
                    help="8-bit weights on both sides: videovector --precision int8 (the decoder's linear layers "
                         "and vocabulary product in ggml Q8_0), faster-whisper compute_type=\"int8\"")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the numbers as JSON")
    args = ap.parse_args()

    model_dir = args.model_dir.resolve()
    if not (model_dir / "model.bin").exists():
        sys.exit(f"{model_dir} has no model.bin (a CTranslate2 Whisper folder is needed)")
    if not args.binary.exists():
        sys.exit(f"{args.binary} not found: build it with `cargo build --release`")
    libri = args.media / "librivox"
    refs = read_references(libri / "transcription")
    wavs = sorted(libri.glob("*.wav"))
    ids = [w.stem for w in wavs if w.stem in refs]
    if not ids:
        sys.exit(f"no LibriVox wav in {libri} has a reference in {libri / 'transcription'}")
    slideshow = args.media / "slideshow.mp4"
    order = slideshow_order(libri, refs)
    refs["slideshow"] = " ".join(refs[u] for u in order)
    inputs = {**{w.stem: w for w in wavs if w.stem in refs}, "slideshow": slideshow}
    args.data_dir.mkdir(parents=True, exist_ok=True)

    impls = [VV, FW] + ([] if args.no_beam5 else [FW5])
    results = {VV: {}, VV_PROC: {}, FW: {}, FW5: {}}
    print(f"model {model_dir}, {args.threads} threads, {'int8' if args.int8 else 'f32'} weights, {len(ids)} LibriVox files + slideshow.mp4, "
          f"repeat {args.repeat}", file=sys.stderr)

    # videovector: one process per file.
    precision = "int8" if args.int8 else "f32"
    run_videovector(args.binary, model_dir, args.data_dir, inputs[ids[0]], args.threads, precision)  # warm-up
    for u, path in inputs.items():
        r = timed(lambda: run_videovector(args.binary, model_dir, args.data_dir, path, args.threads, precision),
                  args.repeat)
        results[VV][u] = r
        results[VV_PROC][u] = dict(r, seconds=r["wall"])
        print(f"  {VV:22} {u:45} {r['seconds']:7.2f} s  {r['text']}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="compare-asr-") as tmp:
        fw_dir = ct2_folder_for_faster_whisper(model_dir, tmp)
        t0 = time.perf_counter()
        compute_type = "int8" if args.int8 else "float32"
        model = WhisperModel(str(fw_dir), device="cpu", compute_type=compute_type, cpu_threads=args.threads)
        fw_load = time.perf_counter() - t0
        for impl in impls[1:]:
            run_faster_whisper(model, inputs[ids[0]], impl)  # warm-up
            for u, path in inputs.items():
                r = timed(lambda: run_faster_whisper(model, path, impl), args.repeat)
                results[impl][u] = r
                print(f"  {impl:22} {u:45} {r['seconds']:7.2f} s  {r['text']}", file=sys.stderr)
        fw_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del model
    vv_peak = max(r["peak_rss_mib"] for r in results[VV].values())

    rows = [VV, VV_PROC] + impls[1:]
    model_name = model_dir.name
    libri_sum = {i: summarise(results, i, "seconds", ids, refs) for i in rows}
    slide_sum = {i: summarise(results, i, "seconds", ["slideshow"], refs) for i in rows}

    print(f"\nfaster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}, "
          f"jiwer {importlib.metadata.version('jiwer')}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {args.threads} threads; faster-whisper model load {fw_load:.2f} s")
    print_table(f"LibriVox: {len(ids)} utterances, WER pooled", libri_sum, model_name, "WER")
    print_table("slideshow.mp4 (40 s, the 5 utterances with silences)", slide_sum, model_name, "WER")
    print(f"\npeak memory (max resident set): videovector {vv_peak:.0f} MiB (the largest of its processes, "
          f"one per file); faster-whisper {fw_peak:.0f} MiB (this Python process: interpreter, PyAV, "
          f"ctranslate2 and the model)")

    # Where the transcripts differ (after normalisation) from faster-whisper greedy's.
    diffs = [u for u in inputs if normalise(results[VV][u]["text"]) != normalise(results[FW][u]["text"])]
    print(f"\ntexts differing from faster-whisper greedy (normalised): {len(diffs)} of {len(inputs)}")
    for u in diffs:
        print(f"  {u}\n    reference:      {refs[u]}\n    videovector:    {results[VV][u]['text']}\n"
              f"    faster-whisper: {results[FW][u]['text']}")
    raw = [u for u in inputs if u not in diffs and results[VV][u]["text"] != results[FW][u]["text"]]
    if raw:
        print(f"  same words, other punctuation/case: {', '.join(raw)}")

    if args.json:
        doc = {
            "model_dir": str(model_dir),
            "threads": args.threads,
            "repeat": args.repeat,
            "versions": {"faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
                         "jiwer": importlib.metadata.version("jiwer"), "python": platform.python_version()},
            "faster_whisper_load_seconds": fw_load,
            "peak_rss_mib": {"videovector": vv_peak, "faster_whisper_process": fw_peak},
            "decoding": {i: DECODING[i] for i in rows},
            "notes": {"seconds": "videovector: time the process reports (decode + transcription); "
                                 "videovector (process): wall time of the whole subprocess; faster-whisper: "
                                 "transcribe() including consuming the segments",
                      "rtf": "processing seconds / audio seconds"},
            "librivox": libri_sum,
            "slideshow": slide_sum,
            "speed_ratio_videovector_over_faster_whisper_greedy": {
                "librivox": libri_sum[VV]["rtf"] / libri_sum[FW]["rtf"],
                "librivox_whole_process": libri_sum[VV_PROC]["rtf"] / libri_sum[FW]["rtf"],
                "slideshow": slide_sum[VV]["rtf"] / slide_sum[FW]["rtf"],
                "slideshow_whole_process": slide_sum[VV_PROC]["rtf"] / slide_sum[FW]["rtf"],
            },
            "files": {i: {u: results[i][u] for u in inputs} for i in rows},
            "references": {u: refs[u] for u in inputs},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
