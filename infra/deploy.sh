#!/usr/bin/env bash
# Deploys one environment: usage infra/deploy.sh <resource-group> <parameters.json> <package.zip>.
# Needs an `az` session (the pipelines sign in with OIDC federation or a service
# connection) whose identity may deploy to the group and read the scoring key secret.
#
# 1. infrastructure, without the Event Grid subscriptions;
# 2. the app package;
# 3. infrastructure again, with the subscriptions (they need the published functions);
# 4. the smoke test, with the first scoring key from Key Vault (masked in logs).
set -euo pipefail
cd "$(dirname "$0")/.."
rg="${1:?resource group}"
params="${2:?parameters file}"
package="${3:?package zip}"

deploy() {
  az deployment group create --resource-group "$rg" --name sluice \
    --template-file infra/main.bicep --parameters "@$params" \
    --parameters deployEventSubscriptions="$1" --query properties.outputs --output json
}
output() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["value"])' "$1" <<<"$outputs"; }

outputs=$(deploy false)
app=$(output functionAppName)
az functionapp deployment source config-zip --resource-group "$rg" --name "$app" --src "$package"
outputs=$(deploy true)

key=$(az keyvault secret show --vault-name "$(output keyVaultName)" --name sluice-scoring-keys \
  --query value --output tsv | cut -d, -f1)
# Never print the key: GitHub masks it from here on; Azure Pipelines via a secret variable.
if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::add-mask::$key"; fi
if [ -n "${TF_BUILD:-}" ]; then echo "##vso[task.setvariable variable=smokeKey;issecret=true]$key"; fi
SLUICE_SMOKE_KEY="$key" infra/smoke.sh "https://$(output functionAppHost)"
