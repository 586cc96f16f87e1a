/**
 * `verify --shard I/N`: one of N disjoint parts of the selected cases, so a long `verify --all`
 * (minutes of float64 reference per big row, one CPU core each) runs as N processes side by
 * side on a many-core machine; `mergeVerifyShards` joins their `--json` files into one.
 * @module
 */
import { UsageError } from "./errors.ts";

/** Part `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** Reads `I/N` (1 <= I <= N); throws a `UsageError` naming the flag and the text otherwise. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || index < 1 || index > count) {
    throw new UsageError(`Cannot read --shard: expected I/N with 1 <= I <= N, got "${text}"`);
  }
  return { index, count };
}

/** `I/N`, as `parseShard` reads it. */
export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/**
 * The cases of part `shard`: every `count`-th case from the `index`-th, so the manifest's runs
 * of big rows (its 32k-prefix rows sit together) spread over the parts.
 */
export function shardOf<T>(cases: readonly T[], shard: Shard): T[] {
  return cases.filter((_, i) => i % shard.count === shard.index - 1);
}

/** The part of a `verify --json` file that merging reads. */
export interface VerifyShardFile<R extends { id: string }> {
  adapter: string;
  backend: string;
  complete: boolean;
  shard?: string;
  results: R[];
  skipped: { id: string; reason: string }[];
}

/**
 * Joins the `--json` files of `verify --shard 1/N` ... `N/N` (given in any order, `names` for
 * the messages) into one file's content, complete only if every part is. Throws a `UsageError`
 * naming the file when a part is missing, repeated, from another adapter or backend, not
 * sharded, or shares a case with another part.
 */
export function mergeVerifyShards<R extends { id: string }>(
  files: readonly VerifyShardFile<R>[],
  names: readonly string[],
): Omit<VerifyShardFile<R>, "shard"> {
  if (files.length === 0) throw new UsageError("Cannot merge: expected shard files, got none");
  const first = files[0]!;
  const seen = new Map<number, string>();
  const ids = new Map<string, string>();
  let count = 0;
  files.forEach((f, i) => {
    const name = names[i] ?? `file ${i + 1}`;
    if (!f.shard) {
      throw new UsageError(`Cannot merge ${name}: expected verify --shard output, got no shard`);
    }
    const shard = parseShard(f.shard);
    if (count === 0) count = shard.count;
    if (shard.count !== count) {
      throw new UsageError(
        `Cannot merge ${name}: expected a shard of ${count}, got ${formatShard(shard)}`,
      );
    }
    if (f.adapter !== first.adapter || f.backend !== first.backend) {
      throw new UsageError(
        `Cannot merge ${name}: expected a run on ${first.adapter} (${first.backend}), got one on ${f.adapter} (${f.backend})`,
      );
    }
    const twin = seen.get(shard.index);
    if (twin) {
      throw new UsageError(
        `Cannot merge ${name}: expected each shard once, got ${
          formatShard(shard)
        } again (also ${twin})`,
      );
    }
    seen.set(shard.index, name);
    for (const id of new Set([...f.results.map((r) => r.id), ...f.skipped.map((s) => s.id)])) {
      const other = ids.get(id);
      if (other) {
        throw new UsageError(
          `Cannot merge ${name}: expected disjoint shards, got case ${id} in ${other} too`,
        );
      }
      ids.set(id, name);
    }
  });
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !seen.has(i));
  if (missing.length > 0) {
    throw new UsageError(
      `Cannot merge: expected shards 1..${count}, got none for ${
        missing.map((i) => `${i}/${count}`).join(", ")
      }`,
    );
  }
  return {
    adapter: first.adapter,
    backend: first.backend,
    complete: files.every((f) => f.complete),
    results: files.flatMap((f) => f.results),
    skipped: files.flatMap((f) => f.skipped),
  };
}
