/**
 * Benchmarking one (case, kernel variant): plan once per input set, time `run` (encode +
 * submit) with GPU timestamps where the adapter has them, rotate input sets when one would sit
 * in the GPU's last-level cache, then verify the outputs of the timed runs once (a fast kernel
 * that is wrong is reported as wrong, not fast).
 * @module
 */
import { type GpuContext, isSoftwareAdapter } from "../kernels/gpu.ts";
import { type PlannedPagedPrefill, planPagedPrefill } from "../kernels/op.ts";
import { readOutputs } from "../kernels/device_inputs.ts";
import type { PagedPrefillInputs, PagedPrefillParams, Problem } from "../op/types.ts";
import { rooflineBytes } from "../reports/roofline.ts";
import type { Correctness } from "../reports/schema.ts";
import { timeGpu, type TimingStats } from "./timing.ts";
import { type CheckOptions, checkOutputs, poolVerdicts } from "./verify_case.ts";

/**
 * Last-level cache size assumed when choosing how many input sets to rotate. WebGPU does not
 * expose it; an H200 has 50-60 MB of L2, an H100 50 MB.
 */
export const ASSUMED_LLC_BYTES = 64 * 1024 * 1024;

/** Options of `benchCase()`. */
export interface BenchCaseOptions extends CheckOptions {
  kernel?: string;
  /** @default 3 (1 on a software GPU) */
  warmup?: number;
  /**
   * Run the op back to back for at least this long before timing: a GPU that idled while the
   * host generated and checked inputs runs at its idle clock until it has been busy a while
   * (an H200 measured 5x slow after 3 warm-up iterations of a 1.6 ms kernel, and 2-3x slow
   * on some cases after 300 ms when the previous case's verification had kept it idle).
   * @default 1000 on a hardware GPU, 0 on a software one (no clocks to ramp up)
   */
  warmupMs?: number;
  /** @default 10 (5 on a software GPU, where one run takes 0.1-1 s) */
  iters?: number;
  /**
   * Keep timing until this many ms of samples: after the first `iters`, the rest come in one
   * long back-to-back batch, so the clock stays up. @default 300 on a hardware GPU, 0 on a
   * software one
   */
  minTimeMs?: number;
  /** Iterations per command buffer while timing (see `TimeGpuOptions.itersPerSubmit`). @default 1 */
  itersPerSubmit?: number;
  /** Input sets to rotate; default: enough to exceed twice the assumed LLC, at most 8. */
  inputSets?: number;
  /** Skip verification (correctness is then null). @default false */
  noVerify?: boolean;
  /** Called with the plan before timing (e.g. to dump WGSL). */
  onPlan?: (planned: PlannedPagedPrefill) => Promise<void> | void;
}

/** What `benchCase()` measured. */
export interface BenchCaseResult {
  problem: Problem;
  variant: string;
  kernelKey: string;
  timing: TimingStats;
  inputSets: number;
  correctness: Correctness | null;
}

/** The number of input sets to rotate for `problem` (compulsory bytes vs the assumed LLC). */
export function inputSetsFor(problem: Problem): number {
  const bytes = rooflineBytes(problem).total;
  return Math.max(1, Math.min(8, Math.ceil((2 * ASSUMED_LLC_BYTES) / Math.max(1, bytes))));
}

/** Wall time one warm-up batch should keep the queue busy before the host waits on it. */
export const WARMUP_BATCH_MS = 100;

/**
 * Submits `encode` back to back until `ms` of wall time have passed (GPU clock ramp-up).
 * Batches grow until one keeps the GPU busy for about `WARMUP_BATCH_MS`: the H200's driver
 * keeps its 345 MHz idle clock (throttle reason "GPU idle") for work that comes in short
 * bursts with host round trips between them, even at high utilisation, and only clocks up
 * (1980 MHz) under sustained load (nvidia-smi log in docs/PERF_LOG.md).
 */
export async function warmUp(
  gpu: GpuContext,
  encode: (encoder: GPUCommandEncoder) => void,
  ms: number,
): Promise<void> {
  const start = performance.now();
  let batch = 4;
  do {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) {
      const encoder = gpu.device.createCommandEncoder({ label: "warm-up" });
      encode(encoder);
      gpu.device.queue.submit([encoder.finish()]);
    }
    await gpu.device.queue.onSubmittedWorkDone();
    const took = performance.now() - t0;
    if (took < WARMUP_BATCH_MS) {
      batch = Math.min(4096, Math.ceil(batch * Math.min(8, WARMUP_BATCH_MS / Math.max(took, 1))));
    }
  } while (performance.now() - start < ms);
}

/** Times and verifies the op for one input set on `gpu`. */
export async function benchCase(
  gpu: GpuContext,
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  options: BenchCaseOptions = {},
): Promise<BenchCaseResult> {
  const first = await planPagedPrefill(
    gpu,
    inputs,
    params,
    options.kernel ? { kernel: options.kernel } : {},
  );
  const sets: PlannedPagedPrefill[] = [first];
  try {
    await options.onPlan?.(first);
    const count = options.inputSets ?? inputSetsFor(first.problem);
    // The same inputs uploaded again: distinct buffers, so caches cannot carry over.
    for (let i = 1; i < count; i++) {
      sets.push(await planPagedPrefill(gpu, inputs, params, { kernel: first.variant.name }));
    }
    let next = 0;
    const software = isSoftwareAdapter(gpu);
    gpu.device.pushErrorScope("validation");
    await warmUp(
      gpu,
      (encoder) => sets[next++ % sets.length]!.plan.encode(encoder),
      options.warmupMs ?? (software ? 0 : 1000),
    );
    const timing = await timeGpu(gpu, (encoder, ts) => {
      sets[next++ % sets.length]!.plan.encode(encoder, ts);
    }, {
      warmup: options.warmup ?? (software ? 1 : 3),
      iters: options.iters ?? (software ? 5 : 10),
      minTimeMs: options.minTimeMs ?? (software ? 0 : 300),
      ...(options.itersPerSubmit !== undefined ? { itersPerSubmit: options.itersPerSubmit } : {}),
    });
    const error = await gpu.device.popErrorScope();
    if (error) throw new Error(`Cannot run ${first.plan.key}: ${error.message}`);
    let correctness: Correctness | null = null;
    if (!options.noVerify) {
      const outputs = await readOutputs(gpu, first.device, inputs);
      const v = checkOutputs(inputs, first.problem, outputs, options);
      const verdicts = poolVerdicts(inputs, first.problem, outputs, v);
      const finite = (x: number) => (Number.isFinite(x) ? x : null);
      correctness = {
        ok: v.ok,
        checkedRows: v.checkedRows,
        totalRows: v.totalRows,
        maxAbsErr: finite(v.output.maxAbsErr),
        maxRelErr: finite(v.output.maxRelErr),
        relL2Err: finite(v.output.relL2Err),
        appendExact: verdicts.appendExact,
        poolUnchanged: verdicts.poolUnchanged,
        message: v.ok ? "ok" : v.message,
      };
    }
    return {
      problem: first.problem,
      variant: first.variant.name,
      kernelKey: first.plan.key,
      timing,
      inputSets: sets.length,
      correctness,
    };
  } finally {
    for (const s of sets) s.destroy();
  }
}
