/**
 * Error helpers of the op: every rejection of a call is a `TypeError` (wrong dtype, shape or
 * type of an input) or a `RangeError` (a value out of range) whose one-line message starts
 * with {@linkcode OP_ERROR_PREFIX} and names the input, the expected and the actual value.
 * @module
 */

/**
 * Prefix of every message of a rejected call.
 *
 * @example
 * ```ts
 * import { OP_ERROR_PREFIX } from "./errors.ts";
 * const rejected = (e: Error) => e.message.startsWith(`${OP_ERROR_PREFIX}: `);
 * if (!rejected(new RangeError(`${OP_ERROR_PREFIX}: page_size must be a power of two >= 1, got 3`))) {
 *   throw new Error();
 * }
 * ```
 */
export const OP_ERROR_PREFIX = "Cannot run paged prefill";

/**
 * A `TypeError` for a call rejected because an input has the wrong dtype, shape or type.
 *
 * @example
 * ```ts
 * import { opTypeError } from "./errors.ts";
 * const e = opTypeError("q must have dtype f16 or bf16, got f32");
 * if (e.message !== "Cannot run paged prefill: q must have dtype f16 or bf16, got f32") throw e;
 * ```
 */
export function opTypeError(detail: string): TypeError {
  return new TypeError(`${OP_ERROR_PREFIX}: ${detail}`);
}

/**
 * A `RangeError` for a call rejected because a value is out of range.
 *
 * @example
 * ```ts
 * import { opRangeError } from "./errors.ts";
 * const e = opRangeError("block_table[2][5] = 912 is outside [0, 800)");
 * if (!(e instanceof RangeError)) throw e;
 * ```
 */
export function opRangeError(detail: string): RangeError {
  return new RangeError(`${OP_ERROR_PREFIX}: ${detail}`);
}
