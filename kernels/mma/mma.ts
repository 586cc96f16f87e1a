/**
 * Host side of the subgroup-matrix ("mma") kernel: checks the adapter, picks a tile, builds
 * the work list, uniforms and bind groups once (`plan`), then encodes attention (+ flash's
 * combine pass when split) and the append.
 * @module
 */
import { type GpuContext, readEnv } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { CacheDtype, Problem } from "../../op/types.ts";
import { combinePasses, type PassPlan } from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import { planSplitAttention } from "../flash/flash.ts";
import {
  chooseMmaTile,
  fixedSubgroupSize,
  hasF16MatrixConfig,
  mmaAppendUnitsPerRow,
  type MmaExtra,
  mmaGeometry,
  mmaKey,
  type MmaLimits,
  mmaLimits,
  mmaPipelinedProblem,
  type MmaSpec,
  mmaSpecFor,
  mmaSpecProblem,
  type MmaTile,
  mmaTileFits,
  parseMmaTile,
} from "./spec.ts";
import { MMA_BINDINGS, MMA_DIRECT_BINDINGS, mmaBindings, mmaWgsl } from "./template.ts";
import { buildMmaWorkList, type MmaWorkListOptions } from "./work_list.ts";

/** Options of `planMma()`. */
export interface MmaOptions extends MmaWorkListOptions {
  /**
   * Tile shape; must fit the device. @default `PAGED_PREFILL_MMA_TILE` when set (see
   * `parseMmaTile`), else the first of `mmaTileCandidates(D)` that fits
   */
  tile?: MmaTile;
  /**
   * Test hook: run the emulated kernel (plain WGSL instead of subgroup matrices; needs only
   * shader-f16), so the algorithm can be checked on adapters without matrix units.
   */
  emulate?: boolean;
  /** Compute S^T = K Q^T (no column-major matrix loads). @default MMA_TRANSPOSED_SCORES */
  transposedScores?: boolean;
  /** Tuning hook: leave one stage out (wrong results; timing only). */
  ablate?: MmaSpec["ablate"];
  /** Dawn's newer builtin spelling. @default false */
  newSyntax?: boolean;
  /** Keep Q in its own workgroup array for the whole item. */
  qResident?: boolean;
  /** Diagnostic: row reductions through workgroup memory. */
  smemReduce?: boolean;
  /** Diagnostic: f16 pairs decoded with unpack2x16float. */
  unpackH2?: boolean;
  /** Diagnostic: emulate one stage's matrices only (see `MmaSpec.emulateStage`). */
  emulateStage?: MmaSpec["emulateStage"];
  /** Q fragments reloaded from a resident Q tile at each product (see `MmaSpec.qReload`). */
  qReload?: boolean;
  /** Diagnostic: rescale O on every tile. */
  alwaysRescale?: boolean;
  /** Diagnostic: item 0 dumps its first tile's scores into o (see `MmaSpec.dumpScores`). */
  dumpScores?: boolean;
  /** Diagnostic, with `dumpScores`: dump the staged K tile instead. */
  dumpTile?: boolean;
  /**
   * f16 caches with page_size % 16 == 0: full old tiles load K and V subgroup matrices
   * straight from the pools (see `MmaSpec.directKV`; `"k"`: K only). Ignored, with the reason in
   * `planMmaAttention()`'s `directKVRefused`, where `mmaDirectKVProblem()` says why it cannot
   * apply. @default MMA_DIRECT_KV
   */
  directKV?: boolean | "k";
  /** K/V staged in 4-byte units (see `MmaSpec.narrowStaging`). @default MMA_NARROW_STAGING */
  narrowStaging?: boolean;
  /**
   * Software-pipelined key loop (see `MmaSpec.pipelined`); applied where the tile still fits
   * the workgroup memory with K and V in separate halves, and not with `directKV` or
   * `dumpScores`. @default `PAGED_PREFILL_MMA_PIPELINED` (0 or 1) when set, else whether
   * the cache dtype is in MMA_PIPELINED_CACHES
   */
  pipelined?: boolean;
  /**
   * Key-major S tile with row stride rows + 8 (see `MmaSpec.widePaddedScores`); only with
   * `transposedScores`. @default whether the tile's rows are in MMA_WIDE_PADDED_SCORES_ROWS
   */
  widePaddedScores?: boolean;
  /** Softmax threads own adjacent keys (see `MmaSpec.contiguousScores`). @default false */
  contiguousScores?: boolean;
  /**
   * Fixed reference max per row with the rescaled loop as the item's fallback (see
   * `MmaSpec.fixedMax`); applied over 16-bit caches without directKV. @default MMA_FIXED_MAX
   */
  fixedMax?: boolean;
  /**
   * The append in the attention dispatch, in workgroups after the last item (see
   * `MmaSpec.fusedAppend`); applied over 16-bit caches without directKV, elsewhere the append
   * keeps its own pass. @default MMA_FUSED_APPEND
   */
  fusedAppend?: boolean;
  /** Test hook, with `fixedMax`: every item takes the fallback. */
  forceRedo?: boolean;
  /** Test hook, with `fixedMax`: items that took the fallback write wrong rows. */
  poisonRedo?: boolean;
}

