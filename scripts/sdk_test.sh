#!/usr/bin/env bash
# The official Python SDK (videovector==2.0.0, unchanged) against `videovector serve`:
# tests/sdk/test_sdk.py (the implemented SDK methods), tests/sdk/test_sdk_rules.py (cancel and
# retry of imports, runs and segments, text to SQL, uploads probed by content, anonymous access,
# traversal ids, repeated DELETEs), tests/sdk/load_test.py (concurrent searches during an
# ingest) and tests/sdk/test_shutdown.py (SIGTERM and kill -9 mid-ingest, a request in flight at
# SIGTERM, Idempotency-Key replies after a restart; each test on a folder and servers of its own);
# tests/sdk/COVERAGE.md says which SDK method each test covers.
# Creates .venv-sdk/ on first use and installs the pinned packages
# only when missing. Needs the debug binary (cargo build or cargo test; VIDEOVECTOR_BIN=PATH
# tests another build); it does not build it.
# Arguments go to pytest, e.g. `bash scripts/sdk_test.sh -k search -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv-sdk
packages=(videovector==2.0.0 pytest==9.2.0)

if ! "$venv/bin/python" - "${packages[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != want for name, want in (p.split("==") for p in sys.argv[1:])))
PY
then
  echo "setting up $venv (${packages[*]})" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi

binary="${VIDEOVECTOR_BIN:-target/debug/videovector}"
if [ ! -x "$binary" ]; then
  echo "error: $binary is missing; build it first with \`cargo build\` (or \`cargo test\`)" >&2
  exit 2
fi
for media in bikes.mp4 rocket.jpg flower.jpg chelsea.png coffee.png notvideo.mp4 empty.mp4 long_1min.mp4; do
  if [ ! -e "fixtures/media/$media" ]; then
    echo "error: fixtures/media/$media is missing; run \`bash scripts/setup.sh\` (it runs fixtures/make.sh)" >&2
    exit 2
  fi
done

for model in all-MiniLM-L6-v2 qwen2.5-coder-0.5b-instruct-q4_k_m whisper-tiny.en; do
  if [ ! -d "models/$model" ]; then
    echo "error: models/$model is missing; run \`bash scripts/setup.sh\` (it runs scripts/fetch_models.sh)" >&2
    exit 2
  fi
done

exec "$venv/bin/pytest" -q tests/sdk "$@"
