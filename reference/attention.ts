/**
 * The CPU oracle of SPEC §1, written independently of the kernels: float64 paged GQA prefill
 * attention over the *decoded* cache values, and the expected pools after the in-place append.
 *
 * It reads the op's inputs exactly as the spec describes them: cached positions through the
 * block table and decoded per SPEC §2, the current chunk from `k_new`/`v_new` at full
 * precision; scores `(q . k) * sm_scale`, optional softcap, causal or full mask, softmax, `P . V`.
 * Everything is float64; `o` is not rounded to q's dtype (the comparison owns tolerances).
 * @module
 */
import type { PagedPrefillInputs, Problem, Tensor } from "../op/types.ts";
import {
  bf16BitsToNumber,
  e4m3Encode,
  e4m3ToNumber,
  f16BitsToNumber,
  int8Encode,
  inverseScale,
} from "./codecs.ts";

/** A query row the reference computes: request, row within the request, global token index. */
export interface ReferenceRow {
  /** Request b. */
  request: number;
  /** Row i within the request's chunk, 0 <= i < q_len[b]. */
  row: number;
  /** Global token index `cu_seqlens_q[b] + i`: the row of q and o. */
  token: number;
}

/** Options of `referenceAttention()`. */
export interface ReferenceAttentionOptions {
  /**
   * Rows to compute, in output order. Each must have `0 <= request < B` and
   * `0 <= row < q_len[request]`.
   * @default every row of every request, in token order
   */
  rows?: ReadonlyArray<{ request: number; row: number }>;
}

/** Result of `referenceAttention()`. */
export interface ReferenceAttention {
  /** The computed rows, in the order of `o`. */
  rows: ReferenceRow[];
  /** Float64 [rows.length, H, D]: attention output of each row, not rounded to q's dtype. */
  o: Float64Array;
}

/** Expected pools after the op (fresh tensors; the inputs are not touched). */
export interface ReferencePools {
  kPages: Tensor;
  vPages: Tensor;
}

const _tables = new Map<string, Float64Array>();

/**
 * Value of every raw element of a 16-bit or 8-bit dtype, built once on first use; indexed by
 * the raw bits (f16, bf16, fp8) or by the signed value + 128 (int8).
 */
function _valueTable(dtype: "f16" | "bf16" | "fp8_e4m3" | "int8"): Float64Array {
  let table = _tables.get(dtype);
  if (!table) {
    const size = dtype === "f16" || dtype === "bf16" ? 0x10000 : 0x100;
    const decode = dtype === "f16"
      ? f16BitsToNumber
      : dtype === "bf16"
      ? bf16BitsToNumber
      : dtype === "fp8_e4m3"
      ? e4m3ToNumber
      : (i: number) => i - 128;
    table = new Float64Array(size);
    for (let i = 0; i < size; i++) table[i] = decode(i);
    _tables.set(dtype, table);
  }
  return table;
}

/** Per-channel scales [H_kv * D]: one value for fp8, per channel for int8, 1 for 16-bit caches. */
function _channelScales(problem: Problem, scale: Tensor | undefined): Float64Array {
  const channels = problem.numKvHeads * problem.headDim;
  if (problem.cacheDtype === "f16" || problem.cacheDtype === "bf16") {
    return new Float64Array(channels).fill(1);
  }
  if (!scale) {
    throw new TypeError(`Cannot decode a ${problem.cacheDtype} cache: its scale tensor is absent`);
  }
  const data = scale.data as Float32Array;
  if (problem.cacheDtype === "fp8_e4m3") return new Float64Array(channels).fill(data[0]!);
  return Float64Array.from(data.subarray(0, channels));
}

/** Physical token of logical position p of request b, checked against the pool. */
function _physicalToken(
  inputs: PagedPrefillInputs,
  problem: Problem,
  b: number,
  p: number,
): number {
  const ps = problem.pageSize;
  const logicalPage = Math.floor(p / ps);
  const page = (inputs.blockTable.data as Int32Array)[b * problem.maxPagesPerReq + logicalPage];
  if (
    page === undefined || logicalPage >= problem.maxPagesPerReq || page < 0 ||
    page >= problem.numPages
  ) {
    throw new RangeError(
      `Cannot read request ${b} position ${p}: block_table[${b}][${logicalPage}] = ${page} is outside [0, ${problem.numPages})`,
    );
  }
  return page * ps + (p % ps);
}

