/**
 * The roofline model of SPEC §6: FLOPs, compulsory bytes and arithmetic intensity of one paged
 * prefill call, and where it sits under a pair of ceilings (bandwidth, compute).
 *
 * Every function takes a {@linkcode RooflineShape}. A validated `Problem` (op/types.ts) has
 * every field of it under the same names, so it can be passed as is; a workload row can be
 * passed as plain numbers.
 * @module
 */
import type { CacheDtype, QDtype } from "../op/types.ts";
import { CACHE_ELEMENT_BYTES } from "../op/types.ts";

/**
 * The numbers the roofline model needs. `Problem` is assignable to it.
 */
export interface RooflineShape {
  /** q_len[b] of each request. */
  qLens: readonly number[];
  /** old[b] = cache_seqlens[b] of each request (tokens already in the pages). */
  cacheLens: readonly number[];
  /** H (query heads). */
  numHeads: number;
  /** H_kv (key/value heads). */
  numKvHeads: number;
  /** D (head dim). */
  headDim: number;
  /** dtype of q, k_new, v_new and o. */
  qDtype: QDtype;
  /** dtype of the paged cache. */
  cacheDtype: CacheDtype;
  /** Causal masking. */
  isCausal: boolean;
  /** Columns of the block table. */
  maxPagesPerReq: number;
  /**
   * f32 elements of k_scale and v_scale together.
   * @default 2 for fp8_e4m3, 2 * H_kv * D for int8, 0 for f16/bf16
   */
  scaleElements?: number;
}

/** Compulsory traffic of one call by tensor, in bytes (SPEC §6). */
export interface RooflineBytes {
  /** q read: s_q * T_q * H * D. */
  q: number;
  /** o written: s_q * T_q * H * D. */
  o: number;
  /** k_new and v_new read: s_q * 2 * T_q * H_kv * D. */
  kvNew: number;
  /** Old pages read (k and v): s_c * 2 * sum_b old_b * H_kv * D. */
  cacheRead: number;
  /** Append written (k and v): s_c * 2 * T_q * H_kv * D. */
  cacheWrite: number;
  /** k_scale and v_scale: 4 bytes per element. */
  scales: number;
  /** i32 metadata: 4 * ((B + 1) + B + B * max_pages_per_req). */
  metadata: number;
  /** Sum of all of the above. */
  total: number;
}

/** Work and traffic of one call. */
export interface RooflineCosts {
  /** 4 * H * D * sum_b vis_b (QK^T and PV, one multiply-add = 2 FLOPs). */
  flops: number;
  /** Compulsory bytes (`bytesBreakdown.total`). */
  bytes: number;
  /** The bytes by tensor. */
  bytesBreakdown: RooflineBytes;
  /** flops / bytes, FLOP per byte. */
  arithmeticIntensity: number;
  /** sum_b vis_b: visible (query row, key) pairs per head. */
  visiblePairs: number;
  /** Exponentials of the softmax (H * visible pairs); not counted in `flops`. */
  exps: number;
  /** tanh evaluations of the softcap (H * visible pairs when softcap is on, else 0): not counted. */
  tanhs: number;
}

/** A pair of ceilings, each in units per second. */
export interface RooflineCeiling {
  /** Memory bandwidth, bytes per second. */
  bytesPerSecond: number;
  /** Peak compute, FLOP per second. */
  flopsPerSecond: number;
}

/** Where a call sits under a ceiling pair. */
export interface RooflineBound {
  /** min(peak flops, AI * peak bandwidth), FLOP per second. */
  attainableFlopsPerSecond: number;
  /** "compute" when AI >= the ridge point, else "memory". */
  bound: "compute" | "memory";
  /** Ridge point: peak flops / peak bandwidth, FLOP per byte. */
  ridgeIntensity: number;
}

/** A measured call against a ceiling pair. */
export interface RooflineEvaluation extends RooflineBound {
  /** flops / seconds. */
  achievedFlopsPerSecond: number;
  /** bytes / seconds. */
  achievedBytesPerSecond: number;
  /** achieved / attainable (1 = on the roof). */
  efficiency: number;
  /** achieved bytes/s over the bandwidth ceiling, as a fraction. */
  fractionOfBandwidth: number;
  /** achieved FLOP/s over the compute ceiling, as a fraction. */
  fractionOfFlops: number;
}

