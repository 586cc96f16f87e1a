/**
 * Timing of encoded GPU work: GPU timestamps (timestamp-query) where the device has them,
 * else wall clock around submit and completion. The benchmark times a plan's `encode()`.
 * @module
 */
import type { GpuContext } from "../kernels/gpu.ts";
import type { TimestampSlots } from "../kernels/variant.ts";

/** How a sample was taken. */
export type TimingMethod = "timestamp" | "wall";

/** Summary of timed iterations, in milliseconds. */
export interface TimingStats {
  /** "timestamp": GPU time between the slots; "wall": host time around submit and completion. */
  method: TimingMethod;
  unit: "ms";
  median: number;
  /** 10th percentile (linear interpolation between order statistics). */
  p10: number;
  /** 90th percentile. */
  p90: number;
  min: number;
  max: number;
  mean: number;
  /** Number of samples. */
  count: number;
  /** Every sample, in the order taken. */
  samples: number[];
  /**
   * Iterations behind each sample: 1 for timestamps; in wall mode, iterations submitted
   * back to back and awaited once, the sample being their mean.
   */
  itersPerSample?: number;
  /** Timestamp mode: iterations recorded into one command buffer per submit (absent: 1). */
  itersPerSubmit?: number;
  /**
   * Leading samples dropped because the GPU was still raising its clock (a run of samples
   * slower than {@linkcode RAMP_FACTOR} x the steady median; see {@linkcode trimClockRamp});
   * absent when none were.
   */
  discarded?: number;
}

/** Records one iteration into `encoder`; must write `ts.beginIndex`/`ts.endIndex` when given. */
export type EncodeFn = (encoder: GPUCommandEncoder, ts?: TimestampSlots) => void;

/** Options of {@linkcode timeGpu}. */
export interface TimeGpuOptions {
  /** Untimed iterations first. @default 3 */
  warmup?: number;
  /** Timed iterations (at least). @default 10 */
  iters?: number;
  /** Keep timing past `iters` until the samples add up to this many ms. @default 0 */
  minTimeMs?: number;
  /** Cap on timed iterations when `minTimeMs` asks for more. @default 1000 */
  maxIters?: number;
  /** "auto" uses timestamps when `gpu.hasTimestamps`. @default "auto" */
  method?: "auto" | TimingMethod;
  /**
   * Write the timestamps in empty compute passes around `encode`, which then gets no slots.
   * For work that is not a pass (copyBufferToBuffer) or that does not take slots; the time then
   * includes the gaps between passes. @default false
   */
  bracket?: boolean;
  /**
   * Timestamp mode: record this many iterations (each with its own timestamps) into one
   * command buffer per submit. 1 submits each iteration as a caller submits one op call; more
   * keeps the GPU fed where the implementation's per-submit host cost is of the order of the
   * kernel (Dawn on short rows), so it does not fall back to its idle clock between
   * iterations. @default 1
   */
  itersPerSubmit?: number;
}

/** Query slots per query set (WebGPU caps a set at 4096 queries). */
const MAX_BATCH = 1024;

/** A leading sample this much slower than the steady median counts as clock ramp. */
export const RAMP_FACTOR = 1.15;

/** Rounds of re-timing after a ramp was trimmed, before the samples are taken as they are. */
const MAX_RAMP_ROUNDS = 4;

/**
 * The samples from the end of the GPU's clock ramp on: drops the leading run of samples slower
 * than `RAMP_FACTOR` x the median of the last third. A GPU leaves its idle clock only after
 * some 100 ms of sustained load (H200: 345 MHz to full in ~200 ms, in steps), so the first
 * samples of a case can be 2-5x slower than the rest whatever the warm-up before (docs/PERF_LOG.md,
 * measurement fix 4). Only a prefix is dropped: a slow sample after a steady one is noise and
 * stays.
 *
 * @example
 * ```ts
 * import { trimClockRamp } from "./timing.ts";
 * const { kept, dropped } = trimClockRamp([3.3, 3.3, 1.0, 0.67, 0.67, 0.68, 0.67, 0.9, 0.67]);
 * console.log(dropped, kept.length); // 3 6
 * ```
 */