/** Default of `MmaOptions.directKV`: off until timed on a matrix adapter. */
export const MMA_DIRECT_KV = false;

/**
 * Why full old tiles cannot be loaded straight from the pools for `problem` on `gpu` (the
 * `directKV` option), or null.
 */
export function mmaDirectKVProblem(problem: Problem, gpu: GpuContext): string | null {
  if (problem.cacheDtype !== "f16") {
    return `directKV needs an f16 cache; ${problem.cacheDtype} codes are decoded while staged`;
  }
  if (problem.pageSize % 16 !== 0) {
    return `directKV needs page_size % 16 == 0 (a 16-key block in one page); page_size is ${problem.pageSize}`;
  }
  const need = MMA_DIRECT_BINDINGS.length - 1;
  const max = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  if (max < need) {
    return `directKV binds ${need} storage buffers, the adapter allows ${max}`;
  }
  return null;
}

/** Default of `MmaOptions.transposedScores`. */
export const MMA_TRANSPOSED_SCORES = true;

/**
 * Default of `MmaOptions.narrowStaging`: off. On the H200 it made every row slower (seed 0.449
 * -> 0.533 ms, b8 2.21 -> 2.97 ms; docs/PERF_LOG_MMA.md, run 23): four times the global loads
 * and block-table lookups cost more than the bank conflicts it removes.
 */
export const MMA_NARROW_STAGING = false;

/**
 * Cache dtypes whose default is the pipelined key loop (`MmaOptions.pipelined`). On the H200
 * int8 went from 0.588-0.606 to 0.565-0.570 ms (seed) and 3.27 to 2.91-2.93 ms (b8 x (4k + 512))
 * (runs 25-27): int8 runs two Q K^T products per block on old tiles, and that longer chain now
 * overlaps P V. With the fixed reference max (16-bit caches) the pipelined loop has two barriers
 * per tile against the classic loop's four: b8 f16 1.993-2.003 against 2.029-2.032 ms, the seed
 * equal (0.406-0.413 against 0.402-0.408), alternated in one call (run 37). fp8 measured the same
 * or slower pipelined (runs 25-27), so it keeps the classic loop.
 */
export const MMA_PIPELINED_CACHES: readonly CacheDtype[] = ["f16", "bf16", "int8"];

/**
 * Default of `MmaOptions.fixedMax`: on. Without the per-tile rescale check in the key loop, b8 x
 * (4k + 512) f16 ran 3.5% faster on the H200 and the seed workload 7% (docs/PERF_LOG_MMA.md,
 * run 36; runs 32-34 found the check's mere presence costing ~5%).
 */
export const MMA_FIXED_MAX = true;

/**
 * Default of `MmaOptions.fusedAppend`: off until `verify --all --backend dawn` has run with it.
 * On the H200 it took 1.1% off b8 x (4k + 512) and the seed row, with o bit-identical to the op
 * with its own append pass on four rows (docs/PERF_LOG_MMA.md, run 39).
 */
export const MMA_FUSED_APPEND = false;

/**
 * Rows of the tiles whose default is `widePaddedScores` (S^T row stride rows + 8). At 128 rows
 * the stride is 8 banks apart, so the softmax's reads are conflict-free (2-way at rows + 4). On
 * the H200 (docs/PERF_LOG_MMA.md, runs 28-30), each A/B inside one call: b8 x (4k + 512)
 * 2.20 -> 2.12-2.18 ms (f16), 2.46 -> 2.39 (fp8), 2.95 -> 2.87 (int8, pipelined); the seed
 * 0.447 -> 0.439. Other row counts keep rows + 4 (not measured).
 */
export const MMA_WIDE_PADDED_SCORES_ROWS: readonly number[] = [128];

/**
 * Whether `tile` takes `widePaddedScores`: as `asked`, else by MMA_WIDE_PADDED_SCORES_ROWS;
 * only with a key-major S tile (`extra.transposedScores`, the stride it pads) and where the
 * padded tile still fits `limits`.
 */
