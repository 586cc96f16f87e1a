/**
 * What the flash kernel's generated WGSL depends on (`FlashSpec`), the key that spells it, the
 * thread/tile geometry derived from it, and the choice of a spec for a problem on a device.
 * Runtime sizes (batch, lengths, pages, scales) travel in a uniform buffer and the work list.
 * @module
 */
import type { Problem, QDtype } from "../../op/types.ts";
import { DTYPE_KEY, type PoolDtype } from "../_shared.ts";
import { visiblePairsOf } from "../../reports/roofline.ts";

/** Everything that changes the generated attention WGSL. */
export interface FlashSpec {
  qDtype: QDtype;
  /**
   * dtype of the pools read: the cache's, or "f32" (the dequant variant's scratch pool of
   * decoded values; no kv16 or f16Math). k_new and v_new are in q's dtype either way.
   */
  cacheDtype: PoolDtype;
  /** D; a multiple of 16. */
  headDim: number;
  /** Br: (query, head) rows a workgroup owns; rows of one KV head's query group, flattened. */
  rows: number;
  /** Bc: keys per K/V tile. */
  keys: number;
  /** Invocations per workgroup. */
  threads: number;
  /** Rows each thread owns in the S = QK^T tile (it owns `keys / (threads / (rows / sRows))` keys). */
  sRows: number;
  /** Rows each thread owns in the O tile (it owns a D / (threads / (rows / oRows)) slice). */
  oRows: number;
  /** Causal masking (tile skipping is host-side; masking is in the kernel). */
  causal: boolean;
  /** Softcap on (tanh) or off. */
  softcap: boolean;
  /** page_size >= keys: one block_table lookup per K/V tile. */
  pageAligned: boolean;
  /** Write unnormalised partial results (m, l, O) for the combine pass instead of o. */
  split: boolean;
  /** Unroll the D loop of QK^T fully (else a rolled loop over D chunks). */
  unrollD: boolean;
  /** Hold the Q tile in workgroup memory as f32 (else as 16-bit pairs unpacked at each use). */
  qF32?: boolean;
  /**
   * Pipelined main loop (issue 5, PERF_LOG v3): separate K and V tiles in workgroup memory,
   * global loads issued one whole tile ahead into registers (K two tiles, V one tile ahead,
   * page ids three tiles ahead), 2 barriers per tile instead of 4: each key group's softmax max
   * and sum go to workgroup memory with P and the O-layout threads merge them (no separate
   * row-max barrier). Off: the v2 loop (one shared K-then-V tile, 4 barriers per tile).
   */
  pipelined?: boolean;
  /**
   * With `pipelined` and a 16-bit cache: K and V tiles stay as packed 16-bit pairs in
   * workgroup memory (half the bytes of f32, unpacked at each use); else f32.
   */
  kv16?: boolean;
  /**
   * QK^T and PV in f16 arithmetic (shader-f16; any q and cache dtype: the range guard of
   * template.ts scales bf16 values into f16's range per K/V tile, from each tile's largest
   * bf16 |k| and |v|; the v2 loop; issue 5's
   * "f16 arithmetic where every verify case stays within tolerance"). Q, K, V and P sit in
   * workgroup memory as f16 (converted once when staged), each product is a vec4<f16> fma (two
   * multiply-adds per instruction), and the f16 partial sums are added into f32 every
   * `f16QkFlush` D steps (scores) and every `f16PvFlush` keys (O). Softmax, row sums, the
   * running max and O stay f32.
   */
  f16Math?: boolean;
  /**
   * With `f16Math`: 4-element D steps per flush of the f16 partial scores (each f16 lane
   * sums this many products); must divide dGroups.
   * @default F16_QK_FLUSH, or dGroups when smaller
   */
  f16QkFlush?: number;
  /**
   * With `f16Math`: at each QK flush, sum the four f16 lanes of a partial score in f16 and add
   * one f32 (5 instructions instead of 8: four conversions and four f32 adds); the range guard
   * then bounds Q's lanes 4x lower. Two more f16 roundings per flush. @default false
   */
  f16QkLaneSum?: boolean;
  /**
   * With `f16Math`: keys per flush of the f16 partial O (a multiple of 4 dividing keys).
   * @default F16_PV_FLUSH, or keys when smaller
   */
  f16PvFlush?: number;
  /**
   * With `f16Math`: the Q tile (scaled f16) lives in a global scratch buffer, one region per work
   * item, read through L1, instead of workgroup memory (PERF_LOG v10). The SM holds ~48 KB of
   * workgroup memory under Vulkan on the H200, and Q is the largest part of a tile (16.9 KB at
   * D128): without it, two or three tiles share an SM. Binds a 13th buffer.
   */
  qGlobal?: boolean;
  /**
   * With `f16Math` and the v2 loop: work items whose last word is 1 widen the f16 tiles' Q, K, P
   * and V to f32 and multiply and sum them in f32 (no f16 partial sums); the others use f16
   * products. The kernel holds the key loop twice and takes one per item (uniform in the
   * workgroup). The planner marks the items of rows that see at most `F16_PRECISE_KEYS` keys,
   * whose f16 error does not average out.
   */
  preciseItems?: boolean;
  /**
   * With an fp8 cache: decode the codes by moving their bits into f16s (`fp8x4`, the decode
   * kernel's unpack) instead of through a 256-entry table in workgroup memory (PERF_LOG v10).
   */
  fp8Alu?: boolean;
  /**
   * With an int8 cache: decode the codes by placing their bits in f16s (`int8x4`: two pair
   * unpacks and a subtract per four codes) instead of four integer-to-float conversions.
   */
  int8Alu?: boolean;
  /**
   * With an int8 cache and f16 tiles: the per-channel scales leave the tile. K's scales multiply
   * Q once per work item, V's multiply O at the end, and the tile holds the codes times a power
   * of two (new tokens divided by their channel's scale). A pass before attention bounds the
   * new tokens' |x / scale|; when a bound is out of range the kernel's workgroups return at once
   * and the `boundFallback` kernel dispatched after it does the work (PERF_LOG v13).
   */
  int8Fold?: boolean;
  /**
   * With a 1-byte cache, bf16 q and f16 tiles: K and V factors from the new tokens' bound (the
   * pass `int8Fold` uses) instead of each tile's maxima (no workgroup atomic per tile). The codes
   * are bounded by their largest value (448, 127) times the largest scale, new tokens by the bound
   * times it. fp8 since PERF_LOG v13 (named `fp8NewBound` there), int8 without `int8Fold` since v15.
   */
  byteNewBound?: boolean;
  /**
   * With a bf16 cache (bf16 q) and f16 tiles: K and V factors from the largest |k| and |v| the
   * call reads, instead of each tile's maxima (no workgroup atomic and no magnitude of every
   * staged word per tile). The bound pass of `int8Fold` scans the requests' pool values as well
   * as the new tokens; past 2^20 the `boundFallback` kernel does the work (PERF_LOG v14).
   */
  poolBound?: boolean;
  /**
   * The kernel dispatched after an `int8Fold`, `byteNewBound` or `poolBound` one, without it: its
   * workgroups return at once unless the bound pass ruled the bound out.
   */
  boundFallback?: boolean;
  /**
   * With a 1-byte cache and the v2 loop: a staged chunk holds only the pool's word (16 codes).
   * The new tokens' 16-bit words (two per chunk) are loaded when the chunk is stored into the
   * tile, not held in registers across the products with a flag (PERF_LOG v11): 5 fewer
   * registers per chunk, for an exposed load on the few tiles that reach the new tokens.
   */
  lateNew?: boolean;
  /**
   * With a 1-byte cache and the v2 loop: codes per chunk a thread stages, 16 (one vec4<u32>,
   * the default), 8 (one vec2<u32>; a new token's 8 values fill the same vec4 register, as a
   * 16-bit cache stages them) or 4 (one u32; implies `lateNew`). Smaller chunks write the
   * decoded values to the tile with fewer bank conflicts (a 16-code chunk writes 32 contiguous
   * bytes per thread), and an int8 thread holds chunk / 4 vec4s of scales per K and V instead
   * of four (PERF_LOG v11).
   */
  byteChunk?: 4 | 8 | 16;
}

