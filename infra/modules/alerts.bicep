metadata name = 'Herald alerts and workbook'
metadata description = 'Azure Monitor alert rules (dead letters per queue, failure share, 429 share, function errors), an optional e-mail action group, and an Application Insights workbook with deliveries, states, throttling and queue depth.'

@description('Required. Prefix of every resource name in this module, for example herald-abc123.')
@minLength(2)
@maxLength(40)
param namePrefix string

@description('Required. Azure region of the log alert rules and the workbook.')
param location string

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Required. Resource id of the Application Insights component Herald logs to.')
param applicationInsightsResourceId string

@description('Required. Resource id of the Service Bus namespace holding Herald\'s queues.')
param serviceBusNamespaceResourceId string

@description('Required. Names of the queues to watch (dead letters, depth): the intake queue and the work queue.')
@minLength(1)
param queueNames string[]

@description('Optional. E-mail address alerts are sent to. Empty creates no action group: alerts show in the portal only.')
param alertEmailAddress string = ''

@description('Optional. Percentage of finished deliveries recorded failed (over 15 minutes) above which an alert fires.')
@minValue(1)
@maxValue(100)
param failedSharePercent int = 5

@description('Optional. Percentage of Teams send calls answered 429 (over 15 minutes) above which an alert fires. Herald paces to keep it under 0.5 %.')
@minValue(1)
@maxValue(100)
param throttledSharePercent int = 2

// Herald's metric lines: `metric <name> {"metric":"<name>","value":n,...}` (shared/notifications/
// metrics.ts) logged through the Functions host, so they arrive in `traces` with the JSON in the
// message. Adaptive sampling (host.json) keeps a share of them, each with its itemCount. Every
// query below starts from this one.
var heraldMetrics = '''
let heraldMetrics = traces
| where message startswith "metric "
| extend props = parse_json(substring(message, indexof(message, "{")))
| extend metric = tostring(props.metric), value = todouble(props.value) * itemCount, tenantId = tostring(props.tenantId);
'''

var failedShareQuery = '''
heraldMetrics
| where metric in ("notifications.sent", "notifications.failed", "notifications.unreachable")
| summarize failed = sumif(value, metric == "notifications.failed"), finished = sum(value)
| where finished > 0
| extend failedPercent = 100.0 * failed / finished
'''

// Each Teams send ends in exactly one of sent, unreachable, failed or retried (a 429 or 5xx
// that is rescheduled), so their sum counts the send calls; throttled counts the 429s among them.
var throttledShareQuery = '''
heraldMetrics
| where metric in ("notifications.sent", "notifications.unreachable", "notifications.failed", "notifications.retried", "notifications.throttled")
| summarize throttled = sumif(value, metric == "notifications.throttled"), calls = sumif(value, metric != "notifications.throttled")
| where calls > 0
| extend throttledPercent = 100.0 * throttled / calls
'''

// A webhook that answered 410 Gone is turned off (shared/notifications/webhook-delivery.ts).
var webhookDisabledQuery = '''
heraldMetrics
| where metric == "events.webhookDisabled"
| summarize disabled = sum(value)
'''

var functionErrorsQuery = '''
requests
| where success == false
| summarize failures = count() by operation_Name
'''

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddress)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'herald'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(alertEmailAddress) ? [] : [actionGroup.id]

resource deadLetterAlerts 'Microsoft.Insights/metricAlerts@2026-01-01' = [
  for queueName in queueNames: {
    name: 'alert-${namePrefix}-dead-letters-${queueName}'
    location: 'global'
    tags: tags
    properties: {
      description: 'Messages were dead-lettered on queue ${queueName}: read and replay them with `herald dlq` (docs/operations.md, "Dead letters").'
      severity: 2
      enabled: true
      scopes: [
        serviceBusNamespaceResourceId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT5M'
      autoMitigate: true
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'deadLettered'
            metricNamespace: 'Microsoft.ServiceBus/namespaces'
            metricName: 'DeadletteredMessages'
            dimensions: [
              {
                name: 'EntityName'
                operator: 'Include'
                values: [
                  queueName
                ]
              }
            ]
            operator: 'GreaterThan'
            threshold: 0
            timeAggregation: 'Maximum'
          }
        ]
      }
      actions: [for id in actionGroupIds: { actionGroupId: id }]
    }
  }
]

