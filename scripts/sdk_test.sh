#!/usr/bin/env bash
# The official Python SDK (videovector==2.0.0, unchanged) against `videovector serve`:
# tests/sdk/test_sdk.py (the implemented SDK methods), tests/sdk/test_sdk_rules.py (cancel and
# retry of imports, runs and segments, text to SQL, uploads probed by content, anonymous access,
# traversal ids, repeated DELETEs), tests/sdk/load_test.py (concurrent searches during an
# ingest) and tests/sdk/test_shutdown.py (SIGTERM and kill -9 mid-ingest, a request in flight at
# SIGTERM, Idempotency-Key replies after a restart; each test on a folder and servers of its own);
# tests/sdk/test_delivery.py (connectors on a local S3 (moto) and Azure Blob (azurite), connector
# imports, exports, signed webhook deliveries with retries and a restart; servers of its own);
# tests/sdk/test_organize.py (markers, collections and index automations over plain HTTP, and the
# marker fields of the SDK's models; a server of its own);
# tests/sdk/COVERAGE.md says which SDK method each test covers.
# Creates .venv-sdk/ on first use and installs the pinned packages (moto's S3 server among them),
# and azurite from npm into .cache/azurite/ (git-ignored), only when missing. Needs the debug
# binary (cargo build or cargo test; VIDEOVECTOR_BIN=PATH tests another build); it does not
# build it.
# Arguments go to pytest, e.g. `bash scripts/sdk_test.sh -k search -x` or
# `bash scripts/sdk_test.sh tests/sdk/test_delivery.py -x` (that file alone).
# `bash scripts/sdk_test.sh --prepare` installs what is missing and runs nothing (scripts/test.sh
# runs it beside the build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv-sdk
packages=(videovector==2.0.0 pytest==9.2.0 "moto[server]==5.2.5" duckdb==1.4.2)

if ! "$venv/bin/python" - "${packages[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
# `moto[server]` is moto plus the server's own packages (flask, flask-cors): all must be there.
version("flask"), version("flask-cors")
sys.exit(any(version(name.split("[")[0]) != want for name, want in (p.split("==") for p in sys.argv[1:])))
PY
then
  echo "setting up $venv (${packages[*]})" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi

# Azurite (the Azure Blob Storage emulator) for test_delivery.py; node and npm come with the machine.
azurite_version=3.37.0
azurite=.cache/azurite
if ! grep -qs "\"version\": \"$azurite_version\"" "$azurite/node_modules/azurite/package.json"; then
  echo "installing azurite@$azurite_version into $azurite" >&2
  mkdir -p "$azurite"
  npm install --prefix "$azurite" "azurite@$azurite_version" --no-audit --no-fund --silent
fi

if [ "${1:-}" = "--prepare" ]; then
  exit 0
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

# Arguments that name tests (a path, or path::name) run those only; otherwise all of tests/sdk.
targets=(tests/sdk)
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then
    targets=()
    break
  fi
done
exec "$venv/bin/pytest" -q "${targets[@]}" "$@"
