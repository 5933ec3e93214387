// DLT ingestion framework: everything the nightly ingestion needs in one resource group.
//   az deployment group create -g <rg> -f infra/main.bicep -p @infra/main.parameters.example.json
//   or: azd up            (see docs/DEPLOY.md)
// Security model: one user-assigned managed identity, least-privilege data-plane roles, no
// shared keys, no secrets in app settings or outputs.
targetScope = 'resourceGroup'

@description('Short name used as the prefix of every resource (letters, digits, dashes).')
@minLength(2)
@maxLength(12)
param baseName string = 'ingest'

@description('Azure region (must offer Flex Consumption).')
param location string = resourceGroup().location

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource id of an existing action group notified by the alerts; empty creates the alerts without notifications.')
param actionGroupId string = ''

@description('Hours without any IngestionRunCompleted event before the nightly run is reported missing.')
@minValue(25)
@maxValue(47)
param missingRunLookbackHours int = 26

@description('CDC jobs: the WAL (MB) a job\'s replication slot may keep on its source before the cdc-slot-retained alert fires (a forgotten or stuck slot fills the source\'s disk).')
@minValue(64)
param cdcRetainedWalMb int = 10240

@description('Python version of the Function App (Flex Consumption offers 3.11 and 3.12 for this app; the locked packages cover both).')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Private networking: VNet integration for the app, private endpoints for the storage accounts (blob, queue, table, dfs) and Key Vault with private DNS zones, public network access off on all of them. Off: the simple public-endpoint deployment (Entra-only access).')
param privateNetworking bool = false

@description('With privateNetworking: address space of the VNet the template creates.')
param vnetAddressPrefix string = '10.40.0.0/24'

@description('With privateNetworking: subnet of the app\'s VNet integration (delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.40.0.0/25'

@description('With privateNetworking: subnet of the private endpoints.')
param privateEndpointSubnetPrefix string = '10.40.0.128/26'

@description('With privateNetworking: DNS servers of the VNet (e.g. the hub resolvers that know erp-db.internal); empty = Azure DNS. They must forward the privatelink zones to 168.63.129.16.')
param dnsServers array = []

@description('With privateNetworking: keep the app\'s HTTPS endpoint (function keys) reachable from the internet, so a hosted pipeline can publish and operators can start runs. false: a private endpoint only (publish and call from inside the network).')
param functionAppPublicAccess bool = true

@description('Flex Consumption: maximum instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Lake storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param lakeSkuName string = 'Standard_GZRS'

@description('Lake container (ADLS filesystem) for data, dlt state and metadata/ audit files.')
param lakeContainerName string = 'raw-data'

@description('App setting INGEST_CONFIG_PATH.')
param ingestConfigPath string = 'config/ingestion_config.xlsx'

@description('App setting INGEST_MAX_PARALLEL.')
@minValue(1)
param ingestMaxParallel int = 8

@description('App setting INGEST_RETRY_MAX_ATTEMPTS.')
@minValue(1)
param ingestRetryMaxAttempts int = 3

@description('App setting INGEST_RETRY_FIRST_INTERVAL_S.')
@minValue(1)
param ingestRetryFirstIntervalS int = 30

@description('App setting INGEST_RETRY_BACKOFF (decimal as a string).')
param ingestRetryBackoff string = '2.0'

@description('App setting INGEST_CHUNK_SIZE.')
@minValue(100)
param ingestChunkSize int = 100000

@description('App setting INGEST_FILE_MAX_ROWS.')
@minValue(1000)
param ingestFileMaxRows int = 1000000

var token = toLower(uniqueString(subscription().id, resourceGroup().id, baseName))
var prefix = toLower(baseName)
var compactPrefix = take(replace(prefix, '-', ''), 8)
var functionAppName = 'func-${prefix}-${token}'
var deploymentContainerName = 'app-package-${take(token, 8)}'

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  params: {
    name: 'vnet-${prefix}-${token}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    dnsServers: dnsServers
    includeSitesZone: !functionAppPublicAccess
  }
}

// Empty strings when privateNetworking is off: every module then keeps its public endpoint.
var endpointSubnetId = privateNetworking ? network.outputs.privateEndpointSubnetId : ''
var appSubnetId = privateNetworking ? network.outputs.appSubnetId : ''
var zoneIds = privateNetworking ? network.outputs.zoneIds : {
  blob: ''
  queue: ''
  table: ''
  dfs: ''
  vault: ''
  sites: ''
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${prefix}-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: 'log-${prefix}-${token}'
    appInsightsName: 'appi-${prefix}-${token}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module lake 'modules/lake.bicep' = {
  name: 'lake'
  params: {
    name: take('stl${compactPrefix}${token}', 24)
    location: location
    tags: tags
    containerName: lakeContainerName
    skuName: lakeSkuName
    writerPrincipalId: identity.outputs.principalId
    privateEndpointSubnetId: endpointSubnetId
    blobZoneId: zoneIds.blob
    dfsZoneId: zoneIds.dfs
  }
}

module hostStorage 'modules/hoststorage.bicep' = {
  name: 'hostStorage'
  params: {
    name: take('sth${compactPrefix}${token}', 24)
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    hostPrincipalId: identity.outputs.principalId
    privateEndpointSubnetId: endpointSubnetId
    blobZoneId: zoneIds.blob
    queueZoneId: zoneIds.queue
    tableZoneId: zoneIds.table
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyVault'
  params: {
    name: take('kv-${compactPrefix}-${token}', 24)
    location: location
    tags: tags
    readerPrincipalId: identity.outputs.principalId
    privateEndpointSubnetId: endpointSubnetId
    vaultZoneId: zoneIds.vault
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionApp'
  params: {
    name: functionAppName
    planName: 'plan-${prefix}-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageName: hostStorage.outputs.name
    deploymentContainerName: hostStorage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    lakeAccountName: lake.outputs.name
    lakeContainerName: lake.outputs.containerName
    keyVaultUri: keyVault.outputs.uri
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    ingestConfigPath: ingestConfigPath
    ingestMaxParallel: ingestMaxParallel
    ingestRetryMaxAttempts: ingestRetryMaxAttempts
    ingestRetryFirstIntervalS: ingestRetryFirstIntervalS
    ingestRetryBackoff: ingestRetryBackoff
    ingestChunkSize: ingestChunkSize
    ingestFileMaxRows: ingestFileMaxRows
    appSubnetId: appSubnetId
    publicAccess: functionAppPublicAccess
    privateEndpointSubnetId: endpointSubnetId
    sitesZoneId: zoneIds.sites
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: 'alert-${prefix}'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupId: actionGroupId
    missingRunLookbackHours: missingRunLookbackHours
    cdcRetainedWalMb: cdcRetainedWalMb
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    displayName: 'Ingestion (${prefix})'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

// Outputs are names, ids and URLs only (azd stores them in .azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = lake.outputs.name
output AZURE_HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output INGEST_DESTINATION string = 'abfss://${lake.outputs.containerName}@${lake.outputs.name}.dfs.core.windows.net'
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_VNET_ID string = privateNetworking ? network.outputs.id : ''
