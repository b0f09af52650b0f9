/**
 * Regenerates the published JSON Schemas from the zod schemas: `notification-request.schema.json`
 * (what a LOB app sends) and, beside it in `event-schemas/`, one per event type's `data` (what it
 * hears back): `npm run schema:notifications`. Development only (prettier is a dev dependency).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { format } from "prettier";

import { EVENT_TYPE_NAMES, eventDataJsonSchema, type EventType } from "../events/event-types";
import { notificationRequestJsonSchema } from "./schema";

export const JSON_SCHEMA_PATH = join("shared", "notifications", "notification-request.schema.json");
export const EVENT_SCHEMAS_DIRECTORY = join("shared", "notifications", "event-schemas");

/** Where a type's data schema is published (`herald/event-schemas/<type>.schema.json`). */
export function eventSchemaPath(type: EventType): string {
  return join(EVENT_SCHEMAS_DIRECTORY, `${type}.schema.json`);
}

async function write(path: string, schema: unknown): Promise<void> {
  writeFileSync(
    join(process.cwd(), path),
    await format(JSON.stringify(schema), { parser: "json" }),
  );
  console.log(`wrote ${path}`);
}

async function main(): Promise<void> {
  await write(JSON_SCHEMA_PATH, notificationRequestJsonSchema());
  mkdirSync(join(process.cwd(), EVENT_SCHEMAS_DIRECTORY), { recursive: true });
  for (const type of EVENT_TYPE_NAMES)
    await write(eventSchemaPath(type), eventDataJsonSchema(type));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
