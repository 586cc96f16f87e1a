/**
 * Ceilings of the roofline (SPEC §6): measured on the adapter in use by microbenchmarks (copy
 * bandwidth, f32 FMA rate, f16 FMA rate where shader-f16 exists), cached per adapter, and
 * datasheet figures with their source for the GPUs we know.
 *
 * Each category runs several forms (a compute-shader copy and `copyBufferToBuffer`; rolled and
 * hand-unrolled FMA loops, `a * b + c`, scalar and vec4, several workgroup sizes) and keeps the
 * best, with every form's result beside it. Sizes adapt: a form starts small and grows until
 * one run takes longer than the target (20 ms; 5 ms quick), with a cap on software adapters,
 * so the whole set takes seconds on lavapipe and is long enough to be accurate on an H200.
 *
 * For reference, an H200 (Deno 2.9.6, Vulkan, driver 580) measures in 6 s: copy shader
 * 4.19 TB/s (datasheet 4.8; `copyBufferToBuffer` only 0.85 TB/s there), f32 64.4 TFLOP/s
 * (datasheet 67), vec4<f16> FMA 65.8 TFLOP/s (not packed to twice the f32 rate). Lavapipe on
 * two shared cores: `copyBufferToBuffer` about 20 GB/s (its copy shader about 1 GB/s), f32
 * about 30 GFLOP/s, f16 about 12 GFLOP/s.
 * @module
 */
import { writeFileAtomic } from "../io/atomic_write.ts";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import type { GpuContext } from "../kernels/gpu.ts";
import { timeGpu, type TimingMethod } from "../bench/timing.ts";
import { timedPassDescriptor, type TimestampSlots } from "../kernels/variant.ts";
import { CeilingsSchema } from "./schema.ts";
import { isSoftwareAdapter } from "../kernels/gpu.ts";
import { measureMatrixCeiling } from "./matrix_ceiling.ts";

/** Version of the microbenchmarks; a cached result of another version is measured again. */
export const CEILINGS_VERSION = 2;

/** One form of a microbenchmark and what it reached. */
export interface CeilingForm {
  /** e.g. `copy-shader-vec4-wg256`, `fma-vec4-unroll16-wg256`. */
  name: string;
  /** What the form does, in words. */
  description: string;
  /** Bytes/s (bandwidth forms) or FLOP/s (compute forms) of the best sample; 0 when it failed. */
  value: number;
  /** Rate of the median sample, same unit as `value`. */
  medianValue: number;
  /** Work of one sample: bytes read + written, or FLOPs. */
  work: number;
  /** Best sample, ms. */
  bestMs: number;
  /** Median sample, ms. */
  medianMs: number;
  /** Samples taken at the final size. */
  samples: number;
  /** How the samples were timed. */
  timing: TimingMethod;
  /** Workgroup size of the shader, when there is one. */
  workgroupSize?: number;
  /** Why the form could not run (shader rejected, ...); absent when it ran. */
  error?: string;
}

/** Measured copy bandwidth. */
export interface BandwidthCeiling {
  /** Best of the forms, bytes read + written per second. */
  bytesPerSecond: number;
  /** Name of the form that reached it. */
  method: string;
  /** Every form's result. */
  forms: CeilingForm[];
}

/** A measured compute rate. */
export interface ComputeCeiling {
  /** Best of the forms, FLOP/s (an FMA counts 2). */
  flopsPerSecond: number;
  /** Name of the form that reached it. */
  form: string;
  /** Every form's result. */
  forms: CeilingForm[];
}

/** Published figures of a GPU, with where they come from. */
export interface DatasheetCeilings {
  /** The product, e.g. "NVIDIA H200 SXM". */
  name: string;
  /** Where the figures come from. */
  source: string;
  /** Peak memory bandwidth, bytes/s. */
  bandwidthBytesPerSecond: number;
  /** Peak non-tensor f32 rate, FLOP/s. */
  f32FlopsPerSecond: number;
  /** Peak non-tensor f16 rate, FLOP/s, when published. */
  f16FlopsPerSecond?: number;
  /** Peak matrix (tensor core) rate, FLOP/s, when published. */
  matrixFlopsPerSecond?: number;
  /** Which matrix rate: e.g. "f16/bf16 dense". */
  matrixKind?: string;
}

