import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu.ts";
import { pagedPrefill, type PagedPrefillOptions } from "../op.ts";
import { validateProblem } from "../../op/validate.ts";
import type { Problem } from "../../op/types.ts";
import { cloneInputs, makeTestCase, type TestCaseOptions, verifyOutputs } from "../_testing.ts";
import { decodeCacheElement, f16BitsToNumber } from "../../reference/codecs.ts";
import { dispatchGrid } from "../_shared.ts";
import { readBuffers, uploadInputs } from "../device_inputs.ts";
import { specKey } from "./spec.ts";
import { planDequant, scratchPages } from "./dequant.ts";

// Fails (does not skip) without an adapter: acquireGpu() throws and says how to get one.
const gpu = await acquireGpu();
const SEED = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
let caseNo = 0;

async function runCase(
  o: Omit<TestCaseOptions, "seed">,
  kernel: string,
  options: PagedPrefillOptions & { gpu?: GpuContext } = {},
) {
  const seed = SEED + caseNo++;
  const { inputs, params } = makeTestCase({ ...o, seed });
  const before = cloneInputs(inputs);
  const problem = validateProblem(inputs, params);
  const out = await pagedPrefill(options.gpu ?? gpu, inputs, params, { ...options, kernel });
  const what = `${kernel} ${JSON.stringify(o)} seed ${seed} (PP_TEST_SEED=${SEED})`;
  const check = verifyOutputs(out, inputs, problem, what);
  assert.deepEqual(inputs, before, `${what}: the op modified its inputs`);
  return { check, out, problem };
}

Deno.test("simple kernel matches the reference for f16 and bf16 caches at page sizes 1 to 256", async () => {
  for (const pageSize of [1, 16, 32, 64, 128, 256]) {
    for (const qDtype of ["f16", "bf16"] as const) {
      // Unaligned old lengths; request 0's append crosses a page boundary; request 1 is empty.
      await runCase({
        qDtype,
        qLens: [5, 0, 4],
        cacheLens: [Math.max(0, 2 * pageSize - 2), 3, pageSize + 1],
        heads: 4,
        kvHeads: 2,
        headDim: 16,
        pageSize,
      }, "simple");
    }
  }
});

Deno.test("simple and dequant kernels match the reference for fp8 and int8 caches", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    for (const qDtype of ["f16", "bf16"] as const) {
      const shape = {
        qDtype,
        cacheDtype,
        qLens: [7, 3, 0],
        cacheLens: [21, 40, 9],
        heads: 4,
        kvHeads: 2,
        headDim: 32,
        pageSize: 16,
      };
      for (const kernel of ["simple", "dequant"]) await runCase(shape, kernel);
    }
  }
});

Deno.test("dequant output matches the fused simple path up to summation order", async () => {
  const shape = {
    qDtype: "f16" as const,
    cacheDtype: "fp8_e4m3" as const,
    qLens: [6, 4],
    cacheLens: [50, 19],
    heads: 4,
    kvHeads: 1,
    headDim: 64,
    pageSize: 8,
  };
  const seed = SEED + 1000;
  const { inputs, params } = makeTestCase({ ...shape, seed });
  const a = await pagedPrefill(gpu, inputs, params, { kernel: "simple" });
  const b = await pagedPrefill(gpu, inputs, params, { kernel: "dequant" });
  assert.deepEqual(a.kPages, b.kPages);
  assert.deepEqual(a.vPages, b.vPages);
  let maxDiff = 0;
  const ao = a.o.data as Uint16Array, bo = b.o.data as Uint16Array;
  for (let i = 0; i < ao.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(f16BitsToNumber(ao[i]!) - f16BitsToNumber(bo[i]!)));
  }
  // Both read the same f32 K/V values; flash and simple sum in other orders (a few f16 ulps of o
  // at most), far inside 2e-3 + 2e-3 |ref|.
  assert.ok(maxDiff < 2e-3, `seed ${seed}: dequant and simple differ by ${maxDiff}`);
});

