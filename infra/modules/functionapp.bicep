// The Function App running the `sluice` custom handler: Flex Consumption by default
// (scales to zero, per-instance concurrency), or Elastic Premium (always-warm
// instances, health checks). Every connection is identity-based: no setting holds a
// key. The admin and scoring keys come from Key Vault references.
//
// App settings are named exactly as Sluice reads them (README "Configuration"); a test
// checks this file, the README table and local.settings.sample against the binary.

param prefix string
param location string
param tags object
@allowed(['FlexConsumption', 'Premium'])
param hosting string
@description('Most instances Flex Consumption scales out to.')
param maximumInstanceCount int
param identityId string
param identityClientId string
param hostStorageName string
param deploymentContainerUrl string
param dataBlobEndpoint string
param dataContainer string
param dataAccountName string
param serviceBusNamespace string
param insightsConnectionString string
param keyVaultName string
param mlWorkspaceName string
param logFilter string
@allowed(['azureml', 'databricks'])
param compute string
@allowed(['off', 'azureml-spark', 'databricks'])
param delegate string
param delegateAboveBytes int
@description('The Databricks workspace URL, when one is referenced.')
param databricksHost string
@description('Webhooks for lifecycle events: {name, url, secretName (a Key Vault secret), models?, events?}.')
param webhooks array

var flex = hosting == 'FlexConsumption'
var identitySettings = [
  { name: 'AzureWebJobsStorage__accountName', value: hostStorageName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  { name: 'SluiceStorage__blobServiceUri', value: dataBlobEndpoint }
  { name: 'SluiceStorage__credential', value: 'managedidentity' }
  { name: 'SluiceStorage__clientId', value: identityClientId }
  { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: serviceBusNamespace }
  { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
  { name: 'ServiceBusConnection__clientId', value: identityClientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
]
var sluiceSettings = [
  { name: 'SLUICE_STORAGE__KIND', value: 'azure' }
  { name: 'SLUICE_STORAGE__ACCOUNT_URL', value: dataBlobEndpoint }
  { name: 'SLUICE_STORAGE__CONTAINER', value: dataContainer }
  { name: 'SLUICE_STORAGE__CLIENT_ID', value: identityClientId }
  { name: 'SLUICE_ADMIN_KEYS', value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=sluice-admin-keys)' }
  { name: 'SLUICE_SCORING_KEYS', value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=sluice-scoring-keys)' }
  { name: 'SLUICE_COMPUTE', value: compute }
  { name: 'SLUICE_AZUREML__SUBSCRIPTION_ID', value: subscription().subscriptionId }
  { name: 'SLUICE_AZUREML__RESOURCE_GROUP', value: resourceGroup().name }
  { name: 'SLUICE_AZUREML__WORKSPACE', value: mlWorkspaceName }
  { name: 'SLUICE_AZUREML__DATASTORE', value: 'sluice' }
  { name: 'SLUICE_AZUREML__CLIENT_ID', value: identityClientId }
  // Serverless Spark jobs run as the workspace's identity (this one), which already
  // reads and writes the data container; Databricks is reached with Entra tokens.
  { name: 'SLUICE_DELEGATE', value: delegate }
  { name: 'SLUICE_DELEGATE_ABOVE_BYTES', value: string(delegateAboveBytes) }
  { name: 'SLUICE_LOG_FORMAT', value: 'json' }
  { name: 'RUST_LOG', value: logFilter }
  // Event Grid (DatasetIngest) is the production path; the blob trigger is for
  // small-file setups without Event Grid. Both on would only ingest twice, idempotently.
  { name: 'AzureWebJobs.DatasetIngestBlob.Disabled', value: 'true' }
]
// Only with a Databricks workspace: its URL and the data container as its clusters name
// it (through the workspace's access connector).
var databricksSettings = empty(databricksHost) ? [] : [
  { name: 'SLUICE_DATABRICKS__HOST', value: databricksHost }
  { name: 'SLUICE_DATABRICKS__STORAGE_ROOT', value: 'abfss://${dataContainer}@${dataAccountName}.dfs.${environment().suffixes.storage}/' }
  { name: 'SLUICE_DATABRICKS__CLIENT_ID', value: identityClientId }
]
// Each webhook's settings (README "Notifications"); its secret is a Key Vault reference,
// so no setting holds it.
var webhookNames = [for w in webhooks: replace(toUpper(w.name), '-', '_')]
var webhookUrls = [for (w, i) in webhooks: { name: 'SLUICE_WEBHOOK__${webhookNames[i]}__URL', value: w.url }]
var webhookSecrets = [for (w, i) in webhooks: {
  name: 'SLUICE_WEBHOOK__${webhookNames[i]}__SECRET'
  value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${w.secretName})'
}]
var webhookModels = [for (w, i) in webhooks: { name: 'SLUICE_WEBHOOK__${webhookNames[i]}__MODELS', value: contains(w, 'models') ? w.models : '' }]
var webhookEvents = [for (w, i) in webhooks: { name: 'SLUICE_WEBHOOK__${webhookNames[i]}__EVENTS', value: contains(w, 'events') ? w.events : '' }]
var webhookSettings = concat(webhookUrls, webhookSecrets, webhookModels, webhookEvents)
// Flex Consumption sets the runtime in functionAppConfig and refuses these two.
var premiumSettings = [
  { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
  { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is a Premium option with three always-on instances; prod sets it through hosting = Premium where the region supports it
  name: '${prefix}-plan'
  location: location
  tags: tags
  kind: flex ? 'functionapp' : 'elastic'
  sku: flex ? { name: 'FC1', tier: 'FlexConsumption' } : { name: 'EP1', tier: 'ElasticPremium' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the scoring and HTTP API functions are public endpoints, guarded by Sluice's own keys
  // checkov:skip=CKV_AZURE_17: clients authenticate with Sluice's keys (constant-time compared); client certificates are not part of the contract
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales on demand; Premium keeps its minimum of one warm instance
  name: '${prefix}-func-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    functionAppConfig: flex ? {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: { name: 'custom', version: '1.0' }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
    } : null
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      healthCheckPath: flex ? null : '/api/health'
      appSettings: concat(identitySettings, sluiceSettings, databricksSettings, webhookSettings, flex ? [] : premiumSettings)
    }
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
