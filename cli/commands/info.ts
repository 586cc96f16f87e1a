/**
 * `paged-prefill info`: runtime, WebGPU implementation, adapter, features and limits.
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { GpuBackend, GpuContext } from "../../kernels/gpu.ts";
import { addBackendOption, gpuFromFlags } from "../gpu_options.ts";
import { ExitCode } from "../errors.ts";
import { out } from "../output.ts";
import { runtimeVersion, writeTextFile } from "../runtime.ts";

/** What `info` reports, also written by `--json`. */
export interface InfoReport {
  runtime: string;
  backend: string;
  implementation: string;
  apiBackend: string;
  featureLevel: string;
  adapter: string;
  adapterInfo: Record<string, string | number | boolean>;
  features: string[];
  limits: Record<string, number>;
  subgroupMatrixConfigs: ReadonlyArray<Readonly<Record<string, string | number>>>;
}

/** Collects the info of `gpu`. */
export function infoOf(gpu: GpuContext): InfoReport {
  return {
    runtime: runtimeVersion(),
    backend: gpu.backend,
    implementation: gpu.implementation,
    apiBackend: gpu.apiBackend,
    featureLevel: gpu.featureLevel,
    adapter: gpu.adapterName,
    adapterInfo: gpu.adapterInfo,
    features: [...gpu.features].sort(),
    limits: { ...gpu.limits },
    subgroupMatrixConfigs: gpu.subgroupMatrixConfigs,
  };
}

/** Renders the info as aligned `key: value` lines. */
export function renderInfo(info: InfoReport): string {
  const lines = [
    `runtime         ${info.runtime}`,
    `implementation  ${info.implementation} (--backend ${info.backend})`,
    `api backend     ${info.apiBackend}, feature level ${info.featureLevel}`,
    `adapter         ${info.adapter}`,
    ...Object.entries(info.adapterInfo).map(([k, v]) => `  ${k.padEnd(18)}${v}`),
    `features        ${info.features.join(", ") || "(none)"}`,
  ];
  if (info.subgroupMatrixConfigs.length > 0) {
    lines.push(
      `subgroup matrix ${info.subgroupMatrixConfigs.map((c) => JSON.stringify(c)).join(", ")}`,
    );
  }
  lines.push("limits");
  for (const [k, v] of Object.entries(info.limits).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${k.padEnd(44)}${v}`);
  }
  return lines.join("\n") + "\n";
}

/** Builds the `info` command. */
export function infoCommand(setExit: (code: number) => void) {
  return addBackendOption(
    new Command("info")
      .description("print the runtime, WebGPU adapter, features and limits")
      .option("--json <file>", "also write the info as JSON"),
  ).action(async (flags) => {
    const f = flags as unknown as { backend?: GpuBackend; json?: string };
    const gpu = await gpuFromFlags(f);
    try {
      const info = infoOf(gpu);
      out(renderInfo(info));
      if (f.json) await writeTextFile(f.json, JSON.stringify(info, null, 2) + "\n");
      setExit(ExitCode.ok);
    } finally {
      gpu.destroy();
    }
  });
}
