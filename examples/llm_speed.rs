//! Tokens per second of the local language model, prompt reading and writing, with and without
//! a JSON Schema constraint, as JSON (read by `scripts/compare_llm.py`, which runs llama.cpp on
//! the same file, prompt and thread count).
//!
//! `cargo run --release --example llm_speed -- [MODEL.gguf] [PROMPT_FILE] [MAX_TOKENS]`

use std::time::Instant;

use videovector::internals::ml::llm::{resolve, LanguageModel, DEFAULT_LANGUAGE_MODEL};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args.first().cloned().unwrap_or_else(|| DEFAULT_LANGUAGE_MODEL.to_string());
    let prompt = match args.get(1) {
        Some(p) => std::fs::read_to_string(p)?,
        None => "<|im_start|>user\nDescribe a quiet harbour at dawn in JSON with keys place, mood and objects.<|im_end|>\n<|im_start|>assistant\n".to_string(),
    };
    let max_tokens: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let path = resolve(&spec, &videovector::internals::ml::source::search_dirs(None))?;
    let t = Instant::now();
    let mut model = LanguageModel::load(&path, &spec, &videovector::internals::ml::device())?;
    let load_s = t.elapsed().as_secs_f64();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "place": {"type": "string"},
            "mood": {"type": "string", "enum": ["calm", "tense", "joyful", "sad"]},
            "objects": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["place", "mood", "objects"]
    });
    // One warm-up, then the best of two measured runs each.
    model.measure(&prompt, None, 4)?;
    let best = |a: videovector::internals::ml::llm::Generation, b: videovector::internals::ml::llm::Generation| {
        if a.decode + a.prefill <= b.decode + b.prefill {
            a
        } else {
            b
        }
    };
    let free = best(model.measure(&prompt, None, max_tokens)?, model.measure(&prompt, None, max_tokens)?);
    let constrained =
        best(model.measure(&prompt, Some(&schema), max_tokens)?, model.measure(&prompt, Some(&schema), max_tokens)?);
    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    let report = serde_json::json!({
        "model": path.display().to_string(),
        "threads": rayon::current_num_threads(),
        "load_s": load_s,
        "prompt_tokens": free.input_tokens,
        "prefill_tok_s": rate(free.input_tokens, free.prefill),
        "free": {"tokens": free.output_tokens, "gen_tok_s": rate(free.output_tokens.saturating_sub(1), free.decode), "text": free.text},
        "constrained": {"tokens": constrained.output_tokens, "gen_tok_s": rate(constrained.output_tokens.saturating_sub(1), constrained.decode),
            "mask_ms": constrained.constraint.as_secs_f64() * 1e3, "text": constrained.text},
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
