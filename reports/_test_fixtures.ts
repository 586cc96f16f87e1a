/**
 * Synthetic reports for the tests of reports/ (no GPU needed).
 * @module
 */
import { summarizeSamples } from "../bench/timing.ts";
import type { Ceilings } from "./ceilings.ts";
import { buildReport, buildResult } from "./build.ts";
import type { BenchReport, CaseShape, Correctness, ReportEnvironment } from "./schema.ts";

/** Measured ceilings shaped like lavapipe's. */
export function _syntheticCeilings(): Ceilings {
  const form = (name: string, value: number) => ({
    name,
    description: `${name} form`,
    value,
    medianValue: value * 0.9,
    work: value * 0.02,
    bestMs: 20,
    medianMs: 22,
    samples: 10,
    timing: "timestamp" as const,
  });
  return {
    version: 1,
    adapter: "llvmpipe (LLVM 15.0.6, 256 bits)",
    backend: "deno",
    key: "deno|llvmpipe",
    measuredAt: "2026-11-21T06:00:00.000Z",
    quick: false,
    timing: "timestamp",
    bandwidth: {
      bytesPerSecond: 20e9,
      method: "copyBufferToBuffer",
      forms: [form("copy-shader-vec4-wg256", 1e9), form("copyBufferToBuffer", 20e9)],
    },
    f32: {
      flopsPerSecond: 32e9,
      form: "fma-vec4-unroll16-wg256",
      forms: [form("fma-vec4-rolled-wg256", 21e9), form("fma-vec4-unroll16-wg256", 32e9)],
    },
    f16: {
      flopsPerSecond: 12e9,
      form: "fma-vec4h-unroll16-wg256",
      forms: [form("fma-vec4h-unroll16-wg256", 12e9)],
    },
  };
}

/** An environment around {@linkcode _syntheticCeilings}. */
export function _syntheticEnvironment(): ReportEnvironment {
  return {
    runtime: { name: "deno", version: "2.9.6", os: "linux", arch: "x86_64" },
    backend: "deno",
    apiBackend: "vulkan",
    adapter: { name: "llvmpipe (LLVM 15.0.6, 256 bits)", info: { vendor: "65541" } },
    features: ["shader-f16", "timestamp-query"],
    limits: { maxStorageBufferBindingSize: 134217728 },
    ceilings: { measured: _syntheticCeilings(), datasheet: null },
  };
}

const LLAMA: CaseShape = {
  batch: 1,
  qLens: [512],
  cacheLens: [4096],
  numHeads: 32,
  numKvHeads: 8,
  headDim: 128,
  pageSize: 64,
  maxPagesPerReq: 72,
  qDtype: "f16",
  cacheDtype: "f16",
  isCausal: true,
  softcap: 0,
  pageOrder: "contiguous",
};

function _ok(totalRows: number): Correctness {
  return {
    ok: true,
    checkedRows: 64,
    totalRows,
    maxAbsErr: 4.9e-4,
    maxRelErr: 1.1e-3,
    relL2Err: 2.2e-4,
    appendExact: true,
    poolUnchanged: true,
    message: "ok",
  };
}

/**
 * A report of three results: llama f16 (ok), gqa softcap fp8 (failed check), mixed varlen
 * int8 (not checked). `scale` multiplies every time (2 = twice as slow).
 */
export function _syntheticReport(scale = 1): BenchReport {
  const env = _syntheticEnvironment();
  const timing = (ms: number) =>
    summarizeSamples(
      [ms * 1.02, ms, ms * 0.99, ms * 1.05, ms * 0.98].map((x) => x * scale),
      "timestamp",
    );
  const results = [
    buildResult({
      workload: {
        id: "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
        label: "llama-3.1-8b <pg64>",
      },
      case: LLAMA,
      kernel: { name: "flash", key: "flash_q-f16_kv-f16_d128_p64_causal" },
      timing: timing(2400),
      correctness: _ok(512),
    }, env.ceilings),
    buildResult({
      workload: { id: "gqa-prefill-paged-softcap50-b4/fp8", label: "gqa-softcap50-b4 & fp8" },
      case: {
        ...LLAMA,
        batch: 4,
        qLens: [512, 512, 512, 512],
        cacheLens: [4096, 4096, 4096, 4096],
        numHeads: 8,
        numKvHeads: 2,
        headDim: 64,
        cacheDtype: "fp8_e4m3",
        softcap: 50,
        pageOrder: "permuted",
      },
      kernel: { name: "flash", key: "flash_q-f16_kv-fp8_d64_p64_causal_softcap" },
      timing: timing(900),
      correctness: {
        ..._ok(2048),
        ok: false,
        maxAbsErr: 0.5,
        appendExact: false,
        message: "request 2 head 3 token 17 dim 5: 0.5 vs 0.0 (mismatches 12)",
      },
    }, env.ceilings),
    buildResult({
      workload: { id: "qwen35-9b-prefill-paged-mixed-b8-p64/int8", label: "qwen35-9b-mixed" },
      case: {
        ...LLAMA,
        batch: 3,
        qLens: [256, 512, 128],
        cacheLens: [4096, 8192, 2048],
        headDim: 256,
        cacheDtype: "int8",
        isCausal: false,
      },
      kernel: { name: "simple", key: "simple_q-f16_kv-int8_d256_p64" },
      timing: timing(5000),
      correctness: null,
    }, env.ceilings),
  ];
  return buildReport(env, results, {
    command: ["paged-prefill", "bench", "--json", "out.json"],
    createdAt: "2026-11-21T07:00:00.000Z",
  });
}
