using 'main.bicep'

// Values for `az deployment group create --parameters infra/main.bicepparam` and for `azd up`.
// Environment variables (azd sets AZURE_ENV_NAME) override the defaults shown. Every other
// parameter keeps its default from main.bicep (queue, tables, delivery count, lock duration,
// duplicate detection window...): add a line here to change one.

param namePrefix = readEnvironmentVariable('HERALD_NAME_PREFIX', 'herald')

param tags = {
  workload: 'herald'
  'azd-env-name': readEnvironmentVariable('AZURE_ENV_NAME', 'herald')
}

// Function App (Flex Consumption)
param nodeVersion = '22'
param maximumInstanceCount = 100
param instanceMemoryMB = 2048

// Bot: UserAssignedMSI needs no secret. For SingleTenant set botAppType, HERALD_BOT_APP_ID and
// HERALD_BOT_APP_PASSWORD (the client secret, or a Key Vault reference).
param botAppType = 'UserAssignedMSI'
param botAppId = readEnvironmentVariable('HERALD_BOT_APP_ID', '')
param botAppPassword = readEnvironmentVariable('HERALD_BOT_APP_PASSWORD', '')

// A line-of-business app's identity (object id) that may send notification requests.
param lobSenderPrincipalId = readEnvironmentVariable('HERALD_LOB_SENDER_PRINCIPAL_ID', '')

// Where alerts are e-mailed (empty: alerts show in the portal only).
param alertEmailAddress = readEnvironmentVariable('HERALD_ALERT_EMAIL', '')

// Proactive install through Microsoft Graph (off by default). Before turning it on, publish the
// Teams app to the org catalog and grant the Graph permissions: see docs/deployment.md.
param proactiveInstall = bool(readEnvironmentVariable('HERALD_PROACTIVE_INSTALL', 'false'))
param teamsAppCatalogId = readEnvironmentVariable('HERALD_TEAMS_APP_CATALOG_ID', '')
param graphEndpoint = readEnvironmentVariable('HERALD_GRAPH_ENDPOINT', 'https://graph.microsoft.com')

// Delivery events (on by default). LOB apps that read the topic, as JSON: [{"name": "erp",
// "tenantIds": ["<tenant>"], "principalId": "<object id>"}]; a webhook and its whsec_ secret
// (better: a Key Vault reference), see docs/events.md.
param notificationEvents = bool(readEnvironmentVariable('HERALD_NOTIFICATION_EVENTS', 'true'))
param eventSubscribers = json(readEnvironmentVariable('HERALD_EVENT_SUBSCRIBERS', '[]'))
param eventWebhookUrl = readEnvironmentVariable('HERALD_EVENT_WEBHOOK_URL', '')
param eventWebhookSecret = readEnvironmentVariable('HERALD_EVENT_WEBHOOK_SECRET', '')
