/**
 * Loading the workload manifest and turning it into cases: one {@linkcode WorkloadCase} per
 * (row, q dtype), filtered by label, tag, page size or dtype; or one ad-hoc case built from
 * CLI-style options.
 * @module
 */
import { LineCounter, parseDocument } from "yaml";
import type { CacheDtype, QDtype } from "../op/types.ts";
import {
  type Manifest,
  ManifestError,
  type PageOrder,
  resolveLengths,
  validateManifest,
  type WorkloadRow,
  WorkloadRowSchema,
} from "./schema.ts";
import { EMBEDDED_MANIFEST_YAML } from "./manifest_embedded.ts";

/**
 * Location of the default manifest, beside this module.
 *
 * @example
 * ```ts
 * import { DEFAULT_MANIFEST_URL } from "./loader.ts";
 * if (!DEFAULT_MANIFEST_URL.pathname.endsWith("/workloads/manifest.yaml")) throw new Error();
 * ```
 */
export const DEFAULT_MANIFEST_URL: URL = new URL("./manifest.yaml", import.meta.url);

/**
 * Name the embedded default manifest goes by in error messages.
 *
 * @example
 * ```ts
 * import { EMBEDDED_MANIFEST_NAME, parseManifest } from "./loader.ts";
 * import { EMBEDDED_MANIFEST_YAML } from "./manifest_embedded.ts";
 * const m = parseManifest(EMBEDDED_MANIFEST_YAML, EMBEDDED_MANIFEST_NAME);
 * if (m.version !== 1) throw new Error();
 * ```
 */
export const EMBEDDED_MANIFEST_NAME = "workloads/manifest.yaml (embedded)";

/**
 * One runnable workload: a manifest row (or ad-hoc flags) at one q dtype, fully resolved.
 *
 * @example
 * ```ts
 * import { adHocCase, type WorkloadCase } from "./loader.ts";
 * const c: WorkloadCase = adHocCase({ batch: 2, qLen: [3, 5] });
 * if (c.id !== `${c.label}/f16` || c.qLens.join() !== "3,5") throw new Error();
 * ```
 */
export interface WorkloadCase {
  /** `${label}/${qDtype}`, unique within a manifest. */
  id: string;
  label: string;
  op: "paged_prefill_gqa";
  /** Where the case came from. */
  source: "manifest" | "ad-hoc";
  qDtype: QDtype;
  /** Resolved cache dtype ("same" becomes the q dtype). */
  cacheDtype: CacheDtype;
  /** B */
  batch: number;
  /** q_len per request. */
  qLens: readonly number[];
  /** old length (cache_seqlens) per request. */
  cacheLens: readonly number[];
  /** H */
  numHeads: number;
  /** H_kv */
  numKvHeads: number;
  /** D */
  headDim: number;
  pageSize: number;
  maxPagesPerReq: number;
  isCausal: boolean;
  /** null = off. */
  softcap: number | null;
  /** null = 1/sqrt(D). */
  smScale: number | null;
  pageOrder: PageOrder;
  tags: readonly string[];
  notes?: string;
  /** Query rows to sample per request when verifying (absent: all rows). */
  verifyRows?: number;
}

function _lineLocator(text: string) {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const locate = (path: ReadonlyArray<PropertyKey>): number | undefined => {
    const keys = [...path];
    for (;;) {
      const node = keys.length === 0 ? doc.contents : doc.getIn(keys as unknown[], true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return lineCounter.linePos(range[0]).line;
      if (keys.length === 0) return undefined;
      keys.pop();
    }
  };
  return { doc, lineCounter, locate };
}

/**
 * Parses and validates manifest text (YAML, or JSON, which YAML reads too).
 *
 * @throws {ManifestError} on a syntax, schema or cross-field error, naming `name`, the line and
 *   the path of the offending field.
 *
 * @example
 * ```ts
 * import { parseManifest } from "./loader.ts";
 * const m = parseManifest(`
 * version: 1
 * ops:
 *   - op: paged_prefill_gqa
 *     description: demo
 *     workloads:
 *       - { label: tiny, dtypes: [f16], batch: 1, q_lens: 8, cache_lens: 24, heads: 4,
 *           heads_kv: 2, head_dim: 64, page_size: 16, max_pages_per_req: 2 }
 * `, "demo.yaml");
 * if (m.ops[0]!.workloads[0]!.page_order !== "contiguous") throw new Error();
 * ```
 */
export function parseManifest(text: string, name: string): Manifest {
  const { doc, locate } = _lineLocator(text);
  if (doc.errors.length > 0) {
    throw new ManifestError(
      name,
      doc.errors.map((e) => {
        const issue = {
          path: "",
          message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
        };
        const line = e.linePos?.[0]?.line;
        return line === undefined ? issue : { ...issue, line };
      }),
    );
  }
  const data = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  return validateManifest(data, name, locate);
}

/**
 * Reads and validates a manifest file (JSON or YAML). Without `path`, the default manifest
 * beside this module; when that file cannot be read (a compiled binary, no read permission)
 * the embedded copy ({@linkcode EMBEDDED_MANIFEST_YAML}) is used, so a binary needs no file.
 *
 * @throws {ManifestError} on a bad manifest; `Deno.errors.NotFound` etc. for an unreadable `path`.
 *
 * @example
 * ```ts
 * import { loadManifest } from "./loader.ts";
 * const m = loadManifest();
 * if (m.version !== 1) throw new Error();
 * ```
 */
export function loadManifest(path?: string | URL): Manifest {
  if (path === undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(DEFAULT_MANIFEST_URL);
    } catch {
      return parseManifest(EMBEDDED_MANIFEST_YAML, EMBEDDED_MANIFEST_NAME);
    }
    return parseManifest(text, "workloads/manifest.yaml");
  }
  const name = path instanceof URL ? path.pathname : path;
  return parseManifest(Deno.readTextFileSync(path), name);
}

