#!/usr/bin/env bash
# The console benchmark: each page's server time on a store of 1,000 model versions,
# 10,000 runs and 500 dataset versions (made once, kept under the bench dir), beside
# what listing the store's folders costs, in the same run. Goal: under 50 ms a page.
# Usage: tests/bench/console.sh [versions runs dataset_versions]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p sluice
"${CARGO_TARGET_DIR:-target}/release/sluice" bench-console \
  --versions "${1:-1000}" --runs "${2:-10000}" --dataset-versions "${3:-500}" \
  --dir "${SLUICE_BENCH_DIR:-$HOME/.cache/sluice-bench}"
