/**
 * What the decode kernel's generated WGSL depends on (`DecodeSpec`), the key that spells it, the
 * lane/thread geometry derived from it, and the choice of a spec for a problem on a device.
 * Runtime sizes (batch, lengths, pages, scales) travel in a uniform buffer and the work list.
 * @module
 */
import type { CacheDtype, Problem, QDtype } from "../../op/types.ts";
import { DTYPE_KEY } from "../_shared.ts";

/** Keys each key group takes per step (one vec4 of partial dots per row): fixed. */
export const DECODE_KEYS_PER_GROUP = 4;

/**
 * Invocations per workgroup the default spec aims for: 64, i.e. 4 key groups at D 128. On the
 * H200 (Deno's wgpu) 4 key groups with ~2048 items ran the decode rows 7-16% faster than 8 with
 * ~4096: q1 0.377 -> 0.327 ms, q4 0.893 -> 0.751, fp8 1.364 -> 1.262, int8 0.929 -> 0.811
 * (docs/PERF_LOG.md, decode tune of 2026-11-21).
 */
export const DECODE_TARGET_THREADS = 64;

/** Everything that changes the generated decode WGSL. */
export interface DecodeSpec {
  qDtype: QDtype;
  cacheDtype: CacheDtype;
  /** D; a multiple of `dimsPerLane`, at most 256. */
  headDim: number;
  /** Query rows per work item: flattened (query, head-in-group) rows of one KV head. */
  rows: number;
  /**
   * Head dims each lane owns (q, K, V and O): 8 (one 16-byte load of a 16-bit row, 8 bytes of
   * a 1-byte row) or 4. A key row is read by `headDim / dimsPerLane` lanes.
   */
  dimsPerLane: 4 | 8;
  /** Key groups per workgroup; each takes `DECODE_KEYS_PER_GROUP` keys per step. */
  keyGroups: number;
  /** Causal masking of the chunk's own keys. */
  causal: boolean;
  /** Softcap on (tanh) or off. */
  softcap: boolean;
  /** page_size is a multiple of the keys of one step: one block_table lookup per step. */
  pageAligned: boolean;
  /** Write unnormalised partial results (m, l, O) for the combine pass instead of o. */
  split: boolean;
}

/** Geometry derived from a spec; every field is a compile-time constant of the WGSL. */
export interface DecodeGeometry {
  /** Lanes per key row: headDim / dimsPerLane. */
  lanes: number;
  /** Invocations per workgroup: keyGroups * lanes. */
  threads: number;
  /** Keys per step of the workgroup: keyGroups * DECODE_KEYS_PER_GROUP. */
  stepKeys: number;
  /** vec4 chunks each lane owns: dimsPerLane / 4. */
  chunks: number;
  /** Rows each reducing lane owns: ceil(rows / lanes). */
  rowsPerLane: number;
  /** Bytes of workgroup memory the kernel declares. */
  workgroupBytes: number;
}

/** Why `spec` cannot be generated, or null. */
export function decodeSpecProblem(spec: DecodeSpec): string | null {
  const { headDim: D, dimsPerLane: dpl, rows, keyGroups } = spec;
  if (dpl !== 4 && dpl !== 8) return `dimsPerLane ${dpl} is not 4 or 8`;
  if (D % dpl !== 0 || D < dpl || D > 256) {
    return `head_dim ${D} is not a multiple of ${dpl} in [${dpl}, 256]`;
  }
  if (!Number.isInteger(rows) || rows < 1 || rows > 16) return `rows ${rows} not in [1, 16]`;
  if (!Number.isInteger(keyGroups) || keyGroups < 1) return `keyGroups ${keyGroups} < 1`;
  if (keyGroups * (D / dpl) < rows) {
    return `${keyGroups * (D / dpl)} threads are fewer than ${rows} rows`;
  }
  return null;
}

/** The derived geometry of a valid spec. Throws a RangeError for an invalid one. */
export function decodeGeometry(spec: DecodeSpec): DecodeGeometry {
  const why = decodeSpecProblem(spec);
  if (why) throw new RangeError(`Cannot build decode kernel ${decodeKey(spec)}: ${why}`);
  const lanes = spec.headDim / spec.dimsPerLane;
  const kg = spec.keyGroups;
  const R = spec.rows;
  return {
    lanes,
    threads: kg * lanes,
    stepKeys: kg * DECODE_KEYS_PER_GROUP,
    chunks: spec.dimsPerLane / 4,
    rowsPerLane: Math.ceil(R / lanes),
    workgroupBytes: kg * R * (lanes + 1) * 16 + // partial dots (then the O merge)
      kg * R * 16 + // P per group and row (then m, l)
      kg * R * 4 + // alpha per group and row (then the merge factors)
      R * 8, // merged (m, l) per row
  };
}

