#!/usr/bin/env bash
# Filter search and filtered vector search, side by side with PostgreSQL 16 + pgvector 0.6.2
# (from the `pgserver` wheel) on the same data: runs `cargo bench --bench filter` with
# VV_BENCH_EXPORT (our figures), then scripts/compare_filter.py on what it exported.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-pg/bin/python -c "import pgserver, psycopg, numpy" 2>/dev/null; then
  python3 -m venv .venv-pg
  .venv-pg/bin/pip install --quiet pgserver==0.1.4 "psycopg[binary]==3.3.*" numpy
fi
export_dir=$(mktemp -d)
trap 'rm -rf "$export_dir"' EXIT
VV_BENCH_EXPORT="$export_dir" cargo bench --bench filter 2>&1 | grep -E "segments with|filter matches|p50"
.venv-pg/bin/python scripts/compare_filter.py "$export_dir"
