// Sluice on Azure, one resource group per environment (parameters/dev.json,
// parameters/prod.json). Modules by concern:
//   identity → monitoring, storage, servicebus, keyvault, ml, databricks (optional) →
//   functionapp → roles, eventgrid.
//
// Deploy in two passes (the pipelines in .github/workflows and azure-pipelines.yml do
// this): first with deployEventSubscriptions=false, then publish the app package
// (`sluice package`), then again with deployEventSubscriptions=true, because an Event
// Grid subscription to a function can only be created once the function exists.

targetScope = 'resourceGroup'

@description('Name prefix for every resource (letters and digits, lower case).')
@minLength(3)
@maxLength(10)
param prefix string = 'sluice'
param location string = resourceGroup().location
@allowed(['dev', 'prod'])
param environmentName string = 'dev'
@allowed(['FlexConsumption', 'Premium'])
param hosting string = 'FlexConsumption'
@description('Most instances Flex Consumption scales out to.')
param maximumInstanceCount int = 40
@description('Replication of the data account.')
param dataSku string = 'Standard_LRS'
@description('VM size of the GPU training cluster.')
param gpuVmSize string = 'Standard_NC4as_T4_v3'
@minValue(1)
param gpuMaxNodes int = 2
param gpuIdleBeforeScaleDown string = 'PT10M'
@description('Deliveries of a Service Bus message before it is dead-lettered.')
@minValue(1)
param maxDeliveryCount int = 10
param logRetentionDays int = 30
param logFilter string = 'warn,sluice=info,sluice_shared=info'
@description('Create the Event Grid subscriptions (second pass, once the functions are published).')
param deployEventSubscriptions bool = false
@description('Where models train: Azure ML command jobs, or Databricks one-time runs (needs databricksWorkspaceName).')
@allowed(['azureml', 'databricks'])
param compute string = 'azureml'
@description('Where uploads too large for one instance are scanned (README "Uploads too large for one instance").')
@allowed(['off', 'azureml-spark', 'databricks'])
param delegate string = 'azureml-spark'
@description('Uploads larger than this many bytes are delegated.')
param delegateAboveBytes int = 17179869184
@description('An existing Azure Databricks workspace in this resource group, for delegate = databricks.')
param databricksWorkspaceName string = ''
@description('The principal id of that workspace\'s Unity Catalog access connector, given access to the data account.')
param databricksAccessConnectorPrincipalId string = ''
@description('Give Sluice\'s identity Contributor on the Databricks workspace (it then signs in as a workspace admin).')
param databricksGrantAdmin bool = true
@description('Webhooks told every lifecycle event: [{name, url, secretName (in the Key Vault), models?: "a,b", events?: "model.,run.failed"}].')
param webhooks array = []

var tags = {
  application: 'sluice'
  environment: environmentName
}
var base = '${prefix}-${environmentName}'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { name: '${base}-id', location: location, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { prefix: base, location: location, tags: tags, retentionDays: logRetentionDays }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: { prefix: prefix, location: location, tags: tags, dataSku: dataSku }
}

module bus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: { prefix: base, location: location, tags: tags, maxDeliveryCount: maxDeliveryCount }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: { prefix: prefix, location: location, tags: tags }
}

module ml 'modules/ml.bicep' = {
  name: 'ml'
  params: {
    prefix: base
    location: location
    tags: tags
    identityId: identity.outputs.id
    insightsId: monitoring.outputs.insightsId
    keyVaultId: vault.outputs.id
    dataAccountName: storage.outputs.dataName
    dataContainer: storage.outputs.container
    gpuVmSize: gpuVmSize
    gpuMaxNodes: gpuMaxNodes
    gpuIdleBeforeScaleDown: gpuIdleBeforeScaleDown
  }
}

module databricks 'modules/databricks.bicep' = if (!empty(databricksWorkspaceName)) {
  name: 'databricks'
  params: {
    workspaceName: databricksWorkspaceName
    principalId: identity.outputs.principalId
    accessConnectorPrincipalId: databricksAccessConnectorPrincipalId
    dataAccountName: storage.outputs.dataName
    grantAdmin: databricksGrantAdmin
  }
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    prefix: base
    location: location
    tags: tags
    hosting: hosting
    maximumInstanceCount: maximumInstanceCount
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageName: storage.outputs.hostName
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    dataBlobEndpoint: storage.outputs.dataBlobEndpoint
    dataContainer: storage.outputs.container
    dataAccountName: storage.outputs.dataName
    serviceBusNamespace: bus.outputs.fullyQualifiedNamespace
    insightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: vault.outputs.name
    mlWorkspaceName: ml.outputs.workspaceName
    logFilter: logFilter
    compute: compute
    delegate: delegate
    delegateAboveBytes: delegateAboveBytes
    databricksHost: empty(databricksWorkspaceName) ? '' : databricks!.outputs.host
    webhooks: webhooks
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    dataAccountName: storage.outputs.dataName
    hostAccountName: storage.outputs.hostName
    serviceBusName: bus.outputs.name
    mlWorkspaceName: ml.outputs.workspaceName
    mlStorageName: ml.outputs.storageName
    keyVaultName: vault.outputs.name
    insightsName: monitoring.outputs.insightsName
  }
}

module events 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    prefix: base
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploySubscriptions: deployEventSubscriptions
    functionAppId: app.outputs.id
    dataAccountId: storage.outputs.dataId
    dataContainer: storage.outputs.container
    deadLetterContainer: storage.outputs.deadLetterContainer
    mlWorkspaceId: ml.outputs.workspaceId
  }
}

output functionAppName string = app.outputs.name
output functionAppHost string = app.outputs.defaultHostName
output dataAccountName string = storage.outputs.dataName
output keyVaultName string = vault.outputs.name
output mlWorkspaceName string = ml.outputs.workspaceName