/** Resolves and checks the rows to compute. */
function _resolveRows(problem: Problem, options: ReferenceAttentionOptions): ReferenceRow[] {
  if (options.rows === undefined) {
    const rows: ReferenceRow[] = [];
    for (let b = 0; b < problem.batch; b++) {
      for (let i = 0; i < problem.qLens[b]!; i++) {
        rows.push({ request: b, row: i, token: problem.qStarts[b]! + i });
      }
    }
    return rows;
  }
  return options.rows.map(({ request, row }, n) => {
    if (!Number.isInteger(request) || request < 0 || request >= problem.batch) {
      throw new RangeError(
        `Cannot compute reference row ${n}: request ${request} is outside [0, ${problem.batch})`,
      );
    }
    const qLen = problem.qLens[request]!;
    if (!Number.isInteger(row) || row < 0 || row >= qLen) {
      throw new RangeError(
        `Cannot compute reference row ${n}: row ${row} of request ${request} is outside [0, ${qLen})`,
      );
    }
    return { request, row, token: problem.qStarts[request]! + row };
  });
}

/**
 * Softmax attention of one query over the first `visible` keys: writes the normalized output
 * into `out` (length D). `scores` is scratch of length >= visible.
 */
function _attendRow(
  q: Float64Array,
  keys: Float64Array,
  values: Float64Array,
  visible: number,
  smScale: number,
  softcap: number,
  scores: Float64Array,
  out: Float64Array,
): void {
  const D = q.length;
  let max = -Infinity;
  for (let p = 0; p < visible; p++) {
    const base = p * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[d]! * keys[base + d]!;
    let s = dot * smScale;
    if (softcap > 0) s = softcap * Math.tanh(s / softcap);
    scores[p] = s;
    if (s > max) max = s;
  }
  out.fill(0);
  let sum = 0;
  for (let p = 0; p < visible; p++) {
    const w = Math.exp(scores[p]! - max);
    sum += w;
    const base = p * D;
    for (let d = 0; d < D; d++) out[d] = out[d]! + w * values[base + d]!;
  }
  for (let d = 0; d < D; d++) out[d] = out[d]! / sum;
}

/**
 * Float64 reference output of the op (SPEC §1, §4) for all query rows, or for the rows asked
 * for: for row i of request b and head h (kv head `g = floor(h / (H / H_kv))`), the softmax over
 * visible positions `p` (`p <= old[b] + i` when causal, else all `old[b] + q_len[b]`) of
 * `(q . k_p) * sm_scale` (then `softcap * tanh(s / softcap)` when softcap > 0), times `v_p`.
 * Positions below `old[b]` are read from the pages and decoded (SPEC §2); the others come from
 * `k_new`/`v_new`.
 *
 * Cost: decodes each needed request's K/V once per kv head, then
 * `O(rows * H * visible * D)`; ask for sampled rows on large workloads.
 *
 * @throws {RangeError} a requested row is out of range, or a referenced block table entry is
 *   outside the pool (inputs that `validateProblem()` would have rejected).
 *
 * @example
 * ```ts
 * import { referenceAttention } from "./attention.ts";
 * import { validateProblem } from "../op/validate.ts";
 * // One request, no cached prefix, one query token: it sees only itself, so o = v_new.
 * const f16 = (...v: number[]) => Uint16Array.from(v);
 * const inputs = {
 *   q: { dtype: "f16" as const, shape: [1, 1, 4], data: f16(0x3C00, 0x3800, 0xBC00, 0x4000) },
 *   kNew: { dtype: "f16" as const, shape: [1, 1, 4], data: f16(0x3C00, 0x3C00, 0x3C00, 0x3C00) },
 *   vNew: { dtype: "f16" as const, shape: [1, 1, 4], data: f16(0x3C00, 0x4000, 0x4200, 0x4400) },
 *   kPages: { dtype: "f16" as const, shape: [4, 1, 4], data: new Uint16Array(16) },
 *   vPages: { dtype: "f16" as const, shape: [4, 1, 4], data: new Uint16Array(16) },
 *   cuSeqlensQ: { dtype: "i32" as const, shape: [2], data: Int32Array.of(0, 1) },
 *   cacheSeqlens: { dtype: "i32" as const, shape: [1], data: Int32Array.of(0) },
 *   blockTable: { dtype: "i32" as const, shape: [1, 1], data: Int32Array.of(0) },
 * };
 * const problem = validateProblem(inputs, { pageSize: 4 });
 * const { rows, o } = referenceAttention(inputs, problem);
 * if (rows[0]!.token !== 0 || o.join() !== "1,2,3,4") throw new Error(o.join());
 * ```
 */
