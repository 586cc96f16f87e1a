/**
 * Tuning run of the flash kernel (GPU machine): for each workload, verifies the default plan
 * against the float64 reference on sampled rows, then times several tile / split configs with
 * GPU timestamps (wall clock when absent) and prints ms, TFLOP/s, GB/s and % of the measured
 * ceilings. Writes the full results as JSON.
 *
 * Usage: deno run -A kernels/flash/tune.ts [--out FILE] [--only SUBSTR] [--local] [--simple]
 * @module
 */
import { acquireGpu } from "../gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { readOutputs, uploadInputs } from "../device_inputs.ts";
import { referenceAttention, sampleReferenceRows } from "../../reference/attention.ts";
import { bf16BitsToNumber, f16BitsToNumber } from "../../reference/codecs.ts";
import { adHocCase, expandCases, loadManifest, type WorkloadCase } from "../../workloads/loader.ts";
import { generateCase } from "../../workloads/generate.ts";
import { rooflineCosts } from "../../reports/roofline.ts";
import { measureCeilings } from "../../reports/ceilings.ts";
import { timeGpu } from "../../bench/timing.ts";
import { type FlashOptions, planFlash } from "./flash.ts";
import { simpleVariant } from "../paged_prefill/simple.ts";
import type { FlashTile } from "./spec.ts";
import type { KernelPlan } from "../variant.ts";

const args = Deno.args;
const flag = (name: string) => args.includes(name);
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const local = flag("--local");
const only = value("--only");
const outPath = value("--out") ??
  (Deno.env.get("OUT") ? `${Deno.env.get("OUT")}/flash_tune.json` : "flash_tune.json");

const t = (
  rows: number,
  keys: number,
  threads: number,
  sRows: number,
  oRows: number,
  unrollD = false,
  qF32 = false,
): FlashTile => ({ rows, keys, threads, sRows, oRows, unrollD, qF32 });

interface Config {
  name: string;
  options: FlashOptions;
}
interface Job {
  c: WorkloadCase;
  configs: Config[];
}

const manifest = loadManifest();
const byId = (id: string): WorkloadCase => {
  const c = expandCases(manifest).find((x) => x.id === id);
  if (!c) throw new Error(`no case ${id}`);
  return c;
};
const dflt: Config = { name: "default", options: {} };
const jobs: Job[] = local
  ? [{
    c: adHocCase({ batch: 2, heads: 8, headsKv: 2, headDim: 32, qLen: 40, cacheLen: 100 }),
    configs: [dflt, { name: "t16", options: { tile: t(16, 16, 32, 2, 2), targetItems: 0 } }],
  }]
  : flag("--probe")
  ? [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        { name: "64x32 wg256 s2o4", options: { tile: t(64, 32, 256, 2, 4) } },
        { name: "64x32 wg256 s2o2", options: { tile: t(64, 32, 256, 2, 2) } },
        { name: "64x32 wg256 s2o8", options: { tile: t(64, 32, 256, 2, 8) } },
        { name: "64x16 wg256 s1o4", options: { tile: t(64, 16, 256, 1, 4) } },
      ],
    },
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"),
      configs: [
        dflt,
        { name: "64x64 s4o4", options: { tile: t(64, 64, 128, 4, 4) } },
        { name: "64x64 wg256 s4o4", options: { tile: t(64, 64, 256, 4, 4) } },
      ],
    },
    {
      c: adHocCase({
        batch: 4,
        heads: 8,
        headsKv: 2,
        headDim: 64,
        qLen: 512,
        cacheLen: 4096,
        pageSize: 64,
        label: "adhoc-d64-b4-nosoftcap",
      }),
      configs: [dflt, { name: "64x64 s4o4", options: { tile: t(64, 64, 128, 4, 4) } }],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q1-p64/f16"),
      configs: [
        dflt,
        { name: "split8192 min2", options: { targetItems: 8192, minSplitTiles: 2 } },
        {
          name: "16x64 split8192 min2",
          options: { tile: t(16, 64, 128, 1, 1), targetItems: 8192, minSplitTiles: 2 },
        },
      ],
    },
  ]
  : [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        { name: "64x32 wg128 (v1)", options: { tile: t(64, 32, 128, 2, 4) } },
        { name: "default again", options: {} },
      ],
    },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg16-4k-old-512-new/f16"), configs: [dflt] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"), configs: [dflt] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-fp8/f16"), configs: [dflt] },
    { c: byId("varlen-mixed-b6-with-empty-p32/f16"), configs: [dflt] },
    { c: byId("mqa-prefill-paged-b2-h16kv1-d128-p32/bf16"), configs: [dflt] },
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"),
      configs: [dflt],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q4-p64/f16"),
      configs: [dflt],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q1-p64/f16"),
      configs: [dflt],
    },
    {
      c: adHocCase({
        batch: 1,
        heads: 32,
        headsKv: 8,
        headDim: 256,
        qLen: 1024,
        cacheLen: 8192,
        pageSize: 64,
        label: "adhoc-d256-q1k-old8k",
      }),
      configs: [dflt],
    },
  ];

