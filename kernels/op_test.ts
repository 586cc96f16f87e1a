import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "./gpu.ts";
import { pagedPrefill, planPagedPrefill } from "./op.ts";
import { planPoolLayout, readOutputs, uploadInputs } from "./device_inputs.ts";
import { declinedVariants, KERNEL_VARIANTS, selectVariant } from "./registry.ts";
import { validateProblem } from "../op/validate.ts";
import { cloneInputs, makeTestCase, verifyOutputs } from "./_testing.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase } from "../workloads/loader.ts";

// Fails (does not skip) without an adapter: acquireGpu() throws and says how to get one.
const gpu = await acquireGpu();
const SEED = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));

/** A context whose device throws on any use: proves a call did no GPU work. */
function untouchableGpu(): GpuContext {
  const device = new Proxy({} as GPUDevice, {
    get(_, prop) {
      throw new Error(`GPU work attempted: device.${String(prop)}`);
    },
  });
  return { ...gpu, device };
}

const BASE = {
  qDtype: "f16" as const,
  qLens: [4, 3],
  cacheLens: [9, 14],
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  pageSize: 4,
};

Deno.test("pagedPrefill() rejects an invalid call before any GPU work and changes nothing", async () => {
  const { inputs, params } = makeTestCase({ ...BASE, seed: SEED });
  const table = inputs.blockTable.data as Int32Array;
  table[1] = 9999; // a referenced entry (request 0, logical page 1) out of range
  const before = cloneInputs(inputs);
  await assert.rejects(
    () => pagedPrefill(untouchableGpu(), inputs, params),
    (e: Error) => e instanceof RangeError && /block_table\[0\]\[1\] = 9999/.test(e.message),
  );
  assert.deepEqual(inputs, before);
  await assert.rejects(
    () => pagedPrefill(untouchableGpu(), before, { ...params, softcap: -1 }),
    RangeError,
  );
  await assert.rejects(
    () => planPagedPrefill(untouchableGpu(), before, { ...params, pageSize: 3 }),
    RangeError,
  );
  assert.deepEqual(inputs, before);
});

Deno.test("pagedPrefill() rejects an unknown or unsupporting kernel before any GPU work", async () => {
  const { inputs, params } = makeTestCase({ ...BASE, seed: SEED + 1 });
  await assert.rejects(
    () => pagedPrefill(untouchableGpu(), inputs, params, { kernel: "nope" }),
    (e: Error) =>
      e instanceof RangeError && e.message.includes(`"nope"`) && e.message.includes("simple"),
  );
  await assert.rejects(
    () => pagedPrefill(untouchableGpu(), inputs, params, { kernel: "dequant" }),
    (e: Error) =>
      e instanceof RangeError && e.message.includes(`Cannot use kernel "dequant"`) &&
      e.message.includes("f16 cache"),
  );
});

Deno.test("selectVariant() takes the first supporting variant and honours a name", () => {
  const f16 = makeTestCase({ ...BASE, seed: SEED + 2 });
  const int8 = makeTestCase({ ...BASE, cacheDtype: "int8", seed: SEED + 3 });
  const pf16 = validateProblem(f16.inputs, f16.params);
  const pint8 = validateProblem(int8.inputs, int8.params);
  const firstSupporting = KERNEL_VARIANTS.find((v) => v.supports(pf16, gpu) === null)!;
  assert.equal(selectVariant(pf16, gpu).name, firstSupporting.name);
  assert.equal(selectVariant(pint8, gpu, "dequant").name, "dequant");
  assert.equal(selectVariant(pint8, gpu, "simple").name, "simple");
  const names = KERNEL_VARIANTS.map((v) => v.name);
  assert.ok(names.includes("simple") && names.includes("dequant"));
  assert.match(KERNEL_VARIANTS.find((v) => v.name === "dequant")!.supports(pf16, gpu)!, /f16/);
});

Deno.test("declinedVariants() lists the preferred variants that refuse a problem, leaving out specialists", () => {
  const bf16 = makeTestCase({ ...BASE, qDtype: "bf16", seed: SEED + 4 });
  const problem = validateProblem(bf16.inputs, bf16.params);
  // mma on a hand-built problem (no range scan) declines; decode is a specialist: left out.
  const unscanned = { ...problem, bf16OutsideF16: undefined };
  const declined = declinedVariants(unscanned, gpu, "simple");
  const expected = KERNEL_VARIANTS.slice(0, KERNEL_VARIANTS.findIndex((v) => v.name === "simple"))
    .filter((v) => !v.specialist && v.supports(unscanned, gpu) !== null)
    .map((v) => ({ name: v.name, reason: v.supports(unscanned, gpu)! }));
  assert.deepEqual(declined, expected);
  assert.ok(declined.some((d) => d.name === "mma" && d.reason.includes("not checked")));
  assert.ok(!declined.some((d) => d.name === "decode"));
  assert.deepEqual(declinedVariants(problem, gpu, KERNEL_VARIANTS[0]!.name), []);
});

