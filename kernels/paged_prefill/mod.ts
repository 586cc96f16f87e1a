/**
 * The simple paged prefill kernel family (spec, WGSL template, host side) and the dequant
 * variant built on it.
 * @module
 */
export * from "./spec.ts";
export * from "./template.ts";
export * from "./simple.ts";
export * from "./dequant.ts";
