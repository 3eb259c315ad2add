#!/usr/bin/env bash
# The training benchmark: Sluice's reference trainer beside scikit-learn on the same rows
# for each task (binary, multiclass, regression), in the same run (see train.py).
# Usage: tests/bench/train.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${SLUICE_BENCH_DIR:-$HOME/.cache/sluice-bench}"
venv="$cache/train-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r examples/sklearn-trainer/requirements.txt
fi
cargo build --release -p sluice
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/no-models"
# The dataset versions, ingested as the loop does (no models: nothing trains here).
"$target/release/sluice" --root "$work/store" --scratch-dir "$work" dev --exit-when-idle --port 0 \
  --configs "$work/no-configs" --push adult=../shared/data/adult/adult.data \
  --push iris=../shared/data/iris/iris.csv --push diabetes=../shared/data/diabetes/diabetes.csv >/dev/null
"$venv/bin/python" tests/bench/train.py "$target/release/sluice" "$work/store" "$work"
