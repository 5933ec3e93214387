// ADLS Gen2 account for the lake: hierarchical namespace, TLS 1.2, no shared keys, no public
// blobs. One container `raw-data` holds the data (<source>/<table>/...), dlt's pipeline state
// (<source>/_dlt_pipeline_state/) and the audit trail (metadata/audit_YYYYMMDD.csv).
// The app identity gets Storage Blob Data Contributor on the container only, not the account.

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Container (ADLS filesystem) that receives the data and the metadata/ audit folder.')
param containerName string = 'raw-data'

@description('Principal id of the identity that writes to the lake.')
param writerPrincipalId string

@description('Storage redundancy of the lake.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GZRS'

@description('Days deleted blobs and containers stay recoverable.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 14

@description('Private networking: subnet for the private endpoints. Empty (default): the public endpoint, Entra-only; set: private endpoints (blob, dfs) and public network access disabled.')
param privateEndpointSubnetId string = ''

@description('Private DNS zone id for the blob endpoint (with privateEndpointSubnetId).')
param blobZoneId string = ''

@description('Private DNS zone id for the dfs endpoint (with privateEndpointSubnetId).')
param dfsZoneId string = ''

var isPrivate = !empty(privateEndpointSubnetId)

// Built-in role: Storage Blob Data Contributor.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource lake 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default deployment (privateNetworking off): the app reaches the lake over the public endpoint, Entra-only (shared keys off). With privateNetworking on the ACL is Deny (tests/test_infra.py evaluates it).
  // checkov:skip=CKV_AZURE_59: Same as CKV_AZURE_35: public access is Enabled only without privateNetworking; with it, Disabled and reached through private endpoints.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    isHnsEnabled: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    accessTier: 'Hot'
    networkAcls: {
      bypass: isPrivate ? 'None' : 'AzureServices'
      defaultAction: isPrivate ? 'Deny' : 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: lake
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

resource containerWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, writerPrincipalId, storageBlobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: writerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

module blobEndpoint 'privateendpoint.bicep' = if (isPrivate) {
  name: 'pe-${name}-blob'
  params: {
    name: 'pe-${name}-blob'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: lake.id
    groupId: 'blob'
    zoneId: blobZoneId
  }
}

module dfsEndpoint 'privateendpoint.bicep' = if (isPrivate) {
  name: 'pe-${name}-dfs'
  params: {
    name: 'pe-${name}-dfs'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: lake.id
    groupId: 'dfs'
    zoneId: dfsZoneId
  }
}

output name string = lake.name
output id string = lake.id
output containerName string = container.name
output dfsEndpoint string = lake.properties.primaryEndpoints.dfs
