import { z } from "zod";

import { RECIPIENT_KINDS } from "../model/recipient";

/*
 * What Herald's API answers when it took a change or read a status: checked before the client
 * hands it on, so a proxy's page or another app's 2xx at the URL is an error, not a revision 1.
 */

const sequence = z.number().int().min(1);

/** `PATCH` or `DELETE /api/notifications/{id}`: 202. */
export const changeAnswerSchema = z.looseObject({ revision: sequence, recalled: z.boolean() });

/**
 * The person as the request's row names them: one kind and its value. Not the request schema's
 * stricter forms: a roster member's Teams id is whatever Teams called them (an emulator's too).
 */
const answeredRecipient = z
  .partialRecord(z.enum(RECIPIENT_KINDS), z.string().min(1))
  .refine((r) => Object.keys(r).length === 1, "must name the person by exactly one id");

/** `PATCH /api/notifications/{id}/recipients/{recipient}`: 202. */
export const recipientChangeAnswerSchema = z.looseObject({
  recipient: answeredRecipient,
  revision: sequence,
  override: sequence,
});

/** `GET /api/notifications/{id}`: 200, the parts every reader of a status relies on. */
export const statusAnswerSchema = z.looseObject({
  id: z.string(),
  state: z.string(),
  final: z.boolean(),
  counts: z.looseObject({ total: z.number().int().min(0) }),
  recipients: z.array(z.looseObject({ state: z.string() })),
});

/** The first problem of an answer that is not Herald's, as `path: message`. */
export function answerProblem(error: z.ZodError): string {
  const [issue] = error.issues;
  if (issue === undefined) return "not Herald's answer";
  return `${issue.path.length > 0 ? issue.path.join(".") : "(body)"}: ${issue.message}`;
}
