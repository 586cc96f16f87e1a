/**
 * The workload manifest (SPEC §5): a versioned JSON or YAML document, validated by a zod schema
 * plus cross-field checks (list lengths, capacity, head counts, page size). A bad manifest is a
 * {@linkcode ManifestError} (a `SyntaxError`) naming the file, the line where known and the
 * path of the offending field, e.g. `ops[0].workloads[3].page_size`.
 *
 * ```yaml
 * version: 1
 * ops:
 *   - op: paged_prefill_gqa
 *     description: Paged KV-cache GQA prefill with in-place append
 *     workloads:
 *       - label: llama-3.1-8b-prefill-paged-pg64-4k-old-512-new
 *         dtypes: [f16, bf16]
 *         cache_dtype: same        # same (= q dtype) | fp8_e4m3 | int8       default same
 *         batch: 1
 *         q_lens: 512              # a number (every request) or a list of length batch
 *         cache_lens: 4096         # likewise
 *         heads: 32
 *         heads_kv: 8
 *         head_dim: 128
 *         page_size: 64
 *         max_pages_per_req: 72
 *         is_causal: true          # default true
 *         softcap: null            # null or 0 = off                          default null
 *         sm_scale: null           # null = 1/sqrt(head_dim)                  default null
 *         page_order: contiguous   # contiguous | permuted | shared-prefix    default contiguous
 *         notes: free text         # optional
 *         tags: [seed]             # optional, e.g. default, decode, sweep
 *         verify_rows: 128         # optional: query rows sampled per request when verifying
 * ```
 * @module
 */
import { z } from "zod";
import { isPowerOfTwo, isSupportedHeadDim, SUPPORTED_HEAD_DIMS } from "../op/validate.ts";

/**
 * Version of the manifest format this module reads.
 *
 * @example
 * ```ts
 * import { MANIFEST_VERSION } from "./schema.ts";
 * const doc = { version: MANIFEST_VERSION, ops: [] };
 * if (doc.version !== 1) throw new Error();
 * ```
 */
export const MANIFEST_VERSION = 1;

/**
 * q dtypes a row may list.
 *
 * @example
 * ```ts
 * import { MANIFEST_Q_DTYPES } from "./schema.ts";
 * if (!MANIFEST_Q_DTYPES.includes("bf16")) throw new Error();
 * ```
 */
export const MANIFEST_Q_DTYPES = ["f16", "bf16"] as const;

/**
 * Cache dtypes a row may name; "same" means the cache has the q dtype.
 *
 * @example
 * ```ts
 * import { MANIFEST_CACHE_DTYPES } from "./schema.ts";
 * if (MANIFEST_CACHE_DTYPES.join() !== "same,fp8_e4m3,int8") throw new Error();
 * ```
 */
export const MANIFEST_CACHE_DTYPES = ["same", "fp8_e4m3", "int8"] as const;

/**
 * How the generator lays requests' logical pages onto the physical pool.
 *
 * @example
 * ```ts
 * import { PAGE_ORDERS } from "./schema.ts";
 * if (PAGE_ORDERS.join() !== "contiguous,permuted,shared-prefix") throw new Error();
 * ```
 */
export const PAGE_ORDERS = ["contiguous", "permuted", "shared-prefix"] as const;

/**
 * One of {@linkcode PAGE_ORDERS}.
 *
 * @example
 * ```ts
 * import type { PageOrder } from "./schema.ts";
 * const order: PageOrder = "shared-prefix";
 * console.log(order);
 * ```
 */
export type PageOrder = (typeof PAGE_ORDERS)[number];

/**
 * One of {@linkcode MANIFEST_CACHE_DTYPES}.
 *
 * @example
 * ```ts
 * import type { ManifestCacheDtype } from "./schema.ts";
 * const cache: ManifestCacheDtype = "same";
 * console.log(cache);
 * ```
 */
export type ManifestCacheDtype = (typeof MANIFEST_CACHE_DTYPES)[number];

const _LIST = { error: "must be a list" } as const;
const _MAPPING = { error: "must be a mapping of fields" } as const;

const _int = (min: number) =>
  z.number({ error: "must be a number" }).int({ error: "must be an integer" }).min(min, {
    error: `must be >= ${min}`,
  });

const _lengths = z.union([_int(0), z.array(_int(0)).min(1, { error: "must not be empty" })], {
  error: "must be an integer >= 0 or a list of them",
});

const _label = z.string({ error: "must be a string" }).regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, {
  error: "must be letters, digits and . _ + - (no spaces or slashes)",
});

