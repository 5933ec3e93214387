// A private endpoint for one sub-resource (blob, queue, table, dfs, vault, sites) of a
// storage account, Key Vault or Function App, registered in its private DNS zone.

@description('Private endpoint name.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Subnet the endpoint gets its address from.')
param subnetId string

@description('Resource id of the storage account, vault or site.')
param targetId string

@description('Sub-resource (group id): blob, queue, table, dfs, vault or sites.')
@allowed([
  'blob'
  'queue'
  'table'
  'dfs'
  'vault'
  'sites'
])
param groupId string

@description('Resource id of the private DNS zone for this group id.')
param zoneId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: targetId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: zoneId
        }
      }
    ]
  }
}

output id string = endpoint.id
