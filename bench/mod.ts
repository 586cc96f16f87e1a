/**
 * Benchmark helpers: timing of encoded GPU work (timestamp-query or wall clock).
 * @module
 */
export * from "./timing.ts";