const Q_ELEMENT_BYTES: Readonly<Record<QDtype, number>> = { f16: 2, bf16: 2 };

/**
 * Visible (query row, key) pairs of one request (SPEC §6): `q*old + q*(q+1)/2` causal,
 * `q*(old+q)` otherwise.
 *
 * @example
 * ```ts
 * import { visiblePairsOf } from "./roofline.ts";
 * visiblePairsOf(2, 3, true); // 2*3 + 3 = 9: row 0 sees 4 keys, row 1 sees 5
 * ```
 */
export function visiblePairsOf(qLen: number, cacheLen: number, isCausal: boolean): number {
  return isCausal ? qLen * cacheLen + (qLen * (qLen + 1)) / 2 : qLen * (cacheLen + qLen);
}

/**
 * f32 scale elements of k_scale and v_scale together for a cache dtype (SPEC §2).
 *
 * @example
 * ```ts
 * import { defaultScaleElements } from "./roofline.ts";
 * defaultScaleElements("int8", 8, 128); // 2048
 * ```
 */
export function defaultScaleElements(
  cacheDtype: CacheDtype,
  numKvHeads: number,
  headDim: number,
): number {
  switch (cacheDtype) {
    case "fp8_e4m3":
      return 2;
    case "int8":
      return 2 * numKvHeads * headDim;
    default:
      return 0;
  }
}

function _checkShape(shape: RooflineShape): void {
  if (shape.qLens.length !== shape.cacheLens.length) {
    throw new RangeError(
      `Cannot cost the call as qLens has ${shape.qLens.length} entries and cacheLens ${shape.cacheLens.length}`,
    );
  }
}

/**
 * Compulsory bytes of one call by tensor (SPEC §6). q, o, k_new and v_new cost s_q per
 * element; old pages read and the append cost the cache's real element size.
 *
 * @example
 * ```ts
 * import { rooflineBytes } from "./roofline.ts";
 * const b = rooflineBytes({
 *   qLens: [512], cacheLens: [4096], numHeads: 32, numKvHeads: 8, headDim: 128,
 *   qDtype: "f16", cacheDtype: "f16", isCausal: true, maxPagesPerReq: 72,
 * });
 * b.total; // 29360428
 * ```
 */
export function rooflineBytes(shape: RooflineShape): RooflineBytes {
  _checkShape(shape);
  const sq = Q_ELEMENT_BYTES[shape.qDtype];
  const sc = CACHE_ELEMENT_BYTES[shape.cacheDtype];
  const batch = shape.qLens.length;
  const totalQ = shape.qLens.reduce((a, b) => a + b, 0);
  const totalOld = shape.cacheLens.reduce((a, b) => a + b, 0);
  const qRow = shape.numHeads * shape.headDim;
  const kvRow = shape.numKvHeads * shape.headDim;
  const scaleElements = shape.scaleElements ??
    defaultScaleElements(shape.cacheDtype, shape.numKvHeads, shape.headDim);
  const parts = {
    q: sq * totalQ * qRow,
    o: sq * totalQ * qRow,
    kvNew: sq * 2 * totalQ * kvRow,
    cacheRead: sc * 2 * totalOld * kvRow,
    cacheWrite: sc * 2 * totalQ * kvRow,
    scales: 4 * scaleElements,
    metadata: 4 * ((batch + 1) + batch + batch * shape.maxPagesPerReq),
  };
  const total = parts.q + parts.o + parts.kvNew + parts.cacheRead + parts.cacheWrite +
    parts.scales + parts.metadata;
  return { ...parts, total };
}

/**
 * FLOPs, bytes and arithmetic intensity of one call (SPEC §6).
 *
 * @example
 * ```ts
 * import { rooflineCosts } from "./roofline.ts";
 * const c = rooflineCosts({
 *   qLens: [512], cacheLens: [4096], numHeads: 32, numKvHeads: 8, headDim: 128,
 *   qDtype: "f16", cacheDtype: "f16", isCausal: true, maxPagesPerReq: 72,
 * });
 * c.flops; // 36511416320 (36.5 GFLOP)
 * Math.round(c.arithmeticIntensity); // 1244
 * ```
 */
