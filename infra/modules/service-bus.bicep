metadata name = 'Herald Service Bus'
metadata description = 'Service Bus namespace (SAS disabled: Entra ID only) and the queue LOB apps and Herald itself put notification work on.'

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

@description('Required. Name of the notifications queue.')
@minLength(1)
@maxLength(260)
param queueName string

@description('Required. Deliveries of one message before the broker dead-letters it.')
@minValue(1)
@maxValue(2000)
param maxDeliveryCount int

@description('Optional. Peek-lock duration (ISO 8601, at most PT5M).')
param lockDuration string = 'PT1M'

@description('Optional. Window in which a message id seen before is dropped as a duplicate (ISO 8601, 20 seconds to 7 days).')
param duplicateDetectionHistoryTimeWindow string = 'PT10M'

@description('Optional. Time to live of a message before it expires to the dead-letter queue (ISO 8601).')
param defaultMessageTimeToLive string = 'P14D'

@description('Optional. Role assignments on the queue (not the namespace: least privilege).')
param queueRoleAssignments roleAssignmentType[] = []

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
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

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    // A LOB app that re-sends a request with the same id (messageId) is deduplicated by the broker.
    // Cannot be changed once the queue exists.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: defaultMessageTimeToLive
    requiresSession: false
    enableBatchedOperations: true
  }
}

resource queueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in queueRoleAssignments: {
    name: guid(queue.id, assignment.principalId, assignment.roleDefinitionId)
    scope: queue
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

@description('Name of the queue.')
output queueName string = queue.name

@description('Resource id of the queue.')
output queueResourceId string = queue.id
