/**
 * Host side of the simple paged prefill kernel (uniforms, bind group, dispatch) and the
 * `simple` kernel variant: attention straight from the cache pool for every cache dtype,
 * then the append.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { Problem } from "../../op/types.ts";
import { isSupportedHeadDim, SUPPORTED_HEAD_DIMS } from "../../op/validate.ts";
import {
  bindAll,
  cachedPipeline,
  combinePasses,
  createUniform,
  dispatchGrid,
  type PassPlan,
  scaleCount,
} from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import { type PagedPrefillSpec, specForProblem, specKey } from "./spec.ts";
import { pagedPrefillWgsl, SIMPLE_BINDINGS } from "./template.ts";

/** Options of `planSimpleAttention()`: pool and block table to read instead of `dev`'s. */
export interface SimpleAttentionOptions {
  /** Spec to compile; its cacheDtype must match the pools read. @default specForProblem(dev.problem) */
  spec?: PagedPrefillSpec;
  /** Pool of old keys. @default dev.kPages */
  kPages?: GPUBuffer;
  /** Pool of old values. @default dev.vPages */
  vPages?: GPUBuffer;
  /** Block table (logical -> physical page of the pools read). @default dev.blockTable */
  blockTable?: GPUBuffer;
}

/**
 * Plans the attention pass of the simple kernel over uploaded inputs: one invocation per
 * (query token, query head) on a 2D grid of workgroups, writing `dev.o`.
 *
 * @example
 * ```ts ignore
 * const attention = await planSimpleAttention(gpu, dev);
 * const pass = encoder.beginComputePass();
 * attention.encodeInto(pass);
 * pass.end();
 * ```
 */
export async function planSimpleAttention(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: SimpleAttentionOptions = {},
): Promise<PassPlan> {
  const p = dev.problem;
  const spec = options.spec ?? specForProblem(p);
  const key = specKey("simple", spec);
  const code = pagedPrefillWgsl(spec);
  const { pipeline, layout } = await cachedPipeline(gpu, key, code, SIMPLE_BINDINGS);
  const device = gpu.device;
  const softcap = p.softcap > 0;
  const uniform = createUniform(device, `${key}.params`, [
    ["u32", p.batch],
    ["u32", p.totalQ],
    ["u32", p.numHeads],
    ["u32", p.numKvHeads],
    ["u32", p.numHeads / p.numKvHeads],
    ["u32", p.maxPagesPerReq],
    ["u32", p.pageSize],
    ["u32", Math.log2(p.pageSize)],
    ["u32", scaleCount(p)],
    ["f32", softcap ? p.smScale / p.softcap : p.smScale * Math.LOG2E],
    ["f32", softcap ? p.softcap * Math.LOG2E : 0],
  ]);
  const bindGroup = bindAll(device, key, layout, [
    uniform,
    dev.q,
    dev.kNew,
    dev.vNew,
    options.kPages ?? dev.kPages,
    options.vPages ?? dev.vPages,
    dev.scales,
    dev.cuSeqlensQ,
    dev.cacheSeqlens,
    options.blockTable ?? dev.blockTable,
    dev.o,
  ]);
  const [x, y] = dispatchGrid(gpu, p.totalQ * p.numHeads, spec.workgroupSize);
  return {
    key,
    code,
    encodeInto(pass) {
      if (x === 0) return;
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y);
    },
    destroy: () => uniform.destroy(),
  };
}

/**
 * Why a kernel of this family, binding `storageBuffers` storage buffers, cannot run `problem`
 * on `gpu` (unsupported head_dim, too few storage buffers per stage); null when it can.
 *
 * @example
 * ```ts ignore
 * const reason = commonSupport(problem, gpu, 10); // null on lavapipe for D = 128
 * ```
 */
export function commonSupport(
  problem: Problem,
  gpu: GpuContext,
  storageBuffers: number,
): string | null {
  if (!isSupportedHeadDim(problem.headDim)) {
    return `head_dim ${problem.headDim} is not ${SUPPORTED_HEAD_DIMS.description}`;
  }
  const max = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  if (max < storageBuffers) {
    return `it binds ${storageBuffers} storage buffers, the adapter allows ${max} per stage`;
  }
  return null;
}

/**
 * The `simple` kernel variant: one invocation per (query token, query head), reading old
 * keys/values straight from the pool with dequantization (any cache dtype), then the append.
 * Correct first; speed is the flash variant's job.
 *
 * @example
 * ```ts ignore
 * const dev = uploadInputs(gpu, inputs, problem);
 * const plan = await simpleVariant.plan(gpu, dev);
 * const encoder = gpu.device.createCommandEncoder();
 * plan.encode(encoder);
 * gpu.device.queue.submit([encoder.finish()]);
 * ```
 */
export const simpleVariant: KernelVariant = {
  name: "simple",
  description:
    "one invocation per (query token, head), online softmax over pages with fused dequant; any cache dtype",
  supports(problem, gpu) {
    return commonSupport(problem, gpu, SIMPLE_BINDINGS.length - 1);
  },
  async plan(gpu, dev): Promise<KernelPlan> {
    const attention = await planSimpleAttention(gpu, dev);
    const append = await planAppend(gpu, dev);
    // Attention never reads the slots the append writes (SPEC §1); append last anyway.
    return combinePasses(attention.key, [attention, append]);
  },
};
