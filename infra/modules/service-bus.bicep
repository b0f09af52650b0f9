metadata name = 'Herald Service Bus'
metadata description = 'Service Bus namespace (SAS disabled: Entra ID only) with the intake queue LOB apps send notification requests to, Herald\'s internal, session-enabled work queue, and the topic of delivery events with one filtered subscription per LOB app.'

import { eventSubscriberType, roleAssignmentType } from 'types.bicep'

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

@description('Required. Name of the topic Herald publishes delivery events to.')
@minLength(1)
@maxLength(260)
param eventTopicName string

@description('Optional. Line-of-business apps that read delivery events: a subscription each, filtered to their tenants, Data Receiver on it for their principal.')
param eventSubscribers eventSubscriberType[] = []

@description('Optional. Role assignments on the events topic (not the namespace: least privilege).')
param eventTopicRoleAssignments roleAssignmentType[] = []

@description('Optional. Role assignments on the intake queue (not the namespace: least privilege).')
param notificationsQueueRoleAssignments roleAssignmentType[] = []

@description('Optional. Role assignments on the work queue (not the namespace: least privilege).')
param workQueueRoleAssignments roleAssignmentType[] = []

// Azure Service Bus Data Receiver (the same in every tenant).
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

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

// Events: one message per event, its id the event's, so a republish after a crash is dropped.
resource eventTopic 'Microsoft.ServiceBus/namespaces/topics@2026-01-01' = {
  parent: namespace
  name: eventTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    defaultMessageTimeToLive: defaultMessageTimeToLive
    enableBatchedOperations: true
  }
}

resource eventSubscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2026-01-01' = [
  for subscriber in eventSubscribers: {
    parent: eventTopic
    name: subscriber.name
    properties: {
      maxDeliveryCount: maxDeliveryCount
      lockDuration: lockDuration
      defaultMessageTimeToLive: defaultMessageTimeToLive
      deadLetteringOnMessageExpiration: true
      deadLetteringOnFilterEvaluationExceptions: true
      enableBatchedOperations: true
    }
  }
]

// The app's tenants only (https://learn.microsoft.com/azure/service-bus-messaging/topic-filters).
// Herald writes tenantId lower-cased; the filter names the ids lower-cased, each an SQL string
// literal with its quotes doubled, so no parameter value can widen the filter. Resource Manager
// drops a new subscription's catch-all $Default rule once another rule is added (a rule itself
// named $Default leaves the subscription with none): docs/events.md says how to check.
resource eventSubscriptionFilters 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2026-01-01' = [
  for (subscriber, i) in eventSubscribers: {
    parent: eventSubscriptions[i]
    name: 'tenants'
    properties: {
      filterType: 'SqlFilter'
      sqlFilter: {
        sqlExpression: 'tenantId IN (${join(map(subscriber.tenantIds, t => '\'${replace(toLower(t), '\'', '\'\'')}\''), ', ')})'
      }
    }
  }
]

// Data Receiver on the app's own subscription, once its filter is in place.
resource eventSubscriberRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (subscriber, i) in eventSubscribers: {
    name: guid(eventSubscriptions[i].id, subscriber.principalId, serviceBusDataReceiver)
    scope: eventSubscriptions[i]
    properties: {
      principalId: subscriber.principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
      principalType: subscriber.?principalType ?? 'ServicePrincipal'
      description: 'Line-of-business app reads its tenants\' delivery events'
    }
    dependsOn: [
      eventSubscriptionFilters[i]
    ]
  }
]

resource eventTopicRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in eventTopicRoleAssignments: {
    name: guid(eventTopic.id, assignment.principalId, assignment.roleDefinitionId)
    scope: eventTopic
    properties: {
      principalId: assignment.principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
      principalType: assignment.?principalType ?? 'ServicePrincipal'
      description: assignment.?description ?? ''
    }
  }
]

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

@description('Name of the events topic.')
output eventTopicName string = eventTopic.name

@description('Names of the event subscriptions, one per LOB app.')
output eventSubscriptionNames string[] = [for (subscriber, i) in eventSubscribers: eventSubscriptions[i].name]
