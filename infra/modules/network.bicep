// Private networking (main.bicep `privateNetworking = true`): a VNet with two subnets and the
// private DNS zones that make the storage accounts and Key Vault resolve to their private
// endpoints inside it.
//   snet-app  delegated to Microsoft.App/environments: the Flex Consumption app's VNet
//             integration; its outbound traffic (storage, Key Vault, sources such as an
//             on-premises erp-db.internal reached through a peered hub) leaves from here.
//   snet-pe   the private endpoints (created by the lake, host storage, Key Vault and, when the
//             app's own endpoint is closed, function app modules).
// Zone names come from environment(), so the same template works in every Azure cloud.

@description('Virtual network name.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resources.')
param tags object = {}

@description('Address space of the VNet.')
param addressPrefix string

@description('Subnet for the Function App VNet integration (Flex Consumption: /27 or larger; one address per instance).')
param appSubnetPrefix string

@description('Subnet for the private endpoints.')
param privateEndpointSubnetPrefix string

@description('DNS servers of the VNet (e.g. the hub resolvers, to resolve on-premises names); empty = Azure-provided DNS. Custom servers must forward the privatelink zones to Azure DNS (168.63.129.16).')
param dnsServers array = []

@description('Also create the zone for the Function App private endpoint (privatelink.azurewebsites.net).')
param includeSitesZone bool = false

var storageSuffix = environment().suffixes.storage
var zoneNames = {
  blob: 'privatelink.blob.${storageSuffix}'
  queue: 'privatelink.queue.${storageSuffix}'
  table: 'privatelink.table.${storageSuffix}'
  dfs: 'privatelink.dfs.${storageSuffix}'
  vault: replace(environment().suffixes.keyvaultDns, '.vault.', 'privatelink.vaultcore.')
  sites: 'privatelink.azurewebsites.net'
}

resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${name}-app'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource endpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${name}-pe'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    dhcpOptions: {
      dnsServers: dnsServers
    }
    subnets: [
      {
        name: 'snet-app'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'snet-pe'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: endpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

module blobZone 'dnszone.bicep' = {
  name: 'zone-blob'
  params: {
    zoneName: zoneNames.blob
    vnetId: vnet.id
    tags: tags
  }
}

module queueZone 'dnszone.bicep' = {
  name: 'zone-queue'
  params: {
    zoneName: zoneNames.queue
    vnetId: vnet.id
    tags: tags
  }
}

module tableZone 'dnszone.bicep' = {
  name: 'zone-table'
  params: {
    zoneName: zoneNames.table
    vnetId: vnet.id
    tags: tags
  }
}

module dfsZone 'dnszone.bicep' = {
  name: 'zone-dfs'
  params: {
    zoneName: zoneNames.dfs
    vnetId: vnet.id
    tags: tags
  }
}

module vaultZone 'dnszone.bicep' = {
  name: 'zone-vault'
  params: {
    zoneName: zoneNames.vault
    vnetId: vnet.id
    tags: tags
  }
}

module sitesZone 'dnszone.bicep' = if (includeSitesZone) {
  name: 'zone-sites'
  params: {
    zoneName: zoneNames.sites
    vnetId: vnet.id
    tags: tags
  }
}

output id string = vnet.id
output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'snet-app')
output privateEndpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'snet-pe')
output zoneIds object = {
  blob: blobZone.outputs.id
  queue: queueZone.outputs.id
  table: tableZone.outputs.id
  dfs: dfsZone.outputs.id
  vault: vaultZone.outputs.id
  sites: includeSitesZone ? sitesZone.outputs.id : ''
}