export function trimClockRamp(samples: readonly number[]): { kept: number[]; dropped: number } {
  if (samples.length < 3) return { kept: [...samples], dropped: 0 };
  const tail = samples.slice(Math.floor((2 * samples.length) / 3)).sort((a, b) => a - b);
  const limit = RAMP_FACTOR * _quantile(tail, 0.5);
  let k = 0;
  while (k < samples.length && samples[k]! > limit) k++;
  return { kept: samples.slice(k), dropped: k };
}
/** Wall mode: each sample lasts at least this many completion round trips. */
const WALL_ROUND_TRIPS_PER_SAMPLE = 20;
/** Wall mode: cap on iterations per sample. */
const WALL_MAX_ITERS_PER_SAMPLE = 256;

function _quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

/**
 * Summarises samples (ms) into {@linkcode TimingStats}.
 *
 * @example
 * ```ts
 * import { summarizeSamples } from "./timing.ts";
 * const s = summarizeSamples([3, 1, 2, 4, 5], "wall");
 * s.median; // 3
 * s.p10; // 1.4
 * ```
 */
export function summarizeSamples(
  samples: readonly number[],
  method: TimingMethod,
  itersPerSample = 1,
): TimingStats {
  if (samples.length === 0) {
    throw new RangeError("Cannot summarise timings as there are no samples");
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    method,
    unit: "ms",
    median: _quantile(sorted, 0.5),
    p10: _quantile(sorted, 0.1),
    p90: _quantile(sorted, 0.9),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    count: samples.length,
    samples: [...samples],
    itersPerSample,
  };
}

function _encodeBracketed(
  encoder: GPUCommandEncoder,
  encode: EncodeFn,
  ts: TimestampSlots,
): void {
  const open = encoder.beginComputePass({
    label: "timing-begin",
    timestampWrites: { querySet: ts.querySet, beginningOfPassWriteIndex: ts.beginIndex },
  });
  open.end();
  encode(encoder);
  const close = encoder.beginComputePass({
    label: "timing-end",
    timestampWrites: { querySet: ts.querySet, endOfPassWriteIndex: ts.endIndex },
  });
  close.end();
}

async function _runUntimed(gpu: GpuContext, encode: EncodeFn, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const encoder = gpu.device.createCommandEncoder({ label: "timing-warmup" });
    encode(encoder);
    gpu.device.queue.submit([encoder.finish()]);
  }
  await gpu.device.queue.onSubmittedWorkDone();
}

/**
 * Times `n` iterations with GPU timestamps.
 *
 * One submit per iteration, one resolve and readback per batch: each iteration is submitted
 * as a caller would submit one op call (so the implementation cannot merge or reorder passes
 * of adjacent iterations into one command buffer), while the submits of a batch are queued
 * back to back with no host round trip between them, so the GPU stays busy and the map
 * latency of the host (about 11 ms per await in Deno on lavapipe) never enters a sample.
 */