/**
 * Which cases {@linkcode expandCases} keeps; every field given must match (AND), and a list
 * matches when any entry does (OR).
 *
 * @example
 * ```ts
 * import { type CaseFilter, expandCases, loadManifest } from "./loader.ts";
 * const filter: CaseFilter = { label: "llama*", pageSize: [16, 32], qDtype: "bf16" };
 * const cases = expandCases(loadManifest(), filter);
 * if (!cases.every((c) => c.qDtype === "bf16" && c.pageSize <= 32)) throw new Error();
 * ```
 */
export interface CaseFilter {
  /**
   * Label or case id patterns: a pattern with `*` or `?` is a glob over the whole label or id,
   * otherwise a substring of the id (`llama`, `pg64`, `seed-row/bf16`).
   */
  label?: string | readonly string[];
  /** Exact labels or case ids (`--workload`). */
  id?: string | readonly string[];
  /** Rows carrying one of these tags. */
  tag?: string | readonly string[];
  /** page_size equal to one of these. */
  pageSize?: number | readonly number[];
  /** Resolved cache dtype, or "same" (cache = q dtype); "fp8" is accepted for fp8_e4m3. */
  cacheDtype?: CacheDtype | "same" | "fp8" | ReadonlyArray<CacheDtype | "same" | "fp8">;
  /** q dtype. */
  qDtype?: QDtype | readonly QDtype[];
}

function _list<T>(v: T | readonly T[] | undefined): readonly T[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v : [v as T];
}

function _globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/**
 * True when `c` passes `filter` (see {@linkcode CaseFilter}).
 *
 * @example
 * ```ts
 * import { adHocCase, matchesFilter } from "./loader.ts";
 * const c = adHocCase({ pageSize: 32 });
 * if (!matchesFilter(c, { pageSize: 32, label: "adhoc*" })) throw new Error();
 * ```
 */
export function matchesFilter(c: WorkloadCase, filter: CaseFilter = {}): boolean {
  const labels = _list(filter.label);
  if (labels && labels.length > 0) {
    const hit = labels.some((p) =>
      /[*?]/.test(p)
        ? _globToRegExp(p).test(c.label) || _globToRegExp(p).test(c.id)
        : c.id.includes(p)
    );
    if (!hit) return false;
  }
  const ids = _list(filter.id);
  if (ids && ids.length > 0 && !ids.some((x) => x === c.id || x === c.label)) return false;
  const tags = _list(filter.tag);
  if (tags && tags.length > 0 && !tags.some((t) => c.tags.includes(t))) return false;
  const pages = _list(filter.pageSize);
  if (pages && pages.length > 0 && !pages.includes(c.pageSize)) return false;
  const caches = _list(filter.cacheDtype);
  if (caches && caches.length > 0) {
    const hit = caches.some((d) =>
      d === "same" ? c.cacheDtype === c.qDtype : (d === "fp8" ? "fp8_e4m3" : d) === c.cacheDtype
    );
    if (!hit) return false;
  }
  const qs = _list(filter.qDtype);
  if (qs && qs.length > 0 && !qs.includes(c.qDtype)) return false;
  return true;
}

/**
 * The case of one manifest row at one q dtype.
 *
 * @example
 * ```ts
 * import { caseFromRow } from "./loader.ts";
 * import { WorkloadRowSchema } from "./schema.ts";
 * const row = WorkloadRowSchema.parse({ label: "r", dtypes: ["bf16"], cache_dtype: "int8",
 *   batch: 2, q_lens: [3, 5], cache_lens: 9, heads: 4, heads_kv: 4, head_dim: 8, page_size: 4,
 *   max_pages_per_req: 4 });
 * const c = caseFromRow(row, "bf16");
 * if (c.id !== "r/bf16" || c.cacheDtype !== "int8" || c.cacheLens.join() !== "9,9") throw new Error();
 * ```
 */
