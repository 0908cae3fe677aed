#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, unit, integration and doc tests,
# and the official SDK against the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The SDK tests' Python packages and storage emulators install while Rust builds.
prepare_log=$(mktemp)
bash scripts/sdk_test.sh --prepare >"$prepare_log" 2>&1 &
prepare=$!
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
# The official Python SDK against `videovector serve` (builds nothing new: cargo test made the binary).
cargo build --quiet
if ! wait "$prepare"; then
  cat "$prepare_log" >&2
  echo "error: installing the SDK tests' packages failed (above)" >&2
  exit 1
fi
# The docs build beside the SDK tests, which mostly wait on the server.
doc_log=$(mktemp)
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet >"$doc_log" 2>&1 &
doc=$!
bash scripts/sdk_test.sh
if ! wait "$doc"; then
  cat "$doc_log" >&2
  echo "error: cargo doc failed (above)" >&2
  exit 1
fi
