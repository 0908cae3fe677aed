#!/usr/bin/env bash
# Runs scripts/compare_ann.py in .venv-peers (created with faiss-cpu and numpy if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-peers/bin/python -c "import faiss, numpy" 2>/dev/null; then
  python3 -m venv .venv-peers
  .venv-peers/bin/pip install --quiet faiss-cpu numpy
fi
.venv-peers/bin/python scripts/compare_ann.py "$@"