export function referenceAttention(
  inputs: PagedPrefillInputs,
  problem: Problem,
  options: ReferenceAttentionOptions = {},
): ReferenceAttention {
  const rows = _resolveRows(problem, options);
  const H = problem.numHeads, Hkv = problem.numKvHeads, D = problem.headDim;
  const group = H / Hkv;
  const o = new Float64Array(rows.length * H * D);
  if (rows.length === 0) return { rows, o };

  const qTable = _valueTable(problem.qDtype);
  const qData = inputs.q.data as Uint16Array;
  const kNew = inputs.kNew.data as Uint16Array;
  const vNew = inputs.vNew.data as Uint16Array;
  const kPages = inputs.kPages.data;
  const vPages = inputs.vPages.data;
  const kScale = _channelScales(problem, inputs.kScale);
  const vScale = _channelScales(problem, inputs.vScale);
  const cacheTable = _valueTable(problem.cacheDtype);
  const rawOffset = problem.cacheDtype === "int8" ? 128 : 0;
  const softcap = problem.softcap;
  const smScale = problem.smScale;

  // Output slots of each request's rows.
  const byRequest = new Map<number, number[]>();
  rows.forEach((r, n) => {
    const list = byRequest.get(r.request);
    if (list) list.push(n);
    else byRequest.set(r.request, [n]);
  });

  const q = new Float64Array(D);
  const acc = new Float64Array(D);
  for (const [b, slots] of byRequest) {
    const old = problem.cacheLens[b]!;
    const qStart = problem.qStarts[b]!;
    const total = old + problem.qLens[b]!;
    const maxRow = slots.reduce((m, n) => Math.max(m, rows[n]!.row), 0);
    const needed = problem.isCausal ? old + maxRow + 1 : total;
    const physical = new Int32Array(Math.min(old, needed));
    for (let p = 0; p < physical.length; p++) physical[p] = _physicalToken(inputs, problem, b, p);
    const keys = new Float64Array(needed * D);
    const values = new Float64Array(needed * D);
    const scores = new Float64Array(needed);

    for (let g = 0; g < Hkv; g++) {
      // Decode this kv head's keys and values for positions 0 .. needed-1.
      for (let p = 0; p < needed; p++) {
        const dst = p * D;
        if (p < old) {
          const src = (physical[p]! * Hkv + g) * D;
          for (let d = 0; d < D; d++) {
            keys[dst + d] = cacheTable[kPages[src + d]! + rawOffset]! * kScale[g * D + d]!;
            values[dst + d] = cacheTable[vPages[src + d]! + rawOffset]! * vScale[g * D + d]!;
          }
        } else {
          const src = ((qStart + p - old) * Hkv + g) * D;
          for (let d = 0; d < D; d++) {
            keys[dst + d] = qTable[kNew[src + d]!]!;
            values[dst + d] = qTable[vNew[src + d]!]!;
          }
        }
      }
      for (const n of slots) {
        const { row, token } = rows[n]!;
        const visible = problem.isCausal ? old + row + 1 : total;
        for (let h = g * group; h < (g + 1) * group; h++) {
          for (let d = 0; d < D; d++) q[d] = qTable[qData[(token * H + h) * D + d]!]!;
          _attendRow(q, keys, values, visible, smScale, softcap, scores, acc);
          const out = (n * H + h) * D;
          o.set(acc, out);
        }
      }
    }
  }
  return { rows, o };
}

/**
 * The pools as the op must leave them (SPEC §1 append, §2 encode): fresh copies of
 * `k_pages`/`v_pages` where the slot of logical position `old[b] + i` holds row
 * `cu_seqlens_q[b] + i` of `k_new`/`v_new` — the same bits for f16/bf16 caches,
 * `e4m3Encode(x, inverseScale(scale))` for fp8, `int8Encode(x, inverseScale(scale[g][d]))`
 * for int8. Every other byte is copied unchanged.
 *
 * @throws {RangeError} a referenced block table entry is outside the pool.
 *
 * @example
 * ```ts
 * import { referenceAppend } from "./attention.ts";
 * import { validateProblem } from "../op/validate.ts";
 * // fp8 cache, scale 0.5: the new token 1.0 (f16 0x3C00) is stored as e4m3(2.0) = 0x40.
 * const inputs = {
 *   q: { dtype: "f16" as const, shape: [1, 1, 4], data: new Uint16Array(4).fill(0x3C00) },
 *   kNew: { dtype: "f16" as const, shape: [1, 1, 4], data: new Uint16Array(4).fill(0x3C00) },
 *   vNew: { dtype: "f16" as const, shape: [1, 1, 4], data: new Uint16Array(4).fill(0xBC00) },
 *   kPages: { dtype: "f8_e4m3" as const, shape: [2, 1, 4], data: new Uint8Array(8).fill(0x11) },
 *   vPages: { dtype: "f8_e4m3" as const, shape: [2, 1, 4], data: new Uint8Array(8).fill(0x11) },
 *   kScale: { dtype: "f32" as const, shape: [1], data: Float32Array.of(0.5) },
 *   vScale: { dtype: "f32" as const, shape: [1], data: Float32Array.of(0.5) },
 *   cuSeqlensQ: { dtype: "i32" as const, shape: [2], data: Int32Array.of(0, 1) },
 *   cacheSeqlens: { dtype: "i32" as const, shape: [1], data: Int32Array.of(1) },
 *   blockTable: { dtype: "i32" as const, shape: [1, 1], data: Int32Array.of(0) },
 * };
 * const { kPages, vPages } = referenceAppend(inputs, validateProblem(inputs, { pageSize: 2 }));
 * if (kPages.data.join() !== "17,17,17,17,64,64,64,64") throw new Error(kPages.data.join());
 * if (vPages.data[4] !== 0xC0) throw new Error(); // -2.0
 * ```
 */
