/**
 * What the subgroup-matrix ("mma") kernel's generated WGSL depends on (`MmaSpec`), the key that
 * spells it, the warp/tile geometry derived from it, and the adapter checks of the variant.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { CacheDtype, Problem, QDtype } from "../../op/types.ts";
import { DTYPE_KEY } from "../_shared.ts";

/** Side of the square f16 x f16 -> f32 subgroup matrix tiles the kernel uses. */
export const MMA_TILE = 16;

/** Everything that changes the generated attention WGSL. */
export interface MmaSpec {
  /**
   * Cache dtype (a 16-bit cache has q's dtype). bf16 values are rounded to f16 while staged:
   * the host only plans that when they all fit f16's range (`Problem.bf16OutsideF16`).
   */
  cacheDtype: CacheDtype;
  /** dtype of q, k_new, v_new and o. @default "f16" */
  qDtype?: QDtype;
  /** D: a multiple of 16, at most 256. */
  headDim: number;
  /** Row blocks: the workgroup owns 16 * rowBlocks (query, head) rows. */
  rowBlocks: number;
  /** Warps per row block: they split the keys of S and the columns of O. */
  colWarps: number;
  /** Bc: keys per K/V tile; a multiple of 16 * colWarps. */
  keys: number;
  /** Subgroup size (invocations per warp); the workgroup has sg * rowBlocks * colWarps. */
  sg: number;
  causal: boolean;
  softcap: boolean;
  /** Write unnormalised partials (m, l, O) for the split-KV combine pass instead of o. */
  split: boolean;
  /**
   * Compute S^T = K Q^T (K as the left matrix, Q^T staged transposed as the right one) so no
   * matrix is loaded column-major; scores are stored key-major. @default false
   */
  transposedScores?: boolean;
  /** Use Dawn's newer builtin spelling `subgroupMatrixLoad<T, row_major>(p, offset, stride)`. */
  newSyntax?: boolean;
  /** Keep the staged Q tile in its own workgroup array for the whole item (never overwritten). */
  qResident?: boolean;
  /** Diagnostic: row max/sum through workgroup memory instead of subgroupShuffleXor. */
  smemReduce?: boolean;
  /** Diagnostic: decode f16 pairs with unpack2x16float instead of a bitcast. */
  unpackH2?: boolean;
  /**
   * Tuning hook: leave one stage out (results are wrong; for timing the others). "exp"
   * replaces the softmax's exp2s with an FMA; "all" leaves out qk, pv, softmax and load (the
   * key loop's skeleton); "all-noflag" also reads the rescale flag as 0 (no uniform load);
   * "all-nosync" also drops the key loop's barriers; "all-constflag" replaces the flag's
   * uniform load with a barrier and a never-set uniform value; "all-norescale" empties the
   * rescale; "flag" (every stage on) compiles the rescale out.
   */
  ablate?:
    | "qk"
    | "pv"
    | "softmax"
    | "load"
    | "exp"
    | "flag"
    | "all"
    | "all-noflag"
    | "all-nosync"
    | "all-constflag"
    | "all-norescale";
  /**
   * Test hook: emulate the subgroup matrix builtins with plain WGSL (workgroup memory and
   * barriers) so the algorithm runs on adapters without matrix units (lavapipe). Slow.
   */
  emulate?: boolean;
  /**
   * Diagnostic: emulate only one stage's matrices (`qk`: Q, K and S; `pv`: P, V and O) and run
   * the other on the real builtins, to find which stage goes wrong on an adapter.
   */
  emulateStage?: "qk" | "pv";
  /**
   * Load each Q fragment from the resident Q tile (implies `qResident`) right before its
   * product instead of holding all of them in variables across the key loop.
   */
  qReload?: boolean;
  /** Diagnostic: run the O rescale round trip on every tile, not only when a row max moved. */
  alwaysRescale?: boolean;
  /**
   * Diagnostic: work item 0 writes its first tile's raw scores (S = Q K^T, f32, `rows` x `ss`)
   * into the output binding as f32 bits, and every workgroup stops after its first tile.
   */
  dumpScores?: boolean;
  /** Diagnostic, with `dumpScores`: dump the staged K tile (h_s as f32) instead of S. */
  dumpTile?: boolean;
  /**
   * f16 caches only: the full old (paged) tiles load their K and V subgroup matrices straight
   * from the pools (bound a second time as `array<f16>`, bindings 12 and 13) instead of
   * staging them through workgroup memory. Needs page_size % 16 == 0 (a 16-key block must lie
   * in one page): the host only sets it then, and the kernel also checks `page_shift >= 4` at
   * run time (staging every tile otherwise). Partial old tiles and the chunk's own keys are
   * still staged. `"k"`: only K is loaded directly, V is staged as before. @default false
   */
  directKV?: boolean | "k";
  /**
   * Stage K/V in 4-byte units (one u32 of the cache per load: 2 f16 or 4 codes) so the lanes
   * of a warp store consecutive words of workgroup memory (no bank conflicts), instead of
   * 16-byte units whose scalar f16 stores conflict 4 ways. @default false
   */
  narrowStaging?: boolean;
  /**
   * Software-pipelined key loop: K and V have their own halves of the staging buffer, so one
   * phase runs P V of tile t together with Q K^T of tile t + 1, and the next runs tile t + 1's
   * softmax while storing V(t + 1) and K(t + 2): three workgroup barriers per tile instead of
   * five. Not with `directKV` or `dumpScores`. @default false
   */
  pipelined?: boolean;
  /**
   * Row stride of the key-major S tile (`transposedScores`) is rows + 8 f32 instead of
   * rows + 4: with 128 rows, 136 = 8 (mod 32) banks apart, so the softmax's reads (4 keys x 8
   * rows per warp) hit 32 banks instead of 20 (and so would the matrix stores, if the driver
   * writes 4 rows x 8 columns per half warp). @default false
   */
  widePaddedScores?: boolean;
  /**
   * In the softmax each of a row's threads owns a run of adjacent keys instead of every
   * TPR-th key, so with row-major S its reads of S and writes of P are adjacent elements (one
   * vector access each where the compiler merges them). @default false
   */
  contiguousScores?: boolean;
  /**
   * 16-bit caches: each row's reference max is fixed by its first tile with a visible key, so
   * the key loop (classic or pipelined) has no rescale and no per-tile uniform load of the
   * flag; an item whose scores rise more than 2^15 above it runs again with the lazily
   * rescaled loop. Not with `directKV` or fp8/int8 caches (their V scales need the rescale).
   * @default false
   */
  fixedMax?: boolean;
  /**
   * 16-bit caches: the append runs in this dispatch, in workgroups past the last attention
   * item (each copies one 16-byte unit of the new K and V rows per invocation), instead of a
   * pass of its own after a barrier: they launch last, onto the SMs the launch's tail leaves
   * idle. Sound because attention never reads the slots the append writes (SPEC §1). The pools
   * are then bound read_write. Not with `directKV` (which binds the pools a second time).
   * @default false
   */
  fusedAppend?: boolean;
  /** Test hook, with `fixedMax`: every item takes the fallback (the rescaled loop). */
  forceRedo?: boolean;
  /**
   * Test hook, with `fixedMax`: an item that took the fallback writes its rows 1024x too small,
   * so a test sees whether any item ran again.
   */
  poisonRedo?: boolean;
}

