/**
 * The bench report (SPEC §7): a versioned JSON document with the environment (runtime,
 * adapter, backend, features, limits, ceilings) and one result per (workload, kernel variant):
 * shape, FLOPs, bytes, arithmetic intensity, timing, rates, % of each ceiling, bound and
 * correctness. Validated with zod on read and before write.
 * @module
 */
import { writeFileAtomic } from "../io/atomic_write.ts";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { z } from "zod";
import type { TimingStats } from "../bench/timing.ts";
import type { CacheDtype, QDtype } from "../op/types.ts";
import type { PageOrder } from "../workloads/schema.ts";
import type {
  BandwidthCeiling,
  CeilingForm,
  Ceilings,
  ComputeCeiling,
  DatasheetCeilings,
} from "./ceilings.ts";

/** The report schema version this build writes and reads. */
export const REPORT_SCHEMA_VERSION = 1;

/** The JavaScript runtime a report was made on. */
export interface ReportRuntime {
  /** "deno", "bun", "node". */
  name: string;
  /** Runtime version, e.g. "2.9.6". */
  version: string;
  /** Operating system, e.g. "linux". */
  os: string;
  /** CPU architecture, e.g. "x86_64". */
  arch: string;
  /** V8 version (Deno). */
  v8?: string;
  /** TypeScript version (Deno). */
  typescript?: string;
}

/** The adapter a report was made on. */
export interface ReportAdapter {
  /** Adapter name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  name: string;
  /** Vendor, architecture, device, driver strings as the adapter reports them. */
  info: Record<string, string | number | boolean>;
}

/** Ceilings of a report: measured on the adapter, and the datasheet's when known. */
export interface ReportCeilings {
  /** Measured ceilings (with every microbenchmark form); null when not measured. */
  measured: Ceilings | null;
  /** Datasheet figures with their source; null when the adapter is not recognised. */
  datasheet: DatasheetCeilings | null;
}

/** Where a report was made. */
export interface ReportEnvironment {
  runtime: ReportRuntime;
  /** WebGPU backend ("deno", "dawn"). */
  backend: string;
  /** Native API under it ("vulkan", "metal", ...), when known. */
  apiBackend?: string;
  /** Options the implementation was created with (Dawn's toggles); absent when none. */
  backendOptions?: string[];
  adapter: ReportAdapter;
  /** Features enabled on the device. */
  features: string[];
  /** Limits of the device. */
  limits: Record<string, number>;
  ceilings: ReportCeilings;
}

/** The shape of a case (SPEC §5 manifest fields, camelCase as in `Problem`). */
export interface CaseShape {
  /** B */
  batch: number;
  qLens: number[];
  cacheLens: number[];
  /** H */
  numHeads: number;
  /** H_kv */
  numKvHeads: number;
  /** D */
  headDim: number;
  pageSize: number;
  maxPagesPerReq: number;
  qDtype: QDtype;
  cacheDtype: CacheDtype;
  isCausal: boolean;
  /** 0 when off. */
  softcap: number;
  /** Resolved score scale, when recorded. */
  smScale?: number;
  pageOrder: PageOrder;
  /** Seed of the generated inputs, when recorded. */
  seed?: number;
}

/** The kernel variant a result was timed with. */
export interface ReportKernel {
  /** Variant name, e.g. "simple", "flash". */
  name: string;
  /** Variant key spelling every spec field. */
  key: string;
  /** How the variant splits the work, when it says. */
  strategy?: string;
  /** Preferred variants that declined this problem, with why (see `declinedVariants`). */
  declined?: Array<{ name: string; reason: string }>;
}

/** Achieved rate as a percentage of each ceiling (100 = on the ceiling). */
export interface CeilingPercents {
  /** Achieved bytes/s over the bandwidth ceiling, %. */
  bandwidth?: number;
  /** Achieved FLOP/s over the f32 ceiling, %. */
  f32?: number;
  /** Achieved FLOP/s over the f16 ceiling, %. */
  f16?: number;
  /** Achieved FLOP/s over the matrix ceiling, %. */
  matrix?: number;
}

