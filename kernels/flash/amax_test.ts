import { acquireGpu, type GpuContext } from "../gpu.ts";
import { makeTestCase, type TestCaseOptions } from "../_testing.ts";
import { validateProblem } from "../../op/validate.ts";
import { readBuffers, uploadInputs } from "../device_inputs.ts";
import { combinePasses, scaleCount, scaleSlots } from "../_shared.ts";
import { bf16BitsToNumber } from "../../reference/codecs.ts";
import type { PagedPrefillInputs } from "../../op/types.ts";
import { planBf16Amax } from "./amax.ts";
import assert from "node:assert/strict";

let _gpu: Promise<GpuContext> | null = null;
function gpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

/** bf16 bits of the largest finite value: what every slot the pass must not read holds. */
const BF16_MAX_BITS = 0x7f7f;

const base: TestCaseOptions = {
  qDtype: "bf16",
  qLens: [5, 19, 0, 1],
  cacheLens: [37, 3, 9, 70],
  heads: 4,
  kvHeads: 2,
  headDim: 32,
  pageSize: 8,
  extraPages: 3,
  seed: 51,
};

/**
 * The case of `o` with every pool slot that no request reads (beyond old, and never-referenced
 * pages) set to bf16's largest value, and the slots' referenced flags.
 */
function caseWithLoudCanaries(o: TestCaseOptions) {
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  const rowElems = problem.numKvHeads * problem.headDim;
  const read = new Uint8Array(problem.poolTokens);
  const table = inputs.blockTable.data as Int32Array;
  for (let b = 0; b < problem.batch; b++) {
    for (let pos = 0; pos < problem.cacheLens[b]!; pos++) {
      const page = table[b * problem.maxPagesPerReq + Math.floor(pos / problem.pageSize)]!;
      read[page * problem.pageSize + (pos % problem.pageSize)] = 1;
    }
  }
  if (problem.cacheDtype === "bf16") {
    for (const pool of [inputs.kPages, inputs.vPages]) {
      const data = pool.data as Uint16Array;
      for (let slot = 0; slot < problem.poolTokens; slot++) {
        if (!read[slot]) data.fill(BF16_MAX_BITS, slot * rowElems, (slot + 1) * rowElems);
      }
    }
  }
  return { inputs, problem, read };
}

/** Host maxima of |k| and |v| over k_new / v_new and, for a bf16 cache, the slots read. */
function hostAmax(
  inputs: PagedPrefillInputs,
  pagesToo: boolean,
  read: Uint8Array,
  rowElems: number,
): [number, number] {
  const out: [number, number] = [0, 0];
  const sets = [[inputs.kNew, inputs.kPages], [inputs.vNew, inputs.vPages]] as const;
  sets.forEach(([fresh, pool], i) => {
    for (const bits of fresh.data as Uint16Array) {
      out[i] = Math.max(out[i]!, Math.abs(bf16BitsToNumber(bits)));
    }
    if (!pagesToo) return;
    const data = pool.data as Uint16Array;
    for (let e = 0; e < data.length; e++) {
      if (read[Math.floor(e / rowElems)]) {
        out[i] = Math.max(out[i]!, Math.abs(bf16BitsToNumber(data[e]!)));
      }
    }
  });
  return out;
}

/** Runs the range pass alone, twice (the clear resets it), and reads kAmax / vAmax back. */
async function gpuAmax(o: TestCaseOptions): Promise<{ got: number[]; want: number[] }> {
  const g = await gpu();
  const { inputs, problem, read } = caseWithLoudCanaries(o);
  const dev = uploadInputs(g, inputs, problem);
  const pass = await planBf16Amax(g, dev);
  const plan = combinePasses(pass.key, [pass]);
  try {
    for (let run = 0; run < 2; run++) {
      const encoder = g.device.createCommandEncoder();
      plan.encode(encoder);
      g.device.queue.submit([encoder.finish()]);
    }
    const slots = scaleSlots(scaleCount(problem));
    const [bytes] = await readBuffers(g, [[dev.scales, slots.length * 4]]);
    const words = new Float32Array(bytes!.buffer, bytes!.byteOffset, slots.length);
    const want = hostAmax(
      inputs,
      problem.cacheDtype === "bf16",
      read,
      problem.numKvHeads * problem.headDim,
    );
    return { got: [words[slots.kAmax]!, words[slots.vAmax]!], want };
  } finally {
    plan.destroy();
    dev.destroy();
  }
}

Deno.test("the bf16 range pass finds the exact largest |k| and |v| of k_new and the slots read, never the unread ones", async () => {
  // Page sizes 1 to 64; the last case spans several workgroups per request (2048 words each).
  const cases: TestCaseOptions[] = [
    ...[1, 8, 64].map((pageSize) => ({ ...base, pageSize, seed: 51 + pageSize })),
    { ...base, cacheLens: [700, 3, 0, 1300], headDim: 64, pageSize: 16, seed: 54 },
  ];
  for (const o of cases) {
    const r = await gpuAmax(o);
    assert.deepEqual(r.got, r.want, `page ${o.pageSize}, old ${o.cacheLens}`);
    // The loud canaries were not read, and both maxima are of real data.
    assert.ok(r.got.every((x) => x > 0 && x < 1e30), JSON.stringify(r));
  }
});

Deno.test("the bf16 range pass over a quantized cache reads only k_new and v_new", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    const r = await gpuAmax({ ...base, cacheDtype, magnitude: 1e20, seed: 55 });
    assert.deepEqual(r.got, r.want, cacheDtype);
    assert.ok(r.got[0]! > 1e19, JSON.stringify(r));
  }
});

Deno.test("the bf16 range pass refuses an f16 q", async () => {
  const g = await gpu();
  const { inputs, params } = makeTestCase({ ...base, qDtype: "f16" });
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  try {
    await assert.rejects(
      planBf16Amax(g, dev),
      {
        name: "RangeError",
        message: "Cannot plan the bf16 range pass: q dtype is f16, expected bf16",
      },
    );
  } finally {
    dev.destroy();
  }
});
