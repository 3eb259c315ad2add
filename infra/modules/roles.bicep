// Least privilege for Sluice's identity, each role on the one resource that needs it:
// - data account: Storage Blob Data Contributor (read, write, list; no role management);
// - host account: Blob Data Owner + Queue and Table Data Contributor, which the
//   Functions host needs for identity-based AzureWebJobsStorage;
// - Service Bus: Data Sender and Data Receiver (no Manage);
// - Azure ML workspace: AzureML Data Scientist (submit and cancel jobs, register models;
//   no workspace or compute management);
// - Key Vault: Key Vault Secrets User (read secrets; no writes);
// - Application Insights: Monitoring Metrics Publisher (telemetry with Entra ID).

param principalId string
param dataAccountName string
param hostAccountName string
param serviceBusName string
param mlWorkspaceName string
param mlStorageName string
param keyVaultName string
param insightsName string

var roles = {
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  azureMlDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource data 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataAccountName
}
resource host 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostAccountName
}
resource mlStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: mlStorageName
}
resource bus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusName
}
resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: mlWorkspaceName
}
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}
resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: insightsName
}

resource onData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(data.id, principalId, roles.blobDataContributor)
  scope: data
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
  }
}

// The workspace's identity (the same one) reads and writes its own storage.
resource onMlStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mlStorage.id, principalId, roles.blobDataContributor)
  scope: mlStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
  }
}

resource onHost 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.blobDataOwner, roles.queueDataContributor, roles.tableDataContributor]: {
  name: guid(host.id, principalId, role)
  scope: host
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource onBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.serviceBusDataSender, roles.serviceBusDataReceiver]: {
  name: guid(bus.id, principalId, role)
  scope: bus
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource onWorkspace 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roles.azureMlDataScientist)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMlDataScientist)
  }
}

resource onVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource onInsights 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, principalId, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
