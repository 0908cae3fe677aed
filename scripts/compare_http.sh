#!/usr/bin/env bash
# Text search over HTTP (`videovector serve`) against the same engine in process, at 1, 8 and 32
# concurrent clients (requests per second, p50, p99): examples/http_throughput.rs, release build.
# DATA_DIR (default data/bench-http) is ingested on the first run; REQUESTS per level (default 640).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo build --release --quiet --example http_throughput
./target/release/examples/http_throughput "${DATA_DIR:-data/bench-http}" "${REQUESTS:-640}"
