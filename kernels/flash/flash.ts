/**
 * Host side of the flash kernel: picks a tile for the device, builds the work list, uniforms
 * and bind groups once (`plan`), then encodes attention (+ combine when split) and the append.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { Problem } from "../../op/types.ts";
import {
  bindAll,
  type BindingKind,
  cachedPipeline,
  combinePasses,
  createUniform,
  dispatchGrid,
  type PassPlan,
  scaleCount,
} from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import {
  chooseFlashTile,
  choosePipelinedTile,
  F16_PRECISE_KEYS,
  flashKey,
  type FlashLimits,
  flashSpecFor,
  flashSpecProblem,
  type FlashTile,
  tileProblem,
} from "./spec.ts";
import {
  COMBINE_BINDINGS,
  combineKey,
  combineWgsl,
  FLASH_BINDINGS,
  flashWgsl,
} from "./template.ts";
import {
  balancedSplit,
  buildWorkList,
  type SplitRules,
  type WorkListOptions,
} from "./work_list.ts";
import { planNewBound } from "./new_bound.ts";

/** Options of `planFlash()`. */
export interface FlashOptions extends WorkListOptions {
  /**
   * Tile shape; must fit the device.
   * @default the first of `flashTileCandidates(D)` that fits
   */
  tile?: FlashTile;
  /**
   * Without `tile`: pick the tile from `flashPipelinedCandidates()` (the pipelined loop, PERF_LOG
   * v3), falling back to the v2 candidates when none fits the device.
   * @default FLASH_PIPELINED_DEFAULT
   */
  pipelined?: boolean;
  /**
   * Without `tile`: whether f16-arithmetic tiles (`FlashSpec.f16Math`) may be picked
   * (shader-f16 on the device).
   * @default FLASH_F16_MATH_DEFAULT
   */
  f16Math?: boolean;
  /**
   * "f32": `dev.kPages` / `dev.vPages` hold f32 values (the dequant variant's scratch pool),
   * not `dev.problem.cacheDtype`; without `tile`, a v2 tile with f32 products.
   */
  pools?: "f32";
  /**
   * With an `f16Math` v2 tile: the work items of row tiles whose first row sees at most this
   * many keys multiply in f32 (`FlashSpec.preciseItems`); 0 gives every item f16 products.
   * @default F16_PRECISE_KEYS without `tile`, 0 with it (an explicit tile runs as given)
   */
  preciseKeys?: number;
}

/**
 * Whether plans without an explicit tile may use f16 arithmetic. On the H200 it takes the seed
 * row from 1.64 to 1.09 ms, and verify --all passes with it (docs/PERF_LOG.md, v4). Its error
 * is ~1.5e-3 of the scale of v (PERF_LOG v5): inside SPEC §4's tolerance for unit-scale inputs,
 * not for |v| far above 1, where the `flash-f32` variant keeps f32 products.
 */
export const FLASH_F16_MATH_DEFAULT = true;

/**
 * Whether plans without an explicit tile use the pipelined loop. Chosen by reasoning only (not
 * yet measured on the H200, see docs/PERF_LOG.md v3); `kernels/flash/tune.ts` compares both.
 */
export const FLASH_PIPELINED_DEFAULT = false;

/** The tile `planFlashAttention()` uses for `problem` without an explicit tile. */
export function defaultFlashTile(
  problem: Problem,
  gpu: GpuContext,
  pipelined = FLASH_PIPELINED_DEFAULT,
  f16Math = FLASH_F16_MATH_DEFAULT,
): FlashTile | null {
  const limits = flashLimits(gpu);
  return (pipelined ? choosePipelinedTile(problem, limits) : null) ??
    chooseFlashTile(problem, limits, f16Math);
}

/** The device limits the flash kernel must respect. */
export function flashLimits(gpu: GpuContext): FlashLimits {
  return {
    workgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize ?? 16384,
    invocations: gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256,
    f16: gpu.hasF16,
    storageBuffers: gpu.limits.maxStorageBuffersPerShaderStage ?? 8,
  };
}