/**
 * Default flush intervals of `f16Math`. Chosen by the error model (`tools/f16_error_model.ts`,
 * docs/PERF_LOG.md "f16 arithmetic" and v7): with 32 steps / 32 keys the worst simulated row
 * reached 1.8x SPEC §4's f16 tolerance (and one element of the H200's verify --all failed); the
 * QK interval dominates, and its worst rows are those with few keys, where the PV interval
 * does not matter (a row of <= 16 keys adds the same products either way). v4-v6 flushed O
 * every 16 keys; 32 keys (v7) takes the modelled rows of 65-1000 keys from <= 0.48x to <= 0.69x
 * of the tolerance and leaves the worst row (1-8 keys, ~1.0x in 1200 modelled D64 fp8 rows,
 * unchanged) where it was, for ~2.5% of the seed's time.
 */
export const F16_QK_FLUSH = 8;
export const F16_PV_FLUSH = 32;
/** Keys per flush of the f16 partial O on the default 128-key D64 tile (PERF_LOG v9). */
export const D64_PV_FLUSH = 64;

/**
 * Whether the default f16 tiles sum each partial score's four f16 lanes in f16 before the f32
 * add (`FlashSpec.f16QkLaneSum`). Off: on the H200 it takes the seed row from 1.010 to 0.972 ms
 * and verify --all passed (worst element 0.80 of its tolerance), but a D64 case with 4-6 keys
 * per row (tests/quantized_cache_test.ts, fp8, seed 5) puts one element at 1.54x its tolerance:
 * the two extra f16 roundings sit at the magnitude of the whole partial score (PERF_LOG v6).
 */
export const F16_QK_LANE_SUM_DEFAULT = false;

/**
 * The largest sm_scale * sqrt(D) at which f16 arithmetic is picked by default. The error of an
 * f16 score grows with the logits' scale: a property-test case at 2.6 (D128, int8 cache, 7
 * queries over ~230 keys) put one element at 1.09x SPEC §4's tolerance with v6's flushes and
 * 1.18x with v7's, and the error model (`tools/f16_error_model.ts --logit-scales`) puts the
 * worst of 100 rows per key count at ~1.0x at 1, 1.2x at 1.25 and 1.2-1.7x at 1.5-2. Sharper
 * softmaxes than 1.25 / sqrt(D) take the f32 tiles (PERF_LOG v7); every manifest row is under.
 */
export const F16_MAX_LOGIT_SCALE = 1.25;

/**
 * Below this many attention FLOPs the default tile multiplies in f32. The f16 error has a tail:
 * an element at 1.01-1.11x SPEC §4's tolerance in about one full test run in ten, from rows whose
 * softmax rests on a few keys (PERF_LOG v12, 4). Problems this small run at 1-9% of the H200's
 * f32 rate, bound by their launch and longest item; f32 products cost them 10-51% there and keep
 * the tolerance's margin. Between the 0.19 GFLOP largest random test problem and the 1.2 GFLOP
 * D96 manifest row.
 */
export const F16_MIN_FLOPS = 5e8;

