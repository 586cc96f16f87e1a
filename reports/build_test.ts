import assert from "node:assert/strict";
import { summarizeSamples } from "../bench/timing.ts";
import { buildResult, describeEnvironment, describeRuntime } from "./build.ts";
import { datasheetFor } from "./ceilings.ts";
import { _syntheticCeilings, _syntheticReport } from "./_test_fixtures.ts";
import { type CaseShape, parseReport, serializeReport } from "./schema.ts";
import { renderMarkdown } from "./render_markdown.ts";
import { renderHtml } from "./render_html.ts";
import type { GpuContext } from "../kernels/gpu.ts";

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

const INPUT = {
  workload: { id: "llama/f16", label: "llama" },
  case: LLAMA,
  kernel: { name: "flash", key: "flash_x" },
  timing: summarizeSamples([2400, 2400, 2400], "timestamp"),
  correctness: null,
};

Deno.test("buildResult() derives rates, % of ceilings and the bound from the median time", () => {
  const r = buildResult(INPUT, { measured: _syntheticCeilings(), datasheet: null });
  assert.equal(r.flops, 36_511_416_320);
  assert.equal(r.bytes, 29_360_428);
  const tflops = 36_511_416_320 / 2.4 / 1e12;
  assert.ok(Math.abs(r.tflops - tflops) < 1e-15);
  assert.ok(Math.abs(r.gbps - 29_360_428 / 2.4 / 1e9) < 1e-12);
  assert.ok(Math.abs(r.pctOfCeiling.f32! - (100 * tflops * 1e12) / 32e9) < 1e-9);
  assert.ok(Math.abs(r.pctOfCeiling.f16! - (100 * tflops * 1e12) / 12e9) < 1e-9);
  assert.ok(Math.abs(r.pctOfCeiling.bandwidth! - (100 * 29_360_428 / 2.4) / 20e9) < 1e-9);
  assert.equal(r.pctOfDatasheet, undefined);
  // AI ~1244 FLOP/B is far past the ridge (32e9 / 20e9 = 1.6): compute bound on f32.
  assert.equal(r.bound, "compute");
  assert.equal(r.computeCeiling, "f32");
  assert.ok(Math.abs(r.attainableTflops! - 0.032) < 1e-15);
  assert.ok(Math.abs(r.efficiency! - (tflops * 1e12) / 32e9) < 1e-12);
});

Deno.test("buildResult() falls back to the datasheet, then to no roof at all", () => {
  const h200 = datasheetFor("NVIDIA H200")!;
  const r = buildResult(INPUT, { measured: null, datasheet: h200 });
  assert.equal(r.bound, "compute");
  assert.equal(r.attainableTflops, 67);
  assert.deepEqual(Object.keys(r.pctOfCeiling), []);
  assert.ok(Math.abs(r.pctOfDatasheet!.bandwidth! - (100 * 29_360_428 / 2.4) / 4.8e12) < 1e-12);
  const matrix = buildResult({ ...INPUT, computeCeiling: "matrix" }, {
    measured: null,
    datasheet: h200,
  });
  assert.equal(matrix.computeCeiling, "matrix");
  // AI 1244 is past the matrix ridge too (989e12 / 4.8e12 = 206): compute bound at 989.
  assert.equal(matrix.attainableTflops, 989);

  const none = buildResult(INPUT, { measured: null, datasheet: null });
  assert.equal(none.attainableTflops, null);
  assert.equal(none.efficiency, null);
  assert.equal(none.bound, null);
});

Deno.test("buildResult() asks for f16 or matrix roofs only where they were measured", () => {
  const r = buildResult({ ...INPUT, computeCeiling: "matrix" }, {
    measured: _syntheticCeilings(),
    datasheet: null,
  });
  assert.equal(r.computeCeiling, "f32");
  const f16 = buildResult({ ...INPUT, computeCeiling: "f16" }, {
    measured: _syntheticCeilings(),
    datasheet: null,
  });
  assert.equal(f16.computeCeiling, "f16");
  assert.ok(Math.abs(f16.attainableTflops! - 0.012) < 1e-15);
});

Deno.test("buildResult() stores non-finite error metrics as null", () => {
  const r = buildResult({
    ...INPUT,
    correctness: {
      ok: false,
      checkedRows: 2,
      totalRows: 512,
      maxAbsErr: Infinity,
      maxRelErr: NaN,
      relL2Err: 0.5,
      appendExact: true,
      poolUnchanged: true,
      message: "output has NaN",
    },
  }, { measured: _syntheticCeilings(), datasheet: null });
  assert.equal(r.correctness!.maxAbsErr, null);
  assert.equal(r.correctness!.maxRelErr, null);
  assert.equal(r.correctness!.relL2Err, 0.5);
});

Deno.test("describeRuntime() names Deno with its version and platform", () => {
  const rt = describeRuntime();
  assert.equal(rt.name, "deno");
  assert.equal(rt.version, Deno.version.deno);
  assert.equal(rt.os, Deno.build.os);
  assert.equal(rt.arch, Deno.build.arch);
});

/** The parts of a GpuContext describeEnvironment() reads. */
function fakeGpu(implementationOptions: string[]): GpuContext {
  return {
    backend: "dawn",
    apiBackend: "vulkan",
    adapterName: "nvidia-h200",
    adapterInfo: { vendor: "nvidia" },
    features: new Set(["shader-f16"]),
    limits: { maxComputeWorkgroupStorageSize: 49152 },
    implementationOptions,
  } as unknown as GpuContext;
}

Deno.test("describeEnvironment() records Dawn's create() options, and reports keep and show them", () => {
  const opts = ["backend=vulkan", "enable-dawn-features=allow_unsafe_apis,disable_robustness"];
  const env = describeEnvironment(fakeGpu(opts), null);
  assert.deepEqual(env.backendOptions, opts);
  assert.equal(env.apiBackend, "vulkan");
  const report = { ..._syntheticReport(), environment: env };
  assert.deepEqual(
    parseReport(JSON.parse(serializeReport(report))).environment.backendOptions,
    opts,
  );
  assert.match(
    renderMarkdown(report),
    /Backend options:\*\* `backend=vulkan .*disable_robustness`/,
  );
  assert.match(renderHtml(report), /Backend options.*disable_robustness/s);
  // Deno's wgpu takes no options: the field is left out, and so is the line.
  const plain = describeEnvironment(fakeGpu([]), null);
  assert.equal("backendOptions" in plain, false);
  assert.doesNotMatch(
    renderMarkdown({ ..._syntheticReport(), environment: plain }),
    /Backend options/,
  );
});
