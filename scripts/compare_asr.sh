#!/usr/bin/env bash
# Compare videovector's Whisper with faster-whisper on the same CTranslate2 weights (speed and
# WER on the LibriVox fixtures and slideshow.mp4). Creates or extends .venv-peers/ from
# scripts/requirements-peers.txt when faster-whisper or jiwer is missing, then runs
# scripts/compare_asr.py with it; arguments are passed through (--help lists them).
# Needs the release binary: cargo build --release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-peers"
req="$root/scripts/requirements-peers.txt"
if ! "$venv/bin/python" -c 'import faster_whisper, jiwer' >/dev/null 2>&1; then
  echo "setting up $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
fi
exec "$venv/bin/python" "$root/scripts/compare_asr.py" "$@"