Deno.test("pagedPrefill() compacts pools over the binding limit to the referenced pages", async () => {
  for (
    const [cacheDtype, kernel] of [["f16", "simple"], ["int8", "dequant"], [
      "fp8_e4m3",
      "simple",
    ]] as const
  ) {
    // 40 extra canary pages make the pool far larger than the referenced pages.
    const { inputs, params } = makeTestCase({
      ...BASE,
      cacheDtype,
      extraPages: 40,
      sharedPrefixPages: 1,
      seed: SEED + 4,
    });
    const problem = validateProblem(inputs, params);
    const pageBytes = problem.pageSize * problem.numKvHeads * problem.headDim *
      (cacheDtype === "f16" ? 2 : 1);
    const limit = 12 * pageBytes; // the whole pool (50 pages) is over; the 8 referenced fit
    const planned = await planPagedPrefill(gpu, inputs, params, { kernel, maxBindingSize: limit });
    assert.ok(planned.device.pageIds, "expected a compacted upload");
    assert.equal(planned.device.kPages.size, planned.device.pageIds.length * pageBytes);
    planned.destroy();
    const out = await pagedPrefill(gpu, inputs, params, { kernel, maxBindingSize: limit });
    verifyOutputs(out, inputs, problem, `compacted ${cacheDtype} ${kernel} seed ${SEED + 4}`);
  }
});

Deno.test("uploadInputs() names the buffer, its size and the limit when it cannot fit", () => {
  const { inputs, params } = makeTestCase({ ...BASE, extraPages: 10, seed: SEED + 5 });
  const problem = validateProblem(inputs, params);
  const pageBytes = problem.pageSize * problem.numKvHeads * problem.headDim * 2;
  const tooSmall = untouchableGpu();
  // 4 + 5 referenced pages (old + q_len = 13 and 17 at page_size 4), room for 6: rejected.
  assert.throws(
    () => uploadInputs(tooSmall, inputs, problem, { maxBindingSize: 6 * pageBytes }),
    (e: Error) =>
      e instanceof RangeError && e.message.includes("k_pages") &&
      e.message.includes(`${9 * pageBytes} bytes`) && e.message.includes(`${6 * pageBytes} bytes`),
  );
  const qBytes = problem.totalQ * problem.numHeads * problem.headDim * 2;
  assert.throws(
    () => uploadInputs(tooSmall, inputs, problem, { maxBindingSize: qBytes - 4 }),
    (e: Error) =>
      e instanceof RangeError && /Cannot upload q: \d+ bytes/.test(e.message) &&
      e.message.includes(`${qBytes - 4} bytes`),
  );
  const layout = planPoolLayout(inputs, problem, 9 * pageBytes);
  assert.equal(layout.pageIds?.length, 9);
  assert.equal(layout.poolBytes, 9 * pageBytes);
  assert.ok([...layout.pageIds!].every((id, i, a) => i === 0 || a[i - 1]! < id));
});

Deno.test("planPagedPrefill() plans once and encodes many times with the same result", async () => {
  const { inputs, params } = makeTestCase({ ...BASE, cacheDtype: "fp8_e4m3", seed: SEED + 6 });
  const planned = await planPagedPrefill(gpu, inputs, params);
  try {
    const sources = planned.plan.wgsl();
    assert.ok(sources[planned.plan.key]?.includes(`// ${planned.plan.key}`));
    assert.equal(Object.keys(sources).length, 2); // attention + append
    const timestamps = gpu.hasTimestamps
      ? {
        querySet: gpu.device.createQuerySet({ type: "timestamp", count: 2 }),
        beginIndex: 0,
        endIndex: 1,
      }
      : undefined;
    for (let i = 0; i < 3; i++) {
      const encoder = gpu.device.createCommandEncoder();
      planned.plan.encode(encoder, timestamps);
      gpu.device.queue.submit([encoder.finish()]);
    }
    timestamps?.querySet.destroy();
    const out = await readOutputs(gpu, planned.device, inputs);
    verifyOutputs(out, inputs, planned.problem, `re-encoded plan seed ${SEED + 6}`);
  } finally {
    planned.destroy();
  }
});

Deno.test("pagedPrefill() runs a batch of only empty requests", async () => {
  const { inputs, params } = makeTestCase({ ...BASE, qLens: [0, 0], seed: SEED + 7 });
  const out = await pagedPrefill(gpu, inputs, params);
  assert.deepEqual(out.o.shape, [0, 4, 8]);
  assert.deepEqual(out.kPages.data, inputs.kPages.data);
  assert.deepEqual(out.vPages.data, inputs.vPages.data);
});

Deno.test("pagedPrefill() matches the reference on generated workloads in every page order", async () => {
  const orders = ["contiguous", "permuted", "shared-prefix"] as const;
  const caches = [["f16", "same"], ["bf16", "same"], ["f16", "fp8"], ["bf16", "int8"]] as const;
  let n = 0;
  for (const [dtype, cacheDtype] of caches) {
    for (const pageOrder of orders) {
      const c = adHocCase({
        batch: 3,
        heads: 4,
        headsKv: 2,
        headDim: 32,
        qLen: 8,
        cacheLen: 40,
        pageSize: 16,
        varlen: true,
        dtype,
        cacheDtype,
        pageOrder,
      });
      const seed = SEED + 100 + n++;
      const { inputs, params } = generateCase(c, seed);
      const problem = validateProblem(inputs, params);
      const kernels = problem.cacheDtype === "fp8_e4m3" || problem.cacheDtype === "int8"
        ? ["simple", "dequant"]
        : ["simple"];
      for (const kernel of kernels) {
        const out = await pagedPrefill(gpu, inputs, params, { kernel });
        verifyOutputs(out, inputs, problem, `${c.label} ${kernel} seed ${seed}`);
      }
    }
  }
});
