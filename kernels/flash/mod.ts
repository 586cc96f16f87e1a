/**
 * The flash kernel family: tiled paged prefill with split-KV (see `flash.ts`).
 * @module
 */
export * from "./spec.ts";
export * from "./template.ts";
export * from "./work_list.ts";
export * from "./flash.ts";
