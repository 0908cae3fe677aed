"""Tokens per second of videovector's language model code against llama.cpp (llama-cpp-python)
on the same GGUF file, prompt and thread count, prompt reading and writing, with and without
the schema constraint on our side. Run by scripts/compare_llm.sh."""
import json, os, subprocess, sys, time

import llama_cpp

model = sys.argv[1]
ours_bin = sys.argv[2]
threads = int(os.environ.get("THREADS", os.cpu_count()))
prompt = ("<|im_start|>system\nYou extract structured metadata from one segment of a media file.<|im_end|>\n"
          "<|im_start|>user\nInstructions: Say where the scene takes place and its mood.\n\nEvidence:\n"
          "Transcript of the segment: \"We finally reached the beach. The waves are gentle and the sand is warm. "
          "Everyone is relaxed and quiet.\"<|im_end|>\n<|im_start|>assistant\n")
max_tokens = 64
with open("/tmp/compare_llm_prompt.txt", "w") as f:
    f.write(prompt)
ours = json.loads(subprocess.run([ours_bin, model, "/tmp/compare_llm_prompt.txt", str(max_tokens)],
                                 check=True, capture_output=True, text=True, env={**os.environ, "RAYON_NUM_THREADS": str(threads)}).stdout)

llm = llama_cpp.Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
toks = llm.tokenize(prompt.encode(), add_bos=False, special=True)
llm.reset(); llm.eval(toks[:4]); llm.reset()  # warm-up
best_pre, best_gen = 0.0, 0.0
for _ in range(2):
    llm.reset()
    t = time.perf_counter(); llm.eval(toks); pre = len(toks) / (time.perf_counter() - t)
    t = time.perf_counter(); n = 0
    for _ in range(max_tokens):
        tok = llm.sample(temp=0.0)
        if tok == llm.token_eos():
            break
        llm.eval([tok]); n += 1
    gen = n / (time.perf_counter() - t)
    best_pre, best_gen = max(best_pre, pre), max(best_gen, gen)
print(json.dumps({
    "threads": threads, "prompt_tokens": {"ours": ours["prompt_tokens"], "llama.cpp": len(toks)},
    "prefill_tok_s": {"ours": round(ours["prefill_tok_s"], 1), "llama.cpp": round(best_pre, 1),
                      "ratio": round(ours["prefill_tok_s"] / best_pre, 2)},
    "gen_tok_s": {"ours": round(ours["free"]["gen_tok_s"], 1), "ours_constrained": round(ours["constrained"]["gen_tok_s"], 1),
                  "llama.cpp": round(best_gen, 1), "ratio": round(ours["free"]["gen_tok_s"] / best_gen, 2)},
    "constraint_mask_ms_total": round(ours["constrained"]["mask_ms"], 2),
    "constrained_tokens": ours["constrained"]["tokens"],
}, indent=2))