export function referenceAppend(inputs: PagedPrefillInputs, problem: Problem): ReferencePools {
  const Hkv = problem.numKvHeads, D = problem.headDim;
  const kOut = inputs.kPages.data.slice();
  const vOut = inputs.vPages.data.slice();
  const kNew = inputs.kNew.data as Uint16Array;
  const vNew = inputs.vNew.data as Uint16Array;
  const cache = problem.cacheDtype;
  const copy = cache === "f16" || cache === "bf16";
  const qTable = _valueTable(problem.qDtype);
  const kScale = _channelScales(problem, inputs.kScale);
  const vScale = _channelScales(problem, inputs.vScale);
  const channels = Hkv * D;
  // Inverse scales, once per scale element (per channel for int8; equal for fp8).
  const kInv = new Float64Array(copy ? 0 : channels);
  const vInv = new Float64Array(copy ? 0 : channels);
  for (let c = 0; c < kInv.length; c++) {
    kInv[c] = inverseScale(kScale[c]!);
    vInv[c] = inverseScale(vScale[c]!);
  }
  const encode = cache === "fp8_e4m3" ? e4m3Encode : int8Encode;

  for (let b = 0; b < problem.batch; b++) {
    const old = problem.cacheLens[b]!;
    for (let i = 0; i < problem.qLens[b]!; i++) {
      const dst = _physicalToken(inputs, problem, b, old + i) * channels;
      const src = (problem.qStarts[b]! + i) * channels;
      for (let c = 0; c < channels; c++) {
        if (copy) {
          kOut[dst + c] = kNew[src + c]!;
          vOut[dst + c] = vNew[src + c]!;
        } else {
          kOut[dst + c] = encode(qTable[kNew[src + c]!]!, kInv[c]!);
          vOut[dst + c] = encode(qTable[vNew[src + c]!]!, vInv[c]!);
        }
      }
    }
  }
  return {
    kPages: { dtype: inputs.kPages.dtype, shape: [...inputs.kPages.shape], data: kOut },
    vPages: { dtype: inputs.vPages.dtype, shape: [...inputs.vPages.shape], data: vOut },
  };
}

/** Options of `sampleReferenceRows()`. */
export interface SampleRowsOptions {
  /** Rows per request, first and last included; requests with fewer rows give all. @default 8 */
  rowsPerRequest?: number;
  /** Seed of the choice of the middle rows. @default 0 */
  seed?: number;
}

/**
 * A seeded random sample of query rows per request for verifying large workloads (SPEC §4):
 * always the first and the last row of every non-empty request, plus distinct random rows in
 * between, sorted by token. Pass the result as `rows` to `referenceAttention()`.
 *
 * @example
 * ```ts
 * import { sampleReferenceRows } from "./attention.ts";
 * const problem = { batch: 2, qLens: [100, 1], qStarts: [0, 100] } as const;
 * const rows = sampleReferenceRows(problem, { rowsPerRequest: 4, seed: 7 });
 * if (rows.length !== 5 || rows[0]!.row !== 0 || rows[3]!.row !== 99) throw new Error();
 * if (rows[4]!.request !== 1 || rows[4]!.token !== 100) throw new Error();
 * ```
 */
export function sampleReferenceRows(
  problem: Pick<Problem, "batch" | "qLens" | "qStarts">,
  options: SampleRowsOptions = {},
): ReferenceRow[] {
  const perRequest = options.rowsPerRequest ?? 8;
  if (!Number.isInteger(perRequest) || perRequest < 2) {
    throw new RangeError(
      `Cannot sample rows: rowsPerRequest must be an integer >= 2, got ${perRequest}`,
    );
  }
  let state = (options.seed ?? 0) >>> 0;
  const next = () => {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const out: ReferenceRow[] = [];
  for (let b = 0; b < problem.batch; b++) {
    const qLen = problem.qLens[b]!;
    const chosen = new Set<number>();
    if (qLen <= perRequest) {
      for (let i = 0; i < qLen; i++) chosen.add(i);
    } else {
      chosen.add(0).add(qLen - 1);
      while (chosen.size < perRequest) chosen.add(1 + Math.floor(next() * (qLen - 2)));
    }
    for (const row of [...chosen].sort((x, y) => x - y)) {
      out.push({ request: b, row, token: problem.qStarts[b]! + row });
    }
  }
  return out;
}