/** Why the flash kernel cannot run `problem` on `gpu`, or null. */
export function flashSupport(problem: Problem, gpu: GpuContext): string | null {
  if (problem.headDim % 16 !== 0) return `head_dim ${problem.headDim} is not a multiple of 16`;
  const max = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  if (max < FLASH_BINDINGS.length - 1) {
    return `it binds ${FLASH_BINDINGS.length - 1} storage buffers, the adapter allows ${max}`;
  }
  if (!chooseFlashTile(problem, flashLimits(gpu))) {
    return `no tile for head_dim ${problem.headDim} fits ${
      flashLimits(gpu).workgroupBytes
    } bytes of workgroup memory`;
  }
  return null;
}

/**
 * The work list's split-KV settings for `tile` (H200, docs/PERF_LOG.md v6). Decode-shaped tiles
 * (few rows, long prefixes) need many splits to fill the GPU. f16 tiles hold 64 keys per tile and
 * gain nothing from splits once the row tiles give 128 workgroups: each split adds its partials
 * and the combine pass (seed 1.086 -> 1.005 ms, MHA b2 0.227 -> 0.169 ms without), while 64
 * row tiles (decode q16) run best split into ~512 items (1.866 ms at 1024, 1.710 at 512). The
 * f32 tiles keep v1's 1024 items.
 */
export function flashSplitDefaults(tile: FlashTile): SplitRules {
  if (tile.rows <= 16) return { targetItems: 4096, minSplitTiles: 4, splitBelow: 4096 };
  if (tile.f16Math) return { targetItems: 512, minSplitTiles: 8, splitBelow: 128 };
  return { targetItems: 1024, minSplitTiles: 8, splitBelow: 1024 };
}

/** Plans the attention pass(es) only (no append); for the variant and the tuner. */
export async function planFlashAttention(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: FlashOptions = {},
): Promise<{ passes: PassPlan[]; key: string; list: ReturnType<typeof buildWorkList> }> {
  const p = dev.problem;
  const f32Pools = options.pools === "f32";
  // An f32 pool stages like a 16-bit one (same tiles) but takes no kv16 or f16Math tile.
  const tile = options.tile ??
    (f32Pools
      ? defaultFlashTile(p, gpu, false, false)
      : defaultFlashTile(p, gpu, options.pipelined, options.f16Math));
  const unfit = tile
    ? tileProblem(p, tile, flashLimits(gpu))
    : flashSupport(p, gpu) ?? "no tile fits";
  if (!tile || unfit) {
    throw new RangeError(`Cannot plan flash attention on "${gpu.adapterName}": ${unfit}`);
  }
  // A launch the default rules leave unsplit (enough items) whose longest row tile far outlasts
  // its share of the work is split where it is long (v14).
  const defaults = flashSplitDefaults(tile);
  const balanced = options.targetItems === undefined && options.splitBelow === undefined &&
      options.minSplitTiles === undefined && !options.tile
    ? balancedSplit(p, tile.rows, tile.keys, defaults.splitBelow)
    : null;
  const d = balanced ?? defaults;
  const preciseKeys = tile.f16Math && !tile.pipelined && !f32Pools
    ? options.preciseKeys ?? (options.tile ? 0 : F16_PRECISE_KEYS)
    : 0;
  const list = buildWorkList(p, tile.rows, tile.keys, {
    targetItems: options.targetItems ?? d.targetItems,
    minSplitTiles: options.minSplitTiles ?? d.minSplitTiles,
    // An explicit targetItems alone keeps its plain meaning: split below that many items.
    splitBelow: options.splitBelow ?? options.targetItems ?? d.splitBelow,
    ...(options.preciseCost === undefined ? {} : { preciseCost: options.preciseCost }),
  }, (t) => t.kbegin <= preciseKeys);
  // Every item precise (short requests without a prefix): the f32 tiles, one copy of the loop.
  if (!options.tile && list.count > 0 && list.preciseCount === list.count) {
    return planFlashAttention(gpu, dev, { ...options, f16Math: false });
  }
  const spec = {
    ...flashSpecFor(p, tile, list.split),
    ...(f32Pools ? { cacheDtype: "f32" as const } : {}),
    // Kernels without precise items stay as they were (no second copy of QK^T and PV).
    ...(list.preciseCount > 0 ? { preciseItems: true } : {}),
  };
  const why = flashSpecProblem(spec);
  if (why) throw new RangeError(`Cannot plan flash attention: ${why}`);
  const key = flashKey(spec);
  const code = flashWgsl(spec);
  // int8Fold, byteNewBound, poolBound: the kernel without them runs where the bound pass rules
  // them out.
  const unfoldedSpec = spec.int8Fold || spec.byteNewBound || spec.poolBound
    ? { ...spec, int8Fold: false, byteNewBound: false, poolBound: false, boundFallback: true }
    : null;
  const passes = await planSplitAttention(gpu, dev, {
    key,
    code,
    ...(unfoldedSpec
      ? { unfolded: { key: flashKey(unfoldedSpec), code: flashWgsl(unfoldedSpec) } }
      : {}),
    bindings: spec.qGlobal ? [...FLASH_BINDINGS, "read_write"] : FLASH_BINDINGS,
    // qGlobal: each work item's scaled f16 Q tile (rows x D halves).
    scratchBytes: spec.qGlobal ? list.count * spec.rows * p.headDim * 2 : 0,
    rows: spec.rows,
    list,
  });
  return { passes, key, list };
}