/** The optional spec fields a caller may set (diagnostics and layout choices). */
export type MmaExtra = Pick<
  MmaSpec,
  | "transposedScores"
  | "ablate"
  | "newSyntax"
  | "smemReduce"
  | "unpackH2"
  | "qResident"
  | "emulateStage"
  | "alwaysRescale"
  | "dumpScores"
  | "dumpTile"
  | "qReload"
  | "directKV"
  | "narrowStaging"
  | "pipelined"
  | "widePaddedScores"
  | "contiguousScores"
  | "fixedMax"
  | "fusedAppend"
  | "forceRedo"
  | "poisonRedo"
>;

/** Geometry derived from a spec; every field is a compile-time constant of the WGSL. */
export interface MmaGeometry {
  /** Invocations per workgroup. */
  threads: number;
  /** Warps per workgroup. */
  warps: number;
  /** Br = 16 * rowBlocks. */
  rows: number;
  /** Threads per row in the softmax (threads / rows). */
  tpr: number;
  /** f16 row stride of the K/V/Q staging tile (D + 8). */
  ks: number;
  /** f32 row stride of the S tile (Bc + 4). */
  ss: number;
  /** f16 row stride of the P tile (Bc + 8). */
  ps: number;
  /** D / 16. */
  dBlocks: number;
  /** D blocks of O per warp. */
  dBlocksPerWarp: number;
  /** Bc / 16. */
  kBlocks: number;
  /** Key blocks of S per warp. */
  kBlocksPerWarp: number;
  /** O blocks per warp moved through the S tile in one round (rescale, output). */
  roundBlocks: number;
  /** Rounds to move all O blocks through the S tile. */
  rounds: number;
  /** 8-element units of a K/V tile each thread loads. */
  unitsPerThread: number;
  /** Rows of Q staged per pass through the K/V tile buffer. */
  qPassRows: number;
  /** f16 row stride of transposed Q staging ([d][row], transposedScores). */
  qts: number;
  /** f32 row stride of the key-major S tile (transposedScores). */
  st: number;
  /** f16 elements of the staging buffer. */
  hElems: number;
  /** Element offset of the V half of the staging buffer (0 unless pipelined). */
  vHalf: number;
  /** f32 elements of the S / O-round buffer. */
  sElems: number;
  /** f16 elements of the P buffer. */
  pElems: number;
  /** Bytes of workgroup memory the kernel declares. */
  workgroupBytes: number;
}

