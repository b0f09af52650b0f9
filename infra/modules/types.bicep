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