/** The work-list fields the attention and combine passes read (flash, mma and decode lists). */
export interface SplitWorkList {
  items: Uint32Array<ArrayBuffer>;
  count: number;
  split: boolean;
  slots: number;
  combine: Uint32Array<ArrayBuffer>;
  combineCount: number;
}

/** What `planSplitAttention()` needs besides the uploaded problem. */
export interface SplitAttentionArgs {
  /** Pipeline key (spells the specialisation) and its WGSL. */
  key: string;
  code: string;
  /** Binding kinds of `code`: the 12 of every attention pass (params ... o/partials), then `extra`. */
  bindings: readonly BindingKind[];
  /** Buffers bound after the 12 common ones (e.g. mma's f16 views of the pools). */
  extra?: readonly GPUBuffer[];
  /**
   * Bytes of a scratch buffer the pass owns (destroyed with it), bound after `extra` (flash's
   * qGlobal Q tiles). @default 0, none
   */
  scratchBytes?: number;
  /**
   * Workgroups launched after the work list's items (ids from `list.count` on; mma's fused
   * append). @default 0
   */
  extraWorkgroups?: number;
  /** Query rows per work item. */
  rows: number;
  list: SplitWorkList;
  /**
   * flash's bounded kernels (int8Fold, byteNewBound, poolBound): the fallback kernel without
   * the bound (same bindings). The new-token bound passes
   * run first and set the word that picks which of the two does the work (`planNewBound`).
   */
  unfolded?: { key: string; code: string };
}

/**
 * Plans an attention pass over a host-built work list, with the bindings and uniforms every
 * paged attention kernel here shares (flash, mma, decode: params, q, k_new, v_new, pools,
 * scales, cu_seqlens, cache_seqlens, block_table, items, o or partials), and flash's combine
 * pass when the list splits the keys. The last pass destroys the buffers made here.
 */