Deno.test("dequant scratch holds every element of the pages read as the exact f32 product code * scale", async () => {
  for (const [i, cacheDtype] of (["int8", "fp8_e4m3"] as const).entries()) {
    // bf16 q: a scratch in q's dtype would round each product to 8 significant bits.
    const seed = SEED + 2000 + i;
    const { inputs, params } = makeTestCase({
      qDtype: "bf16",
      cacheDtype,
      qLens: [3, 2],
      cacheLens: [21, 9],
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      pageSize: 8,
      seed,
    });
    const problem = validateProblem(inputs, params);
    const dev = uploadInputs(gpu, inputs, problem);
    const dequant = await planDequant(gpu, dev);
    try {
      const encoder = gpu.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      dequant.pass.encodeInto(pass);
      pass.end();
      gpu.device.queue.submit([encoder.finish()]);
      const { pageList } = scratchPages(problem, dev.blockTableHost);
      const rowElems = problem.numKvHeads * problem.headDim;
      const pageElems = problem.pageSize * rowElems;
      const [kRaw, vRaw] = await readBuffers(gpu, [
        [dequant.kScratch, pageList.length * pageElems * 4],
        [dequant.vScratch, pageList.length * pageElems * 4],
      ]);
      let nonZero = 0;
      for (
        const [got, pool, scale] of [
          [kRaw!, inputs.kPages, inputs.kScale!],
          [vRaw!, inputs.vPages, inputs.vScale!],
        ] as const
      ) {
        const values = new Float32Array(got.buffer, got.byteOffset, got.byteLength / 4);
        const codes = pool.data as Int8Array | Uint8Array;
        const scales = scale.data as Float32Array;
        pageList.forEach((uploaded, sp) => {
          const page = dev.pageIds ? dev.pageIds[uploaded]! : uploaded;
          for (let e = 0; e < pageElems; e++) {
            const raw = codes[page * pageElems + e]!;
            const sc = scales[cacheDtype === "int8" ? e % rowElems : 0]!;
            // The f64 product of a code and an f32 scale is exact; fround rounds it once.
            const want = Math.fround(decodeCacheElement(cacheDtype, raw, sc));
            const x = values[sp * pageElems + e]!;
            if (want !== 0) nonZero++;
            assert.ok(
              Object.is(x, want) || (Number.isNaN(x) && Number.isNaN(want)),
              `${cacheDtype} seed ${seed}: scratch page ${sp} element ${e} is ${x}, want ${want}`,
            );
          }
        });
      }
      assert.ok(nonZero > pageList.length * pageElems, `${cacheDtype}: too few non-zero values`);
    } finally {
      dequant.pass.destroy();
      dev.destroy();
    }
  }
});

Deno.test("simple kernel matches the reference for GQA, MQA and MHA head layouts", async () => {
  for (
    const [heads, kvHeads, cacheDtype] of [
      [8, 2, "f16"],
      [4, 1, "bf16"],
      [3, 3, "f16"],
      [6, 1, "int8"],
      [2, 2, "fp8_e4m3"],
    ] as const
  ) {
    await runCase({
      qDtype: cacheDtype === "bf16" ? "bf16" : "f16",
      cacheDtype,
      qLens: [4, 6],
      cacheLens: [13, 5],
      heads,
      kvHeads,
      headDim: 8,
      pageSize: 4,
    }, "simple");
  }
});

Deno.test("simple kernel applies softcap, with and without causal masking", async () => {
  for (const isCausal of [true, false]) {
    for (const [softcap, smScale] of [[1.5, null], [50, 40]] as const) {
      // sm_scale 40 drives scores far past the cap, through the tanh clamp.
      await runCase({
        qDtype: "bf16",
        cacheDtype: "int8",
        qLens: [5, 3],
        cacheLens: [10, 17],
        heads: 4,
        kvHeads: 2,
        headDim: 32,
        pageSize: 8,
        isCausal,
        softcap,
        smScale,
      }, isCausal ? "simple" : "dequant");
    }
  }
});