export function caseFromRow(
  row: WorkloadRow,
  qDtype: QDtype,
  source: WorkloadCase["source"] = "manifest",
): WorkloadCase {
  const c: WorkloadCase = {
    id: `${row.label}/${qDtype}`,
    label: row.label,
    op: "paged_prefill_gqa",
    source,
    qDtype,
    cacheDtype: row.cache_dtype === "same" ? qDtype : row.cache_dtype,
    batch: row.batch,
    qLens: resolveLengths(row.q_lens, row.batch),
    cacheLens: resolveLengths(row.cache_lens, row.batch),
    numHeads: row.heads,
    numKvHeads: row.heads_kv,
    headDim: row.head_dim,
    pageSize: row.page_size,
    maxPagesPerReq: row.max_pages_per_req,
    isCausal: row.is_causal,
    softcap: row.softcap,
    smScale: row.sm_scale,
    pageOrder: row.page_order,
    tags: [...row.tags],
  };
  if (row.notes !== undefined) c.notes = row.notes;
  if (row.verify_rows !== undefined) c.verifyRows = row.verify_rows;
  return c;
}

/**
 * Every case of a manifest, one per (row, q dtype) in manifest order, kept by `filter`.
 *
 * @example
 * ```ts
 * import { expandCases, loadManifest } from "./loader.ts";
 * const cases = expandCases(loadManifest(), { tag: "default" });
 * if (cases.length === 0 || !cases.every((c) => c.tags.includes("default"))) throw new Error();
 * ```
 */
export function expandCases(manifest: Manifest, filter?: CaseFilter): WorkloadCase[] {
  const out: WorkloadCase[] = [];
  for (const op of manifest.ops) {
    for (const row of op.workloads) {
      for (const qDtype of row.dtypes) {
        const c = caseFromRow(row, qDtype);
        if (matchesFilter(c, filter)) out.push(c);
      }
    }
  }
  return out;
}

/**
 * CLI-style options of an ad-hoc case; each has the default shown.
 *
 * @example
 * ```ts
 * import { adHocCase, type AdHocOptions } from "./loader.ts";
 * const options: AdHocOptions = { heads: 32, headsKv: 8, headDim: 128, pageSize: 64 };
 * if (adHocCase(options).numHeads !== 32) throw new Error();
 * ```
 */
export interface AdHocOptions {
  /** @default 2 */
  batch?: number;
  /** @default 8 */
  heads?: number;
  /** @default 2 */
  headsKv?: number;
  /** @default 64 */
  headDim?: number;
  /** New tokens per request: one number or one per request. @default 64 */
  qLen?: number | readonly number[];
  /** Old tokens per request: one number or one per request. @default 200 */
  cacheLen?: number | readonly number[];
  /** @default 16 */
  pageSize?: number;
  /** @default ceil(max(q_len + cache_len) / page_size) */
  maxPagesPerReq?: number;
  /** @default true */
  causal?: boolean;
  /**
   * Spread single-number lengths over the batch: request b gets
   * `q_len * (B - b) / B` and `cache_len * (b + 1) / B` (rounded; q_len >= 1). @default false
   */
  varlen?: boolean;
  /** null or 0 = off. @default null */
  softcap?: number | null;
  /** null = 1/sqrt(D). @default null */
  smScale?: number | null;
  /** @default "f16" */
  dtype?: QDtype;
  /**
   * "same" = the q dtype (as is f16/bf16 equal to `dtype`); "fp8" is accepted for fp8_e4m3.
   * @default "same"
   */
  cacheDtype?: CacheDtype | "same" | "fp8";
  /** @default "contiguous" */
  pageOrder?: PageOrder;
  /** @default a label spelling the shape, e.g. `adhoc-b2-h8-kv2-d64-q64-old200-p16-f16` */
  label?: string;
}

const _FLAG_OF: Readonly<Record<string, string>> = {
  batch: "--batch",
  heads: "--heads",
  heads_kv: "--heads-kv",
  head_dim: "--head-dim",
  q_lens: "--q-len",
  cache_lens: "--cache-len",
  page_size: "--page-size",
  max_pages_per_req: "--max-pages",
  is_causal: "--causal",
  softcap: "--softcap",
  sm_scale: "--sm-scale",
  dtypes: "--dtype",
  cache_dtype: "--cache-dtype",
  page_order: "--page-order",
  label: "--label",
};