export async function planSplitAttention(
  gpu: GpuContext,
  dev: DeviceProblem,
  args: SplitAttentionArgs,
): Promise<PassPlan[]> {
  const { key, code, rows, list } = args;
  const launched = list.count + (args.extraWorkgroups ?? 0);
  if (launched === 0) return [];
  const p = dev.problem;
  const device = gpu.device;
  const { pipeline, layout } = await cachedPipeline(gpu, key, code, args.bindings);
  const unfolded = args.unfolded
    ? {
      key: args.unfolded.key,
      ...(await cachedPipeline(gpu, args.unfolded.key, args.unfolded.code, args.bindings)),
    }
    : null;
  const buffers: GPUBuffer[] = [];
  const items = device.createBuffer({
    label: `${key}.items`,
    size: Math.max(16, list.items.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(items, 0, list.items);
  buffers.push(items);
  const [gx, gy] = dispatchGrid(gpu, launched, 1);
  const mlBase = list.slots * rows * (p.headDim / 4);
  const scratch = args.scratchBytes
    ? device.createBuffer({
      label: `${key}.scratch`,
      size: args.scratchBytes,
      usage: GPUBufferUsage.STORAGE,
    })
    : null;
  if (scratch) buffers.push(scratch);
  let part: GPUBuffer | null = null;
  if (list.split) {
    part = device.createBuffer({
      label: `${key}.partials`,
      size: Math.max(16, (mlBase + list.slots * rows) * 16),
      usage: GPUBufferUsage.STORAGE,
    });
    buffers.push(part);
  }
  const cap = p.softcap;
  const uniform = createUniform(device, `${key}.params`, [
    ["u32", p.batch],
    ["u32", p.numHeads],
    ["u32", p.numKvHeads],
    ["u32", p.numHeads / p.numKvHeads],
    ["u32", p.maxPagesPerReq],
    ["u32", Math.log2(p.pageSize)],
    ["u32", list.count],
    ["u32", gx],
    ["u32", scaleCount(p)],
    ["u32", mlBase],
    ["f32", cap > 0 ? p.smScale / cap : p.smScale * Math.LOG2E],
    ["f32", cap > 0 ? cap * Math.LOG2E : 0],
  ]);
  buffers.push(uniform);
  const bound = unfolded ? await planNewBound(gpu, dev, buffers) : null;
  const groupBuffers = [
    uniform,
    dev.q,
    dev.kNew,
    dev.vNew,
    dev.kPages,
    dev.vPages,
    dev.scales,
    dev.cuSeqlensQ,
    dev.cacheSeqlens,
    dev.blockTable,
    items,
    part ?? dev.o,
    ...(args.extra ?? []),
    ...(scratch ? [scratch] : []),
  ];
  const bindGroup = bindAll(device, key, layout, groupBuffers);
  const unfoldedGroup = unfolded
    ? bindAll(device, unfolded.key, unfolded.layout, groupBuffers)
    : null;
  const passes: PassPlan[] = [{
    key,
    code,
    encodeInto(pass) {
      bound?.encodeInto(pass);
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(gx, gy);
      if (unfolded && unfoldedGroup) {
        // The bound pass's fold word lets one of the two kernels do the work (new_bound.ts).
        pass.setPipeline(unfolded.pipeline);
        pass.setBindGroup(0, unfoldedGroup);
        pass.dispatchWorkgroups(gx, gy);
      }
    },
    destroy() {},
  }];
  if (list.split && part) {
    passes.push(
      await planCombinePass(gpu, dev, {
        rows,
        items: list.combine,
        count: list.combineCount,
        part,
        mlBase,
      }, buffers),
    );
  }
  passes[passes.length - 1] = {
    ...passes[passes.length - 1]!,
    destroy() {
      for (const b of buffers) b.destroy();
    },
  };
  return passes;
}

/** What the split-KV combine pass needs: the work list's combine items and the partials. */
export interface CombinePassArgs {
  /** Query rows per work item of the attention pass. */
  rows: number;
  /** Combine items of the work list. */
  items: Uint32Array<ArrayBuffer>;
  /** Number of combine items. */
  count: number;
  /** Partial results (o, then m and l from word `mlBase`) written by the split attention pass. */
  part: GPUBuffer;
  mlBase: number;
}

/**
 * Plans the pass that merges each split's partial (m, l, o) into o, for every kernel that
 * splits the keys (through `planSplitAttention()`); the buffers it makes are pushed onto
 * `buffers` for the caller to destroy with its plan.
 */
export async function planCombinePass(
  gpu: GpuContext,
  dev: DeviceProblem,
  args: CombinePassArgs,
  buffers: GPUBuffer[],
): Promise<PassPlan> {
  const p = dev.problem;
  const device = gpu.device;
  const cspec = { qDtype: p.qDtype, headDim: p.headDim, rows: args.rows, threads: 128 };
  const ckey = combineKey(cspec);
  const ccode = combineWgsl(cspec);
  const comb = await cachedPipeline(gpu, ckey, ccode, COMBINE_BINDINGS);
  const citems = device.createBuffer({
    label: `${ckey}.items`,
    size: Math.max(16, args.items.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(citems, 0, args.items);
  buffers.push(citems);
  const [cx, cy] = dispatchGrid(gpu, args.count, 1);
  const cuniform = createUniform(device, `${ckey}.params`, [
    ["u32", p.numHeads],
    ["u32", p.numHeads / p.numKvHeads],
    ["u32", args.count],
    ["u32", cx],
    ["u32", args.mlBase],
  ]);
  buffers.push(cuniform);
  const cgroup = bindAll(device, ckey, comb.layout, [
    cuniform,
    dev.cuSeqlensQ,
    citems,
    args.part,
    dev.o,
  ]);
  return {
    key: ckey,
    code: ccode,
    encodeInto(pass) {
      pass.setPipeline(comb.pipeline);
      pass.setBindGroup(0, cgroup);
      pass.dispatchWorkgroups(cx, cy);
    },
    destroy() {},
  };
}

/** Plans the whole op (attention, combine when split, append) with the flash kernel. */
export async function planFlash(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: FlashOptions = {},
): Promise<KernelPlan> {
  const attention = await planFlashAttention(gpu, dev, options);
  const append = await planAppend(gpu, dev);
  // Attention never reads the slots the append writes (SPEC §1); the append goes last.
  return combinePasses(attention.key, [...attention.passes, append]);
}

/**
 * The `flash` kernel variant: tiled prefill (GQA group x query tile per workgroup, K/V tiles
 * gathered from pages and dequantized in workgroup memory, register-tiled QK^T and PV, online
 * softmax in exp2), host-built work list with causal tile skipping and split-KV, then the append.
 *
 * @example
 * ```ts ignore
 * const dev = uploadInputs(gpu, inputs, problem);
 * const plan = await flashVariant.plan(gpu, dev);
 * const encoder = gpu.device.createCommandEncoder();
 * plan.encode(encoder);
 * gpu.device.queue.submit([encoder.finish()]);
 * ```
 */
export const flashVariant: KernelVariant = {
  name: "flash",
  description:
    "tiled flash prefill: GQA group x query tile per workgroup, paged K/V tiles dequantized in workgroup memory, register-tiled QK^T/PV, split-KV",
  supports: flashSupport,
  plan: (gpu, dev) => planFlash(gpu, dev),
};

/**
 * `flash` with f32 QK^T and PV products where `flash` would use f16 arithmetic: for inputs far
 * from unit scale, where f16 products cost the tolerance (PERF_LOG v5). Chosen only by name.
 *
 * @example
 * ```ts ignore
 * const out = await pagedPrefill(gpu, inputs, params, { kernel: "flash-f32" });
 * ```
 */
export const flashF32Variant: KernelVariant = {
  name: "flash-f32",
  description:
    "flash with f32 QK^T and PV products (no f16 arithmetic), for inputs far from unit scale",
  supports: (problem, gpu) =>
    flashSupport(problem, gpu) ??
      (defaultFlashTile(problem, gpu)?.f16Math
        ? null
        : "flash already multiplies in f32 here (no shader-f16, no f16 tile fits, a sharp score scale or a problem under F16_MIN_FLOPS)"),
  plan: (gpu, dev) => planFlash(gpu, dev, { f16Math: false }),
};
