// Sluice on Azure: a Linux Function App running the `sluice` custom handler, with
// identity-based connections only (no keys in settings), Event Grid delivering
// BlobCreated events for landing/ to DatasetIngest, and a Service Bus topic for
// dataset events.
//
// Deploy in two steps: first with deployEventSubscription=false, then publish the app
// (infra/package.sh builds the zip), then again with deployEventSubscription=true:
// an Event Grid subscription to a function can only be created once the function exists.

@description('Name prefix for every resource.')
param prefix string = 'sluice'
param location string = resourceGroup().location
@description('Create the Event Grid subscription (needs the published DatasetIngest function).')
param deployEventSubscription bool = false

var container = 'sluice'
var suffix = uniqueString(resourceGroup().id)

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id'
  location: location
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('${prefix}${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Versions are immutable by design; soft delete guards against operator mistakes.
    deleteRetentionPolicy: { enabled: true, days: 30 }
  }
}

resource dataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: container
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'eventgrid-deadletter'
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${prefix}-${suffix}'
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: { disableLocalAuth: true }
}

resource datasetEvents 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: serviceBus
  name: 'sluice-events'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}

// DatasetEvents reads dataset.versioned here to retrain subscribed models.
resource retrainSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: datasetEvents
  name: 'retrain'
  properties: {
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// RetrainQueue: requests from other systems. Invalid ones are set aside by Sluice (2xx);
// transient failures are retried and dead-lettered after 10 deliveries.
resource retrainRequests 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: serviceBus
  name: 'retrain-requests'
  properties: {
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${prefix}-plan'
  location: location
  kind: 'elastic'
  sku: { name: 'EP1', tier: 'ElasticPremium' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2023-12-01' = {
  name: '${prefix}-${suffix}'
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      linuxFxVersion: ''
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'SluiceStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'SluiceStorage__credential', value: 'managedidentity' }
        { name: 'SluiceStorage__clientId', value: identity.properties.clientId }
        { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${serviceBus.name}.servicebus.windows.net' }
        { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
        { name: 'ServiceBusConnection__clientId', value: identity.properties.clientId }
        { name: 'SLUICE_STORAGE__KIND', value: 'azure' }
        { name: 'SLUICE_STORAGE__ACCOUNT_URL', value: storage.properties.primaryEndpoints.blob }
        { name: 'SLUICE_STORAGE__CONTAINER', value: container }
        { name: 'SLUICE_STORAGE__CLIENT_ID', value: identity.properties.clientId }
        { name: 'SLUICE_LOG_FORMAT', value: 'json' }
        // Event Grid (DatasetIngest) is the production path; the blob trigger is for
        // small-file setups without Event Grid. Both on would only ingest twice, idempotently.
        { name: 'AzureWebJobs.DatasetIngestBlob.Disabled', value: 'true' }
      ]
    }
  }
}

// Built-in role definition ids.
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.blobDataOwner, roles.queueDataContributor]: {
  name: guid(storage.id, identity.id, role)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource busRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.serviceBusDataSender, roles.serviceBusDataReceiver]: {
  name: guid(serviceBus.id, identity.id, role)
  scope: serviceBus
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource systemTopic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = {
  name: '${prefix}-storage-events'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource landingSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (deployEventSubscription) {
  parent: systemTopic
  name: 'landing-to-dataset-ingest'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/DatasetIngest'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${container}/blobs/landing/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: { maxDeliveryAttempts: 10, eventTimeToLiveInMinutes: 1440 }
    // Events that never succeed are kept, with their reason, not dropped.
    deadLetterWithResourceIdentity: {
      identity: { type: 'UserAssigned', userAssignedIdentity: identity.id }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: storage.id, blobContainerName: deadLetters.name }
      }
    }
  }
}

output functionApp string = app.name
output storageAccount string = storage.name
output serviceBusNamespace string = serviceBus.name
