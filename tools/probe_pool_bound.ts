/**
 * Probe of flash's `poolBound` on the bf16 rows (PERF_LOG v14): for each case, the bound passes
 * alone (the scan of the pools and new tokens, and the publishing pass), the whole plan with
 * `poolBound`, and the whole plan with per-tile maxima, each timed with GPU timestamps. What the
 * scan costs, and what the kernel gains or loses beside it.
 *
 * Usage: deno run -A tools/probe_pool_bound.ts [--only SUBSTR] [--out FILE]
 * @module
 */
import { acquireGpu } from "../kernels/gpu.ts";
import { validateProblem } from "../op/validate.ts";
import { uploadInputs } from "../kernels/device_inputs.ts";
import { adHocCase, expandCases, loadManifest, type WorkloadCase } from "../workloads/loader.ts";
import { generateCase } from "../workloads/generate.ts";
import { type EncodeFn, timeGpu } from "../bench/timing.ts";
import { warmUp } from "../bench/bench_case.ts";
import { timedPassDescriptor } from "../kernels/variant.ts";
import { defaultFlashTile, planFlash } from "../kernels/flash/flash.ts";
import { planNewBound } from "../kernels/flash/new_bound.ts";
import { F16_PRECISE_KEYS } from "../kernels/flash/spec.ts";

const args = Deno.args;
const valueOf = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = valueOf("--only");
const outPath = valueOf("--out") ?? "probe_pool_bound.json";

const cases = expandCases(loadManifest()).filter((c) =>
  [
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16",
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/bf16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16",
    "llama-8b-decode-paged-b8-prefix32k-q16-p64/bf16",
  ].includes(c.id)
);
const all: WorkloadCase[] = [
  adHocCase({
    batch: 1,
    heads: 32,
    headsKv: 8,
    headDim: 256,
    qLen: 1024,
    cacheLen: 8192,
    pageSize: 64,
    dtype: "bf16",
    label: "adhoc-d256-q1k-old8k-bf16",
  }),
  ...cases,
];

const gpu = await acquireGpu();
const rows: Record<string, unknown>[] = [];
const seed = Date.now() % 1000000;
for (const c of all) {
  if (only && !c.id.includes(only)) continue;
  const { inputs, params } = generateCase(c, seed);
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(gpu, inputs, problem);
  const buffers: GPUBuffer[] = [];
  try {
    const tile = defaultFlashTile(problem, gpu);
    if (!tile?.f16Math) throw new Error(`${c.id}: no f16 tile`);
    const time = async (encode: EncodeFn) => {
      await warmUp(gpu, (enc) => encode(enc), 500);
      return (await timeGpu(gpu, encode, { warmup: 3, iters: 15, minTimeMs: 300 })).median;
    };
    const bound = await planNewBound(gpu, dev, buffers);
    const boundMs = await time((enc, ts) => {
      const pass = enc.beginComputePass(timedPassDescriptor(ts, "bound"));
      bound.encodeInto(pass);
      pass.end();
    });
    const plans = {
      poolBound: await planFlash(gpu, dev, {
        preciseKeys: F16_PRECISE_KEYS,
        tile: { ...tile, poolBound: true },
      }),
      perTile: await planFlash(gpu, dev, {
        preciseKeys: F16_PRECISE_KEYS,
        tile: { ...tile, poolBound: false },
      }),
    };
    const ms: Record<string, number> = {};
    for (const round of [0, 1]) {
      for (const [name, plan] of Object.entries(plans)) {
        ms[`${name}${round}`] = await time((enc, ts) => plan.encode(enc, ts));
      }
    }
    Object.values(plans).forEach((p) => p.destroy());
    const row = { id: c.id, boundMs, ...ms };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    buffers.forEach((b) => b.destroy());
    dev.destroy();
  }
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ adapter: gpu.adapterName, seed, rows }, null, 2),
);
