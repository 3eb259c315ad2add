// Two storage accounts, both without shared keys (identity-based access only):
// - data: Sluice's object store. One container, `sluice`, holds every prefix Sluice
//   uses (landing/, datasets/, quarantine/, registry/, runs/, predictions/, audit/):
//   Sluice's ObjectStore is one key space, so one container keeps keys, ETags and
//   Event Grid subject filters (…/containers/sluice/blobs/landing/) the same locally and
//   on Azure. A second container keeps Event Grid's dead-lettered events.
// - host: the Functions host's own storage (AzureWebJobsStorage: leases, timers,
//   blob-trigger receipts) and, on Flex Consumption, the deployment package container.

param prefix string
param location string
param tags object
@description('Replication of the data account, e.g. Standard_LRS (dev), Standard_ZRS or Standard_GZRS (prod).')
param dataSku string

var suffix = uniqueString(resourceGroup().id)

resource data 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: reached over public endpoints with Entra ID only (shared keys are off); private endpoints need a VNet, left to the network team
  // checkov:skip=CKV_AZURE_43: the name is take(prefix + uniqueString, 24) in lower case, which the rules allow; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_206: replication is the dataSku parameter (Standard_ZRS in parameters/prod.json), which checkov cannot evaluate
  name: take(toLower('${prefix}data${suffix}'), 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: dataSku }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource dataBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: data
  name: 'default'
  properties: {
    // Versions are immutable by design; soft delete and versioning guard against
    // operator mistakes outside Sluice.
    deleteRetentionPolicy: { enabled: true, days: 30 }
    containerDeleteRetentionPolicy: { enabled: true, days: 30 }
    isVersioningEnabled: true
  }
}

resource sluiceContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: dataBlobs
  name: 'sluice'
  properties: { publicAccess: 'None' }
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: dataBlobs
  name: 'eventgrid-deadletter'
  properties: { publicAccess: 'None' }
}

resource host 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Functions host reaches it over public endpoints with Entra ID only (shared keys are off); private endpoints need a VNet
  // checkov:skip=CKV_AZURE_43: the name is take(prefix + uniqueString, 24) in lower case, which the rules allow; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_206: the host's own state (leases, timers, receipts) is rebuilt by the host; locally redundant is enough
  name: take(toLower('${prefix}host${suffix}'), 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: host
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobs
  name: 'deployments'
  properties: { publicAccess: 'None' }
}

output dataId string = data.id
output dataName string = data.name
output dataBlobEndpoint string = data.properties.primaryEndpoints.blob
output container string = sluiceContainer.name
output deadLetterContainer string = deadLetters.name
output hostId string = host.id
output hostName string = host.name
output deploymentContainerUrl string = '${host.properties.primaryEndpoints.blob}${deployments.name}'
