/**
 * GPU-machine timing of the append pass against the attention it follows: for each workload,
 * the append alone (one word and four words per invocation), the mma attention alone, and
 * the whole op with each append, all with GPU timestamps around one compute pass. Before
 * timing, the four-word append is checked bit-exactly against the reference on the pools.
 *
 * Also the four-word append at 128 and 256 invocations per workgroup, and (16-bit caches) the
 * mma op with the append fused into the attention dispatch against the op with its own
 * append pass, alternated three times, after checking that the fused op's o is bit-identical
 * and its pools bit-exact.
 *
 * Usage: deno run -A kernels/append/tune.ts [--backend dawn|deno] [--check-only] [--workload ID]...
 * @module
 */
import { acquireGpu } from "../gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { readOutputs, uploadInputs } from "../device_inputs.ts";
import { runKernelPlan } from "../op.ts";
import { referenceAppend } from "../../reference/attention.ts";
import { comparePools, describePoolCheck } from "../../reference/check.ts";
import { expandCases, loadManifest } from "../../workloads/loader.ts";
import { generateCase } from "../../workloads/generate.ts";
import { timeGpu } from "../../bench/timing.ts";
import { warmUp } from "../../bench/bench_case.ts";
import { combinePasses, type PassPlan } from "../_shared.ts";
import { planMma, planMmaAttention } from "../mma/mma.ts";
import { planAppend } from "./append.ts";

const args = Deno.args;
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const backend = (value("--backend") ?? "dawn") as "dawn" | "deno";
/** `--check-only`: the bit-exactness checks, no timing. */
const checkOnly = args.includes("--check-only");
const asked = args.flatMap((a, i) => (a === "--workload" && args[i + 1] ? [args[i + 1]!] : []));
const ids = asked.length > 0 ? asked : [
  "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16",
  "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
  "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-fp8/f16",
];
const gpu = await acquireGpu({ backend });
console.error(`adapter: ${gpu.adapterName}`);
const cases = expandCases(loadManifest());

for (const id of ids) {
  const c = cases.find((x) => x.id === id);
  if (!c) {
    console.error(`no case ${id} in the manifest: skipped`);
    continue;
  }
  const { inputs, params } = generateCase(c, 1);
  const problem = validateProblem(inputs, params);
  const bytes = 2 * problem.totalQ * problem.numKvHeads * problem.headDim *
    (2 + (problem.cacheDtype === "f16" || problem.cacheDtype === "bf16" ? 2 : 1));
  // The four-word append, bit-exact on the pools, before anything is timed.
  {
    const dev = uploadInputs(gpu, inputs, problem);
    const append = await planAppend(gpu, dev, { unitWords: 4 });
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    append.encodeInto(pass);
    pass.end();
    gpu.device.queue.submit([enc.finish()]);
    const out = await readOutputs(gpu, dev, inputs);
    const expected = referenceAppend(inputs, problem);
    const check = comparePools(out.kPages, out.vPages, expected.kPages, expected.vPages, problem);
    console.log(`${id}: ${append.key} ${describePoolCheck(check)}`);
    append.destroy();
    dev.destroy();
  }
  // The fused append (16-bit caches): o bit-identical to the op with the append pass, pools
  // bit-exact against the reference.
  const fusable = problem.cacheDtype === "f16" || problem.cacheDtype === "bf16";
  if (fusable) {
    const outs = [];
    for (const fusedAppend of [false, true]) {
      const dev = uploadInputs(gpu, inputs, problem);
      const plan = await planMma(gpu, dev, { fusedAppend });
      outs.push({ key: plan.key, out: await runKernelPlan(gpu, plan, dev, inputs) });
      plan.destroy();
      dev.destroy();
    }
    const [a, f] = outs as [(typeof outs)[0], (typeof outs)[0]];
    const oa = new Uint8Array(a.out.o.data.buffer), of = new Uint8Array(f.out.o.data.buffer);
    const same = oa.length === of.length && oa.every((x, i) => x === of[i]);
    const expected = referenceAppend(inputs, problem);
    const check = comparePools(
      f.out.kPages,
      f.out.vPages,
      expected.kPages,
      expected.vPages,
      problem,
    );
    console.log(
      `${id}: ${f.key}: o ${same ? "bit-identical to" : "DIFFERS from"} ${a.key}; pools ${
        describePoolCheck(check)
      }`,
    );
  }
  if (checkOnly) continue;
  const dev = uploadInputs(gpu, inputs, problem);
  const a1 = await planAppend(gpu, dev, { unitWords: 1 });
  const a4 = await planAppend(gpu, dev, { unitWords: 4 });
  const wide = await Promise.all(
    [128, 256].map((w) => planAppend(gpu, dev, { unitWords: 4, workgroupSize: w })),
  );
  const attention = await planMmaAttention(gpu, dev, {});
  const noop = () => {};
  const keep = (p: PassPlan): PassPlan => ({ ...p, destroy: noop });
  const plans: Array<[string, ReturnType<typeof combinePasses>]> = [
    ["append, 4 words", combinePasses(a4.key, [keep(a4)])],
    ["append, 1 word", combinePasses(a1.key, [keep(a1)])],
    ["append, 4 words (again)", combinePasses(a4.key, [keep(a4)])],
    ...wide.map((a): [string, ReturnType<typeof combinePasses>] => [
      `append, 4 words, ${a.key.match(/wg\d+/)![0]}`,
      combinePasses(a.key, [keep(a)]),
    ]),
    ["attention", combinePasses(attention.key, attention.passes.map(keep))],
    ["attention + append 1", combinePasses("op1", [...attention.passes, a1].map(keep))],
    ["attention + append 4", combinePasses("op4", [...attention.passes, a4].map(keep))],
    ["attention + append 1 (again)", combinePasses("op1b", [...attention.passes, a1].map(keep))],
    ["attention + append 4 (again)", combinePasses("op4b", [...attention.passes, a4].map(keep))],
    ...wide.map((a, i): [string, ReturnType<typeof combinePasses>] => [
      `attention + append 4, ${a.key.match(/wg\d+/)![0]}`,
      combinePasses(`opw${i}`, [...attention.passes, a].map(keep)),
    ]),
  ];
  const fused = fusable ? await planMma(gpu, dev, { fusedAppend: true }) : null;
  const unfused = fusable ? await planMma(gpu, dev, { fusedAppend: false }) : null;
  if (fused && unfused) {
    for (let rep = 0; rep < 3; rep++) {
      plans.push([`op, append pass (${rep + 1})`, unfused], [
        `op, fused append (${rep + 1})`,
        fused,
      ]);
    }
  }
  for (const [name, plan] of plans) {
    await warmUp(gpu, (enc) => plan.encode(enc), 500);
    const s = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), {
      warmup: 3,
      iters: 15,
      minTimeMs: 300,
      maxIters: 1000,
    });
    const gbps = name.startsWith("append") ? `  ${(bytes / s.median / 1e6).toFixed(0)} GB/s` : "";
    console.log(
      `${id}  ${name.padEnd(30)} ${s.median.toFixed(4)} ms  p10 ${s.p10.toFixed(4)}  p90 ${
        s.p90.toFixed(4)
      }${gbps}`,
    );
  }
  for (const p of [a1, a4, ...wide, ...attention.passes]) p.destroy();
  fused?.destroy();
  unfused?.destroy();
  dev.destroy();
}
