metadata name = 'Herald Function App'
metadata description = 'Flex Consumption plan and the Linux Function App (Node.js) that runs Herald as a user-assigned managed identity, with its app settings.'

@description('Required. Name of the Function App: its host name is <name>.azurewebsites.net.')
@minLength(2)
@maxLength(60)
param name string

@description('Required. Name of the Flex Consumption plan.')
@minLength(1)
@maxLength(60)
param planName string

@description('Required. Azure region of the plan and the app (a region that offers Flex Consumption).')
param location string

@description('Optional. Tags applied to the plan and the app.')
param tags object = {}

@description('Required. Resource id of the user-assigned managed identity the app runs as.')
param identityResourceId string

@description('Required. Client id of that identity (for AzureWebJobsStorage and Application Insights).')
param identityClientId string

@description('Required. Name of the storage account the Functions host uses (AzureWebJobsStorage).')
param storageAccountName string

@description('Required. URL of the blob container the deployment package is uploaded to.')
param deploymentContainerUrl string

// Not a credential (writing needs an Entra token), but kept out of deployment history anyway.
@description('Required. Application Insights connection string.')
@secure()
param applicationInsightsConnectionString string

@description('Optional. Node.js major version of the worker (22: what the app package is built for).')
@allowed([
  '22'
])
param nodeVersion string = '22'

@description('Optional. Most instances the app scales out to (Flex Consumption: 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Optional. Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Required. Herald app settings (names from shared/config.ts); host and telemetry settings are added here.')
param appSettings object

@description('Optional. Client secret of a SingleTenant bot registration, or a Key Vault reference to it. Leave empty for UserAssignedMSI.')
@secure()
param microsoftAppPassword string = ''

@description('Optional. The delivery-event webhook\'s signing secret (whsec_...), or a Key Vault reference to it. Leave empty when no webhook is set.')
@secure()
param eventWebhookSecret string = ''

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
  name: name
  location: location
  // azd finds the app to deploy service `api` to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityResourceId
    // Flex Consumption rejects legacy siteConfig properties (ftpsState among them) with BadRequest:
    // FTP is off through basicPublishingCredentialsPolicies below.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }
}

// Flex Consumption sets the runtime in functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not allowed as app settings there.
resource settings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(
    appSettings,
    {
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // A cap on the old generation keeps the worker's RSS under 150 MB under sustained load (uncapped,
      // V8 let it grow to ~170 MB of garbage); 8 MB semi-spaces cost about a sixth less CPU than 4 on the
      // bench machine for ~10 MB more RSS, and 16 passed 150 MB: docs/benchmarks.md.
      languageWorkers__node__arguments: '--max-semi-space-size=8 --max-old-space-size=256'
    },
    empty(microsoftAppPassword) ? {} : { MicrosoftAppPassword: microsoftAppPassword },
    empty(eventWebhookSecret) ? {} : { EventWebhookSecret: eventWebhookSecret }
  )
}

resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Name of the Function App.')
output name string = functionApp.name

@description('Resource id of the Function App.')
output resourceId string = functionApp.id

@description('Default host name of the Function App, for example <name>.azurewebsites.net.')
output defaultHostName string = functionApp.properties.defaultHostName