const _tag = z.string({ error: "must be a string" }).regex(/^[a-z0-9][a-z0-9-]*$/, {
  error: "must be lowercase letters, digits and -",
});

const _WorkloadRowObject = z.strictObject({
  label: _label,
  dtypes: z.array(z.enum(MANIFEST_Q_DTYPES, { error: "must be f16 or bf16" }), _LIST)
    .min(1, { error: "must list at least one dtype" }),
  cache_dtype: z.enum(MANIFEST_CACHE_DTYPES, { error: "must be same, fp8_e4m3 or int8" })
    .default("same"),
  batch: _int(1),
  q_lens: _lengths,
  cache_lens: _lengths,
  heads: _int(1),
  heads_kv: _int(1),
  head_dim: _int(1),
  page_size: _int(1),
  max_pages_per_req: _int(1),
  is_causal: z.boolean({ error: "must be true or false" }).default(true),
  softcap: z.number({ error: "must be a number or null" }).min(0, { error: "must be >= 0" })
    .nullable().default(null),
  sm_scale: z.number({ error: "must be a number or null" }).positive({ error: "must be > 0" })
    .nullable().default(null),
  page_order: z.enum(PAGE_ORDERS, { error: "must be contiguous, permuted or shared-prefix" })
    .default("contiguous"),
  notes: z.string({ error: "must be a string" }).optional(),
  tags: z.array(_tag, _LIST).default([]),
  verify_rows: _int(1).optional(),
}, _MAPPING);

/**
 * A workload row as the schema outputs it (defaults filled in).
 *
 * @example
 * ```ts
 * import { type WorkloadRow, WorkloadRowSchema } from "./schema.ts";
 * const row: WorkloadRow = WorkloadRowSchema.parse({ label: "r", dtypes: ["f16"], batch: 1, q_lens: 4,
 *   cache_lens: 4, heads: 4, heads_kv: 4, head_dim: 8, page_size: 8, max_pages_per_req: 1 });
 * if (row.is_causal !== true) throw new Error();
 * ```
 */
export type WorkloadRow = z.output<typeof _WorkloadRowObject>;

/**
 * A workload row as written in a manifest (defaulted fields optional).
 *
 * @example
 * ```ts
 * import type { WorkloadRowInput } from "./schema.ts";
 * const row: WorkloadRowInput = { label: "r", dtypes: ["bf16"], batch: 2, q_lens: [1, 2],
 *   cache_lens: 9, heads: 8, heads_kv: 1, head_dim: 64, page_size: 16, max_pages_per_req: 1 };
 * console.log(row.label);
 * ```
 */
export type WorkloadRowInput = z.input<typeof _WorkloadRowObject>;

/**
 * One cross-field problem of a row: the field's key within the row and a message.
 *
 * @example
 * ```ts
 * import type { RowIssue } from "./schema.ts";
 * const issue: RowIssue = { path: ["page_size"], message: "must be a power of two, got 48" };
 * console.log(issue.message);
 * ```
 */
export interface RowIssue {
  path: Array<string | number>;
  message: string;
}

/**
 * Cross-field checks of one (type-valid) row: list lengths against `batch`, `heads % heads_kv`,
 * supported head dim, power-of-two page size, per-request capacity and duplicate dtypes.
 * Returns every issue found (empty when the row is consistent).
 *
 * @example
 * ```ts
 * import { rowIssues, WorkloadRowSchema } from "./schema.ts";
 * const row = WorkloadRowSchema.parse({
 *   label: "x", dtypes: ["f16"], batch: 2, q_lens: [4, 4], cache_lens: 8,
 *   heads: 8, heads_kv: 2, head_dim: 64, page_size: 16, max_pages_per_req: 1,
 * });
 * if (rowIssues(row).length !== 0) throw new Error("unexpected");
 * ```
 */
