/**
 * Mixed batches split between the flash and decode kernels (see `flash_decode.ts`).
 * @module
 */
export * from "./flash_decode.ts";
