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
import { choiceFlag } from "./parse.ts";

/** Adds `--backend deno|dawn` to `command`. */
export function addBackendOption<C extends Command<[], Record<string, unknown>>>(command: C) {
  return command.addOption(
    new Option("--backend <name>", `WebGPU implementation: ${GPU_BACKENDS.join(" | ")}`)
      .argParser(choiceFlag("--backend", GPU_BACKENDS)),
  );
}

/** Acquires the GPU of `--backend` (default: the runtime's built-in WebGPU, else Dawn). */
export function gpuFromFlags(flags: { backend?: GpuBackend }): Promise<GpuContext> {
  return acquireGpu({ backend: flags.backend ?? defaultGpuBackend() });
}

/** A one-line description of a context: implementation, API backend and adapter. */
export function describeGpu(gpu: GpuContext): string {
  return `${gpu.implementation} (${gpu.apiBackend}) on ${gpu.adapterName}`;
}
