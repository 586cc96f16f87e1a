/**
 * The append kernel: new tokens' k/v rows into their cache slots, encoded in the cache dtype.
 * @module
 */
export * from "./template.ts";
export * from "./append.ts";
