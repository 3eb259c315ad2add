// Azure Machine Learning: the workspace, its own storage (kept apart from Sluice's data
// account), the GPU cluster Sluice submits command jobs to, and the `sluice` datastore
// pointing at Sluice's data container with identity-based access (no stored secret).

param prefix string
param location string
param tags object
param identityId string
param insightsId string
param keyVaultId string
param dataAccountName string
param dataContainer string
@description('VM size of the training cluster.')
param gpuVmSize string
@description('Most nodes the training cluster scales out to (it scales to zero when idle).')
param gpuMaxNodes int
@description('Idle time before a node is released, ISO 8601.')
param gpuIdleBeforeScaleDown string

resource mlStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Azure ML reaches its workspace storage over public endpoints unless the workspace is in a managed VNet
  // checkov:skip=CKV_AZURE_43: the name is take(prefix + uniqueString, 24) in lower case, which the rules allow; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_206: workspace artefacts (logs, snapshots) are reproducible; Sluice's own data lives in the data account
  name: take(toLower('${prefix}ml${uniqueString(resourceGroup().id)}'), 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' = {
  // checkov:skip=CKV_AZURE_243: private endpoints need a VNet, left to the network team (jobs reach storage with the identity)
  name: '${prefix}-ml'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    friendlyName: '${prefix} training'
    primaryUserAssignedIdentity: identityId
    storageAccount: mlStorage.id
    keyVault: keyVaultId
    applicationInsights: insightsId
    // Datastores reach storage with identities, since no account here has shared keys.
    systemDatastoresAuthMode: 'identity'
    publicNetworkAccess: 'Enabled'
  }
}

resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-10-01' = {
  parent: workspace
  name: 'gpu-cluster'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    properties: {
      vmSize: gpuVmSize
      vmPriority: 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: gpuMaxNodes
        nodeIdleTimeBeforeScaleDown: gpuIdleBeforeScaleDown
      }
    }
  }
}

resource datastore 'Microsoft.MachineLearningServices/workspaces/datastores@2024-10-01' = {
  parent: workspace
  name: 'sluice'
  properties: {
    datastoreType: 'AzureBlob'
    accountName: dataAccountName
    containerName: dataContainer
    endpoint: environment().suffixes.storage
    protocol: 'https'
    credentials: { credentialsType: 'None' }
    serviceDataAccessAuthIdentity: 'WorkspaceUserAssignedIdentity'
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output storageName string = mlStorage.name
output computeName string = cluster.name
output datastoreName string = datastore.name
