// Log alerts on the telemetry the app emits to Application Insights (table customEvents):
//   IngestionTableCompleted  (one per table: status SUCCESS|FAILED|SKIPPED, error, ...)
//   IngestionRunCompleted    (one per run: jobs_failed, failed_jobs, ...)
// 1. table-failed: any IngestionTableCompleted with status FAILED (checked every 15 minutes).
// 2. run-failed:   an IngestionRunCompleted with jobs_failed > 0, OR no IngestionRunCompleted of a
//                  run started by the timer (trigger "schedule") in the last
//                  `missingRunLookbackHours` hours (the nightly run never ran or its orchestration
//                  died before finishing; a manual run does not hide a missed night). Both are
//                  "the night went wrong" and share one stateful rule, so an incident notifies
//                  once and resolves itself.
// 3. cdc-slot-retained: an IngestionCdcSlot event (one per CDC job run) whose replication slot
//                  keeps more than `cdcRetainedWalMb` MB of WAL on its source: a job that stopped
//                  running or fails keeps its slot, and the source keeps its WAL until its disk
//                  fills (docs/CDC.md: `dlt-ingest cdc status`, `cdc drop`).

@description('Prefix for the alert rule names.')
param namePrefix string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Resource id of the Application Insights component the rules query.')
param appInsightsId string

@description('Action group resource id notified by the alerts (empty: alerts fire without notifications).')
param actionGroupId string

@description('Hours without any scheduled IngestionRunCompleted before the nightly run is reported missing.')
@minValue(25)
@maxValue(47)
param missingRunLookbackHours int

@description('CDC jobs: MB of WAL a replication slot may keep on its source before the alert fires.')
@minValue(64)
param cdcRetainedWalMb int

var actionGroups = empty(actionGroupId) ? [] : [
  actionGroupId
]

var tableFailedQuery = '''
customEvents
| where name == "IngestionTableCompleted"
| where tostring(customDimensions.status) == "FAILED"
| project timestamp,
    run_id = tostring(customDimensions.run_id),
    job_id = tostring(customDimensions.job_id),
    source_name = tostring(customDimensions.source_name),
    table_name = tostring(customDimensions.table_name),
    error = tostring(customDimensions.error)
'''

var runFailedQueryTemplate = '''
let lookback = LOOKBACK_HOURSh;
let runs = customEvents
| where timestamp > ago(lookback)
| where name == "IngestionRunCompleted";
let failedRuns = runs
| where toint(customDimensions.jobs_failed) > 0
| project reason = "run completed with failed jobs",
    run_id = tostring(customDimensions.run_id),
    failed_jobs = tostring(customDimensions.failed_jobs);
let scheduledRuns = runs
| where tostring(customDimensions.trigger) == "schedule";
let missingRun = print completed = toscalar(scheduledRuns | count)
| where completed == 0
| project reason = strcat("no scheduled IngestionRunCompleted in the last ", tostring(lookback)),
    run_id = "",
    failed_jobs = "";
union failedRuns, missingRun
'''

var cdcRetainedQueryTemplate = '''
customEvents
| where name == "IngestionCdcSlot"
| extend retained_bytes = todouble(customDimensions.retained_bytes)
| where retained_bytes > RETAINED_MB * 1048576.0
| project timestamp,
    job_id = tostring(customDimensions.job_id),
    source_name = tostring(customDimensions.source_name),
    slot_name = tostring(customDimensions.slot_name),
    retained_bytes,
    lag_bytes = todouble(customDimensions.lag_bytes)
'''

var cdcRetainedQuery = replace(cdcRetainedQueryTemplate, 'RETAINED_MB', string(cdcRetainedWalMb))

var runFailedQuery = replace(runFailedQueryTemplate, 'LOOKBACK_HOURS', string(missingRunLookbackHours))

resource tableFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-table-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: ingestion table failed'
    description: 'An IngestionTableCompleted event with status FAILED: a table did not load. See customDimensions.error and docs/RUNBOOK.md (rerun one table).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: tableFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource runFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-run-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: nightly ingestion run failed or missing'
    description: 'An IngestionRunCompleted event with jobs_failed > 0, or no IngestionRunCompleted with trigger schedule in the lookback window (the nightly run did not happen or did not finish; manual runs do not count). See docs/RUNBOOK.md.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: runFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource cdcSlotRetained 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-cdc-slot-retained'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: CDC replication slot keeps too much WAL'
    description: 'An IngestionCdcSlot event whose slot keeps more WAL on its source than the threshold: the source disk fills unless the job catches up or its slot is dropped. See docs/CDC.md (dlt-ingest cdc status, cdc drop).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    criteria: {
      allOf: [
        {
          query: cdcRetainedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

output tableFailedAlertId string = tableFailed.id
output runFailedAlertId string = runFailed.id
output cdcSlotRetainedAlertId string = cdcSlotRetained.id