/** Ceilings of one adapter: measured, with the datasheet beside them when known. */
export interface Ceilings {
  /** {@linkcode CEILINGS_VERSION} of the microbenchmarks that measured them. */
  version: number;
  /** Adapter name as the context reports it. */
  adapter: string;
  /** WebGPU backend of the context ("deno", "dawn"). */
  backend: string;
  /** Cache key: backend, adapter name and driver info. */
  key: string;
  /** ISO 8601 time of the measurement. */
  measuredAt: string;
  /** True when measured with `quick` (fewer samples, shorter runs). */
  quick: boolean;
  /** How the microbenchmarks were timed. */
  timing: TimingMethod;
  bandwidth: BandwidthCeiling;
  f32: ComputeCeiling;
  /** Present when the adapter has shader-f16. */
  f16?: ComputeCeiling;
  /** Matrix (subgroup matrix, f16 x f16 -> f32) rate, where the adapter has them. */
  matrix?: ComputeCeiling;
  /** Datasheet figures of the adapter, when it is recognised (never cached: looked up anew). */
  datasheet?: DatasheetCeilings;
}

/** A datasheet entry: the figures plus the adapter names it applies to. */
export interface DatasheetEntry extends DatasheetCeilings {
  /** Matches the adapter name. */
  match: RegExp;
}

/**
 * Published figures of known GPUs. Adapter names as Vulkan reports them, e.g.
 * "NVIDIA H100 80GB HBM3" (SXM5) or "NVIDIA H200"; PCIe and NVL parts have other figures and
 * are not matched. Look them up with {@linkcode datasheetFor}.
 *
 * @example
 * ```ts
 * import { DATASHEET_CEILINGS } from "./ceilings.ts";
 * DATASHEET_CEILINGS.map((d) => d.name); // ["NVIDIA H100 SXM", "NVIDIA H200 SXM"]
 * ```
 */
export const DATASHEET_CEILINGS: readonly DatasheetEntry[] = [
  {
    name: "NVIDIA H100 SXM",
    match: /\bH100\b(?!.*\b(PCIe|NVL)\b)/i,
    source: "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column " +
      "(FP32 67 TFLOPS; FP16/BF16 tensor 1,979 TFLOPS with sparsity, 989 dense; 3.35 TB/s HBM3)",
    bandwidthBytesPerSecond: 3.35e12,
    f32FlopsPerSecond: 67e12,
    matrixFlopsPerSecond: 989e12,
    matrixKind: "f16/bf16 dense (tensor cores)",
  },
  {
    name: "NVIDIA H200 SXM",
    match: /\bH200\b(?!.*\bNVL\b)/i,
    source: "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column " +
      "(FP32 67 TFLOPS; FP16/BF16 tensor 1,979 TFLOPS with sparsity, 989 dense; 4.8 TB/s HBM3e)",
    bandwidthBytesPerSecond: 4.8e12,
    f32FlopsPerSecond: 67e12,
    matrixFlopsPerSecond: 989e12,
    matrixKind: "f16/bf16 dense (tensor cores)",
  },
];

/**
 * Datasheet figures for an adapter name, or null when it is not one we know.
 *
 * @example
 * ```ts
 * import { datasheetFor } from "./ceilings.ts";
 * datasheetFor("NVIDIA H200")?.bandwidthBytesPerSecond; // 4.8e12
 * datasheetFor("llvmpipe (LLVM 15.0.6, 256 bits)"); // null
 * ```
 */
export function datasheetFor(adapterName: string): DatasheetCeilings | null {
  const entry = DATASHEET_CEILINGS.find((e) => e.match.test(adapterName));
  if (!entry) return null;
  const { match: _match, ...figures } = entry;
  return figures;
}

/** A line of the roofline: one ceiling, measured or from the datasheet. */
export interface CeilingLine {
  /** Which ceiling. */
  id: "bandwidth" | "f32" | "f16" | "matrix";
  /** "bandwidth": bytes/s (a slope); "compute": FLOP/s (a flat roof). */
  kind: "bandwidth" | "compute";
  source: "measured" | "datasheet";
  /** Bytes/s or FLOP/s. */
  value: number;
  /** Short label, e.g. "f32 (measured)". */
  label: string;
  /** Form or source behind the value. */
  detail: string;
}

