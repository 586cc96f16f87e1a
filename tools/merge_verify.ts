/**
 * Joins the `--json` files of `verify --shard 1/N` ... `N/N` into one `verify --json` file
 * (complete only if every part is), refusing parts that do not fit together.
 *
 *   deno run -A tools/merge_verify.ts --out merged.json part1.json part2.json ...
 *
 * Exits 2 with one line on stderr when the parts do not fit or a file is not verify output.
 * @module
 */
import { mergeVerifyShards } from "../cli/verify_shard.ts";
import { parseVerifyFile } from "../cli/verify_resume.ts";
import { UsageError } from "../cli/errors.ts";
import { writeFileAtomic } from "../io/atomic_write.ts";

/**
 * Merges `files` into `out`; returns the merged file's counts. `complete` says every part ran to
 * its end, as in one `verify` run: failed and skipped cases are counted apart, not hidden by it.
 */
export async function mergeVerifyFiles(
  files: readonly string[],
  out: string,
): Promise<{ results: number; failed: number; skipped: number; complete: boolean }> {
  const parts = [];
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw new UsageError(
        `Cannot merge ${file}: expected a readable file, got ${(e as Error).message}`,
      );
    }
    parts.push(parseVerifyFile(text, `Cannot merge ${file}`));
  }
  const merged = mergeVerifyShards(parts, files);
  try {
    await writeFileAtomic(out, JSON.stringify(merged, null, 2) + "\n");
  } catch (e) {
    throw new UsageError(`Cannot write ${out}: ${(e as Error).message}`);
  }
  return {
    results: merged.results.length,
    failed: merged.results.filter((r) => !r.ok).length,
    skipped: merged.skipped.length,
    complete: merged.complete,
  };
}

/** `--out FILE` and the shard files from the arguments; throws a `UsageError` otherwise. */
export function parseMergeArgs(args: readonly string[]): { out: string; files: string[] } {
  const at = args.indexOf("--out");
  if (at < 0) {
    throw new UsageError("Cannot merge: expected --out FILE and shard files, got no --out");
  }
  const out = args[at + 1];
  if (out === undefined || out.startsWith("--")) {
    throw new UsageError("Cannot merge: expected --out FILE, got --out with no file");
  }
  const files = args.filter((_, i) => i !== at && i !== at + 1);
  const flag = files.find((f) => f.startsWith("--"));
  if (flag) throw new UsageError(`Cannot merge: expected shard files, got the flag ${flag}`);
  return { out, files };
}

if (import.meta.main) {
  try {
    const { out, files } = parseMergeArgs(Deno.args);
    const { results, failed, skipped, complete } = await mergeVerifyFiles(files, out);
    console.log(
      `${out}: ${
        results - failed
      } passed, ${failed} failed, ${skipped} skipped, from ${files.length} shards; complete: ${complete}`,
    );
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    Deno.exit(2);
  }
}
