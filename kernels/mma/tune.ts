/**
 * GPU-machine run of the mma kernel (Dawn): lists the adapter's features and subgroup matrix
 * configs, measures the matrix ceiling, then for each workload verifies the default mma plan
 * against the float64 reference on sampled rows (and the append bit-exactly), and times
 * several tile configs (and the flash FMA kernel for comparison) with GPU timestamps.
 * Prints a short table last; writes everything as JSON (and failing WGSL) under $OUT.
 *
 * Usage: deno run -A kernels/mma/tune.ts [--only SUBSTR] [--config NAME]... [--quick] [--flash]
 *   [--perf-only [--verify]] [--layout [--verify]] [--order [--verify]] [--explore [--verify]]
 *   [--warm-ms MS] [--diag..6] [--dump] [--probe2] [--probe3] [--probe4]
 * @module
 */
import { acquireGpu } from "../gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { runKernelPlan } from "../op.ts";
import {
  referenceAppend,
  referenceAttention,
  sampleReferenceRows,
} from "../../reference/attention.ts";
import { compareOutput, comparePools, describeOutputCheck } from "../../reference/check.ts";
import { adHocCase, expandCases, loadManifest, type WorkloadCase } from "../../workloads/loader.ts";
import { generateCase } from "../../workloads/generate.ts";
import { rooflineCosts } from "../../reports/roofline.ts";
import { measureMatrixCeiling } from "../../reports/matrix_ceiling.ts";
import { timeGpu } from "../../bench/timing.ts";
import { warmUp } from "../../bench/bench_case.ts";
import type { KernelPlan } from "../variant.ts";
import { planFlash } from "../flash/flash.ts";
import { type MmaOptions, mmaSupport, planMma } from "./mma.ts";
import { mmaWgsl } from "./template.ts";
import { type MatrixProbe, probeMatrixConventions } from "./probe.ts";
import { chooseMmaTile, mmaLimits, mmaSpecFor, type MmaTile } from "./spec.ts";
import { dumpFirstScores, dumpFirstTile } from "./diag.ts";
import { probeQk } from "./probe_qk.ts";
import { type LoopResult, type OffsetResult, probeLoops, probeOffsets } from "./probe_offsets.ts";

const args = Deno.args;
const flag = (name: string) => args.includes(name);
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = value("--only");
const quick = flag("--quick");
/** `--config NAME` (repeatable): run only configs whose name is one of these. */
const onlyConfigs = args.flatMap((a, i) => (a === "--config" && args[i + 1] ? [args[i + 1]!] : []));
const warmMs = Number(value("--warm-ms") ?? 1000);
const outDir = Deno.env.get("OUT") ?? ".";

