/**
 * The subgroup-matrix ("mma") kernel: flash prefill on tensor cores through WebGPU subgroup
 * matrices (Dawn).
 * @module
 */
export * from "./mma.ts";
export * from "./spec.ts";
export * from "./template.ts";
export * from "./work_list.ts";
