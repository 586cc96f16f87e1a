/**
 * `paged-prefill bench`: times each selected workload on the GPU for every kernel variant that
 * runs it, verifies each timed run once, and reports the roofline (SPEC §6, §7) as a terminal
 * table, JSON, Markdown and HTML.
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { generateCase } from "../../workloads/generate.ts";
import { randomSeed } from "../../workloads/random.ts";
import type { WorkloadCase } from "../../workloads/loader.ts";
import { validateProblem } from "../../op/validate.ts";
import { benchCase } from "../../bench/bench_case.ts";
import { measureCeilings } from "../../reports/ceilings.ts";
import { buildReport, buildResult, describeEnvironment } from "../../reports/build.ts";
import type { BenchReport, BenchResult, CaseShape } from "../../reports/schema.ts";
import { compareReports, renderComparisonTable } from "../../reports/compare.ts";
import { writeReport } from "../../reports/schema.ts";
import { renderTable } from "../../reports/render_table.ts";
import { renderMarkdown } from "../../reports/render_markdown.ts";
import { renderHtml } from "../../reports/render_html.ts";
import { GPU_BACKENDS, type GpuBackend } from "../../kernels/gpu.ts";
import type { Problem } from "../../op/types.ts";
import { addWorkloadOptions, selectCases, type WorkloadFlags } from "../workload_options.ts";
import { addBackendOption, describeGpu, gpuFromFlags } from "../gpu_options.ts";
import { addKernelOptions, variantsFor } from "../kernel_options.ts";
import { ExitCode } from "../errors.ts";
import { declinedVariants } from "../../kernels/registry.ts";
import { err, out, progressBar, useColor } from "../output.ts";
import { args as runtimeArgs, writeTextFile } from "../runtime.ts";
import { choiceFlag, intFlag } from "../parse.ts";
import { dumpWgsl } from "../dump_wgsl.ts";

/** Flags of `bench`. */
export interface BenchFlags extends WorkloadFlags {
  backend?: GpuBackend;
  backends?: GpuBackend[];
  kernel?: string;
  strategy?: "fused" | "dequant";
  seed?: number;
  iters?: number;
  warmup?: number;
  warmupMs?: number;
  inputSets?: number;
  minTime?: number;
  itersPerSubmit?: number;
  rows?: number;
  json?: string;
  md?: string;
  html?: string;
  refreshCeilings?: boolean;
  verify?: boolean;
  dumpWgsl?: string;
}

/** The report's shape block of a case. */
export function caseShapeOf(c: WorkloadCase, problem: Problem, seed: number): CaseShape {
  return {
    batch: problem.batch,
    qLens: [...problem.qLens],
    cacheLens: [...problem.cacheLens],
    numHeads: problem.numHeads,
    numKvHeads: problem.numKvHeads,
    headDim: problem.headDim,
    pageSize: problem.pageSize,
    maxPagesPerReq: problem.maxPagesPerReq,
    qDtype: problem.qDtype,
    cacheDtype: problem.cacheDtype,
    isCausal: problem.isCausal,
    softcap: problem.softcap,
    smScale: problem.smScale,
    pageOrder: c.pageOrder,
    seed,
  };
}

/** Builds the `bench` command. */
export function benchCommand(setExit: (code: number) => void) {
  const command = addKernelOptions(addBackendOption(addWorkloadOptions(
    new Command("bench")
      .description(
        "time the kernels on the GPU, verify each timed run, and report TFLOP/s, GB/s and % of the measured roofline",
      )
      .option("--iters <n>", "timed iterations", intFlag("--iters", 1))
      .option("--warmup <n>", "untimed iterations first", intFlag("--warmup", 0))
      .option(
        "--warmup-ms <ms>",
        "run back to back this long before timing, so the GPU leaves its idle clock (default 1000; 0 on a software GPU)",
        intFlag("--warmup-ms", 0),
      )
      .option(
        "--input-sets <n>",
        "input sets to rotate (default: enough to exceed twice a 64 MiB last-level cache, at most 8)",
        intFlag("--input-sets", 1),
      )
      .option(
        "--min-time <ms>",
        "keep timing until the samples add up to this many ms (default 300; 0 on a software GPU)",
        intFlag("--min-time", 0),
      )
      .option(
        "--iters-per-submit <n>",
        "timed iterations recorded per command buffer (default 1: one submit per op call, as a caller would); more keeps a GPU busy where submits cost about as much as the kernel",
        intFlag("--iters-per-submit", 1),
      )
      .option(
        "--seed <n>",
        "seed of the generated inputs (default: fresh each run)",
        intFlag("--seed", 0),
      )
      .option(
        "--rows <n>",
        "query rows verified per request (default: all, sampled when large)",
        intFlag("--rows", 2),
      )
      .option("--no-verify", "skip verification of the timed runs")
      .option(
        "--refresh-ceilings",
        "measure the adapter's ceilings again instead of using the cache",
      )
      .option(
        "--backends <list>",
        "run on several WebGPU implementations side by side (deno,dawn): one report each (FILE.deno.json, FILE.dawn.json) and a comparison",
        (v: string) => v.split(",").map((b) => choiceFlag("--backends", GPU_BACKENDS)(b.trim())),
      )
      .option("--json <file>", "write the report as JSON")
      .option("--md <file>", "write the report as Markdown")
      .option(
        "--html <file>",
        "write the report as a self-contained HTML page with a roofline plot",
      )
      .option(
        "--dump-wgsl <dir>",
        "write the generated WGSL of every planned kernel into this folder",
      ),
  )));
  return command.action(async (flags) => {
    const f = flags as unknown as BenchFlags;
    const cases = selectCases(f, "default");
    // One seed per case, shared by every backend so they time the same inputs.
    const seeds = cases.map(() => f.seed ?? randomSeed());
    const backends: (GpuBackend | undefined)[] = f.backends ?? [f.backend];
    const reports: BenchReport[] = [];
    const skipped: string[] = [];
    for (const backend of backends) {
      const suffix = backends.length > 1 ? `.${backend}` : "";
      const report = await benchOnBackend(
        f,
        cases,
        seeds,
        backend,
        skipped,
        f.json ? _withSuffix(f.json, suffix) : undefined,
      );
      reports.push(report);
      out(renderTable(report, { color: useColor() }) + "\n");
      if (f.json) await writeReport(_withSuffix(f.json, suffix), report);
      if (f.md) await writeTextFile(_withSuffix(f.md, suffix), renderMarkdown(report));
      if (f.html) await writeTextFile(_withSuffix(f.html, suffix), renderHtml(report));
    }
    if (reports.length === 2) {
      out(`${backends[1]} against ${backends[0]}:\n`);
      out(renderComparisonTable(compareReports(reports[0]!, reports[1]!), { color: useColor() }));
    }
    const failed = reports.flatMap((r) =>
      r.results
    ).filter((r) => r.correctness && !r.correctness.ok).length;
    if (skipped.length > 0) err(`${skipped.length} skipped: ${skipped.join(", ")}\n`);
    // A skipped row was not measured: the run did not cover what was asked.
    setExit(failed > 0 || skipped.length > 0 ? ExitCode.checkFailed : ExitCode.ok);
  });
}