/** Outcome of the correctness check of a case (SPEC §4). */
export interface Correctness {
  /** Output within tolerance, append bit-exact and the rest of the pools unchanged. */
  ok: boolean;
  /** Query rows checked against the reference. */
  checkedRows: number;
  /** Query rows of the case (T_q). */
  totalRows: number;
  /** Largest |o - ref|; null when not finite. */
  maxAbsErr: number | null;
  /** Largest |o - ref| / |ref|; null when not finite. */
  maxRelErr: number | null;
  /** ||o - ref||_2 / ||ref||_2; null when not finite. */
  relL2Err: number | null;
  /** Appended slots bit-exact against the reference encoder. */
  appendExact: boolean;
  /** Every byte of both pools outside the appended slots unchanged. */
  poolUnchanged: boolean;
  /** One line: "ok" or what failed. */
  message: string;
}

/** One timed (workload, kernel variant). */
export interface BenchResult {
  workload: {
    /** Stable id, e.g. "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16". */
    id: string;
    /** Manifest label. */
    label: string;
    notes?: string;
  };
  case: CaseShape;
  kernel: ReportKernel;
  /** SPEC §6 FLOPs. */
  flops: number;
  /** SPEC §6 compulsory bytes. */
  bytes: number;
  /** flops / bytes. */
  arithmeticIntensity: number;
  timing: TimingStats;
  /** flops / median time, TFLOP/s. */
  tflops: number;
  /** bytes / median time, GB/s (1e9). */
  gbps: number;
  /** % of each measured ceiling. */
  pctOfCeiling: CeilingPercents;
  /** % of each datasheet ceiling, when the adapter is recognised. */
  pctOfDatasheet?: CeilingPercents;
  /** Which compute ceiling `attainableTflops` uses. */
  computeCeiling: "f32" | "f16" | "matrix";
  /**
   * min(compute ceiling, AI * bandwidth), TFLOP/s, from the measured ceilings (the datasheet's
   * when none were measured); null when no ceilings are known.
   */
  attainableTflops: number | null;
  /** tflops / attainableTflops (a fraction: 1 = on the roof); null without ceilings. */
  efficiency: number | null;
  /** The roof that binds at this AI; null without ceilings. */
  bound: "compute" | "memory" | null;
  /** Null when the case was not checked. */
  correctness: Correctness | null;
}

/** A bench report. */
export interface BenchReport {
  schemaVersion: 1;
  /** ISO 8601 time the report was made. */
  createdAt: string;
  /** The command line that made it (argv). */
  command: string[];
  /** The tool that made it. */
  tool?: { name: string; version: string };
  environment: ReportEnvironment;
  results: BenchResult[];
}

const finite = z.number().refine(Number.isFinite, "expected a finite number");
const nonNegative = finite.refine((x) => x >= 0, "expected a number >= 0");
const count = z.number().int().nonnegative();
const infoValue = z.union([z.string(), z.number(), z.boolean()]);
const timingMethod = z.enum(["timestamp", "wall"]);

/** Schema of {@linkcode TimingStats}. */
export const TimingStatsSchema: z.ZodType<TimingStats> = z.object({
  method: timingMethod,
  unit: z.literal("ms"),
  median: nonNegative,
  p10: nonNegative,
  p90: nonNegative,
  min: nonNegative,
  max: nonNegative,
  mean: nonNegative,
  count: count,
  samples: z.array(nonNegative),
  itersPerSample: count.optional(),
  itersPerSubmit: count.optional(),
  discarded: count.optional(),
});

const CeilingFormSchema: z.ZodType<CeilingForm> = z.object({
  name: z.string(),
  description: z.string(),
  value: nonNegative,
  medianValue: nonNegative,
  work: nonNegative,
  bestMs: nonNegative,
  medianMs: nonNegative,
  samples: count,
  timing: timingMethod,
  workgroupSize: count.optional(),
  error: z.string().optional(),
});

const BandwidthCeilingSchema: z.ZodType<BandwidthCeiling> = z.object({
  bytesPerSecond: nonNegative,
  method: z.string(),
  forms: z.array(CeilingFormSchema),
});

const ComputeCeilingSchema: z.ZodType<ComputeCeiling> = z.object({
  flopsPerSecond: nonNegative,
  form: z.string(),
  forms: z.array(CeilingFormSchema),
});

/** Schema of {@linkcode DatasheetCeilings}. */
export const DatasheetCeilingsSchema: z.ZodType<DatasheetCeilings> = z.object({
  name: z.string(),
  source: z.string(),
  bandwidthBytesPerSecond: nonNegative,
  f32FlopsPerSecond: nonNegative,
  f16FlopsPerSecond: nonNegative.optional(),
  matrixFlopsPerSecond: nonNegative.optional(),
  matrixKind: z.string().optional(),
});

