import { z } from "zod";

/**
 * The shapes of Graph's answers Herald reads, checked at the boundary. Graph sends `null` for
 * a property it has no value for; that becomes undefined. Unknown properties are dropped.
 */
const optional = z
  .string()
  .nullish()
  .transform((v) => v ?? undefined);

const id = z.string().min(1).max(1024);

export const userAnswer = z.object({
  id,
  userPrincipalName: optional,
  displayName: optional,
  userType: optional,
});

export const teamsAppListAnswer = z.object({
  value: z.array(z.object({ id, externalId: optional })),
});

export const installedAppListAnswer = z.object({
  value: z.array(z.object({ id, teamsApp: z.object({ id }).nullish() })),
});

export const chatAnswer = z.object({ id });

export const groupUserPageAnswer = z.object({
  value: z.array(
    z.object({
      id,
      userPrincipalName: optional,
      displayName: optional,
      userType: optional,
    }),
  ),
  "@odata.nextLink": z.string().min(1).max(8192).optional(),
});
