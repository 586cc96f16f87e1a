/**
 * `verify --resume`: reads the `--json` file of an earlier run that was cut short (a device
 * time limit), so the run goes on after the cases it already verified instead of starting over.
 * @module
 */
import { z } from "zod";
import { UsageError } from "./errors.ts";
import { sameSelection, targetMismatch } from "./verify_shard.ts";

/** What an earlier `verify --json` file holds that a resumed run keeps. */
export interface VerifyResumeState<R> {
  adapter: string;
  backend: string;
  /** The `--shard` of the earlier run (`I/N`), or null when it verified every selected case. */
  shard: string | null;
  /** The ids a `--shard` run selected before sharding (null for a whole run). */
  selected: string[] | null;
  /** Every record of the earlier run, passed or failed, in its order. */
  results: R[];
  skipped: { id: string; reason: string }[];
  /** Case ids the earlier run finished (verified or skipped): the resumed run leaves them out. */
  done: Set<string>;
}

/** What every `verify --json` file holds (the fields resuming and merging read). */
const VerifyFileSchema = z.object({
  adapter: z.string(),
  backend: z.string(),
  complete: z.boolean(),
  /** `I/N` of a `--shard` run. */
  shard: z.string().optional(),
  /** A `--shard` run's selected case ids, in order, before they were dealt into shards. */
  selected: z.array(z.string()).optional(),
  results: z.array(z.looseObject({ id: z.string(), kernel: z.string(), ok: z.boolean() })),
  skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
});

/** A `verify --json` file as `parseVerifyFile` reads it. */
export type VerifyFile = z.infer<typeof VerifyFileSchema>;

/**
 * The content of a `verify --json` file from its `text`; throws a `UsageError` starting with
 * `context` (e.g. "Cannot resume from FILE") when it is not JSON or not verify output.
 */
export function parseVerifyFile(text: string, context: string): VerifyFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${context}: expected verify --json output, got no JSON`);
  }
  const parsed = VerifyFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(
      `${context}: expected verify --json output, got ${
        issue.path.join(".") || "the top level"
      }: ${issue.message}`,
    );
  }
  return parsed.data;
}

/**
 * The state of an earlier run from `file`, or null when there is no such file (a first run).
 * Throws a `UsageError` naming the file when it is not a `verify --json` output.
 */
export async function readVerifyResume<R extends { id: string }>(
  file: string,
): Promise<VerifyResumeState<R> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`Cannot resume from ${file}: ${(e as Error).message}`);
  }
  const data = parseVerifyFile(text, `Cannot resume from ${file}`);
  const { adapter, backend, results, skipped } = data;
  const shard = data.shard ?? null;
  const selected = data.selected ?? null;
  // The file is rewritten after each whole case, so every id in it was finished.
  const done = new Set([...results.map((r) => r.id), ...skipped.map((s) => s.id)]);
  return { adapter, backend, shard, selected, results: results as unknown as R[], skipped, done };
}

/**
 * Throws when the earlier run was made on another adapter or backend than this one, or over
 * another `--shard` of the cases (null: all of them) or of another selection of cases.
 */
export function checkResumeTarget(
  file: string,
  earlier: { adapter: string; backend: string; shard?: string | null; selected?: string[] | null },
  now: { adapter: string; backend: string; shard?: string | null; selected?: string[] | null },
): void {
  const elsewhere = targetMismatch(now, earlier);
  if (elsewhere) throw new UsageError(`Cannot resume from ${file}: ${elsewhere}`);
  const was = earlier.shard ?? null, is = now.shard ?? null;
  if (was !== is) {
    const say = (s: string | null) => s ? `--shard ${s}` : "no --shard";
    throw new UsageError(
      `Cannot resume from ${file}: expected a run with ${say(is)}, got ${say(was)}`,
    );
  } // A shard is a position in the selection: another selection deals other cases into it.
  const before = earlier.selected ?? null, after = now.selected ?? null;
  if (before && after && !sameSelection(before, after)) {
    throw new UsageError(
      `Cannot resume from ${file}: expected a shard of the same ${after.length} selected cases, got one of ${before.length} others (another selection or manifest)`,
    );
  }
}