function _adHocCacheDtype(
  cache: CacheDtype | "same" | "fp8",
  dtype: QDtype,
): "same" | "fp8_e4m3" | "int8" {
  if (cache === "fp8") return "fp8_e4m3";
  if (cache === "f16" || cache === "bf16") {
    if (cache === dtype) return "same";
    throw new RangeError(
      `Cannot build ad-hoc workload: --cache-dtype ${cache} must equal --dtype ${dtype} (a 16-bit cache has the q dtype)`,
    );
  }
  return cache;
}

/**
 * One case from CLI-style options (defaults B2, H 8/2, D 64, q 64, old 200, page 16, f16,
 * causal, contiguous). Checked like a manifest row.
 *
 * @throws {RangeError} for an inconsistent or out-of-range option, naming its flag
 *   (`Cannot build ad-hoc workload: --page-size must be a power of two, got 48`).
 * @throws {TypeError} for an option of the wrong type or an unknown enum value.
 *
 * @example
 * ```ts
 * import { adHocCase } from "./loader.ts";
 * const c = adHocCase({ batch: 3, qLen: 128, varlen: true, cacheDtype: "fp8" });
 * if (c.qLens.join() !== "128,85,43" || c.cacheDtype !== "fp8_e4m3") throw new Error();
 * ```
 */
export function adHocCase(options: AdHocOptions = {}): WorkloadCase {
  const batch = options.batch ?? 2;
  const pageSize = options.pageSize ?? 16;
  const spread = (v: number | readonly number[], f: (b: number) => number) =>
    typeof v === "number" && options.varlen && Number.isInteger(batch) && batch > 0
      ? Array.from({ length: batch }, (_, b) => f(b))
      : v;
  const qIn = options.qLen ?? 64;
  const oldIn = options.cacheLen ?? 200;
  const qLens = spread(qIn, (b) => Math.max(1, Math.round((qIn as number) * (batch - b) / batch)));
  const cacheLens = spread(oldIn, (b) => Math.round((oldIn as number) * (b + 1) / batch));
  const dtype = options.dtype ?? "f16";
  const cacheDtype = _adHocCacheDtype(options.cacheDtype ?? "same", dtype);
  const causal = options.causal ?? true;
  let maxPages = options.maxPagesPerReq;
  if (maxPages === undefined && Number.isInteger(batch) && batch > 0) {
    const q = typeof qLens === "number" ? new Array<number>(batch).fill(qLens) : qLens;
    const o = typeof cacheLens === "number" ? new Array<number>(batch).fill(cacheLens) : cacheLens;
    let most = 1;
    for (let b = 0; b < batch; b++) most = Math.max(most, (q[b] ?? 0) + (o[b] ?? 0));
    maxPages = Math.max(1, Math.ceil(most / pageSize));
  }
  const lengthsTag = (v: number | readonly number[]) =>
    typeof v === "number"
      ? String(v)
      : (options.varlen ? `${v[0]}-${v[v.length - 1]}` : v.join("_"));
  const label = options.label ??
    [
      "adhoc",
      `b${batch}`,
      `h${options.heads ?? 8}`,
      `kv${options.headsKv ?? 2}`,
      `d${options.headDim ?? 64}`,
      `q${lengthsTag(qLens)}`,
      `old${lengthsTag(cacheLens)}`,
      `p${pageSize}`,
      cacheDtype === "same" ? dtype : `${dtype}-${cacheDtype === "fp8_e4m3" ? "fp8" : cacheDtype}`,
      ...(causal ? [] : ["noncausal"]),
      ...(options.softcap ? [`softcap${options.softcap}`] : []),
      ...(options.pageOrder && options.pageOrder !== "contiguous" ? [options.pageOrder] : []),
    ].join("-").replace(/[^A-Za-z0-9._+-]/g, "_");
  const raw = {
    label,
    dtypes: [dtype],
    cache_dtype: cacheDtype,
    batch,
    q_lens: qLens,
    cache_lens: cacheLens,
    heads: options.heads ?? 8,
    heads_kv: options.headsKv ?? 2,
    head_dim: options.headDim ?? 64,
    page_size: pageSize,
    max_pages_per_req: maxPages ?? 1,
    is_causal: causal,
    softcap: options.softcap ?? null,
    sm_scale: options.smScale ?? null,
    page_order: options.pageOrder ?? "contiguous",
    tags: ["ad-hoc"],
  };
  const result = WorkloadRowSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? "");
    const flag = _FLAG_OF[key] ?? key;
    const value = (raw as Record<string, unknown>)[key];
    const shown = key === "dtypes" ? dtype : JSON.stringify(value);
    const typeProblem = issue.code === "invalid_type" || issue.code === "invalid_value" ||
      issue.code === "invalid_union";
    const message = `Cannot build ad-hoc workload: ${flag} ${issue.message}` +
      (issue.code === "custom" ? "" : ` (got ${shown})`);
    throw typeProblem ? new TypeError(message) : new RangeError(message);
  }
  return caseFromRow(result.data, dtype, "ad-hoc");
}
