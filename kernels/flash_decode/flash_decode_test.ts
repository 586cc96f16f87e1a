import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu.ts";
import { makeTestCase, type TestCaseOptions, verifyOutputs } from "../_testing.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { runKernelPlan } from "../op.ts";
import { selectVariant } from "../registry.ts";
import type { Problem } from "../../op/types.ts";
import {
  batchSplitOf,
  DECODE_SPLIT_MIN_SHARE,
  planFlashDecode,
  requestsOf,
} from "./flash_decode.ts";

let _gpu: Promise<GpuContext> | null = null;
function gpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

/** A GQA (group 4, D64) causal batch of the given chunks over the given caches. */
function batch(qLens: number[], cacheLens: number[]): Problem {
  return {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: qLens.length,
    totalQ: qLens.reduce((a, b) => a + b, 0),
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    pageSize: 16,
    numPages: 1024,
    poolTokens: 16384,
    maxPagesPerReq: 160,
    isCausal: true,
    smScale: 0.125,
    softcap: 0,
    qLens,
    qStarts: qLens.map((_, b) => qLens.slice(0, b).reduce((a, c) => a + c, 0)),
    cacheLens,
  };
}

Deno.test("batchSplitOf() sends the decode-like requests of a mixed batch to the decode kernel and the rest to flash", async () => {
  const g = await gpu();
  const split = batchSplitOf(batch([1, 16, 2, 0], [1100, 1200, 1050, 2000]), g);
  assert.ok(typeof split !== "string", String(split));
  assert.deepEqual(split.decode.qLens, [1, 0, 2, 0]);
  assert.deepEqual(split.flash.qLens, [0, 16, 0, 0]);
  assert.ok(split.share >= DECODE_SPLIT_MIN_SHARE && split.share < 1, `${split.share}`);
  assert.deepEqual(requestsOf(batch([3, 4], [5, 6]), (b) => b === 1).qLens, [0, 4]);
});

Deno.test("batchSplitOf() declines batches with no decode-like request, only decode-like ones, or too small a share, saying which", async () => {
  const g = await gpu();
  // Short caches: the one-query request is not decode-like.
  assert.match(
    String(batchSplitOf(batch([1, 16], [500, 1200]), g)),
    /^no decode-like request \(at most 16 rows per kv head over at least 1024 cached tokens\)$/,
  );
  // Five rows per KV head at group 4 is more than 16.
  assert.match(String(batchSplitOf(batch([5, 16], [1100, 1200]), g)), /^no decode-like request/);
  assert.equal(batchSplitOf(batch([1, 4, 0], [1100, 3000, 5]), g), "every request is decode-like");
  // One query over 1100 keys beside 256 queries over 2000: ~1.5% of flash's work.
  assert.match(
    String(batchSplitOf(batch([1, 256], [1100, 2000]), g)),
    /^the decode-like requests are \d\.\d% of flash's row-tile work, under 25%$/,
  );
});

/** Plans flash+decode on a test case, checks o and both pools; returns the plan's key. */
async function check(o: TestCaseOptions): Promise<string> {
  const g = await gpu();
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  assert.equal(selectVariant(problem, g).name, "flash+decode");
  const dev = uploadInputs(g, inputs, problem);
  try {
    const plan = await planFlashDecode(g, dev);
    try {
      const out = await runKernelPlan(g, plan, dev, inputs);
      verifyOutputs(out, inputs, problem, plan.key);
      return plan.key;
    } finally {
      plan.destroy();
    }
  } finally {
    dev.destroy();
  }
}

Deno.test("flash+decode matches the reference on a mixed batch for f16, bf16 with an int8 cache, and fp8 (split-KV on both kernels)", async () => {
  for (
    const [qDtype, cacheDtype, seed] of [
      ["f16", undefined, 91],
      ["bf16", "int8", 92],
      ["f16", "fp8_e4m3", 93],
    ] as const
  ) {
    const key = await check({
      qDtype,
      ...(cacheDtype ? { cacheDtype } : {}),
      qLens: [1, 16, 2, 0, 9],
      cacheLens: [1100, 1300, 1050, 40, 1030],
      heads: 8,
      kvHeads: 2,
      headDim: 64,
      pageSize: 16,
      seed,
    });
    assert.match(key, /^paged_prefill_flash_[^+]*_split[^+]*\+paged_prefill_decode_.*_split/, key);
  }
});

Deno.test("auto selection keeps flash for a batch without decode-like requests and decode for one of only decode-like requests", async () => {
  const g = await gpu();
  const pick = (qLens: number[], cacheLens: number[]) => {
    const { inputs, params } = makeTestCase({
      qDtype: "f16",
      qLens,
      cacheLens,
      heads: 8,
      kvHeads: 2,
      headDim: 64,
      pageSize: 16,
      seed: 94,
    });
    return selectVariant(validateProblem(inputs, params), g).name;
  };
  assert.equal(pick([16, 9], [1100, 1200]), "flash");
  assert.equal(pick([1, 2], [1100, 1200]), "decode");
});
