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

/** Where a verify run ran: the adapter's name and the WebGPU backend. */
export interface VerifyTarget {
  adapter: string;
  backend: string;
}

/**
 * "expected a run on A (b), got one on C (d)" when `got` ran elsewhere than `expected`, else
 * null: the check that both merging and resuming make before they join two runs' results.
 */
export function targetMismatch(expected: VerifyTarget, got: VerifyTarget): string | null {
  if (expected.adapter === got.adapter && expected.backend === got.backend) return null;
  return `expected a run on ${expected.adapter} (${expected.backend}), got one on ${got.adapter} (${got.backend})`;
}

/** Whether two runs selected the same case ids in the same order (a shard is a position in it). */
export function sameSelection(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** The part of a `verify --json` file that merging reads. */
export interface VerifyShardFile<R extends { id: string }> {
  adapter: string;
  backend: string;
  complete: boolean;
  shard?: string;
  /** The ids the run selected before dealing them into shards. */
  selected?: string[];
  results: R[];
  skipped: { id: string; reason: string }[];
}

/**
 * Joins the `--json` files of `verify --shard 1/N` ... `N/N` (given in any order, `names` for
 * the messages) into one file's content, in shard order. Every part must come from the same
 * adapter, backend and selection of cases, and hold only the cases its shard deals; the result
 * is complete when every part is, and then it holds every selected case. Throws a `UsageError`
 * naming the file otherwise.
 */
export function mergeVerifyShards<R extends { id: string }>(
  files: readonly VerifyShardFile<R>[],
  names: readonly string[],
): Omit<VerifyShardFile<R>, "shard" | "selected"> {
  if (files.length === 0) throw new UsageError("Cannot merge: expected shard files, got none");
  const first = files[0]!;
  const nameOf = (i: number) => names[i] ?? `file ${i + 1}`;
  const parts = files.map((f, i) => {
    const name = nameOf(i);
    if (!f.shard || !f.selected) {
      throw new UsageError(
        `Cannot merge ${name}: expected verify --shard output (shard, selected), got ${
          f.shard ? "no selected cases" : "no shard"
        }`,
      );
    }
    let shard: Shard;
    try {
      shard = parseShard(f.shard);
    } catch {
      throw new UsageError(
        `Cannot merge ${name}: expected shard I/N with 1 <= I <= N, got "${f.shard}"`,
      );
    }
    return { f, name, shard, selected: f.selected };
  });
  const count = parts[0]!.shard.count;
  const selected = parts[0]!.selected;
  const seen = new Map<number, string>();
  for (const { f, name, shard, selected: own } of parts) {
    if (shard.count !== count) {
      throw new UsageError(
        `Cannot merge ${name}: expected a shard of ${count}, got ${formatShard(shard)}`,
      );
    }
    const elsewhere = targetMismatch(first, f);
    if (elsewhere) throw new UsageError(`Cannot merge ${name}: ${elsewhere}`);
    if (!sameSelection(own, selected)) {
      throw new UsageError(
        `Cannot merge ${name}: expected the ${selected.length} cases ${
          parts[0]!.name
        } selected, got a selection of ${own.length} others (another selection or manifest)`,
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
    // The part holds its own shard's cases only, and all of them once it says it is complete.
    const dealt = shardOf(selected, shard);
    const mine = new Set(dealt);
    const ids = new Set([...f.results.map((r) => r.id), ...f.skipped.map((x) => x.id)]);
    const stray = [...ids].find((id) => !mine.has(id));
    if (stray) {
      throw new UsageError(
        `Cannot merge ${name}: expected only the cases shard ${
          formatShard(shard)
        } deals, got ${stray}`,
      );
    }
    if (f.complete && ids.size !== dealt.length) {
      throw new UsageError(
        `Cannot merge ${name}: expected all ${dealt.length} cases of complete shard ${
          formatShard(shard)
        }, got ${ids.size}`,
      );
    }
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !seen.has(i));
  if (missing.length > 0) {
    throw new UsageError(
      `Cannot merge: expected shards 1..${count}, got none for ${
        missing.map((i) => `${i}/${count}`).join(", ")
      }`,
    );
  }
  const ordered = [...parts].sort((a, b) => a.shard.index - b.shard.index).map((p) => p.f);
  return {
    adapter: first.adapter,
    backend: first.backend,
    complete: ordered.every((f) => f.complete),
    results: ordered.flatMap((f) => f.results),
    skipped: ordered.flatMap((f) => f.skipped),
  };
}