const t = (rowBlocks: number, colWarps: number, keys: number): MmaTile => ({
  rowBlocks,
  colWarps,
  keys,
});
interface Config {
  name: string;
  options: MmaOptions | "flash";
  /** Verify against the reference before timing. */
  verify?: boolean;
  /** Time it (default true). */
  time?: boolean;
}
interface Job {
  c: WorkloadCase | undefined;
  configs: Config[];
}
const manifest = loadManifest();
const byId = (id: string): WorkloadCase | undefined => {
  const c = expandCases(manifest).find((x) => x.id === id);
  if (!c) console.error(`no case ${id} in the manifest: skipped`);
  return c;
};
const perfOnly = flag("--perf-only");
/** `--opt smemReduce --opt unpackH2 ...`: boolean MmaOptions applied to every mma config. */
const extraOpts: MmaOptions = Object.fromEntries(
  args.flatMap((a, i) => (a === "--opt" && args[i + 1] ? [[args[i + 1]!, true]] : [])),
);
// directKV (full old tiles load K/V matrices straight from the f16 pools) applies to f16 caches
// with page_size % 16 == 0 only; elsewhere planMma ignores it (the key then has no `_dkv`).
const direct: Config[] = [
  {
    name: "direct KV",
    options: { directKV: true, transposedScores: false },
    verify: !perfOnly,
  },
  {
    name: "direct KV, transposed",
    options: { directKV: true, transposedScores: true },
    verify: !perfOnly,
  },
  {
    name: "direct K, transposed",
    options: { directKV: "k", transposedScores: true },
    verify: !perfOnly,
  },
];
const both: Config[] = [
  { name: "default", options: { transposedScores: false }, verify: !perfOnly },
  { name: "transposed", options: { transposedScores: true }, verify: !perfOnly },
  ...direct,
];
const checkOnly: Config[] = both.map((c) => ({ ...c, time: false }));
/** Byte caches: directKV does not apply, so only the staged configs are verified. */
const checkStaged: Config[] = checkOnly.filter((c) => !direct.some((d) => d.name === c.name));
const flash: Config[] = flag("--flash") ? [{ name: "flash(FMA)", options: "flash" }] : [];
const seed = "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new";
const d256 = adHocCase({
  batch: 1,
  heads: 32,
  headsKv: 8,
  headDim: 256,
  qLen: 1024,
  cacheLen: 8192,
  pageSize: 64,
  label: "adhoc-d256-q1k-old8k",
});
/** A timed config; with `--verify`, also checked (ablated ones are wrong by design, never). */
const T = (name: string, options: MmaOptions): Config => ({
  name,
  options,
  verify: flag("--verify") && options.ablate === undefined,
});
const diag = ["--diag", "--diag2", "--diag3", "--diag4", "--diag5", "--diag6"].some(flag);
const V = (name: string, options: MmaOptions): Config => ({
  name,
  options,
  verify: true,
  time: false,
});
const diagConfigs: Config[] = flag("--diag6")
  ? [
    V("r16 k16 q-reload", { tile: t(1, 1, 16), qReload: true }),
    V("r64 k64 q-reload", { qReload: true }),
    V("r64 k64 q-reload emu-pv", { qReload: true, emulateStage: "pv" }),
  ]
  : flag("--diag5")
  ? [
    V("r16 k16 emu-qk", { tile: t(1, 1, 16), emulateStage: "qk" }),
    V("r16 k16 emu-pv", { tile: t(1, 1, 16), emulateStage: "pv" }),
    V("r64 k64 emu-qk", { emulateStage: "qk" }),
    V("r64 k64 emu-pv", { emulateStage: "pv" }),
    V("r16 k16 always-rescale", { tile: t(1, 1, 16), alwaysRescale: true }),
    V("r64 k64 always-rescale", { alwaysRescale: true }),
  ]
  : flag("--diag4")
  ? [
    V("r16 k16 q-resident", { tile: t(1, 1, 16), qResident: true }),
    V("r64 k32 q-resident", { tile: t(4, 1, 32), qResident: true }),
  ]
  : flag("--diag3")
  ? [
    V("r16 k16 smem-reduce", { tile: t(1, 1, 16), smemReduce: true }),
    V("r16 k16 unpack-h2", { tile: t(1, 1, 16), unpackH2: true }),
    V("r16 k16 both", { tile: t(1, 1, 16), smemReduce: true, unpackH2: true }),
    V("r64 k64 both", { smemReduce: true, unpackH2: true }),
  ]
  : flag("--diag2")
  ? [
    V("r16 k16 const", { tile: t(1, 1, 16) }),
    V("r16 k16 const ns", { tile: t(1, 1, 16), newSyntax: true }),
    V("r64 k64 ns", { newSyntax: true }),
    V("r64 k64 T ns", { newSyntax: true, transposedScores: true }),
  ]
  : [
    V("emulated r64 k64", { emulate: true }),
    V("emulated r32 k32", { emulate: true, tile: t(2, 1, 32) }),
    V("r16 k16", { tile: t(1, 1, 16) }),
    V("r16 k32", { tile: t(1, 1, 32) }),
    V("r32 k32", { tile: t(2, 1, 32) }),
    V("r64 k64", {}),
    V("r16 k16 T", { tile: t(1, 1, 16), transposedScores: true }),
  ];
