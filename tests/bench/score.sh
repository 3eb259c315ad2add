#!/usr/bin/env bash
# The scoring benchmark: Sluice's Score against Azure ML's inference server (gunicorn,
# 2 sync workers, a score.py with onnxruntime) on the same Adult model.onnx, and a bare
# axum route (the limit of the HTTP path; on tokio's defaults, and on as many threads as
# Sluice serves HTTP on), each loaded with oha over loopback in the same run.
# Usage: tests/bench/score.sh [seconds per load run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${SLUICE_BENCH_DIR:-$HOME/.cache/sluice-bench}"
venv="$cache/score-venv"
tools="$cache/tools"
if [ ! -x "$venv/bin/gunicorn" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "azureml-inference-server-http==1.5.1" "onnxruntime==1.32.0" numpy
fi
[ -x "$tools/bin/oha" ] || cargo install oha --version 1.16.0 --locked --root "$tools"
cargo build --release -p sluice
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
bin="$target/release/sluice"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The model the loop trains on Adult, in production.
"$bin" --root "$work/store" --scratch-dir "$work" dev --exit-when-idle --port 0 \
  --push adult=../shared/data/adult/adult.data --push adult-eval=../shared/data/adult/adult.test >/dev/null
mkdir "$work/model"
cp "$work/store/registry/models/adult-income/versions/v1/"{model.onnx,signature.json} "$work/model/"
python3 tests/bench/score_py/bench.py "$bin" "$work/store" "$work/model" "$tools/bin/oha" "$venv/bin" \
  ../shared/data/adult/adult.test "${1:-10}"