export function mmaWidePaddedScores(
  problem: Problem,
  tile: MmaTile,
  limits: MmaLimits,
  extra: MmaExtra,
  asked: boolean | undefined,
  emulate = false,
): boolean {
  if (!extra.transposedScores) return false;
  if (!(asked ?? MMA_WIDE_PADDED_SCORES_ROWS.includes(16 * tile.rowBlocks))) return false;
  return mmaTileFits(problem, tile, limits, emulate, { ...extra, widePaddedScores: true });
}

/** Environment variable `name` as 0 or 1, or undefined when unset. Throws naming any other value. */
function _envFlag(name: string): boolean | undefined {
  const env = readEnv(name);
  if (env === undefined || env === "") return undefined;
  if (env === "0" || env === "1") return env === "1";
  throw new RangeError(`Cannot read ${name}: expected 0 or 1, got "${env}"`);
}

/** `PAGED_PREFILL_MMA_PIPELINED` as a boolean, or undefined when unset (see `_envFlag`). */
export function mmaPipelinedFromEnv(): boolean | undefined {
  return _envFlag("PAGED_PREFILL_MMA_PIPELINED");
}

/**
 * What is wrong with the mma kernel's environment variables (`PAGED_PREFILL_MMA`,
 * `PAGED_PREFILL_MMA_TILE`, `PAGED_PREFILL_MMA_PIPELINED`), as one line naming the variable,
 * the expected form and the value; null when every one is unset or well formed. The GPU
 * commands check this before any work, so a typo is not read as a kernel that declined.
 */
export function mmaEnvironmentProblem(): string | null {
  try {
    _envFlag("PAGED_PREFILL_MMA");
    _envFlag("PAGED_PREFILL_MMA_PIPELINED");
  } catch (e) {
    return (e as Error).message;
  }
  const tile = readEnv("PAGED_PREFILL_MMA_TILE");
  try {
    if (tile) parseMmaTile(tile);
  } catch (e) {
    return `PAGED_PREFILL_MMA_TILE: ${(e as Error).message}`;
  }
  return null;
}

/** Why the adapter cannot run any mma kernel, or null (independent of the problem). */
export function mmaAdapterProblem(gpu: GpuContext): string | null {
  if (!gpu.hasSubgroupMatrix) {
    return `adapter "${gpu.adapterName}" (${gpu.implementation}) has no subgroup matrices: it needs Dawn's chromium-experimental-subgroup-matrix feature (--backend dawn on a GPU with matrix units)`;
  }
  if (!gpu.hasF16) return `adapter "${gpu.adapterName}" has no shader-f16`;
  if (!gpu.hasSubgroups) return `adapter "${gpu.adapterName}" has no subgroups`;
  if (!hasF16MatrixConfig(gpu)) {
    const have = gpu.subgroupMatrixConfigs.map((c) =>
      `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`
    ).join(", ");
    return `adapter "${gpu.adapterName}" offers no f16 -> f32 16x16x16 subgroup matrix (has: ${
      have || "none"
    })`;
  }
  if (fixedSubgroupSize(gpu) === null) {
    return `adapter "${gpu.adapterName}" has a variable subgroup size (${gpu.adapterInfo.subgroupMinSize}..${gpu.adapterInfo.subgroupMaxSize})`;
  }
  return null;
}

/** Why the mma kernel cannot run `problem` on `gpu` (emulated when asked), or null. */
export function mmaSupport(problem: Problem, gpu: GpuContext, emulate = false): string | null {
  if (problem.qDtype === "bf16") {
    // The matrices take f16 operands: bf16 values are rounded to f16 while staged, which is
    // only safe when none exceeds f16's range (validateProblem scans them).
    const where = problem.bf16OutsideF16;
    if (where === undefined) {
      return "q is bf16 and its values were not checked against f16's range (the problem did not come from validateProblem); the FMA kernels run bf16";
    }
    if (where !== null) {
      return `q is bf16 and ${where}, outside f16's range (|x| <= 65504) that the matrices' f16 operands hold; the FMA kernels run bf16`;
    }
  }
  if (problem.headDim % 16 !== 0 || problem.headDim > 256) {
    return `head_dim ${problem.headDim} is not a multiple of 16 up to 256`;
  }
  if (emulate) {
    if (!gpu.hasF16) return `adapter "${gpu.adapterName}" has no shader-f16`;
  } else {
    const why = mmaAdapterProblem(gpu);
    if (why) return why;
  }
  const max = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  if (max < MMA_BINDINGS.length - 1) {
    return `it binds ${MMA_BINDINGS.length - 1} storage buffers, the adapter allows ${max}`;
  }
  const limits = _limits(gpu, emulate);
  if (!chooseMmaTile(problem, limits, emulate)) {
    return `no tile for head_dim ${problem.headDim} fits ${limits.workgroupBytes} bytes of workgroup memory`;
  }
  return null;
}

