#!/usr/bin/env bash
# Compare videovector's shot detection with PySceneDetect on the fixture clips.
# Creates .venv-peers/ from scripts/requirements-peers.txt when it is missing, then runs
# scripts/compare_scenedetect.py with it; arguments are passed through (--help lists them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-peers"
req="$root/scripts/requirements-peers.txt"
if ! "$venv/bin/python" -c 'import scenedetect, cv2' >/dev/null 2>&1; then
  echo "setting up $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
fi
exec "$venv/bin/python" "$root/scripts/compare_scenedetect.py" "$@"
