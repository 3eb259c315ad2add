// Key Vault for Sluice's admin and scoring keys (RBAC authorisation, soft delete and
// purge protection). The secrets' values never appear in a template or a pipeline:
// an operator sets them once (see the README's deployment steps), and the Function App
// reads them through Key Vault references with its managed identity.

param prefix string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: public endpoint with Entra ID and RBAC only; private endpoints need a VNet, left to the network team
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109 (public network access stays on, RBAC guards it)
  name: take('${prefix}-kv-${uniqueString(resourceGroup().id)}', 24)
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output id string = vault.id
output name string = vault.name
