import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { readOutputs, uploadInputs } from "../device_inputs.ts";
import { validateProblem } from "../../op/validate.ts";
import type { CacheDtype, PagedPrefillInputs, QDtype } from "../../op/types.ts";
import { referenceAppend } from "../../reference/attention.ts";
import { comparePools, describePoolCheck } from "../../reference/check.ts";
import { numberToBf16Bits, numberToF16Bits } from "../../reference/codecs.ts";
import { makeTestCase, normal, seededRandom, type TestCaseOptions } from "../_testing.ts";
import { planAppend } from "./append.ts";
import { appendKey, appendUnitWords, appendWgsl } from "./template.ts";

// Fails (does not skip) without an adapter: acquireGpu() throws and says how to get one.
const gpu = await acquireGpu();
const SEED = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
let caseNo = 0;

/** Runs the append kernel alone and checks both pools bit-exactly, canaries included. */
async function appendOnly(
  o: Omit<TestCaseOptions, "seed">,
  tweak?: (i: PagedPrefillInputs) => void,
  unitWords?: 1 | 4,
) {
  const seed = SEED + caseNo++;
  const { inputs, params } = makeTestCase({ ...o, seed });
  tweak?.(inputs);
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(gpu, inputs, problem);
  const append = await planAppend(gpu, dev, unitWords ? { unitWords } : {});
  if (unitWords) {
    // The key says which width ran: _v4 exactly where the row holds whole units of four words.
    const spec = {
      qDtype: problem.qDtype,
      cacheDtype: problem.cacheDtype,
      headDim: problem.headDim,
      workgroupSize: 64,
      unitWords,
    };
    assert.equal(append.key.endsWith("_v4"), appendUnitWords(spec) === 4);
  }
  const encoder = gpu.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  append.encodeInto(pass);
  pass.end();
  gpu.device.queue.submit([encoder.finish()]);
  const out = await readOutputs(gpu, dev, inputs);
  append.destroy();
  dev.destroy();
  const expected = referenceAppend(inputs, problem);
  const check = comparePools(out.kPages, out.vPages, expected.kPages, expected.vPages, problem);
  assert.ok(
    check.ok,
    `${JSON.stringify(o)} unitWords ${unitWords} seed ${seed} (PP_TEST_SEED=${SEED}): ${
      describePoolCheck(check)
    }`,
  );
  // The reference appends something: make sure the test is not vacuous.
  if (problem.totalQ > 0) assert.notDeepEqual(expected.kPages.data, inputs.kPages.data);
}

const DTYPES: Array<[QDtype, CacheDtype]> = [
  ["f16", "f16"],
  ["bf16", "bf16"],
  ["f16", "fp8_e4m3"],
  ["bf16", "fp8_e4m3"],
  ["f16", "int8"],
  ["bf16", "int8"],
];

Deno.test("append writes each new row bit-exactly into its slot and leaves every other byte", async () => {
  for (const [qDtype, cacheDtype] of DTYPES) {
    // Unaligned old lengths, an append crossing two page boundaries, an empty request.
    await appendOnly({
      qDtype,
      cacheDtype,
      qLens: [11, 0, 3],
      cacheLens: [6, 4, 0],
      heads: 4,
      kvHeads: 2,
      headDim: 12,
      pageSize: 4,
    });
  }
});

Deno.test("append writes the same bytes one word or four words (16 bytes) per invocation", async () => {
  for (const [qDtype, cacheDtype] of DTYPES) {
    for (const unitWords of [1, 4] as const) {
      // D 32: 16 words per 16-bit row, 8 per 1-byte row, so both unit sizes apply to every dtype.
      await appendOnly(
        {
          qDtype,
          cacheDtype,
          qLens: [9, 0, 6],
          cacheLens: [7, 3, 0],
          heads: 4,
          kvHeads: 2,
          headDim: 32,
          pageSize: 4,
        },
        undefined,
        unitWords,
      );
    }
  }
});

Deno.test("appendUnitWords() falls back to one word where a row holds no whole unit of four", () => {
  const spec = { qDtype: "f16", workgroupSize: 64 } as const;
  assert.equal(appendUnitWords({ ...spec, cacheDtype: "f16", headDim: 8 }), 4);
  assert.equal(appendUnitWords({ ...spec, cacheDtype: "f16", headDim: 12 }), 1);
  assert.equal(appendUnitWords({ ...spec, cacheDtype: "int8", headDim: 16 }), 4);
  assert.equal(appendUnitWords({ ...spec, cacheDtype: "fp8_e4m3", headDim: 8 }), 1);
  assert.equal(appendUnitWords({ ...spec, cacheDtype: "f16", headDim: 16, unitWords: 1 }), 1);
});

Deno.test("append fills one page per token at page_size 1 and a single page at page_size 256", async () => {
  for (const pageSize of [1, 256]) {
    for (const cacheDtype of ["bf16", "int8"] as const) {
      await appendOnly({
        qDtype: "bf16",
        cacheDtype,
        qLens: [5, 7],
        cacheLens: [3, 250],
        heads: 2,
        kvHeads: 1,
        headDim: 8,
        pageSize,
      });
    }
  }
});

Deno.test("append saturates, rounds to subnormals and keeps zero signs like the reference encoder", async () => {
  // Multiply k_new/v_new by large and tiny factors so fp8 saturates at 448 / int8 at 127 and
  // fp8 hits its subnormals; add signed zeros.
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    for (const qDtype of ["f16", "bf16"] as const) {
      await appendOnly({
        qDtype,
        cacheDtype,
        qLens: [16],
        cacheLens: [5],
        heads: 2,
        kvHeads: 2,
        headDim: 16,
        pageSize: 8,
      }, (inputs) => {
        const rand = seededRandom(SEED ^ 0x5eed);
        const enc = qDtype === "f16" ? numberToF16Bits : numberToBf16Bits;
        for (const t of [inputs.kNew, inputs.vNew]) {
          const data = t.data as Uint16Array;
          for (let i = 0; i < data.length; i++) {
            const r = rand();
            const scale = r < 0.3 ? 2000 : r < 0.6 ? 1e-4 : r < 0.65 ? 0 : 1;
            data[i] = enc(normal(rand) * scale);
            if (r >= 0.6 && r < 0.65 && rand() < 0.5) data[i] = 0x8000; // -0
          }
        }
      });
    }
  }
});

Deno.test("appendWgsl() writes only whole u32 words and names its key", () => {
  for (const [qDtype, cacheDtype] of DTYPES) {
    const spec = { qDtype, cacheDtype, headDim: 8, workgroupSize: 64 };
    const code = appendWgsl(spec);
    assert.ok(code.startsWith(`// ${appendKey(spec)}\n`));
    assert.ok(!code.includes("atomic"), "no atomics needed: every word has one writer");
  }
});
