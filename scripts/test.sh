#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
