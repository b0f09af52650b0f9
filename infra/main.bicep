metadata name = 'Herald'
metadata description = 'Herald: proactive Microsoft Teams notifications from line-of-business apps. Function App (Flex Consumption) + Table Storage + Service Bus + Azure Bot + Application Insights, all connected with one user-assigned managed identity and no secrets.'

targetScope = 'resourceGroup'

import { eventSubscriberType } from 'modules/types.bicep'

// ---------------------------------------------------------------- naming and placement

@description('Optional. Short prefix for every resource name: lowercase letters and digits. A hash of the resource group is appended, so names are unique.')
@minLength(2)
@maxLength(9)
param namePrefix string = 'herald'

@description('Optional. Azure region of the regional resources (choose one that offers the Flex Consumption plan).')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

// ---------------------------------------------------------------- Function App

@description('Optional. Node.js major version of the Functions worker: 22, the release Herald is built, tested and benchmarked on.')
@allowed([
  '22'
])
param nodeVersion string = '22'

@description('Optional. Most instances the Function App scales out to: 40 to 1000 on Flex Consumption (GA). Herald paces per tenant through Service Bus sessions, so the instance count does not change the Teams call rate.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Optional. Memory of each Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------- storage

@description('Optional. Redundancy of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Optional. Prefix of every Herald table name (TableNamePrefix): letters and digits, starting with a letter.')
@minLength(1)
@maxLength(31)
param tableNamePrefix string = 'Herald'

// ---------------------------------------------------------------- Service Bus

@description('Optional. Service Bus tier. Basic lacks scheduled messages and duplicate detection.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSkuName string = 'Standard'

@description('Optional. Name of the notifications queue (NotificationsQueueName).')
@minLength(1)
@maxLength(260)
param notificationsQueueName string = 'notifications'

@description('Optional. Name of Herald\'s internal, session-enabled work queue (WorkQueueName). Only Herald\'s identity may send to it.')
@minLength(1)
@maxLength(260)
param workQueueName string = 'herald-work'

@description('Optional. Extra Teams service host names the bot may call, beside the public, GCC, GCC High and DoD hosts Herald knows (TeamsServiceHosts).')
param extraTeamsServiceHosts string[] = []

@description('Optional. Attempts at one message: both queues\' max delivery count and Herald\'s MaxDeliveryAttempts, kept equal so Herald records the final failure before the broker dead-letters.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int = 6

@description('Optional. Peek-lock (and session lock) duration of both queues (ISO 8601, at most PT5M).')
param lockDuration string = 'PT1M'

@description('Optional. Duplicate detection window of both queues (ISO 8601, 20 seconds to 7 days): a message id re-sent within it is dropped by the broker.')
param duplicateDetectionWindow string = 'PT10M'

@description('Optional. Time to live of a queued message before it is dead-lettered (ISO 8601).')
param messageTimeToLive string = 'P14D'

// ---------------------------------------------------------------- delivery events

@description('Optional. Record every transition as a CloudEvent and publish it to the events topic (and the webhook, if set) (NotificationEvents). Costs one Table request per notification.')
param notificationEvents bool = true

@description('Optional. Name of the Service Bus topic of delivery events (EventTopicName).')
@minLength(1)
@maxLength(260)
param eventTopicName string = 'notification-events'

@description('Optional. Line-of-business apps that read delivery events from the topic: a subscription each, filtered to the tenants it names, with Azure Service Bus Data Receiver on that subscription only for its principal.')
param eventSubscribers eventSubscriberType[] = []

@description('Optional. https URL every event is also POSTed to, signed per Standard Webhooks (EventWebhookUrl). Empty: no webhook.')
param eventWebhookUrl string = ''

@description('Conditional. The webhook\'s signing secret, whsec_ and 24-64 random bytes in base64, or a Key Vault reference (@Microsoft.KeyVault(SecretUri=...)) (EventWebhookSecret). Required when eventWebhookUrl is set.')
@secure()
param eventWebhookSecret string = ''

// ---------------------------------------------------------------- bot

@description('Optional. How the bot authenticates: UserAssignedMSI (no secret, the Function App identity) or SingleTenant (an app registration you create, with a client secret).')
@allowed([
  'UserAssignedMSI'
  'SingleTenant'
])
param botAppType string = 'UserAssignedMSI'

@description('Conditional. Client id of the Entra app registration. Required when botAppType is SingleTenant; ignored otherwise.')
param botAppId string = ''

@description('Conditional. Client secret of that app registration, or a Key Vault reference (@Microsoft.KeyVault(SecretUri=...)). Required when botAppType is SingleTenant; ignored otherwise.')
@secure()
param botAppPassword string = ''

@description('Optional. Entra tenant of the bot identity.')
@minLength(36)
@maxLength(36)
param botTenantId string = tenant().tenantId

@description('Optional. Display name of the bot.')
@minLength(1)
@maxLength(42)
param botDisplayName string = 'Herald'

@description('Optional. Pricing tier of the Azure Bot.')
@allowed([
  'F0'
  'S1'
])
param botSkuName string = 'F0'

@description('Optional. Data location of the Azure Bot registration.')
@allowed([
  'global'
  'westeurope'
  'centralindia'
])
param botLocation string = 'global'

@description('Optional. Tenants whose Teams users may use the bot (AllowedTenantIds). Empty means only the bot\'s own tenant.')
param allowedTenantIds string[] = []

// ---------------------------------------------------------------- Microsoft Graph (proactive install)

@description('Optional. Install the Teams app through Microsoft Graph for recipients Herald has never seen, then message them (ProactiveInstall). Needs the Graph application permissions granted by `npm run grant:graph`.')
param proactiveInstall bool = false

@description('Optional. Manifest id of the Teams app, the org app catalog\'s externalId (TeamsAppId). Empty: the id this deployment derives (output teamsAppId), which `npm run package:teams` puts in the manifest.')
param teamsAppId string = ''

@description('Optional. Id of the Teams app in the org app catalog (TeamsAppCatalogId). Set it to skip the catalog lookup and the AppCatalog.Read.All permission that lookup needs. Empty: looked up by teamsAppId.')
param teamsAppCatalogId string = ''

@description('Optional. Microsoft Graph endpoint, https origin only (GraphEndpoint). National clouds have their own: https://graph.microsoft.us (GCC High), https://dod-graph.microsoft.us (DoD), https://microsoftgraph.chinacloudapi.cn (21Vianet).')
param graphEndpoint string = 'https://graph.microsoft.com'

// ---------------------------------------------------------------- behaviour

@description('Optional. Seconds after which an unfinished welcome claim is taken over by another instance (WelcomeLeaseSeconds).')
@minValue(10)
@maxValue(3600)
param welcomeLeaseSeconds int = 120

@description('Optional. Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------- alerts

@description('Optional. E-mail address Herald\'s alerts are sent to. Empty: alerts show in the portal only.')
param alertEmailAddress string = ''

@description('Optional. Alert when more than this percentage of finished deliveries failed in 15 minutes.')
@minValue(1)
@maxValue(100)
param failedShareAlertPercent int = 5

@description('Optional. Alert when more than this percentage of Teams send calls were answered 429 in 15 minutes.')
@minValue(1)
@maxValue(100)
param throttledShareAlertPercent int = 2

// ---------------------------------------------------------------- LOB senders

@description('Optional. Object (principal) id of a line-of-business app identity allowed to send notification requests: it gets Azure Service Bus Data Sender on the intake queue, nothing else. Empty grants nothing.')
param lobSenderPrincipalId string = ''

@description('Optional. Kind of the LOB principal: a managed identity or app registration is ServicePrincipal.')
@allowed([
  'ServicePrincipal'
  'Group'
  'User'
])
param lobSenderPrincipalType string = 'ServicePrincipal'

// ---------------------------------------------------------------- names

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var cleanPrefix = toLower(replace(namePrefix, '-', ''))
var allTags = union({ workload: 'herald' }, tags)

// Logical table names; keep in step with TABLES in shared/store/table-factory.ts (a test checks).
var heraldTables = [
  'Users'
  'UserIndex'
  'Teams'
  'TeamMembers'
  'Welcomes'
  'Relays'
  'Requests'
  'Deliveries'
  'DeadLetters'
  'Unread'
  'Webhooks'
]

// Manifest id of the Teams app: stable for this resource group and prefix unless given.
var heraldTeamsAppId = empty(teamsAppId) ? guid(resourceGroup().id, namePrefix, 'herald-teams-app') : teamsAppId

// The bot's Microsoft App id: the managed identity itself, or the app registration.
var botMicrosoftAppId = botAppType == 'UserAssignedMSI' ? identity.outputs.clientId : botAppId

// Built-in role definition ids (the same in every tenant).
var builtInRoles = {
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// ---------------------------------------------------------------- resources

module identity 'modules/identity.bicep' = {
  name: take('${deployment().name}-identity', 64)
  params: {
    name: 'id-${namePrefix}-${resourceToken}'
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: take('${deployment().name}-monitoring', 64)
  params: {
    workspaceName: 'log-${namePrefix}-${resourceToken}'
    applicationInsightsName: 'appi-${namePrefix}-${resourceToken}'
    location: location
    tags: allTags
    retentionInDays: logRetentionInDays
    roleAssignments: [
      {
        principalId: identity.outputs.principalId
        roleDefinitionId: builtInRoles.monitoringMetricsPublisher
        description: 'Herald sends telemetry with its Entra identity'
      }
    ]
  }
}

module storage 'modules/storage.bicep' = {
  name: take('${deployment().name}-storage', 64)
  params: {
    name: take('st${cleanPrefix}${resourceToken}', 24)
    location: location
    tags: allTags
    skuName: storageSkuName
    tableNames: [for table in heraldTables: '${tableNamePrefix}${table}']
    deploymentContainerName: 'deploymentpackage'
    roleAssignments: [
      {
        principalId: identity.outputs.principalId
        roleDefinitionId: builtInRoles.storageTableDataContributor
        description: 'Herald state in Table Storage'
      }
      {
        principalId: identity.outputs.principalId
        roleDefinitionId: builtInRoles.storageBlobDataOwner
        description: 'Functions host storage and the deployment package'
      }
    ]
  }
}

// Herald's identity on each queue: Data Receiver for the triggers, Data Owner because the
// trigger's target-based scaling reads queue length through the management API (Manage right),
// Data Sender on the work queue only (the HTTP enqueue endpoint stores a request and queues a
// reference on the work queue). The LOB principal sends to the intake queue and nothing else.
var heraldOnEveryQueue = [
  {
    principalId: identity.outputs.principalId
    roleDefinitionId: builtInRoles.serviceBusDataReceiver
    description: 'Herald\'s Service Bus trigger receives from the queue'
  }
  {
    principalId: identity.outputs.principalId
    roleDefinitionId: builtInRoles.serviceBusDataOwner
    description: 'Target-based scaling of the trigger reads the queue length (Manage right)'
  }
]

module serviceBus 'modules/service-bus.bicep' = {
  name: take('${deployment().name}-service-bus', 64)
  params: {
    name: 'sb-${namePrefix}-${resourceToken}'
    location: location
    tags: allTags
    skuName: serviceBusSkuName
    notificationsQueueName: notificationsQueueName
    workQueueName: workQueueName
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: messageTimeToLive
    notificationsQueueRoleAssignments: concat(
      heraldOnEveryQueue,
      empty(lobSenderPrincipalId)
        ? []
        : [
            {
              principalId: lobSenderPrincipalId
              roleDefinitionId: builtInRoles.serviceBusDataSender
              principalType: lobSenderPrincipalType
              description: 'Line-of-business app sends notification requests'
            }
          ]
    )
    eventTopicName: eventTopicName
    eventSubscribers: eventSubscribers
    eventTopicRoleAssignments: [
      {
        principalId: identity.outputs.principalId
        roleDefinitionId: builtInRoles.serviceBusDataSender
        description: 'Herald publishes delivery events'
      }
    ]
    workQueueRoleAssignments: concat(heraldOnEveryQueue, [
      {
        principalId: identity.outputs.principalId
        roleDefinitionId: builtInRoles.serviceBusDataSender
        description: 'Herald queues, fans out and reschedules its own work items'
      }
    ])
  }
}

// Every setting Herald's code reads (shared/config.ts), except connection strings (local only),
// LocalQueueDirectory (npm start only), WEBSITE_SITE_NAME (set by the platform) and the secrets
// (MicrosoftAppPassword, EventWebhookSecret), which the Function App module sets when given.
var heraldSettings = {
  MicrosoftAppId: botMicrosoftAppId
  MicrosoftAppType: botAppType
  MicrosoftAppTenantId: botTenantId
  AllowedTenantIds: join(empty(allowedTenantIds) ? [botTenantId] : allowedTenantIds, ',')
  TableStorageConnection__tableServiceUri: storage.outputs.tableServiceUri
  TableStorageConnection__clientId: identity.outputs.clientId
  TableNamePrefix: tableNamePrefix
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identity.outputs.clientId
  NotificationsQueueName: notificationsQueueName
  WorkQueueName: workQueueName
  TeamsServiceHosts: join(extraTeamsServiceHosts, ',')
  MaxDeliveryAttempts: string(maxDeliveryCount)
  WelcomeLeaseSeconds: string(welcomeLeaseSeconds)
  ProactiveInstall: string(proactiveInstall)
  TeamsAppId: heraldTeamsAppId
  TeamsAppCatalogId: teamsAppCatalogId
  GraphEndpoint: graphEndpoint
  NotificationEvents: string(notificationEvents)
  EventTopicName: eventTopicName
  EventWebhookUrl: eventWebhookUrl
}

module functionApp 'modules/function-app.bicep' = {
  name: take('${deployment().name}-function-app', 64)
  params: {
    name: 'func-${namePrefix}-${resourceToken}'
    planName: 'plan-${namePrefix}-${resourceToken}'
    location: location
    tags: allTags
    identityResourceId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    nodeVersion: nodeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: heraldSettings
    microsoftAppPassword: botAppType == 'SingleTenant' ? botAppPassword : ''
    eventWebhookSecret: empty(eventWebhookUrl) ? '' : eventWebhookSecret
  }
}

module bot 'modules/bot.bicep' = {
  name: take('${deployment().name}-bot', 64)
  params: {
    name: 'bot-${namePrefix}-${resourceToken}'
    location: botLocation
    tags: allTags
    displayName: botDisplayName
    skuName: botSkuName
    messagingEndpoint: 'https://${functionApp.outputs.defaultHostName}/api/messages'
    appType: botAppType
    appId: botMicrosoftAppId
    tenantId: botTenantId
    msiResourceId: identity.outputs.resourceId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: take('${deployment().name}-alerts', 64)
  params: {
    namePrefix: '${namePrefix}-${resourceToken}'
    location: location
    tags: allTags
    applicationInsightsResourceId: monitoring.outputs.applicationInsightsResourceId
    serviceBusNamespaceResourceId: serviceBus.outputs.namespaceResourceId
    queueNames: [
      serviceBus.outputs.notificationsQueueName
      serviceBus.outputs.workQueueName
    ]
    alertEmailAddress: alertEmailAddress
    failedSharePercent: failedShareAlertPercent
    throttledSharePercent: throttledShareAlertPercent
  }
}

// ---------------------------------------------------------------- outputs (never a secret)

@description('Name of the Function App (deploy the code here).')
output functionAppName string = functionApp.outputs.name

@description('Host name of the Function App: the validDomains entry of the Teams app.')
output functionAppHostName string = functionApp.outputs.defaultHostName

@description('Base URL of the Function App.')
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'

@description('Bot messaging endpoint registered with the Azure Bot.')
output messagingEndpoint string = 'https://${functionApp.outputs.defaultHostName}/api/messages'

@description('Name of the notifications queue LOB apps send to.')
output notificationsQueueName string = serviceBus.outputs.notificationsQueueName

@description('Name of Herald\'s internal work queue (only Herald sends to it).')
output workQueueName string = serviceBus.outputs.workQueueName

@description('Name of the topic LOB apps read delivery events from (their subscriptions: eventSubscribers).')
output eventTopicName string = serviceBus.outputs.eventTopicName

@description('Fully qualified Service Bus namespace LOB apps connect to.')
output serviceBusFullyQualifiedNamespace string = serviceBus.outputs.fullyQualifiedNamespace

@description('Name of the Azure Bot resource.')
output botResourceName string = bot.outputs.name

@description('Microsoft App id of the bot: the botId of the Teams app manifest.')
output botAppId string = bot.outputs.appId

@description('Id of the Teams app (manifest id), stable for this resource group and prefix.')
output teamsAppId string = heraldTeamsAppId

@description('Client id of the managed identity Herald runs as.')
output managedIdentityClientId string = identity.outputs.clientId

@description('Object (principal) id of the managed identity Herald runs as.')
output managedIdentityPrincipalId string = identity.outputs.principalId

@description('Table service endpoint holding Herald state.')
output tableServiceUri string = storage.outputs.tableServiceUri

@description('Name of the Application Insights component.')
output applicationInsightsName string = monitoring.outputs.applicationInsightsName

@description('Resource id of the operations workbook (Application Insights > Workbooks).')
output workbookResourceId string = alerts.outputs.workbookResourceId