/**
 * Rows that see at most this many keys run as precise items (`FlashSpec.preciseItems`). The
 * f16 error of a row does not average out over few keys: with the default flushes the error
 * model (`tools/f16_error_model.ts`, 300 rows per key count) puts the worst row at 0.72-1.04x
 * SPEC §4's tolerance at 1-64 keys, 0.53-0.73x at 65-128 and <= 0.55x beyond, and a
 * property-test case (D32, fp8, 22 keys) put one element at 1.01x. On the H200 a threshold of
 * 128 cost the varlen rows 2-4% against 64's 0-1% (PERF_LOG v12).
 */
export const F16_PRECISE_KEYS = 64;

/** Whether `problem`'s score scale lets its default tile use f16 arithmetic. */
export function f16ScaleAllows(problem: Pick<Problem, "smScale" | "headDim">): boolean {
  return problem.smScale * Math.sqrt(problem.headDim) <= F16_MAX_LOGIT_SCALE;
}

/** Whether `problem` is large enough for f16 products to pay (`F16_MIN_FLOPS`). */
export function f16SizeAllows(
  problem: Pick<Problem, "qLens" | "cacheLens" | "numHeads" | "headDim" | "isCausal">,
): boolean {
  return attentionFlops(problem) >= F16_MIN_FLOPS;
}

/** The flush intervals `f16Math` code uses for `spec` (see `FlashSpec.f16QkFlush`). */
export function f16Flushes(spec: FlashSpec, dGroups: number): { qk: number; pv: number } {
  return {
    qk: spec.f16QkFlush ?? Math.min(F16_QK_FLUSH, dGroups),
    pv: spec.f16PvFlush ?? Math.min(F16_PV_FLUSH, spec.keys),
  };
}

/** Tile geometry derived from a spec; every field is a compile-time constant of the WGSL. */
export interface FlashGeometry {
  /** D / 4: vec4 columns of a row. */
  d4: number;
  /** Row groups of the S layout (threads sharing the same rows). */
  sRowGroups: number;
  /** Key groups of the S layout. */
  keyGroups: number;
  /** Keys each thread owns in S. */
  sKeys: number;
  /** Row groups of the O layout. */
  oRowGroups: number;
  /** D groups of the O layout: vec4 column `mm * dGroups + dg` belongs to group dg. */
  dGroups: number;
  /** vec4 columns each thread owns in O (also the number of D chunks of QK^T). */
  dChunks: number;
  /**
   * Cache elements per chunk a thread stages: 8 for 16-bit caches (one 16-byte word), 16 for
   * 1-byte caches (one word; 8 or 4 with `byteChunk`), 8 for f32 pools (two words).
   */
  chunkElems: number;
  /** Chunks per cache row. */
  chunksPerRow: number;
  /** K (or V) chunks each thread stages per tile. */
  chunksPerThread: number;
  /** Bytes of workgroup memory the kernel declares. */
  workgroupBytes: number;
}

/** Elements of a pool row a thread stages as one chunk (`FlashGeometry.chunkElems`). */
function _chunkElems(pool: PoolDtype, byteChunk?: 4 | 8 | 16): number {
  return pool === "fp8_e4m3" || pool === "int8" ? (byteChunk ?? 16) : 8;
}

/** Why `spec` cannot be generated, or null. */
export function flashSpecProblem(spec: FlashSpec): string | null {
  const { headDim: D, rows, keys, threads, sRows, oRows } = spec;
  if (D % 16 !== 0 || D < 16) return `head_dim ${D} is not a multiple of 16`;
  if (rows % sRows !== 0 || rows % oRows !== 0) return `rows ${rows} not divisible by row blocks`;
  const sRowGroups = rows / sRows;
  const oRowGroups = rows / oRows;
  if (threads % sRowGroups !== 0) return `threads ${threads} not divisible by ${sRowGroups}`;
  if (threads % oRowGroups !== 0) return `threads ${threads} not divisible by ${oRowGroups}`;
  const keyGroups = threads / sRowGroups;
  if (keys % keyGroups !== 0 || (keys / keyGroups) % 4 !== 0) {
    return `keys ${keys} not a multiple of 4 * ${keyGroups} key groups`;
  }
  const dGroups = threads / oRowGroups;
  if ((D / 4) % dGroups !== 0) return `D/4 = ${D / 4} not divisible by ${dGroups} D groups`;
  const chunkElems = _chunkElems(spec.cacheDtype, spec.byteChunk);
  if ((keys * (D / chunkElems)) % threads !== 0) {
    return `${keys} keys x ${D / chunkElems} chunks not divisible by ${threads} threads`;
  }
  if ((keys & (keys - 1)) !== 0) return `keys ${keys} is not a power of two`;
  if (spec.kv16 && !spec.pipelined) return "kv16 needs the pipelined loop";
  if (spec.fp8Alu && spec.cacheDtype !== "fp8_e4m3") return "fp8Alu needs an fp8_e4m3 cache";
  if (spec.int8Alu && spec.cacheDtype !== "int8") return "int8Alu needs an int8 cache";
  if (spec.int8Fold && (spec.cacheDtype !== "int8" || !spec.f16Math || spec.pipelined)) {
    return "int8Fold needs an int8 cache, f16Math and the v2 loop";
  }
  if (
    spec.byteNewBound &&
    ((spec.cacheDtype !== "fp8_e4m3" && spec.cacheDtype !== "int8") || !spec.f16Math ||
      spec.pipelined)
  ) {
    return "byteNewBound needs a 1-byte cache, f16Math and the v2 loop";
  }
  if (spec.byteNewBound && spec.int8Fold) return "byteNewBound and int8Fold exclude each other";
  if (
    spec.poolBound &&
    (spec.cacheDtype !== "bf16" || spec.qDtype !== "bf16" || !spec.f16Math || spec.pipelined)
  ) {
    return "poolBound needs a bf16 cache and q, f16Math and the v2 loop";
  }
  if (
    spec.boundFallback &&
    (spec.int8Fold || spec.byteNewBound || spec.poolBound || !spec.f16Math ||
      (spec.cacheDtype !== "int8" && spec.cacheDtype !== "fp8_e4m3" &&
        spec.cacheDtype !== "bf16"))
  ) {
    return "boundFallback needs an int8, fp8 or bf16 cache, f16Math and no bounded option";
  }
  if (spec.preciseItems && (!spec.f16Math || spec.pipelined)) {
    return "preciseItems needs f16Math and the v2 loop";
  }
  const bytePool = spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8";
  if (spec.lateNew && !bytePool) return "lateNew needs a 1-byte cache";
  if (spec.lateNew && spec.pipelined) return "lateNew needs the v2 loop";
  if (spec.byteChunk !== undefined) {
    if (!bytePool) return "byteChunk needs a 1-byte cache";
    if (spec.pipelined) return "byteChunk needs the v2 loop";
    if (![4, 8, 16].includes(spec.byteChunk)) {
      return `byteChunk ${spec.byteChunk} is not 4, 8 or 16`;
    }
  }
  if (spec.kv16 && spec.cacheDtype !== "f16" && spec.cacheDtype !== "bf16") {
    return "kv16 needs a 16-bit cache";
  }
  if (spec.f16Math) {
    if (spec.cacheDtype === "f32") return "f16Math reads no f32 pool";
    if (spec.pipelined) return "f16Math needs the v2 loop";
    if (spec.qF32) return "f16Math holds Q as f16";
    const { qk, pv } = f16Flushes(spec, dGroups);
    if (!(qk >= 1 && dGroups % qk === 0)) {
      return `f16QkFlush ${qk} does not divide ${dGroups} D steps`;
    }
    if (!(pv >= 4 && pv % 4 === 0 && keys % pv === 0)) {
      return `f16PvFlush ${pv} is not a multiple of 4 dividing ${keys} keys`;
    }
    // int8 scales live in registers: a thread's chunks must all hold the same channels.
    if (spec.cacheDtype === "int8" && threads % (D / chunkElems) !== 0) {
      return `f16Math with int8 needs threads ${threads} a multiple of ${
        D / chunkElems
      } chunks per row`;
    }
  } else if (
    spec.f16QkFlush !== undefined || spec.f16PvFlush !== undefined || spec.f16QkLaneSum ||
    spec.qGlobal
  ) {
    return "f16QkFlush, f16PvFlush, f16QkLaneSum and qGlobal need f16Math";
  }
  return null;
}

