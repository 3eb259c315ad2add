// The one identity Sluice runs as: the Function App, the Event Grid dead-letter writer
// and the Azure ML compute cluster all use it, so its role assignments (roles.bicep)
// are the whole of Sluice's access.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
