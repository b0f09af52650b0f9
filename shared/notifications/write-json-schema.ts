/**
 * Regenerates `notification-request.schema.json` from the zod schema:
 * `npm run schema:notifications`. Development only (prettier is a dev dependency).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { format } from "prettier";

import { notificationRequestJsonSchema } from "./schema";

export const JSON_SCHEMA_PATH = join("shared", "notifications", "notification-request.schema.json");

async function main(): Promise<void> {
  const text = await format(JSON.stringify(notificationRequestJsonSchema()), { parser: "json" });
  writeFileSync(join(process.cwd(), JSON_SCHEMA_PATH), text);
  console.log(`wrote ${JSON_SCHEMA_PATH}`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