Deno.test("simple kernel matches the reference without causal masking", async () => {
  for (const cacheDtype of ["f16", "fp8_e4m3"] as const) {
    await runCase({
      qDtype: "f16",
      cacheDtype,
      qLens: [9, 1, 4],
      cacheLens: [0, 30, 7],
      heads: 2,
      kvHeads: 1,
      headDim: 16,
      pageSize: 16,
      isCausal: false,
    }, "simple");
  }
});

Deno.test("simple kernel handles empty requests, shared prefix pages and junk block table entries", async () => {
  // Requests 0 and 2 are empty; the three requests share 2 read-only prefix pages.
  await runCase({
    qDtype: "f16",
    qLens: [0, 5, 0, 3],
    cacheLens: [16, 21, 19, 30],
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    pageSize: 8,
    sharedPrefixPages: 2,
    maxPages: 9,
    junk: true,
  }, "simple");
  await runCase({
    qDtype: "bf16",
    cacheDtype: "fp8_e4m3",
    qLens: [4, 2],
    cacheLens: [35, 33],
    heads: 2,
    kvHeads: 1,
    headDim: 8,
    pageSize: 16,
    sharedPrefixPages: 2,
    pageOrder: "contiguous",
    maxPages: 8,
  }, "dequant");
});

Deno.test("simple kernel matches the reference at head dims 4 and 256", async () => {
  for (const headDim of [4, 256]) {
    await runCase({
      qDtype: "f16",
      cacheDtype: headDim === 4 ? "int8" : "f16",
      qLens: [3, 2],
      cacheLens: [5, 12],
      heads: 2,
      kvHeads: 1,
      headDim,
      pageSize: 4,
    }, "simple");
  }
});

Deno.test("simple kernel gives the same result when the grid wraps into a second dimension", async () => {
  // A context claiming 4 workgroups per dimension forces a 2D dispatch on the same device.
  const small: GpuContext = {
    ...gpu,
    limits: { ...gpu.limits, maxComputeWorkgroupsPerDimension: 4 },
  };
  const shape = {
    qDtype: "f16" as const,
    cacheDtype: "int8" as const,
    qLens: [50, 30],
    cacheLens: [3, 6],
    heads: 8,
    kvHeads: 2,
    headDim: 8,
    pageSize: 2,
  };
  assert.deepEqual(dispatchGrid(small, 80 * 8, 64), [4, 3]);
  await runCase(shape, "simple", { gpu: small });
  await runCase(shape, "dequant", { gpu: small });
});

Deno.test("dispatchGrid() splits workgroups over two dimensions within the limit", () => {
  const fake = { limits: { maxComputeWorkgroupsPerDimension: 65535 } } as unknown as GpuContext;
  assert.deepEqual(dispatchGrid(fake, 0, 64), [0, 0]);
  assert.deepEqual(dispatchGrid(fake, 65, 64), [2, 1]);
  assert.deepEqual(dispatchGrid(fake, 64 * 65536, 64), [65535, 2]);
  assert.throws(() => dispatchGrid(fake, 64 * 65535 * 65536, 64), RangeError);
});

Deno.test("specKey() spells every spec field", () => {
  assert.equal(
    specKey("simple", {
      qDtype: "bf16",
      cacheDtype: "int8",
      headDim: 64,
      causal: false,
      softcap: true,
      workgroupSize: 32,
    }),
    "paged_prefill_simple_q-bf16_kv-int8_d64_wg32_noncausal_softcap",
  );
});

Deno.test("scratchPages() maps only the pages holding old positions, shared pages once", () => {
  const problem = {
    batch: 3,
    pageSize: 4,
    maxPagesPerReq: 3,
    cacheLens: [5, 4, 0],
    qLens: [3, 9, 2],
  } as unknown as Problem;
  const table = Int32Array.of(7, 2, -1, 7, 9, 9, 4, 5, 6);
  const { pageList, table: mapped } = scratchPages(problem, table);
  assert.deepEqual([...pageList], [7, 2]);
  assert.deepEqual([...mapped], [0, 1, -1, 0, -1, -1, -1, -1, -1]);
});
