/**
 * GPU side of paged prefill: device acquisition, the kernel contract, uploads, the kernel
 * variants and the op itself.
 * @module
 */
export * from "./gpu.ts";
export * from "./variant.ts";
export * from "./device_inputs.ts";
export * from "./registry.ts";
export * from "./op.ts";
export * from "./paged_prefill/mod.ts";
export * from "./append/mod.ts";
export * from "./wgsl/codecs.ts";
