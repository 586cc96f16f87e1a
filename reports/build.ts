/**
 * Builds the pieces of a bench report from what the runner has: the GPU context and ceilings
 * (environment), and per case its shape, kernel, timing and correctness (result). Every
 * derived number (FLOPs, bytes, AI, rates, % of ceilings, attainable, bound) is computed here,
 * from `roofline.ts`, so all reports derive them the same way.
 * @module
 */
import type { GpuContext } from "../kernels/gpu.ts";
import type { TimingStats } from "../bench/timing.ts";
import { type Ceilings, type DatasheetCeilings, datasheetFor } from "./ceilings.ts";
import { rooflineBound, rooflineCosts } from "./roofline.ts";
import {
  type BenchReport,
  type BenchResult,
  type CaseShape,
  type CeilingPercents,
  type Correctness,
  REPORT_SCHEMA_VERSION,
  type ReportCeilings,
  type ReportEnvironment,
  type ReportKernel,
  type ReportRuntime,
} from "./schema.ts";

/**
 * The runtime this process runs on (Deno, else Bun or Node through `process`).
 *
 * @example
 * ```ts
 * import { describeRuntime } from "./build.ts";
 * describeRuntime().name; // "deno"
 * ```
 */
export function describeRuntime(): ReportRuntime {
  const g = globalThis as Record<string, unknown>;
  const bun = g.Bun as { version?: string } | undefined;
  const deno = g.Deno as
    | {
      version?: { deno: string; v8: string; typescript: string };
      build?: { os: string; arch: string };
    }
    | undefined;
  const proc = g.process as
    | { versions?: { node?: string }; platform?: string; arch?: string }
    | undefined;
  if (bun?.version) {
    return {
      name: "bun",
      version: bun.version,
      os: proc?.platform ?? "unknown",
      arch: proc?.arch ?? "unknown",
    };
  }
  if (deno?.version && deno.build) {
    return {
      name: "deno",
      version: deno.version.deno,
      os: deno.build.os,
      arch: deno.build.arch,
      v8: deno.version.v8,
      typescript: deno.version.typescript,
    };
  }
  return {
    name: proc?.versions?.node ? "node" : "unknown",
    version: proc?.versions?.node ?? "unknown",
    os: proc?.platform ?? "unknown",
    arch: proc?.arch ?? "unknown",
  };
}

/**
 * The environment block of a report: runtime, backend, adapter, features, limits, ceilings.
 * The datasheet figures come from `measured.datasheet`, else from the adapter name.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu } from "../kernels/gpu.ts";
 * import { measureCeilings } from "./ceilings.ts";
 * import { describeEnvironment } from "./build.ts";
 * const gpu = await acquireGpu();
 * const env = describeEnvironment(gpu, await measureCeilings(gpu));
 * ```
 */
export function describeEnvironment(
  gpu: GpuContext,
  measured: Ceilings | null,
): ReportEnvironment {
  const extra = gpu as unknown as { apiBackend?: unknown };
  const datasheet = measured?.datasheet ?? datasheetFor(gpu.adapterName);
  return {
    runtime: describeRuntime(),
    backend: gpu.backend,
    ...(typeof extra.apiBackend === "string" ? { apiBackend: extra.apiBackend } : {}),
    ...(gpu.implementationOptions.length > 0
      ? { backendOptions: [...gpu.implementationOptions] }
      : {}),
    adapter: { name: gpu.adapterName, info: { ...gpu.adapterInfo } },
    features: [...gpu.features].sort(),
    limits: { ...gpu.limits },
    ceilings: { measured, datasheet },
  };
}

/** What {@linkcode buildResult} needs of one timed case. */
export interface ResultInput {
  workload: { id: string; label: string; notes?: string };
  case: CaseShape;
  kernel: ReportKernel;
  timing: TimingStats;
  /** Null when the case was not checked. */
  correctness: Correctness | null;
  /**
   * Compute ceiling the attainable rate uses; falls back to f32 when the adapter lacks it.
   * @default "f32" (the kernels accumulate and multiply in f32)
   */
  computeCeiling?: "f32" | "f16" | "matrix";
}

function _measuredPercents(
  m: Ceilings,
  flopsPerSecond: number,
  bytesPerSecond: number,
): CeilingPercents {
  const out: CeilingPercents = {};
  if (m.bandwidth.bytesPerSecond > 0) {
    out.bandwidth = (100 * bytesPerSecond) / m.bandwidth.bytesPerSecond;
  }
  for (const id of ["f32", "f16", "matrix"] as const) {
    const c = m[id];
    if (c && c.flopsPerSecond > 0) out[id] = (100 * flopsPerSecond) / c.flopsPerSecond;
  }
  return out;
}