/** The derived geometry of a valid spec. Throws a RangeError for an invalid one. */
export function flashGeometry(spec: FlashSpec): FlashGeometry {
  const why = flashSpecProblem(spec);
  if (why) throw new RangeError(`Cannot build flash kernel ${flashKey(spec)}: ${why}`);
  const D = spec.headDim;
  const d4 = D / 4;
  const sRowGroups = spec.rows / spec.sRows;
  const keyGroups = spec.threads / sRowGroups;
  const oRowGroups = spec.rows / spec.oRows;
  const dGroups = spec.threads / oRowGroups;
  const chunkElems = _chunkElems(spec.cacheDtype, spec.byteChunk);
  const chunksPerRow = D / chunkElems;
  // Q tile (none with qGlobal: it sits in a global scratch buffer).
  const qBytes = spec.qGlobal ? 0 : spec.rows * (d4 + 1) * (spec.qF32 ? 16 : 8);
  const pBytes = spec.rows * (spec.keys / 4 + 1) * (spec.f16Math ? 8 : 16); // P
  // e4m3 decode table.
  const lutBytes = spec.cacheDtype === "fp8_e4m3" && !spec.fp8Alu ? 1024 : 0;
  const workgroupBytes = spec.pipelined
    ? qBytes + pBytes + lutBytes +
      2 * spec.keys * (d4 + 1) * (spec.kv16 ? 8 : 16) + // K tile and V tile
      2 * keyGroups * spec.rows * 4 // per key group: max and sum of this tile
    : qBytes + pBytes + lutBytes +
      spec.keys * (d4 + 1) * (spec.f16Math ? 8 : 16) + // K then V tile, f32 (f16Math: f16)
      keyGroups * spec.rows * 4 + // row-max / row-sum partials
      spec.rows * 4; // alpha (then m)
  return {
    d4,
    sRowGroups,
    keyGroups,
    sKeys: spec.keys / keyGroups,
    oRowGroups,
    dGroups,
    dChunks: d4 / dGroups,
    chunkElems,
    chunksPerRow,
    chunksPerThread: (spec.keys * chunksPerRow) / spec.threads,
    workgroupBytes,
  };
}

/**
 * The key spelling every spec field; labels the module, pipeline and buffers.
 *
 * @example
 * ```ts
 * import { flashKey } from "./spec.ts";
 * const key = flashKey({
 *   qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, rows: 64, keys: 32, threads: 128,
 *   sRows: 2, oRows: 4, causal: true, softcap: false, pageAligned: true, split: false,
 *   unrollD: true,
 * });
 * // "paged_prefill_flash_q-f16_kv-fp8_d128_r64_k32_wg128_s2_o4_causal_pa_ud"
 * ```
 */
