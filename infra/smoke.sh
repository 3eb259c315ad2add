#!/usr/bin/env bash
# Smoke test of a deployed Sluice: usage infra/smoke.sh <base-url>, with the scoring key
# in SLUICE_SMOKE_KEY. Optionally SLUICE_SMOKE_MODEL and SLUICE_SMOKE_BODY (a JSON file
# of rows) score real rows and expect predictions.
#
# Checks: /api/health answers 200 with storage reachable (retried for up to
# SLUICE_SMOKE_WAIT seconds while a new deployment starts); scoring without a key is a
# JSON 401; with the key, an unknown model is a JSON 404 (the key is accepted and the
# route is wired); with a model and rows, a 200 with one prediction per row.
set -euo pipefail
base="${1:?usage: infra/smoke.sh <base-url>}"
key="${SLUICE_SMOKE_KEY:?set SLUICE_SMOKE_KEY to a scoring key}"
wait="${SLUICE_SMOKE_WAIT:-300}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# status <name> <curl args…>: the HTTP status; the body goes to $work/<name>.json.
status() {
  local name="$1"
  shift
  curl -sS -o "$work/$name.json" -w '%{http_code}' "$@" || echo 000
}
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$work/$1.json" "$2"; }
fail() { echo "smoke: $*" >&2; exit 1; }

deadline=$((SECONDS + wait))
until [ "$(status health "$base/api/health")" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "/api/health did not answer 200 within ${wait}s"
  sleep 5
done
[ "$(field health 'd["storage"]["reachable"]')" = True ] || fail "storage is not reachable"
echo "smoke: health ok (version $(field health 'd["version"]'))"

row='{"data":[{"x":1}]}'
code=$(status nokey -X POST -H 'content-type: application/json' -d "$row" "$base/api/score/smoke-check")
[ "$code" = 401 ] || fail "scoring without a key answered $code, not 401"
[ "$(field nokey 'd["error"]["code"]')" = unauthorized ] || fail "the 401 is not Sluice's JSON error"
code=$(status unknown -X POST -H 'content-type: application/json' -H "x-functions-key: $key" -d "$row" \
  "$base/api/score/smoke-check-no-such-model")
[ "$code" = 404 ] || fail "scoring an unknown model with the key answered $code, not 404"
echo "smoke: scoring is guarded and routed"

if [ -n "${SLUICE_SMOKE_MODEL:-}" ]; then
  body="${SLUICE_SMOKE_BODY:?set SLUICE_SMOKE_BODY with SLUICE_SMOKE_MODEL}"
  code=$(status scored -X POST -H 'content-type: application/json' -H "x-functions-key: $key" \
    --data-binary "@$body" "$base/api/score/$SLUICE_SMOKE_MODEL")
  [ "$code" = 200 ] || fail "scoring $SLUICE_SMOKE_MODEL answered $code: $(cat "$work/scored.json")"
  rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$body")
  [ "$(field scored 'len(d["predictions"])')" = "$rows" ] || fail "expected $rows predictions"
  echo "smoke: $SLUICE_SMOKE_MODEL v$(field scored 'd["version"]') scored $rows rows"
fi