function _limits(gpu: GpuContext, emulate: boolean): MmaLimits {
  const limits = mmaLimits(gpu);
  return emulate ? { ...limits, sg: 32 } : limits;
}

/** Plans the attention pass(es) only (no append); for the variant and the tuner. */
export async function planMmaAttention(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: MmaOptions = {},
): Promise<{
  passes: PassPlan[];
  key: string;
  list: ReturnType<typeof buildMmaWorkList>;
  code: string;
  /** Why `options.directKV` was asked for but not applied (null when applied or not asked). */
  directKVRefused: string | null;
  /** Why a pipelined loop was asked for (option or environment) but not applied, or null. */
  pipelinedRefused: string | null;
  /** True when the attention pass also appends the chunk (no append pass needed). */
  fusedAppend: boolean;
}> {
  const p = dev.problem;
  const emulate = options.emulate ?? false;
  const why = mmaSupport(p, gpu, emulate);
  if (why) throw new RangeError(`Cannot plan the mma kernel: ${why}`);
  const limits = _limits(gpu, emulate);
  const wantDirect = options.directKV ?? MMA_DIRECT_KV;
  const directKVRefused = wantDirect ? mmaDirectKVProblem(p, gpu) : null;
  const extra = {
    transposedScores: options.transposedScores ?? MMA_TRANSPOSED_SCORES,
    ...((options.narrowStaging ?? MMA_NARROW_STAGING) ? { narrowStaging: true } : {}),
    ...(options.ablate ? { ablate: options.ablate } : {}),
    ...(options.newSyntax ? { newSyntax: true } : {}),
    ...(options.smemReduce ? { smemReduce: true } : {}),
    ...(options.unpackH2 ? { unpackH2: true } : {}),
    ...(options.qResident ? { qResident: true } : {}),
    ...(options.emulateStage ? { emulateStage: options.emulateStage } : {}),
    ...(options.alwaysRescale ? { alwaysRescale: true } : {}),
    ...(options.qReload ? { qReload: true } : {}),
    ...(options.dumpScores ? { dumpScores: true } : {}),
    ...(options.dumpTile ? { dumpTile: true } : {}),
    ...(options.contiguousScores ? { contiguousScores: true } : {}),
    ...(wantDirect && directKVRefused === null ? { directKV: wantDirect } : {}),
  };
  const forced = readEnv("PAGED_PREFILL_MMA_TILE");
  const tile = options.tile ?? (forced ? parseMmaTile(forced) : null) ??
    chooseMmaTile(p, limits, emulate, extra);
  if (!tile || !mmaTileFits(p, tile, limits, emulate, extra)) {
    throw new RangeError(
      `Cannot plan the mma kernel: tile ${JSON.stringify(tile)} does not fit the adapter`,
    );
  }
  const rows = 16 * tile.rowBlocks;
  const list = buildMmaWorkList(p, rows, tile.keys, options);
  const askedPipelined = options.pipelined ?? mmaPipelinedFromEnv();
  const pipelinedMiss = mmaPipelinedProblem(p, tile, limits, list.split, emulate, extra);
  const pipelined = (askedPipelined ?? MMA_PIPELINED_CACHES.includes(p.cacheDtype)) &&
    pipelinedMiss === null;
  // Said only when asked for explicitly (the int8 default quietly keeps the classic loop).
  const pipelinedRefused = askedPipelined === true ? pipelinedMiss : null;
  // fixedMax and fusedAppend apply to 16-bit caches staged through workgroup memory.
  const staged16 = (p.cacheDtype === "f16" || p.cacheDtype === "bf16") &&
    extra.directKV === undefined;
  const fixedMax = (options.fixedMax ?? MMA_FIXED_MAX) && staged16;
  const fusedAppend = (options.fusedAppend ?? MMA_FUSED_APPEND) && staged16;
  const loop = {
    ...extra,
    ...(fusedAppend ? { fusedAppend: true } : {}),
    ...(pipelined ? { pipelined: true } : {}),
    ...(fixedMax
      ? {
        fixedMax: true,
        ...(options.forceRedo ? { forceRedo: true } : {}),
        ...(options.poisonRedo ? { poisonRedo: true } : {}),
      }
      : {}),
  };
  // The loop comes first: wider S^T rows are only taken where the chosen loop still fits.
  const laid = mmaWidePaddedScores(p, tile, limits, loop, options.widePaddedScores, emulate)
    ? { ...loop, widePaddedScores: true }
    : loop;
  const spec = mmaSpecFor(p, tile, limits.sg, list.split, emulate, laid);
  const bad = mmaSpecProblem(spec);
  if (bad) throw new RangeError(`Cannot plan the mma kernel: ${bad}`);
  const key = mmaKey(spec);
  const code = mmaWgsl(spec);
  const passes = await planSplitAttention(gpu, dev, {
    key,
    code,
    bindings: mmaBindings(spec),
    // directKV: the pools again, read as f16 by the subgroup matrix loads.
    extra: spec.directKV ? [dev.kPages, dev.vPages] : [],
    rows,
    list,
    extraWorkgroups: spec.fusedAppend ? mmaAppendWorkgroups(spec, p) : 0,
  });
  return {
    passes,
    key,
    list,
    code,
    directKVRefused,
    pipelinedRefused,
    fusedAppend: spec.fusedAppend === true,
  };
}