/**
 * Flattens ceilings into roofline lines: the measured ones, then the datasheet ones.
 *
 * @example
 * ```ts
 * import { ceilingLines, datasheetFor } from "./ceilings.ts";
 * const lines = ceilingLines(null, datasheetFor("NVIDIA H100 80GB HBM3"));
 * lines.map((l) => l.id); // ["bandwidth", "f32", "matrix"]
 * ```
 */
export function ceilingLines(
  measured: Ceilings | null | undefined,
  datasheet?: DatasheetCeilings | null,
): CeilingLine[] {
  const lines: CeilingLine[] = [];
  if (measured) {
    lines.push({
      id: "bandwidth",
      kind: "bandwidth",
      source: "measured",
      value: measured.bandwidth.bytesPerSecond,
      label: "bandwidth (measured)",
      detail: measured.bandwidth.method,
    });
    for (const id of ["f32", "f16", "matrix"] as const) {
      const c = measured[id];
      if (c && c.flopsPerSecond > 0) {
        lines.push({
          id,
          kind: "compute",
          source: "measured",
          value: c.flopsPerSecond,
          label: `${id} (measured)`,
          detail: c.form,
        });
      }
    }
  }
  const ds = datasheet ?? measured?.datasheet;
  if (ds) {
    lines.push({
      id: "bandwidth",
      kind: "bandwidth",
      source: "datasheet",
      value: ds.bandwidthBytesPerSecond,
      label: "bandwidth (datasheet)",
      detail: ds.name,
    });
    lines.push({
      id: "f32",
      kind: "compute",
      source: "datasheet",
      value: ds.f32FlopsPerSecond,
      label: "f32 (datasheet)",
      detail: ds.name,
    });
    if (ds.f16FlopsPerSecond) {
      lines.push({
        id: "f16",
        kind: "compute",
        source: "datasheet",
        value: ds.f16FlopsPerSecond,
        label: "f16 (datasheet)",
        detail: ds.name,
      });
    }
    if (ds.matrixFlopsPerSecond) {
      lines.push({
        id: "matrix",
        kind: "compute",
        source: "datasheet",
        value: ds.matrixFlopsPerSecond,
        label: `matrix ${ds.matrixKind ?? ""} (datasheet)`.replace("  ", " "),
        detail: ds.name,
      });
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Cache

function _env(name: string): string | undefined {
  try {
    return process.env[name] || undefined;
  } catch {
    return undefined; // no env permission
  }
}

/**
 * Path of the ceilings cache: `$XDG_CACHE_HOME/paged-prefill/ceilings.json`, else
 * `~/.cache/paged-prefill/ceilings.json`; null when neither is known.
 *
 * @example
 * ```ts ignore
 * import { ceilingsCachePath } from "./ceilings.ts";
 * ceilingsCachePath(); // "/home/me/.cache/paged-prefill/ceilings.json"
 * ```
 */
export function ceilingsCachePath(): string | null {
  const xdg = _env("XDG_CACHE_HOME");
  if (xdg) return path.join(xdg, "paged-prefill", "ceilings.json");
  let home = _env("HOME") ?? _env("USERPROFILE");
  if (!home) {
    try {
      home = os.homedir() || undefined;
    } catch {
      home = undefined;
    }
  }
  return home ? path.join(home, ".cache", "paged-prefill", "ceilings.json") : null;
}

/**
 * Cache key of an adapter: backend (with its native API when known), adapter name and every
 * adapter info field (vendor, architecture, device, driver description), sorted.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu } from "../kernels/gpu.ts";
 * import { ceilingsCacheKey } from "./ceilings.ts";
 * ceilingsCacheKey(await acquireGpu()); // "deno/vulkan|llvmpipe (...)|description=...;vendor=65541"
 * ```
 */
export function ceilingsCacheKey(gpu: GpuContext): string {
  const extra = gpu as unknown as { apiBackend?: unknown };
  const backend = typeof extra.apiBackend === "string" && extra.apiBackend !== "unknown"
    ? `${gpu.backend}/${extra.apiBackend}`
    : gpu.backend;
  const info = Object.keys(gpu.adapterInfo)
    .sort()
    .map((k) => `${k}=${String(gpu.adapterInfo[k])}`)
    .join(";");
  return `${backend}|${gpu.adapterName}|${info}`;
}

interface _CacheFile {
  schemaVersion: 1;
  entries: Record<string, unknown>;
}

async function _readCache(file: string): Promise<_CacheFile> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    return { schemaVersion: 1, entries: {} };
  }
  try {
    const parsed = JSON.parse(text) as Partial<_CacheFile>;
    if (parsed.schemaVersion === 1 && parsed.entries && typeof parsed.entries === "object") {
      return { schemaVersion: 1, entries: parsed.entries };
    }
  } catch {
    // A corrupt cache is measured again and rewritten.
  }
  return { schemaVersion: 1, entries: {} };
}

async function _writeCache(file: string, key: string, ceilings: Ceilings): Promise<void> {
  const cache = await _readCache(file);
  const { datasheet: _datasheet, ...stored } = ceilings;
  cache.entries[key] = stored;
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Atomic, so a concurrent reader never sees half a file.
  await writeFileAtomic(file, JSON.stringify(cache, null, 2) + "\n");
}

/** Options of {@linkcode loadCachedCeilings}. */
export interface LoadCeilingsOptions {
  /** Cache file. @default ceilingsCachePath() */
  cachePath?: string | null;
  /** Accept a quick measurement. @default true */
  acceptQuick?: boolean;
}

/**
 * The cached ceilings of `gpu`'s adapter (with its datasheet figures when known), or null when
 * there are none, they are of another microbenchmark version, or quick ones are not accepted.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu } from "../kernels/gpu.ts";
 * import { loadCachedCeilings } from "./ceilings.ts";
 * const cached = await loadCachedCeilings(await acquireGpu());
 * console.log(cached?.bandwidth.bytesPerSecond);
 * ```
 */
export async function loadCachedCeilings(
  gpu: GpuContext,
  options: LoadCeilingsOptions = {},
): Promise<Ceilings | null> {
  const file = options.cachePath === undefined ? ceilingsCachePath() : options.cachePath;
  if (!file) return null;
  const cache = await _readCache(file);
  const key = ceilingsCacheKey(gpu);
  const parsed = CeilingsSchema.safeParse(cache.entries[key]);
  if (!parsed.success) return null;
  const c = parsed.data;
  if (c.version !== CEILINGS_VERSION) return null;
  if (c.quick && options.acceptQuick === false) return null;
  const datasheet = datasheetFor(c.adapter);
  return datasheet ? { ...c, datasheet } : c;
}

// ---------------------------------------------------------------------------------------------
// Microbenchmarks

/** Options of {@linkcode measureCeilings}. */
export interface MeasureCeilingsOptions {
  /** Measure again even when the cache has this adapter. @default false */
  refresh?: boolean;
  /** Shorter runs (5 ms target) and 3 samples per form instead of 20 ms and 10. @default false */
  quick?: boolean;
  /** Cache file; null = no cache (neither read nor written). @default ceilingsCachePath() */
  cachePath?: string | null;
  /** Called with a line per form as it is measured (the CLI prints it to stderr). */
  onProgress?: (message: string) => void;
  /** Overrides the run-time target per form, ms. @default 20 (5 when quick) */
  targetMs?: number;
}

/** A prepared form: how to encode a run of a given scale and how much work that is. */
interface _FormRun {
  encode: (encoder: GPUCommandEncoder, ts?: TimestampSlots) => void;
  work: number;
}

interface _Form {
  name: string;
  description: string;
  workgroupSize?: number;
  /** Needs the timestamps written around the work (not a pass). */
  bracket: boolean;
  /** First scale of the growth. */
  startScale: number;
  /** Largest scale. */
  maxScale: number;
  setup(): Promise<{ run(scale: number): _FormRun; destroy(): void }>;
}

/** True for CPU-emulated adapters (lavapipe/llvmpipe, SwiftShader, WARP). */

async function _pipeline(
  gpu: GpuContext,
  label: string,
  code: string,
): Promise<GPUComputePipeline> {
  const module = gpu.device.createShaderModule({ label, code });
  return await gpu.device.createComputePipelineAsync({
    label,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
}

/** Largest storage buffer the copy forms use. */
function _copyCap(gpu: GpuContext, software: boolean): number {
  const limit = Math.min(
    gpu.limits.maxStorageBufferBindingSize ?? 128 << 20,
    gpu.limits.maxBufferSize ?? 256 << 20,
  );
  // Well past any L2 (50 MB on H100/H200) on hardware; a few ms per copy on lavapipe.
  const want = software ? 32 << 20 : 512 << 20;
  return Math.max(1 << 16, Math.floor(Math.min(limit, want) / 65536) * 65536);
}

function _copyShaderWgsl(workgroupSize: number): string {
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let n = arrayLength(&src);
  let stride = groups.x * ${workgroupSize}u;
  for (var i = gid.x; i < n; i += stride) {
    dst[i] = src[i];
  }
}
`;
}

/**
 * Buffers for a copy of `scale` bytes: one pair of buffers of min(scale, cap) bytes, copied
 * `reps` times so that a run grows past the cap.
 */
function _copyBuffers(gpu: GpuContext, scale: number, cap: number, label: string) {
  const size = Math.min(scale, cap);
  const reps = Math.max(1, Math.round(scale / size));
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const src = gpu.device.createBuffer({ label: `${label}-src`, size, usage });
  const dst = gpu.device.createBuffer({ label: `${label}-dst`, size, usage });
  return { size, reps, src, dst };
}

function _copyShaderForm(gpu: GpuContext, workgroupSize: number, cap: number): _Form {
  const name = `copy-shader-vec4-wg${workgroupSize}`;
  return {
    name,
    description:
      `compute shader copying vec4<u32> with a grid-stride loop, workgroup ${workgroupSize}; bytes read + written`,
    workgroupSize,
    bracket: false,
    startScale: 1 << 20,
    maxScale: cap * 256,
    async setup() {
      const pipeline = await _pipeline(gpu, name, _copyShaderWgsl(workgroupSize));
      let current: ReturnType<typeof _copyBuffers> | null = null;
      let bindGroup: GPUBindGroup | null = null;
      const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
      return {
        run(scale: number): _FormRun {
          const size = Math.min(scale, cap);
          if (!current || current.size !== size) {
            current?.src.destroy();
            current?.dst.destroy();
            current = _copyBuffers(gpu, scale, cap, name);
            bindGroup = gpu.device.createBindGroup({
              layout: pipeline.getBindGroupLayout(0),
              entries: [
                { binding: 0, resource: { buffer: current.src } },
                { binding: 1, resource: { buffer: current.dst } },
              ],
            });
          }
          const reps = Math.max(1, Math.round(scale / size));
          const vec4s = size / 16;
          const groups = Math.max(1, Math.min(maxGroups, Math.ceil(vec4s / (workgroupSize * 4))));
          const bg = bindGroup!;
          return {
            work: 2 * size * reps,
            encode(encoder, ts) {
              const pass = encoder.beginComputePass(timedPassDescriptor(ts));
              pass.setPipeline(pipeline);
              pass.setBindGroup(0, bg);
              for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(groups);
              pass.end();
            },
          };
        },
        destroy() {
          current?.src.destroy();
          current?.dst.destroy();
        },
      };
    },
  };
}

function _copyBufferForm(gpu: GpuContext, cap: number): _Form {
  const name = "copyBufferToBuffer";
  return {
    name,
    description: "GPUCommandEncoder.copyBufferToBuffer between two buffers; bytes read + written",
    bracket: true,
    startScale: 1 << 20,
    maxScale: cap * 256,
    setup() {
      let current: ReturnType<typeof _copyBuffers> | null = null;
      return Promise.resolve({
        run(scale: number): _FormRun {
          const size = Math.min(scale, cap);
          if (!current || current.size !== size) {
            current?.src.destroy();
            current?.dst.destroy();
            current = _copyBuffers(gpu, scale, cap, name);
          }
          const { src, dst } = current;
          const reps = Math.max(1, Math.round(scale / size));
          return {
            work: 2 * size * reps,
            encode(encoder) {
              for (let r = 0; r < reps; r++) encoder.copyBufferToBuffer(src, 0, dst, 0, size);
            },
          };
        },
        destroy() {
          current?.src.destroy();
          current?.dst.destroy();
        },
      });
    },
  };
}

/** What changes the generated code of an FMA form. */
interface _FmaSpec {
  dtype: "f32" | "f16";
  vec4: boolean;
  op: "fma" | "muladd";
  /** Copies of the body per loop iteration; 1 = rolled. */
  unroll: number;
  /** Independent accumulators (one dependency chain each). */
  accumulators: number;
  workgroupSize: number;
}

function _fmaName(s: _FmaSpec): string {
  const type = s.vec4
    ? (s.dtype === "f16" ? "vec4h" : "vec4")
    : (s.dtype === "f16" ? "scalarh" : "scalar");
  const loop = s.unroll === 1 ? "rolled" : `unroll${s.unroll}`;
  return `${s.op}-${type}-${loop}-wg${s.workgroupSize}`;
}

/** WGSL of an FMA form: `accumulators` chains of `a = fma(a, m, c)`, m and c from a uniform. */
function _fmaWgsl(s: _FmaSpec): string {
  const t = s.dtype;
  const T = s.vec4 ? `vec4<${t}>` : t;
  const accs = Array.from({ length: s.accumulators }, (_, j) => j);
  const step = (j: number) =>
    s.op === "fma" ? `a${j} = fma(a${j}, m, c);` : `a${j} = a${j} * m + c;`;
  const body: string[] = [];
  for (let u = 0; u < s.unroll; u++) for (const j of accs) body.push(`    ${step(j)}`);
  return /* wgsl */ `${t === "f16" ? "enable f16;\n" : ""}
struct Params {
  iters: u32,
  mul: f32,
  add: f32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<${T}>;

@compute @workgroup_size(${s.workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = ${T}(${t}(params.mul));
  let c = ${T}(${t}(params.add));
  let x = ${t}(f32(gid.x & 1023u) * (1.0 / 1024.0));
${accs.map((j) => `  var a${j} = ${T}(x + ${t}(${j}) * ${t}(0.125));`).join("\n")}
  for (var i = 0u; i < params.iters; i++) {
${body.join("\n")}
  }
  out[gid.x] = ${accs.map((j) => `a${j}`).join(" + ")};
}
`;
}

function _fmaForm(gpu: GpuContext, spec: _FmaSpec, threads: number): _Form {
  const name = _fmaName(spec);
  const lanes = spec.vec4 ? 4 : 1;
  const flopsPerIter = 2 * lanes * spec.accumulators * spec.unroll;
  const type = spec.vec4 ? `vec4<${spec.dtype}>` : spec.dtype;
  const how = spec.op === "fma" ? "fma(a, m, c)" : "a * m + c";
  return {
    name,
    description: `${how} on ${type}, ${spec.accumulators} independent chains, ` +
      `${
        spec.unroll === 1 ? "rolled loop" : `loop body unrolled ${spec.unroll}x in the source`
      }, ` +
      `workgroup ${spec.workgroupSize}, ${threads} invocations`,
    workgroupSize: spec.workgroupSize,
    bracket: false,
    startScale: 1,
    maxScale: 1 << 22,
    async setup() {
      const pipeline = await _pipeline(gpu, name, _fmaWgsl(spec));
      const elementBytes = (spec.dtype === "f16" ? 2 : 4) * lanes;
      const out = gpu.device.createBuffer({
        label: `${name}-out`,
        size: threads * elementBytes,
        usage: GPUBufferUsage.STORAGE,
      });
      const uniform = gpu.device.createBuffer({
        label: `${name}-params`,
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      const bindGroup = gpu.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          { binding: 1, resource: { buffer: out } },
        ],
      });
      const groups = threads / spec.workgroupSize;
      return {
        run(scale: number): _FormRun {
          const params = new ArrayBuffer(16);
          const view = new DataView(params);
          view.setUint32(0, scale, true);
          view.setFloat32(4, 0.999, true); // a -> c / (1 - m): bounded, never denormal
          view.setFloat32(8, 0.001, true);
          gpu.device.queue.writeBuffer(uniform, 0, params);
          return {
            work: flopsPerIter * scale * threads,
            encode(encoder, ts) {
              const pass = encoder.beginComputePass(timedPassDescriptor(ts));
              pass.setPipeline(pipeline);
              pass.setBindGroup(0, bindGroup);
              pass.dispatchWorkgroups(groups);
              pass.end();
            },
          };
        },
        destroy() {
          out.destroy();
          uniform.destroy();
        },
      };
    },
  };
}

function _fmaForms(gpu: GpuContext, dtype: "f32" | "f16", software: boolean): _Form[] {
  // Enough invocations to fill an H200 (132 SMs x 2048) several times; few on a CPU, where the
  // per-invocation cost is high and 16k already covers every core's SIMD lanes.
  const threads = software ? 1 << 14 : 1 << 21;
  const maxInvocations = gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256;
  const base = { dtype, vec4: true, op: "fma", unroll: 16, accumulators: 8, workgroupSize: 256 };
  const specs: _FmaSpec[] = dtype === "f32"
    ? [
      { ...base, unroll: 1 } as _FmaSpec,
      base as _FmaSpec,
      { ...base, op: "muladd" } as _FmaSpec,
      { ...base, vec4: false } as _FmaSpec,
      { ...base, workgroupSize: 64 } as _FmaSpec,
      { ...base, workgroupSize: 128 } as _FmaSpec,
    ]
    : [base as _FmaSpec, { ...base, unroll: 1 } as _FmaSpec];
  return specs
    .filter((s) => s.workgroupSize <= maxInvocations)
    .map((s) => _fmaForm(gpu, s, threads));
}

async function _measureForm(
  gpu: GpuContext,
  form: _Form,
  targetMs: number,
  iters: number,
): Promise<CeilingForm> {
  const timing: TimingMethod = gpu.hasTimestamps ? "timestamp" : "wall";
  const failed = (error: string): CeilingForm => ({
    name: form.name,
    description: form.description,
    value: 0,
    medianValue: 0,
    work: 0,
    bestMs: 0,
    medianMs: 0,
    samples: 0,
    timing,
    ...(form.workgroupSize ? { workgroupSize: form.workgroupSize } : {}),
    error,
  });
  let state: Awaited<ReturnType<_Form["setup"]>>;
  try {
    state = await form.setup();
  } catch (e) {
    return failed(e instanceof Error ? e.message : String(e));
  }
  try {
    let scale = form.startScale;
    let run = state.run(scale);
    const grow = (ms: number): boolean => {
      if (scale >= form.maxScale) return false;
      // Jump by the missing factor (a power of two, 2..16), not past the cap.
      const missing = 2 ** Math.ceil(Math.log2(targetMs / Math.max(ms, 1e-3)));
      scale = Math.min(form.maxScale, scale * Math.min(16, Math.max(2, missing)));
      run = state.run(scale);
      return true;
    };
    // Each probe warms up (fresh buffers fault their pages in on a CPU adapter) and keeps the
    // faster of two runs, so one preempted run on a shared machine does not stop the growth.
    for (;;) {
      const probe = await timeGpu(gpu, run.encode, { warmup: 1, iters: 2, bracket: form.bracket });
      if (probe.min >= targetMs || !grow(probe.min)) break;
    }
    let stats = await timeGpu(gpu, run.encode, { warmup: 1, iters, bracket: form.bracket });
    // A probe slowed by a neighbour can stop the growth early: grow on while the best run is
    // well under the target.
    for (let retry = 0; retry < 3 && stats.min < targetMs / 4 && grow(stats.min); retry++) {
      stats = await timeGpu(gpu, run.encode, { warmup: 1, iters, bracket: form.bracket });
    }
    return {
      name: form.name,
      description: form.description,
      value: run.work / (stats.min / 1e3),
      medianValue: run.work / (stats.median / 1e3),
      work: run.work,
      bestMs: stats.min,
      medianMs: stats.median,
      samples: stats.count,
      timing: stats.method,
      ...(form.workgroupSize ? { workgroupSize: form.workgroupSize } : {}),
    };
  } catch (e) {
    return failed(e instanceof Error ? e.message : String(e));
  } finally {
    state.destroy();
  }
}

function _best(forms: CeilingForm[]): CeilingForm | undefined {
  return forms.filter((f) => !f.error && f.value > 0).sort((a, b) => b.value - a.value)[0];
}

function _formatRate(form: CeilingForm, unit: "B/s" | "FLOP/s"): string {
  if (form.error) return `${form.name}: failed (${form.error})`;
  const giga = form.value / 1e9;
  return `${form.name}: ${giga.toFixed(giga < 10 ? 2 : 1)} G${unit} (best of ${form.samples}, ${
    form.bestMs.toFixed(2)
  } ms)`;
}

/**
 * Measures the ceilings of `gpu`'s adapter, or returns the cached ones (unless `refresh`).
 * A fresh measurement is written to the cache. A quick measurement is accepted from the cache
 * only when `quick` is asked again. The datasheet figures are attached when the adapter is one
 * we know.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu } from "../kernels/gpu.ts";
 * import { measureCeilings } from "./ceilings.ts";
 * const c = await measureCeilings(await acquireGpu(), { quick: true });
 * console.log(c.bandwidth.bytesPerSecond / 1e9, "GB/s", c.f32.flopsPerSecond / 1e12, "TFLOP/s");
 * ```
 */
export async function measureCeilings(
  gpu: GpuContext,
  options: MeasureCeilingsOptions = {},
): Promise<Ceilings> {
  const quick = options.quick ?? false;
  const cachePath = options.cachePath === undefined ? ceilingsCachePath() : options.cachePath;
  if (!options.refresh && cachePath) {
    const cached = await loadCachedCeilings(gpu, { cachePath, acceptQuick: quick });
    if (cached) return cached;
  }
  const software = isSoftwareAdapter(gpu);
  const targetMs = options.targetMs ?? (quick ? 5 : 20);
  const iters = quick ? 3 : 10;
  const progress = options.onProgress ?? (() => {});

  const cap = _copyCap(gpu, software);
  const bandwidthForms: CeilingForm[] = [];
  for (const form of [_copyShaderForm(gpu, 256, cap), _copyBufferForm(gpu, cap)]) {
    const measured = await _measureForm(gpu, form, targetMs, iters);
    progress(`bandwidth ${_formatRate(measured, "B/s")}`);
    bandwidthForms.push(measured);
  }
  const f32Forms: CeilingForm[] = [];
  for (const form of _fmaForms(gpu, "f32", software)) {
    const measured = await _measureForm(gpu, form, targetMs, iters);
    progress(`f32 ${_formatRate(measured, "FLOP/s")}`);
    f32Forms.push(measured);
  }
  const f16Forms: CeilingForm[] = [];
  if (gpu.hasF16) {
    for (const form of _fmaForms(gpu, "f16", software)) {
      const measured = await _measureForm(gpu, form, targetMs, iters);
      progress(`f16 ${_formatRate(measured, "FLOP/s")}`);
      f16Forms.push(measured);
    }
  }

  const bestBandwidth = _best(bandwidthForms);
  const bestF32 = _best(f32Forms);
  if (!bestBandwidth || !bestF32) {
    const failures = [...bandwidthForms, ...f32Forms].map((f) => `${f.name}: ${f.error}`);
    throw new Error(
      `Cannot measure the ceilings of "${gpu.adapterName}" as every ${
        bestBandwidth ? "f32" : "bandwidth"
      } form failed (${failures.join("; ")})`,
    );
  }
  const bestF16 = _best(f16Forms);
  const ceilings: Ceilings = {
    version: CEILINGS_VERSION,
    adapter: gpu.adapterName,
    backend: gpu.backend,
    key: ceilingsCacheKey(gpu),
    measuredAt: new Date().toISOString(),
    quick,
    timing: bestF32.timing,
    bandwidth: {
      bytesPerSecond: bestBandwidth.value,
      method: bestBandwidth.name,
      forms: bandwidthForms,
    },
    f32: { flopsPerSecond: bestF32.value, form: bestF32.name, forms: f32Forms },
    ...(bestF16
      ? { f16: { flopsPerSecond: bestF16.value, form: bestF16.name, forms: f16Forms } }
      : {}),
  };
  const matrix = await measureMatrixCeiling(gpu, { quick });
  if (matrix) ceilings.matrix = matrix;
  if (cachePath) await _writeCache(cachePath, ceilings.key, ceilings);
  const datasheet = datasheetFor(gpu.adapterName);
  return datasheet ? { ...ceilings, datasheet } : ceilings;
}