async function _timestampBatch(
  gpu: GpuContext,
  encode: EncodeFn,
  n: number,
  bracket: boolean,
  buffers: { querySet: GPUQuerySet; resolve: GPUBuffer; readback: GPUBuffer },
  perSubmit: number,
): Promise<number[]> {
  const { device } = gpu;
  for (let i = 0; i < n; i += perSubmit) {
    const encoder = device.createCommandEncoder({ label: "timing-iteration" });
    for (let j = i; j < Math.min(n, i + perSubmit); j++) {
      const ts: TimestampSlots = {
        querySet: buffers.querySet,
        beginIndex: 2 * j,
        endIndex: 2 * j + 1,
      };
      if (bracket) _encodeBracketed(encoder, encode, ts);
      else encode(encoder, ts);
    }
    device.queue.submit([encoder.finish()]);
  }
  const encoder = device.createCommandEncoder({ label: "timing-resolve" });
  encoder.resolveQuerySet(buffers.querySet, 0, 2 * n, buffers.resolve, 0);
  encoder.copyBufferToBuffer(buffers.resolve, 0, buffers.readback, 0, 16 * n);
  device.queue.submit([encoder.finish()]);
  await buffers.readback.mapAsync(GPUMapMode.READ, 0, 16 * n);
  const ticks = new BigUint64Array(buffers.readback.getMappedRange(0, 16 * n).slice(0));
  buffers.readback.unmap();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const begin = ticks[2 * i]!;
    const end = ticks[2 * i + 1]!;
    if (begin === 0n || end === 0n || end < begin) {
      throw new Error(
        `Cannot time with GPU timestamps as iteration ${i} resolved begin ${begin} and end ${end}: ` +
          "the encode callback must write ts.beginIndex at the start of its first pass and " +
          "ts.endIndex at the end of its last (or pass { bracket: true })",
      );
    }
    out.push(Number(end - begin) / 1e6);
  }
  return out;
}

