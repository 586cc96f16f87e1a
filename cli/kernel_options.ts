/**
 * `--kernel` and `--strategy`: which kernel variants a command runs for a problem.
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import type { GpuContext } from "../kernels/gpu.ts";
import { KERNEL_VARIANTS } from "../kernels/registry.ts";
import type { KernelVariant } from "../kernels/variant.ts";
import type { Problem } from "../op/types.ts";
import { choiceFlag } from "./parse.ts";
import { UsageError } from "./errors.ts";

/** Strategies for quantized caches (issue: fused dequant vs dequantize-then-reuse). */
export const STRATEGIES = ["fused", "dequant"] as const;

/** Adds `--kernel` and `--strategy` to `command`. */
export function addKernelOptions<C extends Command<[], Record<string, unknown>>>(command: C) {
  return command
    .option(
      "--kernel <name>",
      `kernel variant: ${
        KERNEL_VARIANTS.map((v) => v.name).join(", ")
      }, "auto" (the fastest that supports the problem) or "all" (every one that does)`,
    )
    .addOption(
      new Option(
        "--strategy <name>",
        "quantized caches: fused (dequant in the loop) or dequant (dequantize-then-reuse)",
      )
        .argParser(choiceFlag("--strategy", STRATEGIES)),
    );
}

/**
 * The variants to run for `problem`: `--kernel NAME` (must support it), `--kernel auto` (the
 * first supporting one), `--strategy` (fused = every variant but `dequant`), or by default
 * `fallback` ("all": every supporting variant; "auto": the first).
 */
export function variantsFor(
  problem: Problem,
  gpu: GpuContext,
  flags: { kernel?: string; strategy?: (typeof STRATEGIES)[number] },
  fallback: "all" | "auto",
): KernelVariant[] {
  const mode = flags.kernel ?? fallback;
  if (mode !== "all" && mode !== "auto") {
    const variant = KERNEL_VARIANTS.find((v) => v.name === mode);
    if (!variant) {
      throw new UsageError(
        `Cannot use --kernel ${mode}: expected one of ${
          KERNEL_VARIANTS.map((v) => v.name).join(", ")
        }, auto, all`,
      );
    }
    const reason = variant.supports(problem, gpu);
    if (reason !== null) throw new UsageError(`Cannot use --kernel ${mode}: ${reason}`);
    return [variant];
  }
  let candidates = KERNEL_VARIANTS.filter((v) => v.supports(problem, gpu) === null);
  if (flags.strategy === "dequant") candidates = candidates.filter((v) => v.name === "dequant");
  if (flags.strategy === "fused") candidates = candidates.filter((v) => v.name !== "dequant");
  if (candidates.length === 0) {
    const reasons = KERNEL_VARIANTS.map((v) =>
      `${v.name}: ${v.supports(problem, gpu) ?? "excluded by --strategy"}`
    );
    throw new UsageError(`Cannot find a kernel for this problem: ${reasons.join("; ")}`);
  }
  return mode === "auto" ? candidates.slice(0, 1) : candidates;
}