/**
 * Workgroups of `spec`'s fused append for `problem`: one invocation per 16-byte unit (a word
 * with narrowStaging) of every new K/V row.
 */
export function mmaAppendWorkgroups(spec: MmaSpec, problem: Problem): number {
  const units = problem.totalQ * problem.numKvHeads * mmaAppendUnitsPerRow(spec);
  return Math.ceil(units / mmaGeometry(spec).threads);
}

/** Plans the whole op (attention, combine when split, append) with the mma kernel. */
export async function planMma(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: MmaOptions = {},
): Promise<KernelPlan> {
  const attention = await planMmaAttention(gpu, dev, options);
  // Attention never reads the slots the append writes (SPEC §1): the append goes last, or
  // runs inside the attention pass (fusedAppend).
  const append = attention.fusedAppend && attention.passes.length > 0
    ? []
    : [await planAppend(gpu, dev)];
  const plan = combinePasses(attention.key, [...attention.passes, ...append]);
  if (attention.passes.length === 0) {
    // Nothing to attend (every request empty): still list the generated WGSL.
    return { ...plan, wgsl: () => ({ [attention.key]: attention.code, ...plan.wgsl() }) };
  }
  return plan;
}

/**
 * Whether the `mma` variant may be selected: when `MMA_VERIFIED` (it passes every verify case
 * on the H200 under Dawn since the workgroup-layout fix, docs/PERF_LOG_MMA.md), unless the
 * environment variable `PAGED_PREFILL_MMA=0` turns it off; `PAGED_PREFILL_MMA=1` turns it on
 * where `MMA_VERIFIED` is false.
 */
export function mmaEnabled(): boolean {
  const env = readEnv("PAGED_PREFILL_MMA");
  if (env === "0") return false;
  return MMA_VERIFIED || env === "1";
}

/** True once the kernel has passed every verify case on a matrix adapter. */
export const MMA_VERIFIED = true;

/**
 * The `mma` kernel variant: flash prefill on tensor cores through WebGPU subgroup matrices
 * (Dawn's chromium-experimental-subgroup-matrix): QK^T and PV as 16x16x16 f16 -> f32 tiles,
 * K/V tiles gathered from the pages (fp8/int8 codes kept exact in f16, scales applied outside
 * the matrices), online softmax in f32 on threads through workgroup memory with a lazy row
 * max, GQA heads sharing each K/V tile, split-KV for few rows. bf16 q (and cache) only when every
 * value fits f16's range, rounded to f16 while staged; o is written in q's dtype.
 *
 * @example
 * ```ts ignore
 * const reason = mmaVariant.supports(problem, gpu); // null on Dawn + an f16 matrix adapter
 * const plan = await mmaVariant.plan(gpu, uploadInputs(gpu, inputs, problem));
 * ```
 */
export const mmaVariant: KernelVariant = {
  name: "mma",
  description:
    "subgroup-matrix (tensor core) flash prefill: 16x16x16 f16->f32 QK^T and PV, paged K/V tiles in workgroup memory, f32 softmax with lazy rescaling, GQA-shared tiles, split-KV; f16 q (bf16 q when its values fit f16), Dawn adapters with f16 subgroup matrices",
  supports: (problem, gpu) =>
    mmaSupport(problem, gpu) ??
      (mmaEnabled() ? null : "the mma kernel is turned off (PAGED_PREFILL_MMA=0)"),
  plan: (gpu, dev) => planMma(gpu, dev),
};
