/**
 * Joins the `--json` files of `verify --shard 1/N` ... `N/N` into one `verify --json` file
 * (complete only if every part is), refusing parts that do not fit together.
 *
 *   deno run -A tools/merge_verify.ts --out merged.json part1.json part2.json ...
 *
 * Exits 2 with one line on stderr when the parts do not fit or a file is not verify output.
 * @module
 */
import { mergeVerifyShards, type VerifyShardFile } from "../cli/verify_shard.ts";
import { UsageError } from "../cli/errors.ts";
import { writeFileAtomic } from "../io/atomic_write.ts";

/** Merges `files` into `out`; returns the merged file's case count and completeness. */
export async function mergeVerifyFiles(
  files: readonly string[],
  out: string,
): Promise<{ results: number; complete: boolean }> {
  const parts: VerifyShardFile<{ id: string }>[] = [];
  for (const file of files) {
    let value: unknown;
    try {
      value = JSON.parse(await Deno.readTextFile(file));
    } catch (e) {
      throw new UsageError(
        `Cannot merge ${file}: expected verify --json output, got ${(e as Error).message}`,
      );
    }
    const v = value as Partial<VerifyShardFile<{ id: string }>>;
    if (
      typeof v !== "object" || v === null || typeof v.adapter !== "string" ||
      typeof v.backend !== "string" || typeof v.complete !== "boolean" ||
      !Array.isArray(v.results) || !Array.isArray(v.skipped)
    ) {
      throw new UsageError(
        `Cannot merge ${file}: expected verify --json output (adapter, backend, complete, results, skipped), got something else`,
      );
    }
    parts.push(v as VerifyShardFile<{ id: string }>);
  }
  const merged = mergeVerifyShards(parts, files);
  await writeFileAtomic(out, JSON.stringify(merged, null, 2) + "\n");
  return { results: merged.results.length, complete: merged.complete };
}

if (import.meta.main) {
  const args = [...Deno.args];
  const at = args.indexOf("--out");
  try {
    if (at < 0 || !args[at + 1]) {
      throw new UsageError("Cannot merge: expected --out FILE and shard files, got no --out");
    }
    const out = args[at + 1]!;
    args.splice(at, 2);
    const { results, complete } = await mergeVerifyFiles(args, out);
    console.log(`${out}: ${results} results from ${args.length} shards, complete: ${complete}`);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    Deno.exit(2);
  }
}
