/**
 * Atomic file writes: the whole content goes to a temporary file beside the target, then a
 * rename replaces the target, so a reader (or a run killed mid-write by a time limit) never
 * sees a partial file, and a failure leaves nothing behind. Node's fs API, so it works under
 * Deno, Bun (the standalone binary) and Node alike.
 * @module
 */
import * as fs from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Writes `data` (bytes, or text as UTF-8) to `path` through a temporary file in the same
 * directory and a rename. Use it for case files (`caseToSafetensors()`,
 * `outputsToSafetensors()`), reports and caches.
 *
 * @param path the file to write
 * @param data its whole content
 *
 * @example
 * ```ts ignore
 * import { writeFileAtomic } from "./atomic_write.ts";
 * await writeFileAtomic("report.json", JSON.stringify({ results: [] }));
 * ```
 */
export async function writeFileAtomic(
  path: string | URL,
  data: Uint8Array | string,
): Promise<void> {
  const target = path instanceof URL ? fileURLToPath(path) : path;
  const suffix = crypto.getRandomValues(new Uint32Array(2)).reduce(
    (s, v) => s + v.toString(16),
    "",
  );
  const temp = join(dirname(target), `.${basename(target)}.${suffix}.tmp`);
  try {
    await fs.writeFile(temp, data, { flag: "wx" });
    await fs.rename(temp, target);
  } catch (e) {
    await fs.rm(temp, { force: true }).catch(() => {});
    throw e;
  }
}
