#!/usr/bin/env bash
# Builds the release binary for x86_64-unknown-linux-gnu and writes the Function App's
# zip with `sluice package` (host.json, one folder per function, the binary and ONNX
# Runtime beside it). Usage: infra/package.sh [output.zip]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-sluice-functionapp.zip}"
cargo build --release --locked -p sluice --target x86_64-unknown-linux-gnu
target="${CARGO_TARGET_DIR:-target}"
"$target/x86_64-unknown-linux-gnu/release/sluice" package --output "$out"
echo "deploy with: az functionapp deployment source config-zip --src $out --resource-group <rg> --name <app>"
