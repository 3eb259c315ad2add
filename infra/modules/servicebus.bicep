// Service Bus: `retrain-requests` (other systems ask for a retrain; RetrainQueue) and the
// `sluice-events` topic: every lifecycle event, published by Notify. Its `retrain`
// subscription feeds DatasetEvents (which acts on dataset.versioned); `notifications` is
// for other systems to read (or copy: add a subscription per consumer). Local (SAS)
// auth is off: the Functions host connects with the managed identity.
//
// Sluice answers a message that can never succeed with 2xx and keeps it under
// rejected/ with its reason, so the only redeliveries are transient failures; after
// `maxDeliveryCount` of those the message is dead-lettered, not dropped.

param prefix string
param location string
param tags object
param maxDeliveryCount int

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${prefix}-bus-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource retrainRequests 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: 'retrain-requests'
  properties: {
    maxDeliveryCount: maxDeliveryCount
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    lockDuration: 'PT1M'
  }
}

resource events 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: 'sluice-events'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}

resource retrain 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: events
  name: 'retrain'
  properties: {
    maxDeliveryCount: maxDeliveryCount
    deadLetteringOnMessageExpiration: true
    lockDuration: 'PT1M'
  }
}

// Kept two weeks for whoever reads it; nothing in Sluice depends on it being read.
resource notifications 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: events
  name: 'notifications'
  properties: {
    maxDeliveryCount: maxDeliveryCount
    defaultMessageTimeToLive: 'P14D'
    deadLetteringOnMessageExpiration: false
    lockDuration: 'PT1M'
  }
}

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