export function flashKey(spec: FlashSpec): string {
  return [
    "paged_prefill_flash",
    `q-${spec.qDtype}`,
    `kv-${DTYPE_KEY[spec.cacheDtype]}`,
    `d${spec.headDim}`,
    `r${spec.rows}`,
    `k${spec.keys}`,
    `wg${spec.threads}`,
    `s${spec.sRows}`,
    `o${spec.oRows}`,
    spec.causal ? "causal" : "full",
    ...(spec.softcap ? ["softcap"] : []),
    ...(spec.pageAligned ? ["pa"] : []),
    ...(spec.split ? ["split"] : []),
    ...(spec.unrollD ? ["ud"] : []),
    ...(spec.qF32 ? ["qf32"] : []),
    ...(spec.pipelined ? ["pipe"] : []),
    ...(spec.kv16 ? ["kv16"] : []),
    ...(spec.f16Math
      ? [
        `hm${spec.f16QkFlush ?? ""}${spec.f16PvFlush ? `p${spec.f16PvFlush}` : ""}${
          spec.f16QkLaneSum ? "ls" : ""
        }`,
      ]
      : []),
    ...(spec.qGlobal ? ["qg"] : []),
    ...(spec.fp8Alu ? ["fa"] : []),
    ...(spec.int8Alu ? ["ia"] : []),
    ...(spec.int8Fold ? ["if"] : []),
    ...(spec.byteNewBound ? ["nb"] : []),
    ...(spec.poolBound ? ["pb"] : []),
    ...(spec.boundFallback ? ["bfb"] : []),
    ...(spec.preciseItems ? ["px"] : []),
    ...(spec.lateNew ? ["ln"] : []),
    ...(spec.byteChunk ? [`bc${spec.byteChunk}`] : []),
  ].join("_");
}

/** Tile shape of a flash spec, without what the problem fixes. */
export interface FlashTile {
  rows: number;
  keys: number;
  threads: number;
  sRows: number;
  oRows: number;
  unrollD: boolean;
  qF32?: boolean;
  /** See `FlashSpec.pipelined`. */
  pipelined?: boolean;
  /** See `FlashSpec.kv16`. */
  kv16?: boolean;
  /** See `FlashSpec.f16Math`. */
  f16Math?: boolean;
  /** See `FlashSpec.f16QkFlush`. */
  f16QkFlush?: number;
  /** See `FlashSpec.f16QkLaneSum`. */
  f16QkLaneSum?: boolean;
  /** See `FlashSpec.f16PvFlush`. */
  f16PvFlush?: number;
  /** See `FlashSpec.qGlobal`. */
  qGlobal?: boolean;
  /** See `FlashSpec.fp8Alu`. */
  fp8Alu?: boolean;
  /** See `FlashSpec.int8Alu`. */
  int8Alu?: boolean;
  /** See `FlashSpec.int8Fold`. */
  int8Fold?: boolean;
  /** See `FlashSpec.byteNewBound` (kept by `flashSpecFor` for bf16 q, int8 only without int8Fold). */
  byteNewBound?: boolean;
  /** See `FlashSpec.poolBound` (kept by `flashSpecFor` for bf16 caches only). */
  poolBound?: boolean;
  /** See `FlashSpec.lateNew`. */
  lateNew?: boolean;
  /** See `FlashSpec.byteChunk`. */
  byteChunk?: 4 | 8 | 16;
}

/**
 * Tile shapes tried in order for a head dim; the first that fits the device's workgroup memory
 * and invocation limits wins. Tuned on the H200 (see docs/PERF_LOG.md); the smaller shapes fit
 * lavapipe's 32 KiB.
 */
export function flashTileCandidates(headDim: number, maxRows = Infinity): FlashTile[] {
  const t = (
    rows: number,
    keys: number,
    threads: number,
    sRows: number,
    oRows: number,
    unrollD = false,
  ): FlashTile => ({ rows, keys, threads, sRows, oRows, unrollD });
  // Decode-like calls (few (query, head) rows per request): small row tiles, long key tiles.
  const few = headDim <= 128
    ? maxRows <= 8 ? [t(8, 64, 128, 1, 1)] : maxRows <= 16 ? [t(16, 64, 128, 1, 1)] : []
    : [];
  if (headDim <= 64) {
    return [
      ...few,
      t(64, 64, 256, 4, 4),
      t(64, 32, 128, 2, 4),
      t(32, 32, 64, 2, 4),
      t(16, 16, 32, 2, 2),
      t(16, 16, 16, 2, 4),
    ];
  }
  if (headDim <= 128) {
    return [
      ...few,
      t(64, 32, 256, 2, 4),
      t(64, 32, 128, 2, 4),
      t(32, 32, 64, 2, 4),
      t(32, 16, 64, 2, 2),
      t(16, 16, 32, 2, 2),
      t(16, 16, 16, 2, 4),
    ];
  }
  return [t(32, 16, 128, 1, 2), t(32, 16, 64, 2, 2), t(16, 16, 32, 2, 2), t(16, 16, 16, 2, 4)];
}

/**
 * Pipelined tile shapes (`FlashSpec.pipelined`) tried in order; `kv16` when the cache is
 * 16-bit. Bytes of workgroup memory are in PERF_LOG v3: 64x32/256 threads with 16-bit K/V is
 * 47104 B (fits the H200's 49152, not lavapipe's 32768, which gets 32x32/128 threads).
 */
export function flashPipelinedCandidates(
  headDim: number,
  maxRows = Infinity,
  kv16 = true,
): FlashTile[] {
  const t = (
    rows: number,
    keys: number,
    threads: number,
    sRows: number,
    oRows: number,
  ): FlashTile => ({ rows, keys, threads, sRows, oRows, unrollD: false, pipelined: true, kv16 });
  if (headDim <= 128) {
    const few = maxRows <= 8
      ? [t(8, 64, 128, 1, 1), t(8, 32, 128, 1, 1)]
      : maxRows <= 16
      ? [t(16, 64, 128, 1, 1), t(16, 32, 128, 1, 1)]
      : [];
    return kv16
      ? [...few, t(64, 32, 256, 2, 4), t(32, 32, 128, 2, 4), t(32, 16, 64, 2, 2)]
      : [...few, t(64, 16, 256, 1, 4), t(32, 16, 128, 1, 4), t(32, 16, 64, 2, 2)];
  }
  return kv16 ? [t(32, 16, 128, 1, 2), t(16, 16, 64, 1, 2)] : [t(16, 16, 64, 1, 2)];
}

