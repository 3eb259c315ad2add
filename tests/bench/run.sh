#!/usr/bin/env bash
# The benchmark: Sluice's end-to-end ingest of a generated CSV (default 1 GiB) beside
# pandas, and the Spark scan on local Spark (what a delegated upload runs), on the same
# file, in the same run. Usage: tests/bench/run.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${SLUICE_BENCH_VENV:-$HOME/.cache/sluice-bench/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "pandas==2.2.3"
fi
# Local Spark as the suite pins it (Java 17 must be on the machine).
if [ ! -x "$venv/bin/spark-submit" ]; then
  "$venv/bin/pip" install --quiet -r tests/spark-tools.txt
fi
cargo build --release -p sluice
"${CARGO_TARGET_DIR:-target}/release/sluice" bench --mib "${1:-1024}" --dir "${SLUICE_BENCH_DIR:-$HOME/.cache/sluice-bench}" --python "$venv/bin/python" --with-spark "$venv/bin/spark-submit"