/** Schema of {@linkcode Ceilings} (also validates the ceilings cache). */
export const CeilingsSchema: z.ZodType<Ceilings> = z.object({
  version: count,
  adapter: z.string(),
  backend: z.string(),
  key: z.string(),
  measuredAt: z.string(),
  quick: z.boolean(),
  timing: timingMethod,
  bandwidth: BandwidthCeilingSchema,
  f32: ComputeCeilingSchema,
  f16: ComputeCeilingSchema.optional(),
  matrix: ComputeCeilingSchema.optional(),
  datasheet: DatasheetCeilingsSchema.optional(),
});

const percents: z.ZodType<CeilingPercents> = z.object({
  bandwidth: nonNegative.optional(),
  f32: nonNegative.optional(),
  f16: nonNegative.optional(),
  matrix: nonNegative.optional(),
});

const qDtype = z.enum(["f16", "bf16"]);
const cacheDtype = z.enum(["f16", "bf16", "fp8_e4m3", "int8"]);

/** Schema of {@linkcode CaseShape}. */
export const CaseShapeSchema: z.ZodType<CaseShape> = z.object({
  batch: count,
  qLens: z.array(count),
  cacheLens: z.array(count),
  numHeads: count,
  numKvHeads: count,
  headDim: count,
  pageSize: count,
  maxPagesPerReq: count,
  qDtype,
  cacheDtype,
  isCausal: z.boolean(),
  softcap: nonNegative,
  smScale: finite.optional(),
  pageOrder: z.enum(["contiguous", "permuted", "shared-prefix"]),
  seed: z.number().int().optional(),
});

const errorMetric = nonNegative.nullable();

/** Schema of {@linkcode Correctness}. */
export const CorrectnessSchema: z.ZodType<Correctness> = z.object({
  ok: z.boolean(),
  checkedRows: count,
  totalRows: count,
  maxAbsErr: errorMetric,
  maxRelErr: errorMetric,
  relL2Err: errorMetric,
  appendExact: z.boolean(),
  poolUnchanged: z.boolean(),
  message: z.string(),
});

/** Schema of {@linkcode BenchResult}. */
export const BenchResultSchema: z.ZodType<BenchResult> = z.object({
  workload: z.object({ id: z.string(), label: z.string(), notes: z.string().optional() }),
  case: CaseShapeSchema,
  kernel: z.object({
    name: z.string(),
    key: z.string(),
    strategy: z.string().optional(),
    declined: z.array(z.object({ name: z.string(), reason: z.string() })).optional(),
  }),
  flops: nonNegative,
  bytes: nonNegative,
  arithmeticIntensity: nonNegative,
  timing: TimingStatsSchema,
  tflops: nonNegative,
  gbps: nonNegative,
  pctOfCeiling: percents,
  pctOfDatasheet: percents.optional(),
  computeCeiling: z.enum(["f32", "f16", "matrix"]),
  attainableTflops: nonNegative.nullable(),
  efficiency: nonNegative.nullable(),
  bound: z.enum(["compute", "memory"]).nullable(),
  correctness: CorrectnessSchema.nullable(),
});

/**
 * Schema of {@linkcode BenchReport}. Prefer {@linkcode parseReport}, which checks the version
 * first and throws a {@linkcode ReportSchemaError} naming the bad field.
 *
 * @example
 * ```ts
 * import { BenchReportSchema } from "./schema.ts";
 * BenchReportSchema.safeParse({ schemaVersion: 1 }).success; // false
 * ```
 */
export const BenchReportSchema: z.ZodType<BenchReport> = z.object({
  schemaVersion: z.literal(REPORT_SCHEMA_VERSION),
  createdAt: z.string(),
  command: z.array(z.string()),
  tool: z.object({ name: z.string(), version: z.string() }).optional(),
  environment: z.object({
    runtime: z.object({
      name: z.string(),
      version: z.string(),
      os: z.string(),
      arch: z.string(),
      v8: z.string().optional(),
      typescript: z.string().optional(),
    }),
    backend: z.string(),
    apiBackend: z.string().optional(),
    backendOptions: z.array(z.string()).optional(),
    adapter: z.object({ name: z.string(), info: z.record(z.string(), infoValue) }),
    features: z.array(z.string()),
    limits: z.record(z.string(), z.number()),
    ceilings: z.object({
      measured: CeilingsSchema.nullable(),
      datasheet: DatasheetCeilingsSchema.nullable(),
    }),
  }),
  results: z.array(BenchResultSchema),
});