/**
 * Tile shapes with f16 arithmetic (`FlashSpec.f16Math`) tried in order, before the f32 ones,
 * on devices with shader-f16. f16 tiles take half the workgroup memory, so the first shapes
 * hold twice the keys of the f32 ones; tuned on the H200 (docs/PERF_LOG.md, "f16 arithmetic").
 * The f32 candidates follow, as f16 tiles, for smaller devices. Every one decodes fp8 codes by
 * bit placement (`fp8Alu`; v10: the fp8 rows 2-6% faster than through the workgroup table) and
 * loads byte caches' new tokens at the store (`lateNew`; v11: the Qwen D256 byte rows 1.4-6.5%
 * faster, softcap D64 int8 3-5%), but the D128 64-row tiles, where it cost B8 fp8 2.2-2.6%.
 */
export function flashHalfCandidates(
  headDim: number,
  maxRows = Infinity,
  smallGrid = false,
): FlashTile[] {
  // What every f16 tile below shares, the tuned shapes and the f32 list's fallbacks alike.
  const f16Fields = {
    unrollD: false,
    f16Math: true,
    f16QkLaneSum: F16_QK_LANE_SUM_DEFAULT,
    fp8Alu: true,
    // v12: 0.5-1% faster on the D256, seed, softcap-D64 and default int8 rows; the 32-row varlen
    // tile with bf16 q 1% slower (docs/perf/flash_tune_int8_alu_2026-11-22.log).
    int8Alu: true,
    // v13: 2-8% faster on the D256, B8, softcap-D64 and every bf16-q int8 row; dropped for f16 q
    // on tiles under 64 rows (`chooseFlashTile`).
    int8Fold: true,
    // v13: bf16 q with an fp8 cache, the same bound pass instead of per-tile maxima; v15: with
    // an int8 cache where the fold is dropped (`chooseFlashTile`).
    byteNewBound: true,
    // v14: bf16 caches, the bound pass over the pools and new tokens instead of per-tile maxima.
    poolBound: true,
    lateNew: true,
  } as const;
  const h = (
    rows: number,
    keys: number,
    threads: number,
    sRows: number,
    oRows: number,
  ): FlashTile => ({ rows, keys, threads, sRows, oRows, ...f16Fields });
  // D64: 128-key tiles (47.3 KB with fp8's table; v8: the softcap rows 1-5% faster than 64 keys),
  // O flushed every 64 keys (v9: softcap f16 0.569 -> 0.559 ms, bf16 0.588 -> 0.579; the error
  // model's worst D64 cells are those of 32 keys, docs/perf/f16_error_model_flushes_2026-11-21.log).
  const tuned = headDim <= 64
    ? [{ ...h(64, 128, 256, 4, 4), f16PvFlush: D64_PV_FLUSH }, h(64, 64, 256, 4, 4)]
    : headDim <= 128
    ? [
      // Small grids: 32x32 tiles of ~20 KB, two resident per SM (v9).
      ...(smallGrid ? [h(32, 32, 128, 2, 4)] : []),
      // Byte caches stage their new tokens with the codes here (v11: lateNew made the B8 fp8 rows
      // 2.2-2.6% slower on this tile, the seed row no faster).
      { ...h(64, 64, 256, 2, 8), lateNew: false },
      // D 96 (24 vec4 columns, no 32 D groups): 256 invocations with O 2 x 3 (v9: the D96
      // non-causal softcap row 0.111 -> 0.082 ms against 64x32/128, which has 4 warps per SM).
      { ...h(64, 64, 256, 2, 2), lateNew: false },
    ]
    : [
      // D256: Q (33 KB of f16) in a global scratch buffer leaves room for 64 keys and S 2x8
      // (44 KB; v10: the D256 tuning row 11.1 -> 8.4 ms against 64x16 with Q in workgroup memory).
      { ...h(64, 64, 256, 2, 8), qGlobal: true },
      h(64, 16, 256, 1, 4),
    ];
  // Decode-shaped calls (few rows) start with the small row tiles of the f32 list.
  return [
    ...(maxRows <= 16 ? [] : tuned),
    ...flashTileCandidates(headDim, maxRows).map((t) => ({ ...t, ...f16Fields })),
  ];
}

/**
 * Below this many attention FLOPs a problem is a small grid: one or two waves of 64-row tiles,
 * whose longest item sets the time. Between the 4 GFLOP MHA, MQA and varlen rows (10-18% faster
 * on 32-row tiles) and the 10.7 GFLOP non-causal llama row (15% slower) on the H200 (PERF_LOG v9).
 */
export const SMALL_GRID_FLOPS = 8e9;

/**
 * Above this ratio of padded rows on 64-row tiles to padded rows on 32-row tiles, a problem's
 * requests are too short for 64-row tiles (the decode-mixed row, q 1-16 over 4 heads: 1.663 ->
 * 1.479 ms on 32-row tiles; PERF_LOG v9).
 */
export const SMALL_TILE_PADDING_RATIO = 1.15;

/** Attention FLOPs of `problem`: 4 D per visible (query, head, key), as SPEC §6 counts them. */
export function attentionFlops(
  problem: Pick<Problem, "qLens" | "cacheLens" | "numHeads" | "headDim" | "isCausal">,
): number {
  const pairs = problem.qLens.reduce(
    (sum, q, b) => sum + visiblePairsOf(q, problem.cacheLens[b] ?? 0, problem.isCausal),
    0,
  );
  return 4 * problem.headDim * problem.numHeads * pairs;
}