/**
 * The key spelling every spec field; labels the module, pipeline and buffers.
 *
 * @example
 * ```ts
 * import { decodeKey } from "./spec.ts";
 * const key = decodeKey({
 *   qDtype: "f16", cacheDtype: "f16", headDim: 128, rows: 4, dimsPerLane: 8, keyGroups: 8,
 *   causal: true, softcap: false, pageAligned: true, split: true,
 * });
 * // "paged_prefill_decode_q-f16_kv-f16_d128_r4_l8_g8_causal_pa_split"
 * ```
 */
export function decodeKey(spec: DecodeSpec): string {
  return [
    "paged_prefill_decode",
    `q-${spec.qDtype}`,
    `kv-${DTYPE_KEY[spec.cacheDtype]}`,
    `d${spec.headDim}`,
    `r${spec.rows}`,
    `l${spec.dimsPerLane}`,
    `g${spec.keyGroups}`,
    spec.causal ? "causal" : "full",
    ...(spec.softcap ? ["softcap"] : []),
    ...(spec.pageAligned ? ["pa"] : []),
    ...(spec.split ? ["split"] : []),
  ].join("_");
}

/** The device limits the decode kernel must respect. */
export interface DecodeLimits {
  workgroupBytes: number;
  invocations: number;
}

/** Tunable shape of a decode spec (what the problem does not fix). */
export interface DecodeShape {
  /** Rows per work item. @default min(next power of two of the most rows of a request, 8) */
  rows?: number;
  /** @default 8 when head_dim % 8 == 0, else 4 */
  dimsPerLane?: 4 | 8;
  /** @default floor(DECODE_TARGET_THREADS / lanes), halved until the workgroup fits the device */
  keyGroups?: number;
}

/** Most (query, head) rows one request has for one KV head: max q_len * group. */
export function maxRowsPerKvHead(problem: Problem): number {
  const group = problem.numHeads / problem.numKvHeads;
  return Math.max(0, ...problem.qLens) * group;
}

/**
 * The spec `problem` runs with on a device with `limits` (split decided later by the work list,
 * given here as false), or a reason why none fits.
 *
 * @example
 * ```ts
 * import { chooseDecodeSpec } from "./spec.ts";
 * const problem = {
 *   qDtype: "f16", cacheDtype: "f16", batch: 1, totalQ: 1, numHeads: 4, numKvHeads: 1,
 *   headDim: 128, pageSize: 64, numPages: 40, poolTokens: 2560, maxPagesPerReq: 40,
 *   isCausal: true, smScale: 0.088, softcap: 0, qLens: [1], qStarts: [0], cacheLens: [2000],
 * } as const;
 * const spec = chooseDecodeSpec(problem, { workgroupBytes: 32768, invocations: 256 });
 * // rows 4, 8 dims per lane, 4 key groups of 16 lanes
 * if (typeof spec === "string" || spec.keyGroups !== 4 || spec.rows !== 4) throw new Error();
 * ```
 */
export function chooseDecodeSpec(
  problem: Problem,
  limits: DecodeLimits,
  shape: DecodeShape = {},
): DecodeSpec | string {
  const D = problem.headDim;
  const dpl = shape.dimsPerLane ?? (D % 8 === 0 ? 8 : 4);
  if (D % dpl !== 0 || D > 256) return `head_dim ${D} is not a multiple of ${dpl} up to 256`;
  const lanes = D / dpl;
  const most = Math.max(1, maxRowsPerKvHead(problem));
  const rows = shape.rows ?? Math.min(2 ** Math.ceil(Math.log2(most)), 8);
  let keyGroups = shape.keyGroups ??
    Math.max(1, Math.floor(DECODE_TARGET_THREADS / lanes), Math.ceil(rows / lanes));
  const make = (kg: number): DecodeSpec => ({
    qDtype: problem.qDtype,
    cacheDtype: problem.cacheDtype,
    headDim: D,
    rows,
    dimsPerLane: dpl,
    keyGroups: kg,
    causal: problem.isCausal,
    softcap: problem.softcap > 0,
    pageAligned: problem.pageSize % (kg * DECODE_KEYS_PER_GROUP) === 0,
    split: false,
  });
  for (;;) {
    const spec = make(keyGroups);
    const why = decodeSpecProblem(spec);
    if (why) return why;
    const geo = decodeGeometry(spec);
    if (geo.workgroupBytes <= limits.workgroupBytes && geo.threads <= limits.invocations) {
      return spec;
    }
    const smaller = Math.floor(keyGroups / 2);
    if (shape.keyGroups !== undefined || smaller < 1 || smaller * lanes < rows) {
      return `the workgroup (${geo.threads} invocations, ${geo.workgroupBytes} bytes) does not fit ${limits.invocations} invocations and ${limits.workgroupBytes} bytes`;
    }
    keyGroups = smaller;
  }
}
