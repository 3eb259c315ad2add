#!/usr/bin/env bash
# The monitor benchmark: one monitor pass over a window of logged predictions (default
# 1,000,000) and the ground-truth pass for 10,000 labels, beside pandas + SciPy doing the
# same on the same files, in the same run. Usage: tests/bench/monitor.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${SLUICE_BENCH_VENV:-$HOME/.cache/sluice-bench/venv-monitor}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # The suite's pins (tests/python-tools.txt).
  "$venv/bin/pip" install --quiet "pandas==3.1.1" "pyarrow==26.0.1" "scipy==1.17.1" "numpy==2.4.6"
fi
cargo build --release -p sluice
"${CARGO_TARGET_DIR:-target}/release/sluice" bench-monitor --rows "${1:-1000000}" --dir "${SLUICE_BENCH_DIR:-$HOME/.cache/sluice-bench}" --python "$venv/bin/python"
