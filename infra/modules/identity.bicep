metadata name = 'Herald identity'
metadata description = 'The user-assigned managed identity Herald runs as: Function App, Table Storage, Service Bus, Application Insights, and the bot registration (UserAssignedMSI).'

@description('Required. Name of the user-assigned managed identity.')
@minLength(3)
@maxLength(128)
param name string

@description('Required. Azure region of the identity.')
param location string

@description('Optional. Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id of the identity.')
output resourceId string = identity.id

@description('Name of the identity.')
output name string = identity.name

@description('Client (application) id of the identity: the bot app id when the bot is UserAssignedMSI.')
output clientId string = identity.properties.clientId

@description('Object (principal) id of the identity, used in role assignments.')
output principalId string = identity.properties.principalId

@description('Entra tenant the identity lives in.')
output tenantId string = identity.properties.tenantId
