/**
 * The CPU oracle of the op (SPEC §2, §4): bit-exact element codecs, the float64 attention
 * reference with the expected pools after the append, and the output/pool checks.
 *
 * @example
 * ```ts
 * import { e4m3Encode, inverseScale, OUTPUT_TOLERANCES } from "./mod.ts";
 * if (e4m3Encode(1, inverseScale(0.5)) !== 0x40) throw new Error(); // 2.0
 * if (OUTPUT_TOLERANCES.f16.atol !== 2e-3) throw new Error();
 * ```
 * @module
 */
export * from "./codecs.ts";
export * from "./attention.ts";
export * from "./check.ts";