export function rowIssues(row: WorkloadRow): RowIssue[] {
  const issues: RowIssue[] = [];
  const seen = new Set<string>();
  row.dtypes.forEach((d, i) => {
    if (seen.has(d)) issues.push({ path: ["dtypes", i], message: `lists ${d} twice` });
    seen.add(d);
  });
  for (const key of ["q_lens", "cache_lens"] as const) {
    const v = row[key];
    if (Array.isArray(v) && v.length !== row.batch) {
      issues.push({
        path: [key],
        message: `has ${v.length} entries but batch is ${row.batch}`,
      });
    }
  }
  if (row.heads % row.heads_kv !== 0) {
    issues.push({
      path: ["heads_kv"],
      message: `must divide heads ${row.heads}, got ${row.heads_kv}`,
    });
  }
  if (!isSupportedHeadDim(row.head_dim)) {
    issues.push({
      path: ["head_dim"],
      message: `must be ${SUPPORTED_HEAD_DIMS.description}, got ${row.head_dim}`,
    });
  }
  if (!isPowerOfTwo(row.page_size)) {
    issues.push({ path: ["page_size"], message: `must be a power of two, got ${row.page_size}` });
  } else if (issues.every((i) => i.path[0] !== "q_lens" && i.path[0] !== "cache_lens")) {
    const capacity = row.max_pages_per_req * row.page_size;
    const qLens = resolveLengths(row.q_lens, row.batch);
    const cacheLens = resolveLengths(row.cache_lens, row.batch);
    for (let b = 0; b < row.batch; b++) {
      const need = qLens[b]! + cacheLens[b]!;
      if (need > capacity) {
        issues.push({
          path: ["max_pages_per_req"],
          message:
            `holds ${row.max_pages_per_req} pages * page_size ${row.page_size} = ${capacity}` +
            ` slots but request ${b} needs ${need} (cache_len ${cacheLens[b]} + q_len ${qLens[b]})`,
        });
        break;
      }
    }
  }
  return issues;
}

/**
 * `q_lens` / `cache_lens` of a row as one number per request.
 *
 * @example
 * ```ts
 * import { resolveLengths } from "./schema.ts";
 * if (resolveLengths(512, 3).join() !== "512,512,512") throw new Error();
 * if (resolveLengths([1, 2], 2).join() !== "1,2") throw new Error();
 * ```
 */
export function resolveLengths(v: number | readonly number[], batch: number): number[] {
  return typeof v === "number" ? new Array<number>(batch).fill(v) : [...v];
}

/**
 * Schema of one workload row, cross-field checks included (see {@linkcode rowIssues}).
 *
 * @example
 * ```ts
 * import { WorkloadRowSchema } from "./schema.ts";
 * const r = WorkloadRowSchema.safeParse({
 *   label: "bad", dtypes: ["f16"], batch: 1, q_lens: 4, cache_lens: 4, heads: 8,
 *   heads_kv: 2, head_dim: 64, page_size: 48, max_pages_per_req: 1,
 * });
 * if (r.success) throw new Error("page_size 48 must be rejected");
 * ```
 */
export const WorkloadRowSchema = _WorkloadRowObject.superRefine((row, ctx) => {
  for (const issue of rowIssues(row)) {
    ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
  }
});

/**
 * Schema of one op entry: the op name, a description and its workload rows.
 *
 * @example
 * ```ts
 * import { OpEntrySchema } from "./schema.ts";
 * const ok = OpEntrySchema.safeParse({ op: "paged_prefill_gqa", description: "d", workloads: [] });
 * if (ok.success) throw new Error("an op needs at least one workload");
 * ```
 */
export const OpEntrySchema = z.strictObject({
  op: z.literal("paged_prefill_gqa", { error: "must be paged_prefill_gqa" }),
  description: z.string({ error: "must be a string" }),
  workloads: z.array(WorkloadRowSchema, _LIST).min(1, {
    error: "must list at least one workload",
  }),
}, _MAPPING);

/**
 * Schema of a whole manifest: `{ version: 1, ops: [...] }`; labels are unique across it.
 *
 * @example
 * ```ts
 * import { ManifestSchema } from "./schema.ts";
 * const m = ManifestSchema.parse({
 *   version: 1,
 *   ops: [{
 *     op: "paged_prefill_gqa", description: "demo",
 *     workloads: [{
 *       label: "tiny", dtypes: ["bf16"], batch: 1, q_lens: 8, cache_lens: 8, heads: 4,
 *       heads_kv: 1, head_dim: 32, page_size: 8, max_pages_per_req: 2,
 *     }],
 *   }],
 * });
 * if (m.ops[0]!.workloads[0]!.cache_dtype !== "same") throw new Error("default not applied");
 * ```
 */
export const ManifestSchema = z.strictObject({
  version: z.literal(MANIFEST_VERSION, {
    error: (issue) =>
      `must be ${MANIFEST_VERSION} (the supported version), got ${String(issue.input)}`,
  }),
  ops: z.array(OpEntrySchema, _LIST).min(1, { error: "must list at least one op" }),
}, _MAPPING).superRefine((m, ctx) => {
  const first = new Map<string, string>();
  m.ops.forEach((op, i) =>
    op.workloads.forEach((row, j) => {
      const at = formatPath(["ops", i, "workloads", j]);
      const previous = first.get(row.label);
      if (previous !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["ops", i, "workloads", j, "label"],
          message: `duplicates ${row.label} of ${previous}`,
        });
      } else first.set(row.label, at);
    })
  );
});

