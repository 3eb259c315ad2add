// Application Insights on a Log Analytics workspace. Local (key) authentication is off:
// the app sends telemetry with its managed identity (Monitoring Metrics Publisher).

param prefix string
param location string
param tags object
@description('Days Log Analytics keeps data.')
param retentionDays int

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionDays
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-insights'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

output insightsId string = insights.id
output insightsName string = insights.name
output connectionString string = insights.properties.ConnectionString
output logsId string = logs.id
