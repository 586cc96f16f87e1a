/**
 * paged-prefill: paged KV-cache GQA prefill attention with in-place append, in WGSL through
 * WebGPU, with a float64 CPU reference, bit-exact cache codecs, a workload manifest and a
 * roofline model.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu, adHocCase, generateCase, pagedPrefill } from "./mod.ts";
 * const gpu = await acquireGpu();
 * const { inputs, params } = generateCase(adHocCase({ pageSize: 16 }), 1);
 * const { o, kPages, vPages } = await pagedPrefill(gpu, inputs, params);
 * ```
 * @module
 */

// The op, its types and validation.
export type * from "./op/types.ts";
export { CACHE_ELEMENT_BYTES, CACHE_TENSOR_DTYPE } from "./op/types.ts";
export { SUPPORTED_HEAD_DIMS, validateProblem } from "./op/validate.ts";
export { pagedPrefill, planPagedPrefill } from "./kernels/op.ts";
export type { PagedPrefillOptions, PlannedPagedPrefill } from "./kernels/op.ts";
export { KERNEL_VARIANTS, selectVariant } from "./kernels/registry.ts";
export type { DeviceProblem, KernelPlan, KernelVariant } from "./kernels/variant.ts";
export { acquireGpu, GpuUnavailableError } from "./kernels/gpu.ts";
export type { AcquireGpuOptions, GpuBackend, GpuContext } from "./kernels/gpu.ts";

// The reference and the codecs.
export * from "./reference/codecs.ts";
export * from "./reference/attention.ts";
export * from "./reference/check.ts";

// Workloads: manifest schema, loader, generator.
export * from "./workloads/mod.ts";

// Case files.
export * from "./io/mod.ts";

// Roofline, ceilings, reports.
export * from "./reports/mod.ts";
export { timeGpu } from "./bench/timing.ts";
export type { TimingStats } from "./bench/timing.ts";
export { checkOutputs, verifyOnGpu } from "./bench/verify_case.ts";
export type { CaseVerification } from "./bench/verify_case.ts";