/** `r.json` + `.dawn` -> `r.dawn.json`. */
function _withSuffix(file: string, suffix: string): string {
  if (!suffix) return file;
  const dot = file.lastIndexOf(".");
  return dot > file.lastIndexOf("/")
    ? file.slice(0, dot) + suffix + file.slice(dot)
    : file + suffix;
}

/** Times every case on one WebGPU implementation and builds its report. */
async function benchOnBackend(
  f: BenchFlags,
  cases: readonly WorkloadCase[],
  seeds: readonly number[],
  backend: GpuBackend | undefined,
  skipped: string[],
  /** Rewritten with the results so far after every case, so a run cut short keeps them. */
  partialJson?: string,
): Promise<BenchReport> {
  const gpu = await gpuFromFlags(backend ? { backend } : {});
  err(`bench on ${describeGpu(gpu)}: ${cases.length} workload(s)\n`);
  const results: BenchResult[] = [];
  try {
    const ceilings = await measureCeilings(gpu, {
      refresh: f.refreshCeilings ?? false,
      onProgress: (line) => err(`ceilings: ${line}\n`),
    });
    const environment = describeEnvironment(gpu, ceilings);
    const meta = {
      command: ["paged-prefill", "bench", ...runtimeArgs().slice(1)],
      tool: { name: "paged-prefill", version: "0.1.0" },
    };
    const bar = progressBar(cases.length);
    for (const [i, c] of cases.entries()) {
      bar.tick(c.id);
      const seed = seeds[i]!;
      const { inputs, params } = generateCase(c, seed);
      const problem = validateProblem(inputs, params);
      for (const variant of variantsFor(problem, gpu, f, "all")) {
        let r;
        try {
          r = await benchCase(gpu, inputs, params, {
            kernel: variant.name,
            ...(f.iters !== undefined ? { iters: f.iters } : {}),
            ...(f.warmup !== undefined ? { warmup: f.warmup } : {}),
            ...(f.warmupMs !== undefined ? { warmupMs: f.warmupMs } : {}),
            ...(f.inputSets !== undefined ? { inputSets: f.inputSets } : {}),
            ...(f.minTime !== undefined ? { minTimeMs: f.minTime } : {}),
            ...(f.itersPerSubmit !== undefined ? { itersPerSubmit: f.itersPerSubmit } : {}),
            ...(f.rows !== undefined ? { rowsPerRequest: f.rows } : {}),
            ...(c.verifyRows !== undefined && f.rows === undefined
              ? { rowsPerRequest: c.verifyRows }
              : {}),
            sampleSeed: seed,
            noVerify: f.verify === false,
            onPlan: f.dumpWgsl ? async (p) => void await dumpWgsl(f.dumpWgsl!, p.plan) : undefined,
          });
        } catch (e) {
          // A row this adapter cannot run (a buffer over its limits): say so and go on.
          if (!(e instanceof RangeError)) throw e;
          skipped.push(`${c.id} [${variant.name}]`);
          err(`SKIP ${c.id} [${variant.name}]: ${e.message}\n`);
          continue;
        }
        const declined = declinedVariants(problem, gpu, r.variant);
        results.push(buildResult({
          workload: { id: c.id, label: c.label, ...(c.notes ? { notes: c.notes } : {}) },
          case: caseShapeOf(c, problem, seed),
          kernel: {
            name: r.variant,
            key: r.kernelKey,
            ...(declined.length > 0 ? { declined } : {}),
          },
          timing: r.timing,
          correctness: r.correctness,
        }, environment.ceilings));
        if (r.correctness && !r.correctness.ok) {
          err(`FAIL ${c.id} [${r.variant}] ${r.correctness.message}\n`);
        }
      }
      if (partialJson) await writeReport(partialJson, buildReport(environment, results, meta));
    }
    bar.done();
    return buildReport(environment, results, meta);
  } finally {
    gpu.destroy();
  }
}
