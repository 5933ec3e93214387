// One private DNS zone (e.g. privatelink.blob.core.windows.net) linked to the VNet, so names
// such as <account>.blob.core.windows.net resolve to the private endpoint's address inside it.

@description('Zone name, e.g. privatelink.blob.core.windows.net.')
param zoneName string

@description('Resource id of the VNet that resolves through this zone.')
param vnetId string

@description('Tags applied to the resources.')
param tags object = {}

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneName
  location: 'global'
  tags: tags
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: zone
  name: 'link-${uniqueString(vnetId)}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

output id string = zone.id
