/**
 * `paged-prefill ceilings`: measures the adapter's copy bandwidth and f32 (and f16) FMA rate
 * with microbenchmarks in several WGSL forms, caches them per adapter, and prints them beside
 * the datasheet figures when the GPU is known.
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { ceilingLines, type Ceilings, measureCeilings } from "../../reports/ceilings.ts";
import { renderTextTable } from "../../reports/render_table.ts";
import type { GpuBackend } from "../../kernels/gpu.ts";
import { addBackendOption, describeGpu, gpuFromFlags } from "../gpu_options.ts";
import { ExitCode } from "../errors.ts";
import { err, out } from "../output.ts";
import { writeTextFile } from "../runtime.ts";

/** Flags of `ceilings`. */
export interface CeilingsFlags {
  backend?: GpuBackend;
  refresh?: boolean;
  quick?: boolean;
  json?: string;
}

function _rate(id: string, value: number): string {
  return id === "bandwidth"
    ? `${(value / 1e9).toFixed(1)} GB/s`
    : `${(value / 1e12).toFixed(3)} TFLOP/s`;
}

/** Renders ceilings: the best of each kind (measured and datasheet), then every form measured. */
export function renderCeilings(c: Ceilings): string {
  const best = ceilingLines(c, c.datasheet ?? null).map((
    l,
  ) => [l.label, _rate(l.id, l.value), l.detail]);
  const forms: string[][] = [];
  const groups = [["bandwidth", c.bandwidth.forms], ["f32", c.f32.forms], [
    "f16",
    c.f16?.forms ?? [],
  ]] as const;
  for (const [id, list] of groups) {
    for (const form of list) {
      forms.push([id, form.name, form.error ? `failed: ${form.error}` : _rate(id, form.value)]);
    }
  }
  return `adapter: ${c.adapter} (${c.backend}), measured ${c.measuredAt}\n\n` +
    renderTextTable(["ceiling", "value", "source"], best) + "\n" +
    renderTextTable(["kind", "form", "value"], forms);
}

/** Builds the `ceilings` command. */
export function ceilingsCommand(setExit: (code: number) => void) {
  return addBackendOption(
    new Command("ceilings")
      .description("measure the adapter's copy bandwidth and FMA rates (cached per adapter)")
      .option("--refresh", "measure again even when cached")
      .option("--quick", "shorter microbenchmarks")
      .option("--json <file>", "also write the ceilings as JSON"),
  ).action(async (flags) => {
    const f = flags as unknown as CeilingsFlags;
    const gpu = await gpuFromFlags(f);
    err(`ceilings of ${describeGpu(gpu)}\n`);
    let c: Ceilings;
    try {
      c = await measureCeilings(gpu, {
        refresh: f.refresh ?? false,
        quick: f.quick ?? false,
        onProgress: (line) => err(`  ${line}\n`),
      });
    } finally {
      gpu.destroy();
    }
    out(renderCeilings(c));
    if (f.json) await writeTextFile(f.json, JSON.stringify(c, null, 2) + "\n");
    setExit(ExitCode.ok);
  });
}
