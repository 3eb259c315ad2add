#!/usr/bin/env bash
# Builds the Function App's zip: host.json, one folder per function (function.json),
# and the `sluice` binary beside them, as the Functions host expects.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sluice
out=$(mktemp -d)
cp host.json "$out/"
for f in functions/*/function.json; do
  mkdir -p "$out/$(basename "$(dirname "$f")")"
  cp "$f" "$out/$(basename "$(dirname "$f")")/"
done
cp "${CARGO_TARGET_DIR:-target}/release/sluice" "$out/sluice"
(cd "$out" && zip -qr - .) > sluice-functionapp.zip
echo "wrote sluice-functionapp.zip (deploy: az functionapp deployment source config-zip --src sluice-functionapp.zip ...)"
