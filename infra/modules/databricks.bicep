// Optional: an existing Azure Databricks workspace as the engine for large uploads
// (SLUICE_DELEGATE=databricks). Sluice does not create the workspace; it is referenced.
// - Sluice's identity gets Contributor on the workspace resource, which makes it a
//   workspace admin on its first sign-in (Azure Databricks' rule), enough to submit
//   one-time runs on new job clusters. Where policy forbids that, set grantAdmin=false
//   and add the identity to the workspace as a service principal with cluster creation.
// - The clusters reach Sluice's data through the workspace's Unity Catalog access
//   connector: its identity gets Storage Blob Data Contributor on the data account.

param workspaceName string
param principalId string
param accessConnectorPrincipalId string
param dataAccountName string
param grantAdmin bool

var roles = {
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
}

resource workspace 'Microsoft.Databricks/workspaces@2024-05-01' existing = {
  name: workspaceName
}
resource data 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataAccountName
}

resource onWorkspace 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantAdmin) {
  name: guid(workspace.id, principalId, roles.contributor)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.contributor)
  }
}

resource connectorOnData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(accessConnectorPrincipalId)) {
  name: guid(data.id, accessConnectorPrincipalId, roles.blobDataContributor)
  scope: data
  properties: {
    principalId: accessConnectorPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
  }
}

output host string = 'https://${workspace.properties.workspaceUrl}'