/**
 * Whether `problem` runs faster on the small 32-row tiles (two per SM) than on 64-row ones
 * (one per SM: the SM holds ~48 KB of workgroup memory under Vulkan on the H200,
 * `tools/probe_occupancy.ts`): a small grid by FLOPs, or requests so short that 64-row tiles are
 * mostly padding.
 */
export function isSmallGrid(
  problem: Pick<
    Problem,
    "qLens" | "cacheLens" | "numHeads" | "numKvHeads" | "headDim" | "isCausal"
  >,
): boolean {
  if (attentionFlops(problem) < SMALL_GRID_FLOPS) return true;
  const group = problem.numHeads / problem.numKvHeads;
  let pad64 = 0;
  let pad32 = 0;
  for (const q of problem.qLens) {
    pad64 += Math.ceil((q * group) / 64) * 64;
    pad32 += Math.ceil((q * group) / 32) * 32;
  }
  return pad32 > 0 && pad64 / pad32 > SMALL_TILE_PADDING_RATIO;
}

/** The first pipelined candidate for `problem` that is valid and fits `limits`, or null. */
export function choosePipelinedTile(problem: Problem, limits: FlashLimits): FlashTile | null {
  const group = problem.numHeads / problem.numKvHeads;
  const maxRows = Math.max(0, ...problem.qLens) * group;
  const kv16 = problem.cacheDtype === "f16" || problem.cacheDtype === "bf16";
  for (const tile of flashPipelinedCandidates(problem.headDim, maxRows, kv16)) {
    if (tileFits(problem, tile, limits)) return tile;
  }
  return null;
}

/** Storage buffers a `qGlobal` attention pass binds (the 11 of every pass and Q's scratch). */
export const FLASH_QGLOBAL_STORAGE_BUFFERS = 12;

/**
 * The fewest attention FLOPs at which `poolBound` is used. Its passes and the fallback's empty
 * grid cost ~10 us a call, and the per-tile guard it removes ~2.7% of a 64-row D128 tile's time
 * (~5% of a 32-row tile's), so it pays on rows of ~0.4 ms and more. On the H200 (PERF_LOG v14) the
 * B4 and B8 rows ran 2.7% faster, the seed rows 0.2-1.4%, softcap D64 (18 GFLOP) 0.7%; the MHA
 * (3.9 GFLOP), non-causal (10.7) and D96 (1.2) rows 4-5% slower and varlen (4.0) 1.8% faster.
 */
export const POOL_BOUND_MIN_FLOPS = 16e9;

/**
 * The fewest attention FLOPs per byte of the pools' scan at which `poolBound` is used. The scan
 * reads every K and V value of the requests' old tokens once more: at ~4 TB/s against ~35
 * TFLOP/s it costs less than the guard's ~2.7% from ~320 FLOPs per byte. The prefill rows have
 * 2176 or more; the decode-like q16 row (64) ran 9% slower with it.
 */
export const POOL_BOUND_MIN_FLOPS_PER_BYTE = 512;

/**
 * Whether `poolBound` pays for `problem`: at most D128 (the D256 tile ran 2.9% slower with it, in
 * the kernel, not the scan: PERF_LOG v14), `POOL_BOUND_MIN_FLOPS` and
 * `POOL_BOUND_MIN_FLOPS_PER_BYTE`.
 */
export function poolBoundPays(
  problem: Pick<
    Problem,
    "qLens" | "cacheLens" | "numHeads" | "numKvHeads" | "headDim" | "isCausal"
  >,
): boolean {
  const scanBytes = problem.cacheLens.reduce((a, b) => a + b, 0) * problem.numKvHeads *
    problem.headDim * 4;
  const flops = attentionFlops(problem);
  return problem.headDim <= 128 && flops >= POOL_BOUND_MIN_FLOPS &&
    flops >= POOL_BOUND_MIN_FLOPS_PER_BYTE * scanBytes;
}

/**
 * The share of the (row, key) pairs a call visits whose key is a new token: causal rows see
 * their request's old tokens and the new ones up to their own, non-causal rows all of both.
 */
export function newKeyShare(
  problem: Pick<Problem, "qLens" | "cacheLens" | "isCausal">,
): number {
  let fresh = 0, all = 0;
  problem.qLens.forEach((q, b) => {
    // The pairs on new tokens are those a request without old tokens would visit.
    fresh += visiblePairsOf(q, 0, problem.isCausal);
    all += visiblePairsOf(q, problem.cacheLens[b]!, problem.isCausal);
  });
  return all === 0 ? 0 : fresh / all;
}

/**
 * The new-key share (`newKeyShare`) from which f16 q's 32-row byte tiles stage new tokens with
 * the codes instead of late (`lateNew` off): the varlen rows (0.69) ran 1.4-1.8% faster so, the
 * MQA row (0.11) and bf16 q 0.3-0.6% slower (PERF_LOG v15).
 */
export const LATE_NEW_MAX_NEW_SHARE = 0.5;

/** Device limits a spec must respect. */
export interface FlashLimits {
  workgroupBytes: number;
  invocations: number;
  /** shader-f16 is enabled: `f16Math` tiles are allowed. @default false */
  f16?: boolean;
  /** Storage buffers a shader stage may bind (`qGlobal` tiles bind 12). @default 8 */
  storageBuffers?: number;
}

