import { randomBytes } from "node:crypto";
import { link, unlink, writeFile } from "node:fs/promises";

export function isErrorCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

/**
 * Creates `path` with its whole content in one step, or answers false when it exists: the content
 * goes to a temporary file first and is hard-linked into place (`link` fails on an existing name,
 * atomically, across processes), so a reader never sees it half written.
 */
export async function createExclusive(path: string, content: unknown): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, JSON.stringify(content));
  try {
    await link(tmp, path);
    return true;
  } catch (error) {
    if (isErrorCode(error, "EEXIST")) return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
