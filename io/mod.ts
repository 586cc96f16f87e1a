/**
 * Safetensors reading/writing and case files (SPEC §7).
 * @module
 */
export * from "./safetensors.ts";
export * from "./case_file.ts";