/**
 * A report that cannot be read: bad JSON, wrong version or a field that fails the schema.
 *
 * @example
 * ```ts
 * import { parseReport, ReportSchemaError } from "./schema.ts";
 * try {
 *   parseReport({ schemaVersion: 7 });
 * } catch (e) {
 *   if (e instanceof ReportSchemaError) console.error(e.path, e.message); // "schemaVersion"
 * }
 * ```
 */
export class ReportSchemaError extends SyntaxError {
  override name = "ReportSchemaError";
  /** Path of the first bad field, e.g. `results[0].timing.median` ("" for the whole file). */
  readonly path: string;
  /** The file, when read from one. */
  readonly file?: string;
  constructor(message: string, fieldPath: string, file?: string) {
    super(message);
    this.path = fieldPath;
    if (file !== undefined) this.file = file;
  }
}

/**
 * Spells a zod issue path as a JS accessor: `results[0].timing.median`.
 *
 * @example
 * ```ts
 * import { formatIssuePath } from "./schema.ts";
 * formatIssuePath(["results", 0, "timing", "median"]); // "results[0].timing.median"
 * ```
 */
export function formatIssuePath(issuePath: readonly PropertyKey[]): string {
  let out = "";
  for (const key of issuePath) {
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key)) {
      out += out ? `.${key}` : key;
    } else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/**
 * Validates a parsed JSON value as a report; `file` names it in errors.
 *
 * @example
 * ```ts
 * import { parseReport, ReportSchemaError } from "./schema.ts";
 * try {
 *   parseReport({ schemaVersion: 1, createdAt: "x", command: [], results: [] });
 * } catch (e) {
 *   (e as ReportSchemaError).path; // "environment"
 * }
 * ```
 */
export function parseReport(value: unknown, file?: string): BenchReport {
  const what = file ? `report ${file}` : "report";
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ReportSchemaError(`Cannot read ${what} as it is not a JSON object`, "", file);
  }
  const version = (value as { schemaVersion?: unknown }).schemaVersion;
  if (version !== REPORT_SCHEMA_VERSION) {
    throw new ReportSchemaError(
      `Cannot read ${what} as its schemaVersion is ${JSON.stringify(version)}: ` +
        `this build reads version ${REPORT_SCHEMA_VERSION}`,
      "schemaVersion",
      file,
    );
  }
  const parsed = BenchReportSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues;
  const first = issues[0]!;
  const where = formatIssuePath(first.path);
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue(s))` : "";
  throw new ReportSchemaError(
    `Cannot read ${what} as ${where || "the document"} is invalid: ${first.message}${more}`,
    where,
    file,
  );
}

/**
 * Reads and validates a JSON report.
 *
 * @example
 * ```ts ignore
 * import { readReport } from "./schema.ts";
 * const report = await readReport("reports/results/lavapipe.json");
 * console.log(report.results.length);
 * ```
 */
export async function readReport(file: string): Promise<BenchReport> {
  const text = await fs.readFile(file, "utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ReportSchemaError(
      `Cannot read report ${file} as it is not valid JSON: ${(e as Error).message}`,
      "",
      file,
    );
  }
  return parseReport(value, file);
}

/**
 * Serialises a report as indented JSON after validating it (a report that would not read back
 * is never written).
 *
 * @example
 * ```ts ignore
 * import { serializeReport } from "./schema.ts";
 * const text = serializeReport(report);
 * ```
 */
export function serializeReport(report: BenchReport): string {
  // Validate what JSON will hold (NaN and Infinity become null), then write the report as given.
  const text = JSON.stringify(report, null, 2);
  parseReport(JSON.parse(text));
  return text + "\n";
}

/**
 * Validates and writes a report as JSON, creating the folder.
 *
 * @example
 * ```ts ignore
 * import { writeReport } from "./schema.ts";
 * await writeReport("reports/results/run.json", report);
 * ```
 */
export async function writeReport(file: string, report: BenchReport): Promise<void> {
  const text = serializeReport(report);
  const dir = path.dirname(file);
  if (dir) await fs.mkdir(dir, { recursive: true });
  // A run killed mid-write (a device time limit) leaves the last complete report.
  await writeFileAtomic(file, text);
}
