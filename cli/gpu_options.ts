/**
 * The `--backend` flag shared by every GPU command, and acquiring the device it names.
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import {
  acquireGpu,
  defaultGpuBackend,
  GPU_BACKENDS,
  type GpuBackend,
  type GpuContext,
} from "../kernels/gpu.ts";
import { mmaEnvironmentProblem } from "../kernels/mma/mma.ts";
import { choiceFlag } from "./parse.ts";
import { UsageError } from "./errors.ts";

/** Adds `--backend deno|dawn` to `command`. */
export function addBackendOption<C extends Command<[], Record<string, unknown>>>(command: C) {
  return command.addOption(
    new Option("--backend <name>", `WebGPU implementation: ${GPU_BACKENDS.join(" | ")}`)
      .argParser(choiceFlag("--backend", GPU_BACKENDS)),
  );
}

/**
 * Acquires the GPU of `--backend` (default: the runtime's built-in WebGPU, else Dawn), after
 * checking the kernels' environment variables: a malformed one is a usage error (one line).
 */
export async function gpuFromFlags(flags: { backend?: GpuBackend }): Promise<GpuContext> {
  const why = mmaEnvironmentProblem();
  if (why) throw new UsageError(why);
  return await acquireGpu({ backend: flags.backend ?? defaultGpuBackend() });
}

/** A one-line description of a context: implementation, API backend and adapter. */
export function describeGpu(gpu: GpuContext): string {
  return `${gpu.implementation} (${gpu.apiBackend}) on ${gpu.adapterName}`;
}
