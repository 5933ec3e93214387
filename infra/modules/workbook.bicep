// Azure Monitor workbook "Ingestion" on the Application Insights component: run outcomes over
// time, failures by table, rows per day, durations, reconciliation mismatches and schema
// changes, from the events and metrics the app emits (ingest/telemetry.py and the data-trust
// events of ingest/checks/). The workbook's content is infra/workbooks/ingestion.workbook.json
// (the portal's "Advanced editor" format); tests/test_workbook.py checks that every event and
// property its queries name is one the code emits. It appears under the component's
// Workbooks blade (sourceId) and in Azure Monitor > Workbooks.

@description('Display name of the workbook.')
param displayName string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Resource id of the Application Insights component the workbook queries.')
param appInsightsId string

// The JSON names the component as its fallback resource; the placeholder is replaced here.
var content = replace(loadTextContent('../workbooks/ingestion.workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'ingestion-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: toLower(appInsightsId)
    serializedData: content
    version: 'Notebook/1.0'
  }
}

output workbookId string = workbook.id
