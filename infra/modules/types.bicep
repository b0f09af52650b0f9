metadata name = 'Herald shared types'
metadata description = 'User-defined types shared by the Herald modules.'

@export()
@description('A role assignment a module grants on the resource it owns.')
type roleAssignmentType = {
  @description('Required. Object (principal) id of the identity that gets the role.')
  principalId: string

  @description('Required. GUID of the built-in role definition, for example 0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3.')
  roleDefinitionId: string

  @description('Optional. Kind of principal. Managed identities and app registrations are ServicePrincipal.')
  principalType: ('ServicePrincipal' | 'Group' | 'User')?

  @description('Optional. Why the principal has the role, shown in the portal.')
  description: string?
}

@export()
@description('A line-of-business app that reads Herald\'s delivery events: one subscription on the events topic, filtered to its tenants.')
type eventSubscriberType = {
  @description('Required. Subscription name: 1-50 letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit.')
  @minLength(1)
  @maxLength(50)
  name: string

  @description('Required. Tenant ids (GUIDs) whose events the app may see: the subscription\'s SQL filter on the tenantId application property. At most 20 (a filter has at most 1,024 characters).')
  @minLength(1)
  @maxLength(20)
  tenantIds: string[]

  @description('Required. Object (principal) id of the app\'s identity: it gets Azure Service Bus Data Receiver on this subscription only.')
  principalId: string

  @description('Optional. Kind of principal. Managed identities and app registrations are ServicePrincipal.')
  principalType: ('ServicePrincipal' | 'Group' | 'User')?
}
