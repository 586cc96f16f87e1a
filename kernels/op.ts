/**
 * The op on the GPU: validate, upload, plan, encode, submit, read back (SPEC §1).
 * @module
 */
import type { GpuContext } from "./gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "./variant.ts";
import type {
  PagedPrefillInputs,
  PagedPrefillOutputs,
  PagedPrefillParams,
  Problem,
} from "../op/types.ts";
import { validateProblem } from "../op/validate.ts";
import { readOutputs, uploadInputs } from "./device_inputs.ts";
import { selectVariant } from "./registry.ts";

/** Options of `pagedPrefill()` and `planPagedPrefill()`. */
export interface PagedPrefillOptions {
  /** Kernel variant by name (`simple`, `dequant`, ...). @default the first that supports the problem */
  kernel?: string;
  /**
   * Storage binding limit in bytes to plan uploads against (lower it to exercise pool
   * compaction); clamped to the adapter's.
   * @default min(maxStorageBufferBindingSize, maxBufferSize) of the adapter
   */
  maxBindingSize?: number;
}

/** A validated, uploaded and planned call: encode `plan` as often as needed, then `destroy()`. */
export interface PlannedPagedPrefill {
  problem: Problem;
  device: DeviceProblem;
  plan: KernelPlan;
  variant: KernelVariant;
  /** Releases the plan's and the inputs' GPU buffers. */
  destroy(): void;
}

/**
 * Validates the call (SPEC §3, before any GPU work), picks the kernel variant, uploads the
 * inputs and plans the kernel, without running it. For benchmarks: plan once, encode many
 * times (each run appends into the device pools again, which rewrites the same slots with the
 * same values).
 *
 * @example
 * ```ts ignore
 * const planned = await planPagedPrefill(gpu, inputs, params, { kernel: "simple" });
 * const encoder = gpu.device.createCommandEncoder();
 * planned.plan.encode(encoder);
 * gpu.device.queue.submit([encoder.finish()]);
 * planned.destroy();
 * ```
 */
export async function planPagedPrefill(
  gpu: GpuContext,
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  options: PagedPrefillOptions = {},
): Promise<PlannedPagedPrefill> {
  const problem = validateProblem(inputs, params);
  const variant = selectVariant(problem, gpu, options.kernel);
  const device = uploadInputs(gpu, inputs, problem, { maxBindingSize: options.maxBindingSize });
  let plan: KernelPlan;
  try {
    plan = await variant.plan(gpu, device);
  } catch (e) {
    device.destroy();
    throw e;
  }
  return {
    problem,
    device,
    plan,
    variant,
    destroy() {
      plan.destroy();
      device.destroy();
    },
  };
}

/**
 * Runs paged KV-cache GQA prefill with in-place append on the GPU (SPEC §1): returns o and
 * both pools after the append as fresh tensors; `inputs` are never modified. An invalid call
 * throws a `TypeError`/`RangeError` before any GPU work.
 *
 * @example
 * ```ts ignore
 * const gpu = await acquireGpu();
 * const { o, kPages, vPages } = await pagedPrefill(gpu, inputs, { pageSize: 64 });
 * ```
 */
export async function pagedPrefill(
  gpu: GpuContext,
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  options: PagedPrefillOptions = {},
): Promise<PagedPrefillOutputs> {
  const planned = await planPagedPrefill(gpu, inputs, params, options);
  try {
    return await runPlanned(gpu, planned, inputs);
  } finally {
    planned.destroy();
  }
}

/**
 * Runs a planned call once: encodes and submits it, fails on a WebGPU validation error, and
 * reads o and both pools back (fresh tensors; `inputs` are the ones it was planned with).
 *
 * @example
 * ```ts ignore
 * const planned = await planPagedPrefill(gpu, inputs, params);
 * const { o } = await runPlanned(gpu, planned, inputs);
 * planned.destroy();
 * ```
 */
export function runPlanned(
  gpu: GpuContext,
  planned: PlannedPagedPrefill,
  inputs: PagedPrefillInputs,
): Promise<PagedPrefillOutputs> {
  return runKernelPlan(gpu, planned.plan, planned.device, inputs);
}

/**
 * `runPlanned()` for a kernel plan made directly (a variant's `plan()`, or `planFlash()` and
 * its kin with explicit options): the tests and the tuning scripts.
 */
export async function runKernelPlan(
  gpu: GpuContext,
  plan: KernelPlan,
  dev: DeviceProblem,
  inputs: PagedPrefillInputs,
): Promise<PagedPrefillOutputs> {
  const device = gpu.device;
  device.pushErrorScope("validation");
  const encoder = device.createCommandEncoder({ label: plan.key });
  plan.encode(encoder);
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) throw new Error(`Cannot run ${plan.key}: ${error.message}`);
  return await readOutputs(gpu, dev, inputs);
}
