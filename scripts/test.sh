#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, unit, integration and doc tests,
# and the official SDK against the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
# The official Python SDK against `videovector serve` (builds nothing new: cargo test made the binary).
cargo build --quiet
bash scripts/sdk_test.sh
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
