#!/usr/bin/env bash
# Install what videovector needs on a Debian machine and fetch the test media. Idempotent:
# installs only missing packages, fetches only missing files. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

# FFmpeg 5.1 development files for ffmpeg-next, clang for its bindings, the ffmpeg CLI and
# espeak-ng / pocketsphinx-testdata for the fixtures; python3 with pip fetches media packages
# (Debian's, unless a python3 with pip is already on the PATH), and venvs for the SDK tests.
packages=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev pkg-config clang ffmpeg espeak-ng pocketsphinx-testdata)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip python3-venv)
# The SDK tests run in a venv (scripts/sdk_test.sh); Debian's python3 needs python3-venv for that.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }

bash fixtures/make.sh
bash scripts/fetch_models.sh
