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
echo "prompt run: the local language model extracts a topic, a setting and a mood per segment"
cat > /tmp/videovector-demo-schema.json <<'JSON'
{"type": "object", "properties": {
  "topic": {"type": "string", "description": "what the segment is about, in a few words"},
  "setting": {"type": "string", "enum": ["indoors", "outdoors", "unknown"]},
  "mood": {"type": "string", "enum": ["calm", "tense", "joyful", "sad", "neutral"]}}}
JSON
prompt_id=$(vv prompt create --name "Demo scene facts" --text "Describe the topic, setting and mood of the segment from the evidence." \
  --schema @/tmp/videovector-demo-schema.json --idempotency-key demo-scene-prompt | python3 -c 'import json,sys; print(json.load(sys.stdin)["prompt_id"])')
vv run execute --prompt "$prompt_id" --index fixtures --idempotency-key demo-scene-run || echo "(some segments failed: vv run failed-segments RUN)"
run_id=$(vv run list --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
speech_id=$(vv media list --index fixtures --json | python3 -c 'import json,sys; print([m["video_id"] for m in json.load(sys.stdin)["data"] if m["title"] == "speech.wav"][0])')
echo "results for speech.wav (start, end, metadata):"
vv run results "$run_id" --video-id "$speech_id" | python3 -c 'import json, sys
for r in json.load(sys.stdin)["data"]:
    print("%6.2f %6.2f %s" % (r["start_time"], r["end_time"], json.dumps(r["metadata"])))'
echo
echo 'search text "lighthouse on the coast" (transcripts and extracted metadata):'
vv search text "lighthouse on the coast" --index fixtures --top-k 3
echo
echo "filter search: segments the run called calm (segment, video, span, run, matched field):"
vv search filter --condition 'mood equals calm:string' --index fixtures --run-id "$run_id" --page-size 5
echo
echo 'search text "a quiet conversation" among the calm segments only:'
vv search text "a quiet conversation" --index fixtures --condition 'mood equals calm:string' --top-k 3
echo
echo "sql: moods per setting in the run's table"
vv sql execute "SELECT setting, mood, count(*) AS segments FROM $run_id GROUP BY 1, 2 ORDER BY 3 DESC" --index fixtures
echo
echo "delivery: a local-folder connector, an import of its new files into another index, the run exported as JSON Lines to it and as a Parquet table to the data folder"
drop="${DATA_DIR:-data/demo}-dropbox"
mkdir -p "$drop/incoming"
cp "$media/flower.jpg" "$media/china.jpg" "$drop/incoming/"
connector_id=$(vv connector list --json | python3 -c 'import json,sys; print(next((c["connector_id"] for c in json.load(sys.stdin) if c["name"] == "demo dropbox"), ""))')
[ -n "$connector_id" ] || connector_id=$(vv --json connector create-local --name "demo dropbox" --scope import --scope export \
  --import-mode new_only "$drop" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connector_id"])')
vv index get inbox >/dev/null 2>&1 || vv index create inbox
vv import create "$connector_id" --index inbox --prefix incoming --pattern '*.{jpg,png}'
vv export run "$run_id" --connector "$connector_id" --subpath exports --format jsonl
vv export run "$run_id" --format parquet
echo
echo "jobs (one per ingested file, run, import and export; job_id, kind, status, stage, video_id):"
vv jobs list
echo
echo "last events of the log:"
vv events --since 0 | tail -n 4
echo
echo "the same folder behind the REST API (videovector serve), searched over HTTP as the official SDK would:"
key="sk_live_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
serve_out=$(mktemp)
VIDEOVECTOR_ADMIN_KEY="$key" ./target/release/videovector --data-dir "${DATA_DIR:-data/demo}" serve --listen 127.0.0.1:0 >"$serve_out" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; rm -f "$serve_out"' EXIT
for _ in $(seq 100); do grep -q '^serving ' "$serve_out" && break; sleep 0.1; done
base=$(sed -n 's/^serving //p' "$serve_out")
index_id=$(vv index get fixtures --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["index_id"])')
echo "POST $base/indexes/$index_id/search {\"query\": \"lighthouse on the coast\", \"top_k\": 3}"
python3 - "$base" "$key" "$index_id" <<'PY'
import json, sys, urllib.request
base, key, index_id = sys.argv[1:]
req = urllib.request.Request(f"{base}/indexes/{index_id}/search", method="POST",
    data=json.dumps({"query": "lighthouse on the coast", "top_k": 3}).encode(),
    headers={"X-API-Key": key, "Content-Type": "application/json"})
for hit in json.load(urllib.request.urlopen(req)):
    print("%.4f %s %s %6.2f-%6.2fs %s" % (hit["similarity_score"], hit["segment_id"], hit["video_name"],
          hit["start_time"], hit["end_time"], hit["text_content"][:60]))
PY
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
