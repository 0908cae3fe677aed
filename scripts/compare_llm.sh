#!/usr/bin/env bash
# videovector's GGUF model code against llama.cpp on the same file, prompt and threads.
# Installs llama-cpp-python (built from source: several minutes) into .venv-llm/ once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_models.sh >/dev/null
if [ ! -x .venv-llm/bin/python ] || ! .venv-llm/bin/python -c "import llama_cpp" 2>/dev/null; then
  python3 -m venv .venv-llm
  .venv-llm/bin/pip install -q llama-cpp-python==0.3.36
fi
cargo build -q --release --example llm_speed
.venv-llm/bin/python scripts/compare_llm.py models/qwen2.5-coder-0.5b-instruct-q4_k_m/model.gguf target/release/examples/llm_speed
