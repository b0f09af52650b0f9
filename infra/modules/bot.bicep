metadata name = 'Herald Azure Bot'
metadata description = 'Azure Bot registration (single-tenant or user-assigned managed identity) pointing at the Function App, with the Microsoft Teams channel on. There is no AVM module for this resource.'

@description('Required. Bot handle: 2-64 letters, digits, hyphens, underscores and periods, globally unique.')
@minLength(2)
@maxLength(64)
param name string

@description('Optional. Where the bot registration keeps its data.')
@allowed([
  'global'
  'westeurope'
  'centralindia'
])
param location string = 'global'

@description('Optional. Tags applied to the bot.')
param tags object = {}

@description('Optional. Display name of the bot.')
@minLength(1)
@maxLength(42)
param displayName string = 'Herald'

@description('Optional. Pricing tier. Teams is a standard channel: F0 has no message limit there.')
@allowed([
  'F0'
  'S1'
])
param skuName string = 'F0'

@description('Required. HTTPS endpoint Teams posts activities to: https://<function host>/api/messages.')
param messagingEndpoint string

@description('Required. How the bot authenticates. New multi-tenant bots can no longer be created.')
@allowed([
  'UserAssignedMSI'
  'SingleTenant'
])
param appType string

@description('Required. Microsoft App id: the managed identity client id (UserAssignedMSI) or the app registration client id (SingleTenant).')
@minLength(36)
@maxLength(36)
param appId string

@description('Required. Entra tenant of the identity or app registration.')
@minLength(36)
@maxLength(36)
param tenantId string

@description('Conditional. Resource id of the user-assigned managed identity. Required when appType is UserAssignedMSI.')
param msiResourceId string = ''

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: name
  location: location
  tags: tags
  kind: 'azurebot'
  sku: {
    name: skuName
  }
  properties: union(
    {
      displayName: displayName
      endpoint: messagingEndpoint
      msaAppId: appId
      msaAppType: appType
      msaAppTenantId: tenantId
      isStreamingSupported: false
      schemaTransformationVersion: '1.3'
      publicNetworkAccess: 'Enabled'
    },
    appType == 'UserAssignedMSI' ? { msaAppMSIResourceId: msiResourceId } : {}
  )
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: location
  tags: tags
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      enableCalling: false
      acceptedTerms: true
    }
  }
}

@description('Name (handle) of the bot resource.')
output name string = bot.name

@description('Resource id of the bot resource.')
output resourceId string = bot.id

@description('Microsoft App id of the bot: the botId of the Teams app manifest.')
output appId string = bot.properties.msaAppId

@description('Name of the Teams channel resource.')
output teamsChannelName string = teamsChannel.name
