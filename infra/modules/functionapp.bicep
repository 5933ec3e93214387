// Function App on Flex Consumption (Linux, Python 3.11 or 3.12) running the nightly ingestion.
// Identity: one user-assigned managed identity for everything. Host storage is identity-based
// (AzureWebJobsStorage__*), the deployment package is pulled with the same identity, telemetry
// is sent with Entra ID auth. No keys or connection strings with keys in any app setting.
// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION /
// WEBSITE_RUN_FROM_PACKAGE as app settings: the runtime is set in functionAppConfig.runtime.

@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the resources (the app also gets azd-service-name).')
param tags object = {}

@description('azd service name from azure.yaml; azd finds the app by this tag.')
param azdServiceName string = 'ingest'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Host storage account name (AzureWebJobsStorage, Durable task hub).')
param hostStorageName string

@description('Blob container in the host storage account holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component name (its connection string is read here, never output).')
param appInsightsName string

@description('Lake storage account name.')
param lakeAccountName string

@description('Lake container (ADLS filesystem).')
param lakeContainerName string

@description('Key Vault URI holding the source connection secrets.')
param keyVaultUri string

@description('Python version (Flex Consumption offers 3.11 and 3.12 for this app; azure-functions 2.x, which needs 3.13, is not used).')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string

@description('Private networking: the subnet (delegated to Microsoft.App/environments) the app is VNet-integrated into; its outbound traffic then leaves from the VNet. Empty (default): no VNet.')
param appSubnetId string = ''

@description('Whether the app\'s HTTPS endpoint (function keys) is reachable from the internet. false (with privateNetworking): only through a private endpoint in privateEndpointSubnetId.')
param publicAccess bool = true

@description('Subnet for the app\'s private endpoint (only when publicAccess is false).')
param privateEndpointSubnetId string = ''

@description('Private DNS zone id (privatelink.azurewebsites.net) for the app\'s private endpoint.')
param sitesZoneId string = ''

var privateInbound = (!publicAccess) && (!empty(privateEndpointSubnetId))

@description('Upper bound of instances the plan scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB (dlt + pyarrow batches need headroom).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('INGEST_CONFIG_PATH: job workbook, relative to the app root.')
param ingestConfigPath string

@description('INGEST_MAX_PARALLEL: tables in flight at once.')
param ingestMaxParallel int

@description('INGEST_RETRY_MAX_ATTEMPTS: attempts per table activity.')
param ingestRetryMaxAttempts int

@description('INGEST_RETRY_FIRST_INTERVAL_S: seconds before the first retry.')
param ingestRetryFirstIntervalS int

@description('INGEST_RETRY_BACKOFF: retry interval multiplier (a decimal string).')
param ingestRetryBackoff string

@description('INGEST_CHUNK_SIZE: rows per extracted batch.')
param ingestChunkSize int

@description('INGEST_FILE_MAX_ROWS: rows per Parquet file.')
param ingestFileMaxRows int

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is region-dependent; a missed nightly run is retried (rerun procedure in docs/RUNBOOK.md), so a zonal outage is tolerated.
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

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: By default the HTTP routes stay reachable (function keys) so the pipeline can publish and operators can start runs; functionAppPublicAccess=false closes them behind a private endpoint (tests/test_infra.py evaluates it).
  // checkov:skip=CKV_AZURE_17: Callers (operators, Durable status URLs) authenticate with function keys; mutual TLS client certificates are not used.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per execution; a nightly batch job needs no always-on failover instances.
  // checkov:skip=CKV_AZURE_213: Health check pings need an always-running instance; on Flex Consumption the platform manages instance health.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    publicNetworkAccess: privateInbound ? 'Disabled' : 'Enabled'
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: hostStorage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'AZURE_KEY_VAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'AZURE_STORAGE_ACCOUNT_NAME'
          value: lakeAccountName
        }
        {
          name: 'INGEST_DESTINATION'
          value: 'abfss://${lakeContainerName}@${lakeAccountName}.dfs.core.windows.net'
        }
        {
          name: 'INGEST_CONFIG_PATH'
          value: ingestConfigPath
        }
        {
          name: 'INGEST_MAX_PARALLEL'
          value: string(ingestMaxParallel)
        }
        {
          name: 'INGEST_RETRY_MAX_ATTEMPTS'
          value: string(ingestRetryMaxAttempts)
        }
        {
          name: 'INGEST_RETRY_FIRST_INTERVAL_S'
          value: string(ingestRetryFirstIntervalS)
        }
        {
          name: 'INGEST_RETRY_BACKOFF'
          value: ingestRetryBackoff
        }
        {
          name: 'INGEST_CHUNK_SIZE'
          value: string(ingestChunkSize)
        }
        {
          name: 'INGEST_FILE_MAX_ROWS'
          value: string(ingestFileMaxRows)
        }
        {
          name: 'INGEST_RECONCILE'
          value: 'FAILED'
        }
        {
          name: 'RUNTIME__DLTHUB_TELEMETRY'
          value: 'false'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

module sitesEndpoint 'privateendpoint.bicep' = if (privateInbound) {
  name: 'pe-${name}-sites'
  params: {
    name: 'pe-${name}-sites'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: functionApp.id
    groupId: 'sites'
    zoneId: sitesZoneId
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