// --layout: workgroup-memory layouts of the softmax's S and P, A/B in one call, each row
// bracketed by its default (wide-padded S^T rows on 128-row tiles since run 30). Runs 28-29 of
// docs/PERF_LOG_MMA.md ran earlier config sets (with rows + 4 as the default) from commit
// 5b284be's parent plus its options; this set re-times their survivors against the new default.
const layoutConfigs = (base: MmaOptions): Config[] => [
  T("default", base),
  T("S^T rows + 4", { ...base, widePaddedScores: false }),
  T("row-major adjacent", { ...base, transposedScores: false, contiguousScores: true }),
  T("default again", base),
];
const b8 = "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64";
const layoutJobs: Job[] = [
  { c: byId(`${b8}/f16`), configs: layoutConfigs({}) },
  { c: byId(`${seed}/f16`), configs: layoutConfigs({}) },
  { c: byId(`${b8}-fp8/f16`), configs: layoutConfigs({}) },
  { c: byId(`${b8}-int8/f16`), configs: layoutConfigs({}) },
  { c: byId(`${b8}/f16`), configs: layoutConfigs({ pipelined: true }) },
];
// --order: launch order of the work items (longest first, or each (request, KV head) group's
// items together so that concurrent workgroups share K/V through L2), bracketed by the default.
const orderConfigs: Config[] = [
  T("longest first", {}),
  T("kv-grouped", { order: "kv-grouped" }),
  T("longest first again", {}),
  T("kv-grouped again", { order: "kv-grouped" }),
];
const orderJobs: Job[] = [
  { c: byId(`${b8}/f16`), configs: orderConfigs },
  { c: byId(`${b8}-fp8/f16`), configs: orderConfigs },
  { c: byId(`${b8}-int8/f16`), configs: orderConfigs },
  { c: byId(`${seed}/f16`), configs: orderConfigs },
];
// --explore: the pipelined loop with a fixed reference max (two barriers per tile) against the
// classic fixed-max default, alternated three times per row (run 37's first call timed each once:
// b8 1.991 against 2.023 / 2.028 ms, the seed 0.415 against 0.403 / 0.410). Runs 32-36 timed the
// loop's skeleton, a hoisted rescale and the fixed max itself (docs/PERF_LOG_MMA.md).
const alternated: Config[] = [1, 2, 3].flatMap((i) => [
  T(`classic, fixed max #${i}`, {}),
  T(`pipelined, fixed max #${i}`, { pipelined: true }),
]);
const exploreJobs: Job[] = [
  { c: byId(`${b8}/f16`), configs: alternated },
  { c: byId(`${seed}/f16`), configs: alternated },
];
const jobs: Job[] = flag("--layout")
  ? layoutJobs
  : flag("--order")
  ? orderJobs
  : flag("--explore")
  ? exploreJobs
  : diag
  ? [
    { c: byId(`${seed}/f16`), configs: diagConfigs },
    { c: byId("mqa-prefill-paged-b2-h16kv1-d128-p32/f16"), configs: diagConfigs },
  ]
  : perfOnly
  ? [
    // directKV is left out: run 18 timed it 15x slower than staging (docs/PERF_LOG_MMA.md).
    {
      c: byId(`${seed}/f16`),
      configs: [
        T("default", {}),
        T("row-major S", { transposedScores: false }),
        T("r32 k64", { tile: t(2, 1, 64) }),
        T("r64 k32", { tile: t(4, 1, 32) }),
        T("r128 k32", { tile: t(8, 1, 32) }),
        T("r64 k64 wc2", { tile: t(4, 2, 64) }),
        T("r128 k32 wc2", { tile: t(8, 2, 32) }),
        T("r32 k64 wc2", { tile: t(2, 2, 64) }),
        T("no-split", { targetItems: 0 }),
        T("ablate load", { ablate: "load" }),
        T("ablate softmax", { ablate: "softmax" }),
        T("ablate qk", { ablate: "qk" }),
        T("ablate pv", { ablate: "pv" }),
        T("default again", {}),
        ...flash,
      ],
    },
    {
      c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"),
      configs: [
        T("default", {}),
        T("row-major S", { transposedScores: false }),
        T("r128 k32", { tile: t(8, 1, 32) }),
        T("r64 k64 wc2", { tile: t(4, 2, 64) }),
        T("r64 k64 wc4", { tile: t(4, 4, 64) }),
        T("r96 k32 wc2", { tile: t(6, 2, 32) }),
        T("r64 k32 wc2", { tile: t(4, 2, 32) }),
        T("new syntax", { newSyntax: true }),
        T("pipelined", { pipelined: true }),
        T("pipelined, ablate softmax", { pipelined: true, ablate: "softmax" }),
        T("ablate load", { ablate: "load" }),
        T("ablate softmax", { ablate: "softmax" }),
        T("ablate qk", { ablate: "qk" }),
        T("ablate pv", { ablate: "pv" }),
        T("default again", {}),
        ...flash,
      ],
    },
  ]
  : [
    { c: byId(`${seed}/f16`), configs: both },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"), configs: both },
    { c: byId(`${seed}-fp8/f16`), configs: checkStaged },
    { c: byId(`${seed}-int8/f16`), configs: checkStaged },
    { c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"), configs: checkOnly },
    { c: byId("llama-8b-decode-paged-b8-prefix32k-q4-p64/f16"), configs: checkOnly },
    { c: byId("varlen-mixed-b6-with-empty-p32-int8/f16"), configs: checkStaged },
    { c: byId("mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/f16"), configs: checkStaged },
    { c: byId("gqa-prefill-paged-noncausal-softcap30-b2-d96-p16/f16"), configs: checkOnly },
    { c: d256, configs: checkOnly },
  ];

const gpu = await acquireGpu({ backend: "dawn" });
console.error(
  `adapter: ${gpu.adapterName} (${gpu.implementation}/${gpu.apiBackend}); features ${
    [...gpu.features].join(",")
  }`,
);
console.error(
  `subgroup sizes ${gpu.adapterInfo.subgroupMinSize}..${gpu.adapterInfo.subgroupMaxSize}; workgroup memory ${gpu.limits.maxComputeWorkgroupStorageSize}; invocations ${gpu.limits.maxComputeInvocationsPerWorkgroup}`,
);
console.error(`subgroupMatrixConfigs: ${JSON.stringify(gpu.subgroupMatrixConfigs)}`);
let probe: MatrixProbe | string;
try {
  probe = await probeMatrixConventions(gpu);
} catch (e) {
  probe = (e as Error).message;
}
console.error(`probe: ${JSON.stringify(probe)}`);
let offsets: OffsetResult[] | string | null = null;
let loops: LoopResult[] | null = null;
let qkProbe: Record<string, string> | null = null;
if (flag("--probe4")) {
  qkProbe = await probeQk(gpu);
  for (const [k, v] of Object.entries(qkProbe)) console.log(`qk probe: ${k}: ${v}`);
}
if (flag("--probe3")) {
  loops = await probeLoops(gpu);
  for (const r of loops) console.log(`loop probe: ${r.name}: ${r.outcome}`);
}
if (flag("--probe2")) {
  try {
    offsets = await probeOffsets(gpu);
    for (const r of offsets) {
      console.log(
        `offsets ${r.what} off ${r.offset} stride ${r.stride}${
          r.colMajor ? " col" : ""
        }: ${r.outcome}`,
      );
    }
  } catch (e) {
    offsets = (e as Error).message;
    console.log(`offsets probe: ERROR ${offsets.slice(0, 2000)}`);
  }
}
const matrix = perfOnly || diag || flag("--layout") || flag("--order") || flag("--explore")
  ? null
  : await measureMatrixCeiling(gpu, { quick: true });
for (const f of matrix?.forms ?? []) {
  console.error(
    `  matrix ${f.name}: ${(f.value / 1e12).toFixed(1)} TFLOP/s ${f.error ?? ""}`,
  );
}

interface Row {
  id: string;
  config: string;
  key: string;
  ms: number;
  p10: number;
  p90: number;
  tflops: number;
  gbps: number;
  items: number;
  verify?: string;
}
const rows: Row[] = [];
const failures: Record<string, string> = {};
const rseed = Date.now() % 1000000;

async function verifyPlan(
  c: WorkloadCase,
  inputs: ReturnType<typeof generateCase>["inputs"],
  problem: ReturnType<typeof validateProblem>,
  options: MmaOptions,
): Promise<string> {
  const vdev = uploadInputs(gpu, inputs, problem);
  try {
    const vplan = await planMma(gpu, vdev, options);
    const out = await runKernelPlan(gpu, vplan, vdev, inputs);
    vplan.destroy();
    const sample = sampleReferenceRows(problem, { rowsPerRequest: c.verifyRows ?? 8, seed: rseed });
    const ref = referenceAttention(inputs, problem, { rows: sample });
    const chk = compareOutput(out.o, ref, problem);
    const exp = referenceAppend(inputs, problem);
    const pools = comparePools(out.kPages, out.vPages, exp.kPages, exp.vPages, problem);
    return `${chk.ok && pools.ok ? "PASS" : "FAIL"} ${describeOutputCheck(chk)}${
      pools.ok ? "" : " POOLS BAD"
    }`;
  } finally {
    vdev.destroy();
  }
}

for (const job of jobs) {
  const c = job.c;
  if (!c || (only && !c.id.includes(only))) continue;
  const t0 = performance.now();
  const { inputs, params } = generateCase(c, rseed);
  const problem = validateProblem(inputs, params);
  const costs = rooflineCosts({ ...problem, maxPagesPerReq: problem.maxPagesPerReq });
  console.error(
    `${c.id}: generated in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${
      (costs.flops / 1e9).toFixed(2)
    } GFLOP; mma support: ${mmaSupport(problem, gpu) ?? "yes"}`,
  );
  const dev = uploadInputs(gpu, inputs, problem);
  try {
    for (const [ci, cfg] of job.configs.entries()) {
      if (quick && ci > 1 && cfg.options !== "flash") continue;
      if (onlyConfigs.length > 0 && !onlyConfigs.includes(cfg.name)) continue;
      let plan: KernelPlan;
      let verify: string | undefined;
      try {
        const mopts = cfg.options === "flash" ? null : { ...extraOpts, ...cfg.options };
        plan = mopts === null ? await planFlash(gpu, dev) : await planMma(gpu, dev, mopts);
        if (cfg.verify && mopts !== null) {
          verify = await verifyPlan(c, inputs, problem, mopts);
        }
        if (cfg.time === false) {
          console.error(`  ${cfg.name}: ${plan.key} ${verify}`);
          rows.push({
            id: c.id,
            config: cfg.name,
            key: plan.key,
            ms: NaN,
            p10: NaN,
            p90: NaN,
            tflops: NaN,
            gbps: NaN,
            items: 0,
            verify,
          });
          plan.destroy();
          continue;
        }
      } catch (e) {
        const msg = (e as Error).message;
        console.error(`  ${cfg.name}: ERROR ${msg.slice(0, 1500)}`);
        if (cfg.options !== "flash") {
          const tile = cfg.options.tile ?? chooseMmaTile(problem, mmaLimits(gpu));
          if (!tile) continue;
          if (Object.keys(failures).length > 2) continue;
          try {
            failures[`${c.id} ${cfg.name}`] = msg + "\n\n" +
              mmaWgsl(mmaSpecFor(problem, tile, 32, false));
          } catch { /* spec invalid */ }
        }
        rows.push({
          id: c.id,
          config: cfg.name,
          key: "",
          ms: NaN,
          p10: NaN,
          p90: NaN,
          tflops: NaN,
          gbps: NaN,
          items: 0,
          verify: `ERROR ${msg.slice(0, 80)}`,
        });
        continue;
      }
      await warmUp(gpu, (enc) => plan.encode(enc), warmMs);
      const stats = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), {
        warmup: 3,
        iters: quick ? 8 : 15,
        minTimeMs: 300,
        maxIters: 1000,
      });
      // Wall clock over back-to-back runs in one submission (checks the timestamps).
      const reps = 20;
      const w0 = performance.now();
      {
        const enc = gpu.device.createCommandEncoder();
        for (let i = 0; i < reps; i++) plan.encode(enc);
        gpu.device.queue.submit([enc.finish()]);
        await gpu.device.queue.onSubmittedWorkDone();
      }
      const wallMs = (performance.now() - w0) / reps;
      const s = stats.median / 1e3;
      const row: Row = {
        id: c.id,
        config: cfg.name,
        key: plan.key,
        ms: stats.median,
        p10: stats.p10,
        p90: stats.p90,
        tflops: costs.flops / s / 1e12,
        gbps: costs.bytes / s / 1e9,
        items: 0,
        verify: `${verify ?? ""} wall ${wallMs.toFixed(3)} ms`,
      };
      rows.push(row);
      console.error(
        `  ${cfg.name}: ${stats.median.toFixed(3)} ms (p10 ${stats.p10.toFixed(3)} p90 ${
          stats.p90.toFixed(3)
        }, ${stats.method}${stats.discarded ? `, ${stats.discarded} ramp samples dropped` : ""}) ${
          row.tflops.toFixed(1)
        } TFLOP/s ${verify ?? ""}`,
      );
      plan.destroy();
    }
  } finally {
    dev.destroy();
  }
}