function _datasheetPercents(
  d: DatasheetCeilings,
  flopsPerSecond: number,
  bytesPerSecond: number,
): CeilingPercents {
  const out: CeilingPercents = {
    bandwidth: (100 * bytesPerSecond) / d.bandwidthBytesPerSecond,
    f32: (100 * flopsPerSecond) / d.f32FlopsPerSecond,
  };
  if (d.f16FlopsPerSecond) out.f16 = (100 * flopsPerSecond) / d.f16FlopsPerSecond;
  if (d.matrixFlopsPerSecond) out.matrix = (100 * flopsPerSecond) / d.matrixFlopsPerSecond;
  return out;
}

function _finiteOrNull(x: number | null): number | null {
  return x !== null && Number.isFinite(x) ? x : null;
}

/**
 * One result of a report: FLOPs, bytes and AI from the shape (SPEC §6), rates from the median
 * time, % of every ceiling, and attainable/efficiency/bound against the measured ceilings
 * (the datasheet's when nothing was measured).
 *
 * @example
 * ```ts ignore
 * import { buildResult } from "./build.ts";
 * const result = buildResult({ workload, case: shape, kernel, timing, correctness }, env.ceilings);
 * ```
 */
export function buildResult(input: ResultInput, ceilings: ReportCeilings): BenchResult {
  const costs = rooflineCosts(input.case);
  const seconds = input.timing.median / 1e3;
  const flopsPerSecond = seconds > 0 ? costs.flops / seconds : 0;
  const bytesPerSecond = seconds > 0 ? costs.bytes / seconds : 0;
  const m = ceilings.measured;
  const d = ceilings.datasheet;
  let computeCeiling = input.computeCeiling ?? "f32";
  let peak: { bytesPerSecond: number; flopsPerSecond: number } | null = null;
  if (m) {
    if (!(m[computeCeiling]?.flopsPerSecond)) computeCeiling = "f32";
    peak = {
      bytesPerSecond: m.bandwidth.bytesPerSecond,
      flopsPerSecond: m[computeCeiling]!.flopsPerSecond,
    };
  } else if (d) {
    const fromSheet = computeCeiling === "matrix"
      ? d.matrixFlopsPerSecond
      : computeCeiling === "f16"
      ? d.f16FlopsPerSecond
      : d.f32FlopsPerSecond;
    if (!fromSheet) computeCeiling = "f32";
    peak = {
      bytesPerSecond: d.bandwidthBytesPerSecond,
      flopsPerSecond: fromSheet ?? d.f32FlopsPerSecond,
    };
  }
  const bound = peak ? rooflineBound(costs.arithmeticIntensity, peak) : null;
  const correctness = input.correctness && {
    ...input.correctness,
    maxAbsErr: _finiteOrNull(input.correctness.maxAbsErr),
    maxRelErr: _finiteOrNull(input.correctness.maxRelErr),
    relL2Err: _finiteOrNull(input.correctness.relL2Err),
  };
  return {
    workload: input.workload,
    case: input.case,
    kernel: input.kernel,
    flops: costs.flops,
    bytes: costs.bytes,
    arithmeticIntensity: costs.arithmeticIntensity,
    timing: input.timing,
    tflops: flopsPerSecond / 1e12,
    gbps: bytesPerSecond / 1e9,
    pctOfCeiling: m ? _measuredPercents(m, flopsPerSecond, bytesPerSecond) : {},
    ...(d ? { pctOfDatasheet: _datasheetPercents(d, flopsPerSecond, bytesPerSecond) } : {}),
    computeCeiling,
    attainableTflops: bound ? bound.attainableFlopsPerSecond / 1e12 : null,
    efficiency: bound && bound.attainableFlopsPerSecond > 0
      ? flopsPerSecond / bound.attainableFlopsPerSecond
      : null,
    bound: bound ? bound.bound : null,
    correctness,
  };
}

/**
 * A whole report around the results.
 *
 * @example
 * ```ts ignore
 * import { buildReport } from "./build.ts";
 * const report = buildReport(env, results, { command: Deno.args });
 * ```
 */
export function buildReport(
  environment: ReportEnvironment,
  results: BenchResult[],
  options: { command?: string[]; tool?: { name: string; version: string }; createdAt?: string } =
    {},
): BenchReport {
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    createdAt: options.createdAt ?? new Date().toISOString(),
    command: options.command ?? [],
    ...(options.tool ? { tool: options.tool } : {}),
    environment,
    results,
  };
}
