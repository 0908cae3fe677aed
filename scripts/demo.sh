#!/usr/bin/env bash
# The main job on the bundled fixtures: set up, build, ingest into an index on the embedded
# default (SQLite + files in one folder), then list what was made. Idempotent: a second run finds
# every file already ingested. DATA_DIR picks the data folder (default: data/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
vv() { ./target/release/videovector --data-dir "${DATA_DIR:-data/demo}" "$@"; }
vv index get fixtures >/dev/null 2>&1 || vv index create fixtures
media=fixtures/media
vv ingest --index fixtures "$media/bikes.mp4" "$media/slideshow.mp4" "$media/fade.mp4" "$media/speech.wav" "$media/rocket.jpg"
echo
vv media list --index fixtures
for id in $(vv media list --index fixtures --json | python3 -c 'import json,sys; print(" ".join(m["video_id"] for m in json.load(sys.stdin)["data"]))'); do
  echo
  echo "segments of $id (segment_id, start, end, thumbnail):"
  vv segments "$id"
done
echo
echo 'search text "rather selfish and cold hearted" (score, segment, video, span, modality, thumbnail):'
vv search text "rather selfish and cold hearted" --index fixtures --top-k 3
echo
echo "jobs (one per ingested file; job_id, kind, status, stage, video_id):"
vv jobs list
echo
echo "last events of the log:"
vv events --since 0 | tail -n 4