var logAlerts = [
  {
    key: 'failed-share'
    displayName: 'Herald: failed deliveries above ${failedSharePercent} %'
    description: 'More than ${failedSharePercent} % of finished deliveries were recorded failed in 15 minutes (docs/operations.md, "Alerts").'
    query: '${heraldMetrics}${failedShareQuery}'
    measure: 'failedPercent'
    threshold: failedSharePercent
    severity: 2
  }
  {
    key: 'throttled-share'
    displayName: 'Herald: Teams 429s above ${throttledSharePercent} % of send calls'
    description: 'More than ${throttledSharePercent} % of Teams send calls were answered 429 in 15 minutes (docs/operations.md, "Alerts").'
    query: '${heraldMetrics}${throttledShareQuery}'
    measure: 'throttledPercent'
    threshold: throttledSharePercent
    severity: 3
  }
  {
    key: 'webhook-disabled'
    displayName: 'Herald: the event webhook answered 410 Gone and was turned off'
    description: 'Herald no longer posts delivery events to EventWebhookUrl until it is set to a new URL or its row in the Webhooks table is deleted (docs/events.md, "Webhook").'
    query: '${heraldMetrics}${webhookDisabledQuery}'
    measure: 'disabled'
    threshold: 0
    severity: 2
  }
  {
    key: 'function-errors'
    displayName: 'Herald: function invocations failed'
    description: 'A Herald function invocation ended with an error in 15 minutes (docs/operations.md, "Alerts").'
    query: functionErrorsQuery
    measure: 'failures'
    threshold: 0
    severity: 2
  }
]

resource logAlertRules 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = [
  for alert in logAlerts: {
    name: 'alert-${namePrefix}-${alert.key}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: alert.displayName
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [
        applicationInsightsResourceId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Maximum'
            metricMeasureColumn: alert.measure
            operator: 'GreaterThan'
            threshold: alert.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: actionGroupIds
      }
    }
  }
]

// ---------------------------------------------------------------- workbook

var workbookQueries = [
  {
    title: 'Deliveries per second (sent)'
    query: '${heraldMetrics}heraldMetrics\n| where metric == "notifications.sent"\n| summarize perSecond = sum(value) / 60.0 by bin(timestamp, 1m)\n| render timechart'
  }
  {
    title: 'Recipient states'
    query: '${heraldMetrics}heraldMetrics\n| where metric in ("notifications.sent", "notifications.unreachable", "notifications.failed", "notifications.rejected")\n| summarize recipients = sum(value) by state = replace_string(metric, "notifications.", "")\n| render piechart'
  }
  {
    title: 'Throttling: 429s, retries and deferrals per minute'
    query: '${heraldMetrics}heraldMetrics\n| where metric in ("notifications.throttled", "notifications.retried", "notifications.deferred")\n| summarize count = sum(value) by metric, bin(timestamp, 1m)\n| render timechart'
  }
  {
    title: 'Per tenant (where the lines carry tenantId)'
    query: '${heraldMetrics}heraldMetrics\n| where metric in ("notifications.sent", "notifications.failed", "notifications.throttled")\n| summarize count = sum(value) by tenantId, metric\n| evaluate pivot(metric, sum(count))'
  }
]

var queueMetrics = [
  {
    title: 'Queue depth per queue (active messages)'
    metric: 'ActiveMessages'
  }
  {
    title: 'Dead-lettered messages per queue'
    metric: 'DeadletteredMessages'
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(
    [
      {
        type: 1
        name: 'intro'
        content: {
          json: '## Herald\nDeliveries and throttling from Herald\'s metric lines; queue depth from Service Bus metrics. Runbook: docs/operations.md.'
        }
      }
    ],
    map(workbookQueries, q => {
      type: 3
      name: q.title
      content: {
        version: 'KqlItem/1.0'
        title: q.title
        query: q.query
        size: 0
        timeContext: {
          durationMs: 86400000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
      }
    }),
    map(queueMetrics, m => {
      type: 10
      name: m.title
      content: {
        version: 'MetricsItem/2.0'
        title: m.title
        size: 0
        chartType: 2
        resourceType: 'microsoft.servicebus/namespaces'
        metricScope: 0
        resourceIds: [
          serviceBusNamespaceResourceId
        ]
        timeContext: {
          durationMs: 86400000
        }
        metrics: [
          {
            namespace: 'microsoft.servicebus/namespaces'
            metric: 'microsoft.servicebus/namespaces--${m.metric}'
            aggregation: 3
            splitBy: 'EntityName'
          }
        ]
      }
    })
  )
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'herald-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Herald operations (${namePrefix})'
    category: 'workbook'
    sourceId: applicationInsightsResourceId
    serializedData: string(workbookContent)
  }
}

@description('Resource id of the workbook.')
output workbookResourceId string = workbook.id

@description('Names of the log alert rules (failure share, 429 share, function errors).')
output logAlertRuleNames string[] = [for (alert, i) in logAlerts: logAlertRules[i].name]
