// Event Grid: Storage BlobCreated under landing/ → DatasetIngest; Azure ML
// ModelRegistered → RegistryEvents, RunStatusChanged and DatasetDriftDetected →
// MlJobEvents. Each subscription retries, then dead-letters (with the identity) to a container instead of
// dropping the event. A subscription to a function can only be created once the
// function exists, so the subscriptions wait for `deploySubscriptions` (second pass,
// after the app is published).

param prefix string
param location string
param tags object
param identityId string
param deploySubscriptions bool
param functionAppId string
param dataAccountId string
param dataContainer string
param deadLetterContainer string
param mlWorkspaceId string

var deadLetter = {
  identity: { type: 'UserAssigned', userAssignedIdentity: identityId }
  deadLetterDestination: {
    endpointType: 'StorageBlob'
    properties: { resourceId: dataAccountId, blobContainerName: deadLetterContainer }
  }
}
var retryPolicy = { maxDeliveryAttempts: 10, eventTimeToLiveInMinutes: 1440 }

resource storageTopic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = {
  name: '${prefix}-storage-events'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    source: dataAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource landing 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (deploySubscriptions) {
  parent: storageTopic
  name: 'landing-to-dataset-ingest'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/DatasetIngest'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${dataContainer}/blobs/landing/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetter
  }
}

resource mlTopic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = {
  name: '${prefix}-ml-events'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    source: mlWorkspaceId
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

resource modelRegistered 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (deploySubscriptions) {
  parent: mlTopic
  name: 'model-registered-to-registry-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/RegistryEvents'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.MachineLearningServices.ModelRegistered']
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetter
  }
}

resource jobStatus 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = if (deploySubscriptions) {
  parent: mlTopic
  name: 'run-status-to-ml-job-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/MlJobEvents'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.MachineLearningServices.RunStatusChanged'
        'Microsoft.MachineLearningServices.DatasetDriftDetected'
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetter
  }
}