/** The spec for `problem` with `tile` (split and page alignment from the arguments). */
export function flashSpecFor(problem: Problem, tile: FlashTile, split: boolean): FlashSpec {
  const {
    fp8Alu,
    int8Alu,
    int8Fold,
    byteNewBound,
    poolBound,
    lateNew,
    byteChunk,
    ...shape
  } = tile;
  const byteCache = problem.cacheDtype === "fp8_e4m3" || problem.cacheDtype === "int8";
  return {
    qDtype: problem.qDtype,
    cacheDtype: problem.cacheDtype,
    headDim: problem.headDim,
    ...shape,
    // fp8Alu is how fp8 codes decode; other caches have none to decode.
    ...(fp8Alu && problem.cacheDtype === "fp8_e4m3" ? { fp8Alu } : {}),
    ...(int8Alu && problem.cacheDtype === "int8" ? { int8Alu } : {}),
    ...(int8Fold && problem.cacheDtype === "int8" && tile.f16Math ? { int8Fold } : {}),
    // f16 q has no per-tile guard for byteNewBound to replace.
    ...(byteNewBound && byteCache && problem.qDtype === "bf16" && tile.f16Math &&
        !(int8Fold && problem.cacheDtype === "int8")
      ? { byteNewBound }
      : {}),
    // A bf16 cache holds bf16 values with no scale to bound them: only the pass's scan does.
    ...(poolBound && problem.cacheDtype === "bf16" && problem.qDtype === "bf16" && tile.f16Math
      ? { poolBound }
      : {}),
    // lateNew and byteChunk change how byte codes are staged; 16-bit caches stage one word.
    ...(lateNew && byteCache ? { lateNew } : {}),
    ...(byteChunk && byteCache ? { byteChunk } : {}),
    causal: problem.isCausal,
    softcap: problem.softcap > 0,
    pageAligned: problem.pageSize >= tile.keys,
    split,
  };
}

/**
 * The first candidate tile for `problem` that is valid and fits `limits`, or null: f16
 * arithmetic first where `f16Math` allows it, the device has shader-f16, the score scale is
 * at most `F16_MAX_LOGIT_SCALE` / sqrt(D) and the problem has at least `F16_MIN_FLOPS`, then f32.
 */
export function chooseFlashTile(
  problem: Problem,
  limits: FlashLimits,
  f16Math = true,
): FlashTile | null {
  const group = problem.numHeads / problem.numKvHeads;
  const maxRows = Math.max(0, ...problem.qLens) * group;
  const half = f16Math && limits.f16 === true && f16ScaleAllows(problem) &&
      f16SizeAllows(problem)
    ? flashHalfCandidates(problem.headDim, maxRows, isSmallGrid(problem))
    : [];
  for (const tile of [...half, ...flashTileCandidates(problem.headDim, maxRows)]) {
    if (tileFits(problem, tile, limits)) {
      return withoutSlowBound(problem, withoutSlowLateNew(problem, tile));
    }
  }
  return null;
}

/**
 * `tile` without the bounded options where they measured slower. `int8Fold`: tiles under 64 rows.
 * With f16 q the fold saves no per-tile guard (only bf16 q has one) and its passes before
 * attention and the fallback's empty dispatch cost ~10 us of a short kernel (PERF_LOG v13: the
 * varlen int8 row 0.233 -> 0.255 ms with f16 q). With bf16 q such tiles take `byteNewBound`'s
 * factors over the codes times their scales instead (PERF_LOG v15: the varlen int8 row 0.233 ->
 * 0.218 ms, where the fold's per-item Q and O scaling is a larger share of each short item; on the
 * 64-row tiles the fold stays 4% faster). `poolBound`: where `poolBoundPays` says no.
 */
function withoutSlowBound(problem: Problem, tile: FlashTile): FlashTile {
  const { int8Fold, poolBound, ...rest } = tile;
  return {
    ...rest,
    ...(int8Fold && tile.rows >= 64 ? { int8Fold } : {}),
    ...(poolBound && poolBoundPays(problem) ? { poolBound } : {}),
  };
}

/**
 * `tile` without `lateNew` where staging new tokens with the codes measured faster: f16 q on
 * tiles of at most 32 rows when new tokens are at least `LATE_NEW_MAX_NEW_SHARE` of the keys.
 */
function withoutSlowLateNew(problem: Problem, tile: FlashTile): FlashTile {
  if (!tile.lateNew || problem.qDtype !== "f16" || tile.rows > 32) return tile;
  return newKeyShare(problem) >= LATE_NEW_MAX_NEW_SHARE ? { ...tile, lateNew: false } : tile;
}

/** Why `tile` does not make a valid spec for `problem` within `limits`, or null. */
export function tileProblem(problem: Problem, tile: FlashTile, limits: FlashLimits): string | null {
  const spec = flashSpecFor(problem, tile, false);
  const why = flashSpecProblem(spec);
  if (why) return why;
  if (tile.f16Math && !limits.f16) return "tile f16Math needs shader-f16, the device has none";
  const storageBuffers = limits.storageBuffers ?? 8;
  if (tile.qGlobal && storageBuffers < FLASH_QGLOBAL_STORAGE_BUFFERS) {
    return `tile qGlobal binds ${FLASH_QGLOBAL_STORAGE_BUFFERS} storage buffers, the device allows ${storageBuffers}`;
  }
  if (tile.threads > limits.invocations) {
    return `tile threads ${tile.threads} exceed the device's ${limits.invocations} invocations`;
  }
  const bytes = flashGeometry(spec).workgroupBytes;
  if (bytes > limits.workgroupBytes) {
    return `tile needs ${bytes} bytes of workgroup memory, the device has ${limits.workgroupBytes}`;
  }
  return null;
}

/** Whether `tile` makes a valid spec for `problem` within `limits`. */
export function tileFits(problem: Problem, tile: FlashTile, limits: FlashLimits): boolean {
  return tileProblem(problem, tile, limits) === null;
}
