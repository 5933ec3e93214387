// Key Vault in RBAC mode holding the source connection secrets
// (`<source-name-with-dashes>-<key>`, e.g. postgres-erp-password). The app identity can only
// read secret values (Key Vault Secrets User on this vault); operators load secrets with
// `python -m ingest secrets migrate` under their own Key Vault Secrets Officer assignment.

@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the resource.')
param tags object = {}

@description('Principal id of the identity that reads connection secrets.')
param readerPrincipalId string

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Private networking: subnet for the private endpoints. Empty (default): the public endpoint, Entra-only; set: private endpoints (vault) and public network access disabled.')
param privateEndpointSubnetId string = ''

@description('Private DNS zone id for the vault endpoint (with privateEndpointSubnetId).')
param vaultZoneId string = ''

var isPrivate = !empty(privateEndpointSubnetId)

// Built-in role: Key Vault Secrets User.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Default deployment (privateNetworking off): the vault accepts public traffic, each call needs an Entra token and an RBAC role. With privateNetworking on the ACL is Deny (tests/test_infra.py evaluates it).
  // checkov:skip=CKV_AZURE_189: Same as CKV_AZURE_109: public access is Enabled only without privateNetworking; with it, Disabled and reached through a private endpoint.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: isPrivate ? 'None' : 'AzureServices'
      defaultAction: isPrivate ? 'Deny' : 'Allow'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, readerPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: readerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

module vaultEndpoint 'privateendpoint.bicep' = if (isPrivate) {
  name: 'pe-${name}-vault'
  params: {
    name: 'pe-${name}-vault'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    targetId: vault.id
    groupId: 'vault'
    zoneId: vaultZoneId
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
