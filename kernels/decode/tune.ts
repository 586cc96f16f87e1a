/**
 * Times decode-kernel configurations against the flash kernel on the manifest's decode rows that
 * `decode` claims (q1 and q4 f16, q4 fp8 and int8), so one device run can pick the defaults.
 * Every config is verified against the float64 reference on sampled rows (fresh pools: the op
 * appends in place) and timed after >= 300 ms of warm-up (median of >= 20 runs, GPU timestamps).
 * Percentages are of 4.17 TB/s copy and 64.3 TFLOP/s f32 FMA (docs/PERF_LOG.md ceilings).
 *
 * On the H200 (about 2-3 minutes):
 *
 *   source .gpu/boot.sh && DENO_DIR=$PWD/.gpu_npm deno run -A --node-modules-dir=none \
 *     --cached-only --no-lock kernels/decode/tune.ts
 *
 * Usage: deno run -A kernels/decode/tune.ts [--only SUBSTR] [--out FILE] [--quick] [--local]
 * (`--quick`: default decode config and flash only; `--local`: one small ad hoc case instead,
 * to smoke-test the script on a software GPU.)
 * @module
 */
import { acquireGpu } from "../gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { runKernelPlan } from "../op.ts";
import { referenceAttention, sampleReferenceRows } from "../../reference/attention.ts";
import { compareOutput } from "../../reference/check.ts";
import { adHocCase, expandCases, loadManifest } from "../../workloads/loader.ts";
import { generateCase } from "../../workloads/generate.ts";
import { rooflineCosts } from "../../reports/roofline.ts";
import { timeGpu } from "../../bench/timing.ts";
import { warmUp } from "../../bench/bench_case.ts";
import { planFlash } from "../flash/flash.ts";
import { type DecodeOptions, planDecode } from "./decode.ts";
import type { DeviceProblem, KernelPlan } from "../variant.ts";
import type { GpuContext } from "../gpu.ts";

const args = Deno.args;
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = value("--only");
const quick = args.includes("--quick");
const local = args.includes("--local");
const outPath = value("--out") ??
  (Deno.env.get("OUT") ? `${Deno.env.get("OUT")}/decode_tune.json` : "decode_tune.json");
const BW = 4.17e12;
const FMA = 64.3e12;

interface Config {
  name: string;
  plan: (gpu: GpuContext, dev: DeviceProblem) => Promise<KernelPlan>;
}
const decode = (name: string, options: DecodeOptions): Config => ({
  name,
  plan: (gpu, dev) => planDecode(gpu, dev, options),
});
const configs: Config[] = [
  { name: "flash default", plan: (gpu, dev) => planFlash(gpu, dev) },
  decode("decode default", {}),
  ...(quick ? [] : [
    // The sweep of docs/perf/decode_tune_2026-11-21a.log timed 8192 splits, 16 key groups, 4
    // rows, 4 dims per lane and 16 rows x 4 dims per lane (all slower than the default); 2048
    // splits and 4 key groups were each 7-10% faster on q4. These combine them.
    decode("decode split 2048", { targetItems: 2048 }),
    decode("decode split 1024", { targetItems: 1024 }),
    decode("decode 4 key groups", { keyGroups: 4 }),
    decode("decode 4 key groups, split 2048", { keyGroups: 4, targetItems: 2048 }),
    decode("decode 4 key groups, split 1024", { keyGroups: 4, targetItems: 1024 }),
    decode("decode default again", {}),
  ]),
];
const ids = [
  "llama-8b-decode-paged-b8-prefix32k-q1-p64/f16",
  "llama-8b-decode-paged-b8-prefix32k-q4-p64/f16",
  "llama-8b-decode-paged-b8-prefix32k-q4-p64-fp8/f16",
  "llama-8b-decode-paged-b8-prefix32k-q4-p64-int8/f16",
];

const gpu = await acquireGpu();
console.error(`adapter: ${gpu.adapterName}; timestamps ${gpu.hasTimestamps}`);
const all = local
  ? [adHocCase({ batch: 2, heads: 8, headsKv: 2, headDim: 64, qLen: 2, cacheLen: 1500 })]
  : expandCases(loadManifest());
const seed = Date.now() % 1000000;
const rows: Record<string, string | number>[] = [];
for (const id of local ? [all[0]!.id] : ids) {
  if (only && !id.includes(only)) continue;
  const c = all.find((x) => x.id === id);
  if (!c) throw new Error(`no case ${id}`);
  const { inputs, params } = generateCase(c, seed);
  const problem = validateProblem(inputs, params);
  const costs = rooflineCosts(problem);
  const sample = sampleReferenceRows(problem, { rowsPerRequest: 2, seed });
  const ref = referenceAttention(inputs, problem, { rows: sample });
  const dev = uploadInputs(gpu, inputs, problem);
  try {
    for (const cfg of configs) {
      let verify: string;
      try {
        const vdev = uploadInputs(gpu, inputs, problem);
        const vplan = await cfg.plan(gpu, vdev);
        try {
          const out = await runKernelPlan(gpu, vplan, vdev, inputs);
          const check = compareOutput(out.o, ref, problem);
          verify = check.ok ? "PASS" : `FAIL(${check.mismatches})`;
        } finally {
          vplan.destroy();
          vdev.destroy();
        }
      } catch (e) {
        console.error(`  ${cfg.name}: ${(e as Error).message.slice(0, 300)}`);
        continue;
      }
      const plan = await cfg.plan(gpu, dev);
      await warmUp(gpu, (enc) => plan.encode(enc), 1000);
      const stats = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), {
        warmup: 3,
        iters: 20,
        minTimeMs: 300,
        maxIters: 1000,
      });
      const s = stats.median / 1e3;
      const row = {
        id,
        config: cfg.name,
        key: plan.key,
        ms: stats.median,
        p10: stats.p10,
        p90: stats.p90,
        pctBw: (100 * costs.bytes / s) / BW,
        pctFma: (100 * costs.flops / s) / FMA,
        verify,
      };
      rows.push(row);
      console.error(
        `  ${cfg.name}: ${row.ms.toFixed(3)} ms, ${row.pctBw.toFixed(0)}% bw, ${verify}`,
      );
      plan.destroy();
    }
  } finally {
    dev.destroy();
  }
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ adapter: gpu.adapterName, seed, rows }, null, 2),
);
console.log(`\ndecode tune: ${gpu.adapterName}; seed ${seed}; % of 4.17 TB/s and 64.3 TFLOP/s`);
console.log("case | config | kernel key | ms median | p10-p90 | % bw | % f32 | verify");
for (const r of rows) {
  console.log(
    `${
      String(r.id).replace("llama-8b-decode-paged-b8-prefix32k-", "")
    } | ${r.config} | ${r.key} | ${Number(r.ms).toFixed(3)} | ${Number(r.p10).toFixed(3)}-${
      Number(r.p90).toFixed(3)
    } | ${Number(r.pctBw).toFixed(0)}% | ${Number(r.pctFma).toFixed(0)}% | ${r.verify}`,
  );
}
gpu.destroy();
