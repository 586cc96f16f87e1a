/**
 * The decode kernel family: bandwidth-bound attention for few query rows over long paged
 * prefixes, split-KV with the flash kernel's combine pass (see `decode.ts`).
 * @module
 */
export * from "./spec.ts";
export * from "./template.ts";
export * from "./work_list.ts";
export * from "./decode.ts";