// --diag5 / --dump: item 0's first-tile scores against the float64 product (f16 cases).
const dumps: Record<string, unknown> = {};
if (flag("--diag5") || flag("--dump")) {
  const dumpConfigs: [string, MmaOptions][] = [
    ["emulated r64 k64", { emulate: true }],
    ["r16 k16", { tile: t(1, 1, 16) }],
    ["r16 k16 emu-pv", { tile: t(1, 1, 16), emulateStage: "pv" }],
    ["r64 k64", {}],
    ["r64 k64 ns", { newSyntax: true }],
    ["r16 k16 q-reload", { tile: t(1, 1, 16), qReload: true }],
    ["r64 k64 q-reload", { qReload: true }],
  ];
  for (const id of [`${seed}/f16`, "mqa-prefill-paged-b2-h16kv1-d128-p32/f16"]) {
    const c = byId(id);
    if (!c || (only && !c.id.includes(only))) continue;
    const { inputs, params } = generateCase(c, rseed);
    const problem = validateProblem(inputs, params);
    const dev = uploadInputs(gpu, inputs, problem);
    try {
      for (const [name, opts] of dumpConfigs) {
        try {
          const d = await dumpFirstScores(gpu, dev, inputs, { ...extraOpts, ...opts });
          dumps[`${id} ${name}`] = d;
          console.error(`  dump ${id} ${name}: ${JSON.stringify({ ...d, raw: undefined })}`);
          const tile = await dumpFirstTile(gpu, dev, inputs, { ...extraOpts, ...opts });
          console.error(`  tile ${id} ${name}: ${JSON.stringify(tile)}`);
        } catch (e) {
          console.error(`  dump ${id} ${name}: ERROR ${(e as Error).message.slice(0, 300)}`);
        }
      }
    } finally {
      dev.destroy();
    }
  }
}

