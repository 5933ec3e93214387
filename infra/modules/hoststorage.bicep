// Storage account for the Functions host: AzureWebJobsStorage (identity-based), the Durable
// Functions task hub (Azure Storage provider: blobs, queues, tables) and the Flex Consumption
// deployment package container. Separate from the lake so host churn never touches data.

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Principal id of the Function App identity.')
param hostPrincipalId string

@description('Private networking: subnet for the private endpoints. Empty (default): the public endpoint, Entra-only; set: private endpoints (blob, queue, table) and public network access disabled.')
param privateEndpointSubnetId string = ''

@description('Private DNS zone id for the blob endpoint (with privateEndpointSubnetId).')
param blobZoneId string = ''

@description('Private DNS zone id for the queue endpoint (with privateEndpointSubnetId).')
param queueZoneId string = ''

@description('Private DNS zone id for the table endpoint (with privateEndpointSubnetId).')
param tableZoneId string = ''

var isPrivate = !empty(privateEndpointSubnetId)

// Built-in roles the Durable Functions host needs on its storage account.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default deployment (privateNetworking off): the host reaches its storage over the public endpoint, Entra-only (shared keys off). With privateNetworking on the ACL is Deny (tests/test_infra.py evaluates it).
  // checkov:skip=CKV_AZURE_59: Same as CKV_AZURE_35: public access is Enabled only without privateNetworking; with it, Disabled and reached through private endpoints.
  // checkov:skip=CKV_AZURE_206: Host storage holds only in-flight Durable task-hub state (losing it means rerunning one night) and the deployment package (re-published by a deploy); LRS is enough, the lake itself is geo-redundant.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
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
  parent: hostStorage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, hostPrincipalId, storageBlobDataOwnerRoleId)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, hostPrincipalId, storageQueueDataContributorRoleId)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, hostPrincipalId, storageTableDataContributorRoleId)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: hostPrincipalId
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
    targetId: hostStorage.id
    groupId: 'blob'
    zoneId: blobZoneId
  }
}

module queueEndpoint 'privateendpoint.bicep' = if (isPrivate) {
  name: 'pe-${name}-queue'
  params: {
    name: 'pe-${name}-queue'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: hostStorage.id
    groupId: 'queue'
    zoneId: queueZoneId
  }
}

module tableEndpoint 'privateendpoint.bicep' = if (isPrivate) {
  name: 'pe-${name}-table'
  params: {
    name: 'pe-${name}-table'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: hostStorage.id
    groupId: 'table'
    zoneId: tableZoneId
  }
}

output name string = hostStorage.name
output id string = hostStorage.id
output blobEndpoint string = hostStorage.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