async function _timeWithTimestamps(
  gpu: GpuContext,
  encode: EncodeFn,
  iters: number,
  minTimeMs: number,
  maxIters: number,
  bracket: boolean,
  perSubmit: number,
): Promise<TimingStats> {
  const { device } = gpu;
  // With minTimeMs, room for one long batch after the first `iters`: batches separated by host
  // round trips let a hardware GPU drop to its idle clock (bench/bench_case.ts warmUp()).
  const batchCap = Math.max(
    1,
    Math.min(MAX_BATCH, minTimeMs > 0 ? Math.max(iters, maxIters) : Math.max(iters, 1)),
  );
  // A fresh query set per call: stale values of an earlier call cannot pass for timestamps
  // the callback forgot to write (Deno keeps old values of unwritten queries on resolve).
  const querySet = device.createQuerySet({
    label: "timing-queries",
    type: "timestamp",
    count: 2 * batchCap,
  });
  const resolve = device.createBuffer({
    label: "timing-resolve",
    size: 16 * batchCap,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const readback = device.createBuffer({
    label: "timing-readback",
    size: 16 * batchCap,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const buffers = { querySet, resolve, readback };
  try {
    let samples: number[] = [];
    let total = 0;
    let discarded = 0;
    for (let round = 0;; round++) {
      while (samples.length < iters || (total < minTimeMs && samples.length < maxIters)) {
        const want = samples.length < iters
          ? iters - samples.length
          : Math.max(1, Math.ceil((minTimeMs - total) / Math.max(total / samples.length, 1e-6)));
        const n = Math.max(1, Math.min(batchCap, want, Math.max(iters, maxIters) - samples.length));
        const batch = await _timestampBatch(gpu, encode, n, bracket, buffers, perSubmit);
        for (const s of batch) {
          samples.push(s);
          total += s;
        }
      }
      // Timing for a minimum time is the hardware mode: there the clock may still be rising.
      if (minTimeMs <= 0 || round >= MAX_RAMP_ROUNDS) break;
      const { kept, dropped } = trimClockRamp(samples);
      if (dropped === 0) break;
      discarded += dropped;
      samples = kept;
      total = kept.reduce((a, b) => a + b, 0);
    }
    const stats = summarizeSamples(samples, "timestamp");
    return {
      ...stats,
      ...(perSubmit > 1 ? { itersPerSubmit: perSubmit } : {}),
      ...(discarded > 0 ? { discarded } : {}),
    };
  } finally {
    querySet.destroy();
    resolve.destroy();
    readback.destroy();
  }
}

async function _wallRoundTrip(gpu: GpuContext): Promise<number> {
  const trips: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    gpu.device.queue.submit([gpu.device.createCommandEncoder().finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    trips.push(performance.now() - t0);
  }
  return Math.min(...trips);
}

async function _wallSample(gpu: GpuContext, encode: EncodeFn, k: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < k; i++) {
    const encoder = gpu.device.createCommandEncoder({ label: "timing-iteration" });
    encode(encoder);
    gpu.device.queue.submit([encoder.finish()]);
  }
  await gpu.device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / k;
}

/**
 * Times in wall clock. The completion of a submit is only seen after a host round trip
 * (about 11 ms in Deno, whatever the work), so a sample submits k iterations back to back and
 * awaits once, k chosen so a sample spans at least 20 round trips (at most 256 iterations):
 * the round trip then adds at most 1/20 of a sample.
 */
async function _timeWithWallClock(
  gpu: GpuContext,
  encode: EncodeFn,
  iters: number,
  minTimeMs: number,
  maxIters: number,
): Promise<TimingStats> {
  const trip = await _wallRoundTrip(gpu);
  const single = await _wallSample(gpu, encode, 1);
  const k = Math.max(
    1,
    Math.min(WALL_MAX_ITERS_PER_SAMPLE, Math.ceil((WALL_ROUND_TRIPS_PER_SAMPLE * trip) / single)),
  );
  const samples: number[] = [];
  let total = 0;
  while (samples.length < iters || (total < minTimeMs && samples.length < maxIters)) {
    const s = await _wallSample(gpu, encode, k);
    samples.push(s);
    total += s;
  }
  return summarizeSamples(samples, "wall", k);
}

/**
 * Times the work `encode` records: warm-up first, then `iters` samples (more if `minTimeMs`
 * asks). With GPU timestamps (`gpu.hasTimestamps`, method "auto" or "timestamp") each sample
 * is the GPU time from `ts.beginIndex` to `ts.endIndex`, which `encode` writes in the
 * `timestampWrites` of its first and last pass (`KernelPlan.encode` does), or the helper
 * writes around it with `bracket: true`. Without, wall clock around submit and completion.
 *
 * @example
 * ```ts ignore
 * import { acquireGpu } from "../kernels/gpu.ts";
 * import { timeGpu } from "./timing.ts";
 * const gpu = await acquireGpu();
 * const src = gpu.device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.COPY_SRC });
 * const dst = gpu.device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.COPY_DST });
 * const stats = await timeGpu(
 *   gpu,
 *   (enc) => enc.copyBufferToBuffer(src, 0, dst, 0, 1 << 20),
 *   { warmup: 2, iters: 10, bracket: true },
 * );
 * console.log(stats.method, stats.median, "ms");
 * ```
 */
export async function timeGpu(
  gpu: GpuContext,
  encode: EncodeFn,
  options: TimeGpuOptions = {},
): Promise<TimingStats> {
  const warmup = options.warmup ?? 3;
  const iters = options.iters ?? 10;
  const minTimeMs = options.minTimeMs ?? 0;
  const maxIters = options.maxIters ?? 1000;
  const method = options.method ?? "auto";
  const perSubmit = options.itersPerSubmit ?? 1;
  if (!Number.isInteger(perSubmit) || perSubmit < 1) {
    throw new RangeError(
      `Cannot time GPU work as itersPerSubmit must be an integer >= 1, got ${perSubmit}`,
    );
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`Cannot time GPU work as warmup must be an integer >= 0, got ${warmup}`);
  }
  if (!Number.isInteger(iters) || iters < 1) {
    throw new RangeError(`Cannot time GPU work as iters must be an integer >= 1, got ${iters}`);
  }
  if (method === "timestamp" && !gpu.hasTimestamps) {
    throw new RangeError(
      `Cannot time with GPU timestamps as adapter "${gpu.adapterName}" has no timestamp-query`,
    );
  }
  await _runUntimed(gpu, encode, warmup);
  const useTimestamps = method === "timestamp" || (method === "auto" && gpu.hasTimestamps);
  return useTimestamps
    ? await _timeWithTimestamps(
      gpu,
      encode,
      iters,
      minTimeMs,
      maxIters,
      options.bracket ?? false,
      perSubmit,
    )
    : await _timeWithWallClock(gpu, encode, iters, minTimeMs, maxIters);
}
