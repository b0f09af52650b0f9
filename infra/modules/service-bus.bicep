metadata name = 'Herald Service Bus'
metadata description = 'Service Bus namespace (SAS disabled: Entra ID only) with the intake queue LOB apps send notification requests to and Herald\'s internal, session-enabled work queue.'

import { roleAssignmentType } from 'types.bicep'

@description('Required. Name of the namespace: 6-50 letters, digits and hyphens, globally unique.')
@minLength(6)
@maxLength(50)
param name string

@description('Required. Azure region of the namespace.')
param location string

@description('Optional. Tags applied to the namespace.')
param tags object = {}

@description('Optional. Namespace tier. Basic has no scheduled messages or duplicate detection, which Herald needs.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Optional. Messaging units when the tier is Premium.')
@allowed([
  1
  2
  4
  8
  16
])
param premiumMessagingUnits int = 1

@description('Required. Name of the intake queue LOB apps send notification requests to.')
@minLength(1)
@maxLength(260)
param notificationsQueueName string

@description('Required. Name of Herald\'s internal work queue: session-enabled (one session per tenant), only Herald\'s identity sends to it.')
@minLength(1)
@maxLength(260)
param workQueueName string

@description('Required. Deliveries of one message before the broker dead-letters it (both queues).')
@minValue(1)
@maxValue(2000)
param maxDeliveryCount int

@description('Optional. Peek-lock duration of both queues (ISO 8601, at most PT5M); on the work queue it is also the session lock.')
param lockDuration string = 'PT1M'

@description('Optional. Window in which a message id seen before is dropped as a duplicate, on both queues (ISO 8601, 20 seconds to 7 days).')
param duplicateDetectionHistoryTimeWindow string = 'PT10M'

@description('Optional. Time to live of a message before it expires to the dead-letter queue (ISO 8601).')
param defaultMessageTimeToLive string = 'P14D'

@description('Optional. Role assignments on the intake queue (not the namespace: least privilege).')
param notificationsQueueRoleAssignments roleAssignmentType[] = []

@description('Optional. Role assignments on the work queue (not the namespace: least privilege).')
param workQueueRoleAssignments roleAssignmentType[] = []

resource namespace 'Microsoft.ServiceBus/namespaces@2026-01-01' = {
  name: name
  location: location
  tags: tags
  sku: union(
    {
      name: skuName
      tier: skuName
    },
    skuName == 'Premium' ? { capacity: premiumMessagingUnits } : {}
  )
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// Sessions and duplicate detection cannot be changed once a queue exists.

// Intake: a LOB app that re-sends a request with the same id (messageId) is deduplicated.
resource notificationsQueue 'Microsoft.ServiceBus/namespaces/queues@2026-01-01' = {
  parent: namespace
  name: notificationsQueueName
  properties: {
    requiresSession: false
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: defaultMessageTimeToLive
    enableBatchedOperations: true
  }
}

// Internal work: the session id is the tenant, so one instance at a time paces a tenant's Teams
// calls; deterministic message ids collapse duplicate work items.
resource workQueue 'Microsoft.ServiceBus/namespaces/queues@2026-01-01' = {
  parent: namespace
  name: workQueueName
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: defaultMessageTimeToLive
    enableBatchedOperations: true
  }
}

resource notificationsQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in notificationsQueueRoleAssignments: {
    name: guid(notificationsQueue.id, assignment.principalId, assignment.roleDefinitionId)
    scope: notificationsQueue
    properties: {
      principalId: assignment.principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
      principalType: assignment.?principalType ?? 'ServicePrincipal'
      description: assignment.?description ?? ''
    }
  }
]

resource workQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in workQueueRoleAssignments: {
    name: guid(workQueue.id, assignment.principalId, assignment.roleDefinitionId)
    scope: workQueue
    properties: {
      principalId: assignment.principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
      principalType: assignment.?principalType ?? 'ServicePrincipal'
      description: assignment.?description ?? ''
    }
  }
]

@description('Name of the namespace.')
output namespaceName string = namespace.name

@description('Resource id of the namespace.')
output namespaceResourceId string = namespace.id

// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (other clouds differ).
@description('Fully qualified namespace, for example <name>.servicebus.windows.net.')
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]

@description('Name of the intake queue.')
output notificationsQueueName string = notificationsQueue.name

@description('Resource id of the intake queue.')
output notificationsQueueResourceId string = notificationsQueue.id

@description('Name of the work queue.')
output workQueueName string = workQueue.name

@description('Resource id of the work queue.')
output workQueueResourceId string = workQueue.id