/**
 * A validated manifest (defaults filled in).
 *
 * @example
 * ```ts
 * import type { Manifest } from "./schema.ts";
 * import { loadManifest } from "./loader.ts";
 * const m: Manifest = loadManifest();
 * console.log(m.ops[0]!.workloads.length);
 * ```
 */
export type Manifest = z.output<typeof ManifestSchema>;

/**
 * An op entry of a validated manifest.
 *
 * @example
 * ```ts
 * import type { OpEntry } from "./schema.ts";
 * import { loadManifest } from "./loader.ts";
 * const op: OpEntry = loadManifest().ops[0]!;
 * if (op.op !== "paged_prefill_gqa") throw new Error();
 * ```
 */
export type OpEntry = z.output<typeof OpEntrySchema>;

/**
 * A path such as `ops[0].workloads[3].page_size` from its keys.
 *
 * @example
 * ```ts
 * import { formatPath } from "./schema.ts";
 * if (formatPath(["ops", 0, "workloads", 3, "page_size"]) !== "ops[0].workloads[3].page_size") {
 *   throw new Error();
 * }
 * ```
 */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/**
 * One problem of a manifest: where (path, line when known) and what.
 *
 * @example
 * ```ts
 * import type { ManifestIssue } from "./schema.ts";
 * const issue: ManifestIssue = { path: "ops[0].workloads[3].page_size", line: 40, message: "must be a power of two, got 48" };
 * console.log(issue.path);
 * ```
 */
export interface ManifestIssue {
  /** e.g. `ops[0].workloads[3].page_size`; "" for the document itself. */
  path: string;
  /** 1-based line in the file, when known. */
  line?: number;
  message: string;
}

/**
 * A manifest that cannot be used: YAML/JSON syntax, schema or cross-field errors. The message
 * is one line naming the file, line, path and problem of the first issue; `issues` has all.
 *
 * @example
 * ```ts
 * import { ManifestError } from "./schema.ts";
 * const e = new ManifestError("m.yaml", [{ path: "ops[0].workloads[3].page_size", line: 40,
 *   message: "must be a power of two, got 48" }]);
 * if (!(e instanceof SyntaxError) || e.path !== "ops[0].workloads[3].page_size") throw e;
 * ```
 */
export class ManifestError extends SyntaxError {
  override name = "ManifestError";
  /** The manifest's file name (or the name given to `parseManifest`). */
  readonly file: string;
  /** Path of the first issue. */
  readonly path: string;
  /** Line of the first issue, when known. */
  readonly line?: number;
  /** Every issue found. */
  readonly issues: readonly ManifestIssue[];

  constructor(file: string, issues: readonly ManifestIssue[]) {
    const first = issues[0] ?? { path: "", message: "is invalid" };
    const where = first.line === undefined ? file : `${file}:${first.line}`;
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
    const subject = first.path === "" ? "" : `${first.path}: `;
    super(`Invalid workload manifest ${where}: ${subject}${first.message}${more}`);
    this.file = file;
    this.path = first.path;
    if (first.line !== undefined) this.line = first.line;
    this.issues = issues;
  }
}

/**
 * Validates parsed manifest data. `locate` maps a key path to a 1-based line (the loader passes
 * one built from the YAML document).
 *
 * @throws {ManifestError} on any schema or cross-field problem, naming `file` and the path.
 *
 * @example
 * ```ts
 * import { ManifestError, validateManifest } from "./schema.ts";
 * try {
 *   validateManifest({ version: 2, ops: [] }, "m.json");
 *   throw new Error("expected a ManifestError");
 * } catch (e) {
 *   if (!(e instanceof ManifestError) || e.path !== "version") throw e;
 * }
 * ```
 */
export function validateManifest(
  data: unknown,
  file: string,
  locate?: (path: ReadonlyArray<PropertyKey>) => number | undefined,
): Manifest {
  const result = ManifestSchema.safeParse(data);
  if (result.success) return result.data;
  const issues: ManifestIssue[] = result.error.issues.map((issue) => {
    const keys: PropertyKey[] = [...issue.path];
    let message = issue.message;
    if (issue.code === "unrecognized_keys") {
      const names = issue.keys;
      if (names.length === 1) {
        keys.push(names[0]!);
        message = "is not a known field";
      } else message = `has unknown fields ${names.join(", ")}`;
    }
    const out: ManifestIssue = { path: formatPath(keys), message };
    const line = locate?.(keys);
    if (line !== undefined) out.line = line;
    return out;
  });
  throw new ManifestError(file, issues);
}