/** Why `spec` cannot be generated, or null. */
export function mmaSpecProblem(spec: MmaSpec): string | null {
  const { headDim: D, rowBlocks: WR, colWarps: WC, keys: BC, sg } = spec;
  if (D % MMA_TILE !== 0 || D < MMA_TILE || D > 256) {
    return `head_dim ${D} is not a multiple of 16 in [16, 256]`;
  }
  if (!Number.isInteger(WR) || WR < 1 || !Number.isInteger(WC) || WC < 1) {
    return `rowBlocks ${WR} and colWarps ${WC} must be integers >= 1`;
  }
  if ((D / MMA_TILE) % WC !== 0) return `D/16 = ${D / MMA_TILE} not divisible by ${WC} warps`;
  if (BC % (MMA_TILE * WC) !== 0) return `keys ${BC} not a multiple of 16 * ${WC}`;
  if (![8, 16, 32, 64, 128].includes(sg)) return `subgroup size ${sg} not supported`;
  const threads = sg * WR * WC;
  const rows = MMA_TILE * WR;
  if (threads % rows !== 0) return `${threads} threads not a multiple of ${rows} rows`;
  const tpr = threads / rows;
  if ((tpr & (tpr - 1)) !== 0 || tpr > sg || BC % tpr !== 0) {
    return `${tpr} threads per row must be a power of two <= ${sg} dividing ${BC} keys`;
  }
  if (((BC * D) / 8) % threads !== 0) return `${BC}x${D} tile not divisible by ${threads} threads`;
  if (((MMA_TILE * D) / 8) % sg !== 0) return `a 16-row Q block is not divisible by ${sg} lanes`;
  if (spec.pipelined && (spec.directKV || spec.dumpScores)) {
    return "a pipelined key loop stages every tile (no directKV) and runs past the first (no dumpScores)";
  }
  if (
    spec.fixedMax &&
    (spec.directKV || spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8")
  ) {
    return `fixedMax needs a 16-bit cache without directKV (fp8 and int8 apply their V scales through the rescale; here ${spec.cacheDtype}${
      spec.directKV ? " with directKV" : ""
    })`;
  }
  if (
    spec.fusedAppend &&
    (spec.directKV || spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8")
  ) {
    return `fusedAppend copies 16-bit rows into 16-bit pools without directKV (here ${spec.cacheDtype}${
      spec.directKV ? " with directKV" : ""
    })`;
  }
  if ((spec.forceRedo || spec.poisonRedo) && !spec.fixedMax) {
    return "forceRedo and poisonRedo only apply with fixedMax";
  }
  if (spec.directKV && spec.cacheDtype !== "f16") {
    return `directKV needs an f16 cache (${spec.cacheDtype} codes must be decoded while staged)`;
  }
  return null;
}

/**
 * Pool units per new K/V row that `fusedAppend` copies, one per invocation: 16-byte units
 * (D / 8), or words (D / 2) with `narrowStaging`, whose pools are bound as words.
 */
export function mmaAppendUnitsPerRow(spec: MmaSpec): number {
  return spec.headDim / (spec.narrowStaging ? 2 : 8);
}

/** The derived geometry of a valid spec. Throws a RangeError for an invalid one. */
export function mmaGeometry(spec: MmaSpec): MmaGeometry {
  const why = mmaSpecProblem(spec);
  if (why) throw new RangeError(`Cannot build mma kernel ${mmaKey(spec)}: ${why}`);
  const D = spec.headDim;
  const BC = spec.keys;
  const WC = spec.colWarps;
  const warps = spec.rowBlocks * WC;
  const threads = spec.sg * warps;
  const rows = MMA_TILE * spec.rowBlocks;
  const ks = D + 8;
  const ss = BC + 4;
  const ps = BC + 8;
  const dBlocks = D / MMA_TILE;
  const kBlocks = BC / MMA_TILE;
  const dBlocksPerWarp = dBlocks / WC;
  const roundBlocks = Math.min(dBlocksPerWarp, Math.floor(kBlocks / WC));
  const qRes = spec.qResident || spec.qReload;
  const qPassRows = qRes ? rows : Math.min(rows, BC);
  const qts = qPassRows + 8;
  const st = rows + (spec.widePaddedScores ? 8 : 4);
  const tr = spec.transposedScores === true;
  // One extra row stride at the end of each array a matrix is loaded from or stored to:
  // Dawn's robustness pass predicates subgroup matrix loads/stores on a bound of the form
  // offset + stride * 16, which overshoots the last element by up to a stride (seen on the H200:
  // unpadded tiles read back as zero matrices).
  // Pipelined: K and V each have a padded half; Q is staged (first, and for int8 again before
  // the first new tile) only while neither half holds a tile still to be read.
  const half = BC * ks + ks;
  const qStage = tr ? D * qts + qts : qRes ? 0 : qPassRows * ks + ks;
  const hElems = spec.pipelined
    ? Math.max(2 * half, qStage)
    : Math.max(BC * ks, tr ? D * qts : 0) + Math.max(ks, tr ? qts : 0);
  const sElems = Math.max(rows * ss, tr ? BC * st : 0) + Math.max(ss, tr ? st : 0);
  const pElems = rows * ps + ps;
  const workgroupBytes = hElems * 2 + // K/V (and Q) staging tile, f16
    sElems * 4 + // S, f32 (also O in rounds)
    pElems * 2 + // P, f16
    rows * 8 + // row alpha, row sum / max
    16 + // rescale flag (a vec4: see the template)
    (qRes ? ((spec.cacheDtype === "int8" ? 2 : 1) * rows * ks + ks) * 2 : 0) + // resident Q
    (spec.emulate || spec.emulateStage ? warps * 512 * 4 : 0) + // emulation scratch
    (spec.emulate || spec.smemReduce ? threads * 4 : 0); // row reduction scratch
  return {
    threads,
    warps,
    rows,
    tpr: threads / rows,
    ks,
    ss,
    ps,
    dBlocks,
    dBlocksPerWarp,
    kBlocks,
    kBlocksPerWarp: kBlocks / WC,
    roundBlocks,
    rounds: Math.ceil(dBlocksPerWarp / roundBlocks),
    unitsPerThread: (BC * D) / 8 / threads,
    qPassRows,
    qts,
    st,
    hElems,
    vHalf: spec.pipelined ? half : 0,
    sElems,
    pElems,
    workgroupBytes,
  };
}

/**
 * The key spelling every spec field; labels the module, pipeline and buffers.
 *
 * @example
 * ```ts
 * import { mmaKey } from "./spec.ts";
 * const key = mmaKey({
 *   cacheDtype: "f16", headDim: 128, rowBlocks: 4, colWarps: 1, keys: 64, sg: 32,
 *   causal: true, softcap: false, split: false,
 * });
 * if (key !== "paged_prefill_mma_q-f16_kv-f16_d128_r64_k64_w4x1_sg32_causal") throw new Error(key);
 * ```
 */
export function mmaKey(spec: MmaSpec): string {
  return [
    "paged_prefill_mma",
    `q-${DTYPE_KEY[spec.qDtype ?? "f16"]}`,
    `kv-${DTYPE_KEY[spec.cacheDtype]}`,
    `d${spec.headDim}`,
    `r${MMA_TILE * spec.rowBlocks}`,
    `k${spec.keys}`,
    `w${spec.rowBlocks}x${spec.colWarps}`,
    `sg${spec.sg}`,
    spec.causal ? "causal" : "full",
    ...(spec.softcap ? ["softcap"] : []),
    ...(spec.split ? ["split"] : []),
    ...(spec.transposedScores ? ["st"] : []),
    ...(spec.newSyntax ? ["ns"] : []),
    ...(spec.smemReduce ? ["smr"] : []),
    ...(spec.unpackH2 ? ["uh"] : []),
    ...(spec.qResident ? ["qr"] : []),
    ...(spec.qReload ? ["ql"] : []),
    ...(spec.directKV ? [spec.directKV === "k" ? "dk" : "dkv"] : []),
    ...(spec.narrowStaging ? ["nw"] : []),
    ...(spec.pipelined ? ["pl"] : []),
    ...(spec.widePaddedScores ? ["wps"] : []),
    ...(spec.contiguousScores ? ["cs"] : []),
    ...(spec.fixedMax ? ["fm"] : []),
    ...(spec.fusedAppend ? ["fa"] : []),
    ...(spec.forceRedo ? ["redo"] : []),
    ...(spec.poisonRedo ? ["poison"] : []),
    ...(spec.ablate ? [`no-${spec.ablate}`] : []),
    ...(spec.emulate ? ["emulated"] : []),
    ...(spec.emulateStage ? [`emu-${spec.emulateStage}`] : []),
    ...(spec.alwaysRescale ? ["ar"] : []),
    ...(spec.dumpScores ? [spec.dumpTile ? "dumptile" : "dump"] : []),
  ].join("_");
}

/** Tile shape of an mma spec, without what the problem fixes. */
export interface MmaTile {
  rowBlocks: number;
  colWarps: number;
  keys: number;
}

/**
 * Tile shapes tried in order for a head dim; the first valid one that fits the device's
 * workgroup memory and invocation limits wins (see docs/PERF_LOG_MMA.md).
 */
export function mmaTileCandidates(headDim: number): MmaTile[] {
  const t = (rowBlocks: number, colWarps: number, keys: number): MmaTile => ({
    rowBlocks,
    colWarps,
    keys,
  });
  // One warp per row block, 64 keys first: the tiles D up to 128 were first verified with.
  const oneWarp = [t(4, 1, 64), t(4, 1, 32), t(2, 1, 32), t(2, 1, 16), t(1, 1, 16)];
  // D 128: 128 rows x 32 keys with two warps per row block first. On the H200 it took the seed
  // workload from 0.669 ms (4x1x64) to 0.449 ms and b8 x (4k + 512) from 4.40 to 2.20 ms
  // (docs/PERF_LOG_MMA.md, run 20): twice the warps per K/V tile hide the staging latency.
  // (8x2x32 stages a K tile in exactly one 16-byte unit per thread only at D 128.)
  if (headDim === 128) return [t(8, 2, 32), t(4, 2, 64), ...oneWarp];
  if (headDim <= 128) return oneWarp;
  return [t(4, 2, 32), t(2, 2, 32), t(2, 1, 16), t(1, 1, 16)];
}

/**
 * A tile written `ROWBLOCKSxCOLWARPSxKEYS` (e.g. `4x2x64`: 64 query rows, 2 warps per row
 * block, 64 keys per K/V tile), as `PAGED_PREFILL_MMA_TILE` takes it. Throws naming the text
 * when it is not three positive integers with keys a multiple of 16 x colWarps.
 *
 * @example
 * ```ts
 * import { parseMmaTile } from "./spec.ts";
 * console.log(parseMmaTile("4x2x64")); // { rowBlocks: 4, colWarps: 2, keys: 64 }
 * ```
 */
export function parseMmaTile(text: string): MmaTile {
  const m = /^\s*(\d+)x(\d+)x(\d+)\s*$/.exec(text);
  const [rowBlocks, colWarps, keys] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  if (!m || rowBlocks < 1 || colWarps < 1 || keys < 16 || keys % (MMA_TILE * colWarps) !== 0) {
    throw new RangeError(
      `Cannot use mma tile "${text}": expected ROWBLOCKSxCOLWARPSxKEYS with positive integers and keys a multiple of 16 x COLWARPS (e.g. 4x1x64)`,
    );
  }
  return { rowBlocks, colWarps, keys };
}

/** Device limits a spec must respect. */
export interface MmaLimits {
  workgroupBytes: number;
  invocations: number;
  sg: number;
}

/** The spec for `problem` with `tile`. */
export function mmaSpecFor(
  problem: Problem,
  tile: MmaTile,
  sg: number,
  split: boolean,
  emulate = false,
  extra: MmaExtra = {},
): MmaSpec {
  return {
    ...extra,
    cacheDtype: problem.cacheDtype,
    ...(problem.qDtype === "bf16" ? { qDtype: "bf16" as const } : {}),
    headDim: problem.headDim,
    ...tile,
    sg,
    causal: problem.isCausal,
    softcap: problem.softcap > 0,
    split,
    ...(emulate ? { emulate } : {}),
  };
}

/**
 * Why `tile` makes no valid spec for `problem` within `limits`, or null: an option the spec
 * excludes, too many invocations, or too many bytes of workgroup memory.
 */
export function mmaTileProblem(
  problem: Problem,
  tile: MmaTile,
  limits: MmaLimits,
  split: boolean,
  emulate = false,
  extra: MmaExtra = {},
): string | null {
  const spec = mmaSpecFor(problem, tile, limits.sg, split, emulate, extra);
  const why = mmaSpecProblem(spec);
  if (why) return why;
  const geo = mmaGeometry(spec);
  const name = `tile ${tile.rowBlocks}x${tile.colWarps}x${tile.keys}`;
  if (geo.threads > limits.invocations) {
    return `${name} needs ${geo.threads} invocations, the adapter allows ${limits.invocations}`;
  }
  if (geo.workgroupBytes <= limits.workgroupBytes) return null;
  const halves = extra.pipelined ? " with separate K and V halves" : "";
  return `${name} at D ${problem.headDim} needs ${geo.workgroupBytes} bytes of workgroup memory${halves}, the adapter allows ${limits.workgroupBytes}`;
}

/** Whether `tile` makes a valid spec for `problem` within `limits` (split or not). */
export function mmaTileFits(
  problem: Problem,
  tile: MmaTile,
  limits: MmaLimits,
  emulate = false,
  extra: MmaExtra = {},
): boolean {
  return mmaTileProblem(problem, tile, limits, true, emulate, extra) === null;
}

/**
 * Why `tile` cannot run `problem` with the pipelined key loop (`MmaSpec.pipelined`) within
 * `limits`, or null: an option it excludes, or K and V halves that overflow the workgroup memory.
 */
export function mmaPipelinedProblem(
  problem: Problem,
  tile: MmaTile,
  limits: MmaLimits,
  split: boolean,
  emulate = false,
  extra: MmaExtra = {},
): string | null {
  return mmaTileProblem(problem, tile, limits, split, emulate, { ...extra, pipelined: true });
}

/** The first candidate tile for `problem` that is valid and fits `limits`, or null. */
export function chooseMmaTile(
  problem: Problem,
  limits: MmaLimits,
  emulate = false,
  extra: MmaExtra = {},
): MmaTile | null {
  for (const tile of mmaTileCandidates(problem.headDim)) {
    if (mmaTileFits(problem, tile, limits, emulate, extra)) return tile;
  }
  return null;
}

/** Subgroup size the kernel assumes on `gpu`: the adapter's, when min and max agree. */
export function fixedSubgroupSize(gpu: GpuContext): number | null {
  const min = Number(gpu.adapterInfo.subgroupMinSize ?? 0);
  const max = Number(gpu.adapterInfo.subgroupMaxSize ?? 0);
  return min > 0 && min === max ? max : null;
}

/** True when the adapter offers f16 x f16 -> f32 subgroup matrices of 16 x 16 x 16. */
export function hasF16MatrixConfig(gpu: GpuContext): boolean {
  return gpu.subgroupMatrixConfigs.some((c) =>
    c.componentType === "f16" && c.resultComponentType === "f32" &&
    Number(c.M) === MMA_TILE && Number(c.N) === MMA_TILE && Number(c.K) === MMA_TILE
  );
}

/** The device limits the mma kernel must respect (subgroup size 32 when unknown). */
export function mmaLimits(gpu: GpuContext): MmaLimits {
  return {
    workgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize ?? 16384,
    invocations: gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256,
    sg: fixedSubgroupSize(gpu) ?? 32,
  };
}