const gpu = await acquireGpu();
console.error(
  `adapter: ${gpu.adapterName}; workgroup memory ${gpu.limits.maxComputeWorkgroupStorageSize}; timestamps ${gpu.hasTimestamps}; features ${
    [...gpu.features].join(",")
  }`,
);
const ceilings = await measureCeilings(gpu, { quick: true, cachePath: null });
const bw = ceilings.bandwidth.bytesPerSecond;
const fma = ceilings.f32.flopsPerSecond;
console.error(
  `ceilings: copy ${(bw / 1e9).toFixed(0)} GB/s, f32 ${
    (fma / 1e12).toFixed(1)
  } TFLOP/s (${ceilings.f32.form})`,
);

interface Row {
  id: string;
  config: string;
  key: string;
  ms: number;
  p10: number;
  p90: number;
  method: string;
  tflops: number;
  gbps: number;
  pctFma: number;
  pctBw: number;
  items: number;
  split: boolean;
  verify?: string;
}
const rows: Row[] = [];
const seed = Date.now() % 1000000;

for (const job of jobs) {
  if (only && !job.c.id.includes(only)) continue;
  const c = job.c;
  const t0 = performance.now();
  const { inputs, params } = generateCase(c, seed);
  const problem = validateProblem(inputs, params);
  const costs = rooflineCosts({ ...problem, maxPagesPerReq: problem.maxPagesPerReq });
  console.error(
    `${c.id}: generated in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${
      (costs.flops / 1e9).toFixed(2)
    } GFLOP, ${(costs.bytes / 1e6).toFixed(1)} MB`,
  );
  const dev = uploadInputs(gpu, inputs, problem);
  try {
    for (const [ci, cfg] of job.configs.entries()) {
      let plan: KernelPlan;
      try {
        plan = await planFlash(gpu, dev, cfg.options);
      } catch (e) {
        console.error(`  ${cfg.name}: ${(e as Error).message.slice(0, 300)}`);
        continue;
      }
      let verify: string | undefined;
      if (ci === 0) {
        // Verify on fresh pools (the op appends in place; re-upload for the check).
        const vdev = uploadInputs(gpu, inputs, problem);
        const vplan = await planFlash(gpu, vdev, cfg.options);
        gpu.device.pushErrorScope("validation");
        const enc = gpu.device.createCommandEncoder();
        vplan.encode(enc);
        gpu.device.queue.submit([enc.finish()]);
        const err = await gpu.device.popErrorScope();
        if (err) throw new Error(`validation: ${err.message}`);
        const out = await readOutputs(gpu, vdev, inputs);
        const sample = sampleReferenceRows(problem, { rowsPerRequest: c.verifyRows ?? 8, seed });
        const ref = referenceAttention(inputs, problem, { rows: sample });
        const [atol, rtol] = problem.qDtype === "f16" ? [2e-3, 2e-3] : [1.6e-2, 1.6e-2];
        const dec = problem.qDtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
        const HD = problem.numHeads * problem.headDim;
        let bad = 0, maxAbs = 0, num = 0, den = 0;
        ref.rows.forEach((row, ri) => {
          for (let e = 0; e < HD; e++) {
            const want = ref.o[ri * HD + e]!;
            const got = dec((out.o.data as Uint16Array)[row.token * HD + e]!);
            const d = Math.abs(got - want);
            if (!(d <= atol + rtol * Math.abs(want))) bad++;
            maxAbs = Math.max(maxAbs, Number.isNaN(d) ? Infinity : d);
            num += d * d;
            den += want * want;
          }
        });
        verify = `${bad === 0 ? "PASS" : `FAIL(${bad})`} rows=${ref.rows.length} maxabs=${
          maxAbs.toExponential(2)
        } rel_l2=${Math.sqrt(num / den).toExponential(2)}`;
        vplan.destroy();
        vdev.destroy();
      }
      // Warm the clocks: ~300 ms of back-to-back runs (the CPU reference lets the GPU idle).
      const w0 = performance.now();
      while (performance.now() - w0 < 300) {
        const enc = gpu.device.createCommandEncoder();
        for (let k = 0; k < 4; k++) plan.encode(enc);
        gpu.device.queue.submit([enc.finish()]);
        await gpu.device.queue.onSubmittedWorkDone();
      }
      const stats = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), {
        warmup: 3,
        iters: 15,
        minTimeMs: 30,
        maxIters: 200,
      });
      const s = stats.median / 1e3;
      const row: Row = {
        id: c.id,
        config: cfg.name,
        key: plan.key,
        ms: stats.median,
        p10: stats.p10,
        p90: stats.p90,
        method: stats.method,
        tflops: costs.flops / s / 1e12,
        gbps: costs.bytes / s / 1e9,
        pctFma: (100 * costs.flops / s) / fma,
        pctBw: (100 * costs.bytes / s) / bw,
        items: 0,
        split: plan.key.includes("_split"),
        verify,
      };
      rows.push(row);
      console.error(
        `  ${cfg.name}: ${stats.median.toFixed(3)} ms ${row.tflops.toFixed(1)} TFLOP/s ${
          row.pctFma.toFixed(0)
        }% fma ${row.pctBw.toFixed(0)}% bw ${verify ?? ""}`,
      );
      plan.destroy();
    }
    if (flag("--simple")) {
      const plan = await simpleVariant.plan(gpu, dev);
      // Warm the clocks: ~300 ms of back-to-back runs (the CPU reference lets the GPU idle).
      const w0 = performance.now();
      while (performance.now() - w0 < 300) {
        const enc = gpu.device.createCommandEncoder();
        for (let k = 0; k < 4; k++) plan.encode(enc);
        gpu.device.queue.submit([enc.finish()]);
        await gpu.device.queue.onSubmittedWorkDone();
      }
      const stats = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), { warmup: 1, iters: 3 });
      console.error(`  simple: ${stats.median.toFixed(3)} ms`);
      plan.destroy();
    }
  } finally {
    dev.destroy();
  }
}

await Deno.writeTextFile(
  outPath,
  JSON.stringify({ adapter: gpu.adapterName, seed, ceilings, rows }, null, 2),
);
console.log(
  `\nflash tune: ${gpu.adapterName}; copy ${(bw / 1e9).toFixed(0)} GB/s; f32 ${
    (fma / 1e12).toFixed(1)
  } TFLOP/s; seed ${seed}`,
);
console.log("case | config | ms | TFLOP/s | %fma | GB/s | %bw | verify");
for (const r of rows) {
  console.log(
    `${r.id} | ${r.config} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(2)} | ${
      r.pctFma.toFixed(0)
    } | ${r.gbps.toFixed(0)} | ${r.pctBw.toFixed(0)} | ${r.verify ?? ""}`,
  );
}