await Deno.writeTextFile(
  `${outDir}/mma_tune.json`,
  JSON.stringify(
    {
      adapter: gpu.adapterName,
      info: gpu.adapterInfo,
      seed: rseed,
      probe,
      offsets,
      matrix,
      rows,
      dumps,
    },
    null,
    2,
  ),
);
if (Object.keys(failures).length > 0) {
  await Deno.writeTextFile(
    `${outDir}/mma_failures.txt`,
    Object.entries(failures).map(([k, v]) => `==== ${k}\n${v}`).join("\n"),
  );
}
console.log(
  `\nmma tune: ${gpu.adapterName}; matrix ${
    matrix ? (matrix.flopsPerSecond / 1e12).toFixed(0) : "n/a"
  } TFLOP/s; seed ${rseed}; options ${gpu.implementationOptions.join(" ")}`,
);
console.log(`probe: ${JSON.stringify(probe)}`);
console.log("case | config | ms | TFLOP/s | verify");
for (const r of rows) {
  console.log(
    `${r.id.replace("llama-3.1-8b-prefill-paged-", "").slice(0, 40)} | ${r.config} | ${
      r.ms.toFixed(3)
    } | ${r.tflops.toFixed(1)} | ${(r.verify ?? "").slice(0, 150)}`,
  );
}
