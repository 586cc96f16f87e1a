/**
 * The kernel variants in order of preference, and how one is chosen for a problem.
 * @module
 */
import type { GpuContext } from "./gpu.ts";
import type { KernelVariant } from "./variant.ts";
import type { Problem } from "../op/types.ts";
import { simpleVariant } from "./paged_prefill/simple.ts";
import { dequantVariant } from "./paged_prefill/dequant.ts";
import { flashF32Variant, flashVariant } from "./flash/flash.ts";
import { decodeVariant } from "./decode/decode.ts";
import { mmaVariant } from "./mma/mma.ts";
import { flashDecodeVariant } from "./flash_decode/flash_decode.ts";

/**
 * Every kernel variant, most preferred first: an unnamed selection takes the first that
 * supports the problem. Faster variants go before `simple`, which runs everything; `decode`
 * claims only decode-like problems (few rows per KV head, long caches), so prefill falls
 * through to the tiled kernels, and `flash+decode` only batches that mix decode-like requests
 * with longer chunks. `dequant` and `flash-f32` come after `simple`: by name only.
 *
 * @example
 * ```ts ignore
 * console.log(KERNEL_VARIANTS.map((v) => v.name)); // ["simple", "dequant"]
 * ```
 */
export const KERNEL_VARIANTS: KernelVariant[] = [
  decodeVariant,
  mmaVariant,
  flashDecodeVariant,
  flashVariant,
  simpleVariant,
  dequantVariant,
  flashF32Variant,
];

/**
 * The variants preferred to `chosen` (before it in `KERNEL_VARIANTS`, specialists left out)
 * that decline `problem` on `gpu`, with their reasons: what a report says when, say, `mma`
 * passes over a bf16 problem whose values exceed f16's range and `flash` runs it.
 *
 * @example
 * ```ts ignore
 * declinedVariants(problem, gpu, "flash"); // [{ name: "mma", reason: "q is bf16 and ..." }]
 * ```
 */
export function declinedVariants(
  problem: Problem,
  gpu: GpuContext,
  chosen: string,
): Array<{ name: string; reason: string }> {
  const out: Array<{ name: string; reason: string }> = [];
  for (const variant of KERNEL_VARIANTS) {
    if (variant.name === chosen) break;
    if (variant.specialist) continue;
    const reason = variant.supports(problem, gpu);
    if (reason !== null) out.push({ name: variant.name, reason });
  }
  return out;
}

/**
 * The variant that runs `problem` on `gpu`: the one named `name` (a `RangeError` says why it
 * cannot, or lists the known names), else the first of `KERNEL_VARIANTS` that supports it.
 *
 * @example
 * ```ts ignore
 * const variant = selectVariant(problem, gpu, "dequant");
 * const plan = await variant.plan(gpu, dev);
 * ```
 */
export function selectVariant(problem: Problem, gpu: GpuContext, name?: string): KernelVariant {
  if (name !== undefined) {
    const variant = KERNEL_VARIANTS.find((v) => v.name === name);
    if (!variant) {
      throw new RangeError(
        `Cannot use kernel "${name}": expected one of ${
          KERNEL_VARIANTS.map((v) => v.name).join(", ")
        }`,
      );
    }
    const reason = variant.supports(problem, gpu);
    if (reason !== null) {
      throw new RangeError(`Cannot use kernel "${name}" for this problem: ${reason}`);
    }
    return variant;
  }
  const reasons: string[] = [];
  for (const variant of KERNEL_VARIANTS) {
    const reason = variant.supports(problem, gpu);
    if (reason === null) return variant;
    reasons.push(`${variant.name}: ${reason}`);
  }
  throw new RangeError(`Cannot find a kernel for this problem: ${reasons.join("; ")}`);
}