export function rooflineCosts(shape: RooflineShape & { softcap?: number | null }): RooflineCosts {
  _checkShape(shape);
  let visiblePairs = 0;
  for (let b = 0; b < shape.qLens.length; b++) {
    visiblePairs += visiblePairsOf(shape.qLens[b]!, shape.cacheLens[b]!, shape.isCausal);
  }
  const flops = 4 * shape.numHeads * shape.headDim * visiblePairs;
  const bytesBreakdown = rooflineBytes(shape);
  const bytes = bytesBreakdown.total;
  const exps = shape.numHeads * visiblePairs;
  return {
    flops,
    bytes,
    bytesBreakdown,
    arithmeticIntensity: bytes > 0 ? flops / bytes : 0,
    visiblePairs,
    exps,
    tanhs: (shape.softcap ?? 0) > 0 ? exps : 0,
  };
}

/**
 * Attainable FLOP/s at an arithmetic intensity: `min(peak_flops, AI * peak_bw)`, and whether
 * the ceiling that binds is compute or memory.
 *
 * @example
 * ```ts
 * import { rooflineBound } from "./roofline.ts";
 * const r = rooflineBound(10, { bytesPerSecond: 1e12, flopsPerSecond: 50e12 });
 * r.attainableFlopsPerSecond; // 1e13
 * r.bound; // "memory"
 * ```
 */
export function rooflineBound(
  arithmeticIntensity: number,
  ceiling: RooflineCeiling,
): RooflineBound {
  if (!(ceiling.bytesPerSecond > 0) || !(ceiling.flopsPerSecond > 0)) {
    throw new RangeError(
      `Cannot place a roofline point as the ceilings must be > 0, got ${ceiling.bytesPerSecond} B/s and ${ceiling.flopsPerSecond} FLOP/s`,
    );
  }
  const memoryRoof = arithmeticIntensity * ceiling.bytesPerSecond;
  const bound = memoryRoof >= ceiling.flopsPerSecond ? "compute" : "memory";
  return {
    attainableFlopsPerSecond: Math.min(ceiling.flopsPerSecond, memoryRoof),
    bound,
    ridgeIntensity: ceiling.flopsPerSecond / ceiling.bytesPerSecond,
  };
}

/**
 * Places a timed call under a ceiling pair: achieved rates, attainable, efficiency, bound.
 *
 * @example
 * ```ts
 * import { rooflineEvaluate } from "./roofline.ts";
 * const e = rooflineEvaluate({ flops: 2e9, bytes: 1e9 }, 0.01, {
 *   bytesPerSecond: 200e9,
 *   flopsPerSecond: 1e12,
 * });
 * e.achievedFlopsPerSecond; // 2e11
 * e.attainableFlopsPerSecond; // 4e11 (memory bound: AI 2 * 200 GB/s)
 * e.efficiency; // 0.5
 * ```
 */
export function rooflineEvaluate(
  costs: Pick<RooflineCosts, "flops" | "bytes">,
  seconds: number,
  ceiling: RooflineCeiling,
): RooflineEvaluation {
  if (!(seconds > 0)) {
    throw new RangeError(
      `Cannot evaluate a roofline point as the time must be > 0, got ${seconds}`,
    );
  }
  const ai = costs.bytes > 0 ? costs.flops / costs.bytes : 0;
  const bound = rooflineBound(ai, ceiling);
  const achievedFlopsPerSecond = costs.flops / seconds;
  const achievedBytesPerSecond = costs.bytes / seconds;
  return {
    ...bound,
    achievedFlopsPerSecond,
    achievedBytesPerSecond,
    efficiency: bound.attainableFlopsPerSecond > 0
      ? achievedFlopsPerSecond / bound.attainableFlopsPerSecond
      : 0,
    fractionOfBandwidth: achievedBytesPerSecond / ceiling.bytesPerSecond,
    fractionOfFlops: achievedFlopsPerSecond / ceiling.flopsPerSecond,
  };
}
