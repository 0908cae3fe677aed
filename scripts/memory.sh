#!/usr/bin/env bash
# Peak memory (max RSS) of ingesting the 1-minute and the 10-minute fixture with the same
# pattern: the two numbers should be about equal, since nothing is kept per frame but a few floats.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for f in long_1min.mp4 long.mp4; do
  dir=$(mktemp -d)
  /usr/bin/time -f "$f: peak RSS %M KiB, %e s wall" ./target/release/videovector --data-dir "$dir" ingest "fixtures/media/$f" >/dev/null
  rm -rf "$dir"
done
