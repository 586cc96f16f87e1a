import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu.ts";
import { makeTestCase, seededRandom, type TestCaseOptions, verifyOutputs } from "../_testing.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { pagedPrefill, runKernelPlan } from "../op.ts";
import { KERNEL_VARIANTS, selectVariant } from "../registry.ts";
import type { CacheDtype, Problem, QDtype } from "../../op/types.ts";
import {
  DECODE_MAX_ROWS,
  DECODE_MIN_CACHE,
  type DecodeOptions,
  decodeSupport,
  planDecode,
  planDecodeAttention,
} from "./decode.ts";
import { buildDecodeWorkList } from "./work_list.ts";
import { decodeWgsl } from "./template.ts";

let _gpu: Promise<GpuContext> | null = null;
function gpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

/** Runs the op through `pagedPrefill(..., { kernel: "decode" })` and checks o and both pools. */
async function checkOp(o: TestCaseOptions, what: string): Promise<void> {
  const g = await gpu();
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  assert.equal(decodeSupport(problem, g), null, `${what}: decode must claim it`);
  const out = await pagedPrefill(g, inputs, params, { kernel: "decode" });
  verifyOutputs(out, inputs, problem, `${what} ${JSON.stringify({ ...o, seed: o.seed })}`);
}

/** Runs `planDecode` with explicit options (no selection policy) and checks o and both pools. */
async function checkPlan(o: TestCaseOptions, options: DecodeOptions, split?: boolean) {
  const g = await gpu();
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  try {
    if (split !== undefined) {
      const { list, passes } = await planDecodeAttention(g, dev, options);
      passes.at(-1)?.destroy();
      assert.equal(list.split, split, "split-KV as intended");
    }
    const plan = await planDecode(g, dev, options);
    try {
      const out = await runKernelPlan(g, plan, dev, inputs);
      verifyOutputs(out, inputs, problem, plan.key);
    } finally {
      plan.destroy();
    }
  } finally {
    dev.destroy();
  }
}

const COMBOS: ReadonlyArray<readonly [QDtype, CacheDtype | undefined]> = [
  ["f16", undefined],
  ["bf16", undefined],
  ["f16", "fp8_e4m3"],
  ["bf16", "fp8_e4m3"],
  ["f16", "int8"],
  ["bf16", "int8"],
];

Deno.test("decode matches the reference for every cache dtype and both q dtypes, split-KV (D 64)", async () => {
  for (const [i, [qDtype, cacheDtype]] of COMBOS.entries()) {
    // q_len 1..4 x group 2; a request with no old keys and one with no queries; pages of 16
    // (not a multiple of the 64 keys of a step: one block_table lookup per key).
    await checkOp({
      qDtype,
      cacheDtype,
      qLens: [1 + (i % 4), 2, 0, 1 + ((i + 2) % 4)],
      cacheLens: [DECODE_MIN_CACHE + 77, 0, 500, 300 + 13 * i],
      heads: 4,
      kvHeads: 2,
      headDim: 64,
      pageSize: 16,
      isCausal: i % 3 !== 2,
      softcap: i % 2 === 1 ? 12 : null,
      seed: 100 + i,
    }, `${qDtype}/${cacheDtype ?? "same"}`);
  }
});

Deno.test("decode matches the reference unsplit (D 16: 256 keys per step) and with aligned pages (D 128)", async () => {
  for (const [i, [qDtype, cacheDtype]] of COMBOS.entries()) {
    await checkOp({
      qDtype,
      cacheDtype,
      qLens: [2, 1 + (i % 4)],
      cacheLens: [DECODE_MIN_CACHE + 5, 40],
      heads: 2,
      kvHeads: 1,
      headDim: 16,
      pageSize: 8,
      isCausal: i % 2 === 0,
      softcap: i % 3 === 0 ? 30 : null,
      seed: 200 + i,
    }, `unsplit ${qDtype}/${cacheDtype ?? "same"}`);
  }
  // D 128, page 64: a step's 32 keys lie in one page; group 4, q_len 3 = two row tiles of 8.
  await checkOp({
    qDtype: "f16",
    qLens: [3, 1],
    cacheLens: [DECODE_MIN_CACHE + 100, 64],
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    pageSize: 64,
    seed: 210,
  }, "d128 page 64");
});

Deno.test("planDecode() splits or not as asked, with 4 dims per lane, odd head dims and MQA/MHA", async () => {
  // D 40: 5 lanes of 8 dims x 25 key groups = 100 keys per step.
  const base = { qDtype: "f16" as const, pageSize: 4, seed: 300 };
  await checkPlan(
    { ...base, qLens: [2, 1], cacheLens: [450, 0], heads: 4, kvHeads: 1, headDim: 40 },
    { targetItems: 0 },
    false,
  );
  await checkPlan(
    { ...base, qLens: [2, 1], cacheLens: [450, 0], heads: 4, kvHeads: 1, headDim: 40, seed: 301 },
    { targetItems: 64, minSplitSteps: 1 },
    true,
  );
  await checkPlan({
    ...base,
    qDtype: "bf16",
    cacheDtype: "int8",
    qLens: [4, 3],
    cacheLens: [150, 33],
    heads: 3,
    kvHeads: 3,
    headDim: 12,
    softcap: 5,
    seed: 302,
  }, { targetItems: 16, minSplitSteps: 1 });
  await checkPlan({
    ...base,
    cacheDtype: "fp8_e4m3",
    qLens: [2],
    cacheLens: [200],
    heads: 8,
    kvHeads: 1,
    headDim: 32,
    pageSize: 32,
    isCausal: false,
    seed: 303,
  }, { dimsPerLane: 4, rows: 4, targetItems: 64, minSplitSteps: 1 });
});

Deno.test("decode with 16-row tiles and 4 dims per lane matches the reference: q4 x group 4 in one pass over K/V, split and unsplit", async () => {
  // 16 (query, head) rows per KV head: one tile reads each K/V row once (8-row tiles read it twice).
  const base = {
    qDtype: "f16" as const,
    qLens: [4, 4, 3],
    cacheLens: [700, 257, 0],
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    pageSize: 64,
  };
  await checkPlan({ ...base, seed: 310 }, { rows: 16, dimsPerLane: 4, targetItems: 0 }, false);
  await checkPlan(
    { ...base, qDtype: "bf16", cacheDtype: "int8", seed: 311 },
    { rows: 16, dimsPerLane: 4, targetItems: 64, minSplitSteps: 1 },
    true,
  );
});

Deno.test("decode stays right over a 4096-token prefix at D 128 in one unsplit item", async () => {
  // Mesa's llvmpipe caps the loop iterations of one invocation: 129 steps of 32 keys here.
  await checkPlan(
    {
      qDtype: "f16",
      qLens: [2],
      cacheLens: [4096],
      heads: 4,
      kvHeads: 1,
      headDim: 128,
      pageSize: 64,
      seed: 400,
    },
    { targetItems: 0 },
    false,
  );
});

Deno.test("decode matches the reference on seeded random decode-like problems", async () => {
  const seed0 = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  for (let n = 0; n < 4; n++) {
    const seed = seed0 + n;
    const rand = seededRandom(seed);
    const int = (k: number) => Math.floor(rand() * k);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const kvHeads = pick([1, 2]);
    const group = pick([1, 2, 4]);
    const batch = 1 + int(3);
    const qLens = Array.from({ length: batch }, () => (int(5) === 0 ? 0 : 1 + int(4)));
    if (!qLens.some((q) => q > 0)) qLens[0] = 1;
    const cacheLens = Array.from({ length: batch }, () => (int(4) === 0 ? 0 : int(700)));
    cacheLens[int(batch)] = DECODE_MIN_CACHE + int(300);
    const [qDtype, cacheDtype] = pick(COMBOS);
    const o: TestCaseOptions = {
      qDtype,
      cacheDtype,
      qLens,
      cacheLens,
      heads: kvHeads * group,
      kvHeads,
      headDim: pick([8, 16, 24, 32, 64]),
      pageSize: pick([1, 4, 16, 64, 128]),
      isCausal: int(4) !== 0,
      softcap: int(3) === 0 ? 5 + int(40) : null,
      smScale: int(3) === 0 ? 0.05 + 0.2 * rand() : null,
      sharedPrefixPages: 0,
      seed,
    };
    await checkOp(o, `PP_TEST_SEED=${seed}`);
  }
});

Deno.test("decode's supports() turns down prefill-shaped problems, which fall through to other kernels", async () => {
  const g = await gpu();
  const problemOf = (o: Partial<TestCaseOptions>): Problem => {
    const { inputs, params } = makeTestCase({
      qDtype: "f16",
      qLens: [1],
      cacheLens: [DECODE_MIN_CACHE],
      heads: 8,
      kvHeads: 2,
      headDim: 32,
      pageSize: 16,
      seed: 500,
      ...o,
    });
    return validateProblem(inputs, params);
  };
  const decodeLike = problemOf({});
  assert.equal(decodeSupport(decodeLike, g), null);
  assert.equal(selectVariant(decodeLike, g).name, "decode");
  assert.ok(KERNEL_VARIANTS.some((v) => v.name === "decode"));

  // 5 queries x group 4 = 20 rows per kv head.
  const manyRows = problemOf({ qLens: [5] });
  assert.match(decodeSupport(manyRows, g)!, new RegExp(`at most ${DECODE_MAX_ROWS} query rows`));
  assert.notEqual(selectVariant(manyRows, g).name, "decode");
  // The longest cache is short.
  const short = problemOf({ cacheLens: [DECODE_MIN_CACHE - 1] });
  assert.match(decodeSupport(short, g)!, /long caches/);
  assert.notEqual(selectVariant(short, g).name, "decode");
  // Nothing to attend.
  const empty = problemOf({ qLens: [0, 0], cacheLens: [DECODE_MIN_CACHE, 3] });
  assert.match(decodeSupport(empty, g)!, /no query rows/);
  // Named explicitly, the op says why.
  const { inputs, params } = makeTestCase({
    qDtype: "f16",
    qLens: [5],
    cacheLens: [DECODE_MIN_CACHE],
    heads: 8,
    kvHeads: 2,
    headDim: 32,
    pageSize: 16,
    seed: 501,
  });
  await assert.rejects(
    () => pagedPrefill(g, inputs, params, { kernel: "decode" }),
    (e: Error) => e instanceof RangeError && /Cannot use kernel "decode"/.test(e.message),
  );
});

Deno.test("buildDecodeWorkList() covers every key once per row tile and kv head, slots contiguous", () => {
  const problem: Problem = {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 3,
    totalQ: 6,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    pageSize: 16,
    numPages: 100,
    poolTokens: 1600,
    maxPagesPerReq: 70,
    isCausal: true,
    smScale: 0.125,
    softcap: 0,
    qLens: [3, 0, 3],
    qStarts: [0, 3, 3],
    cacheLens: [1000, 50, 17],
  };
  const stepKeys = 64;
  const list = buildDecodeWorkList(problem, 8, stepKeys, { targetItems: 40, minSplitSteps: 2 });
  assert.ok(list.split);
  // Row tiles: request 0 has 12 rows (tiles at 0 and 8), request 2 likewise; 2 kv heads.
  assert.equal(list.combineCount, 8);
  const seen = new Map<string, number[]>();
  for (let i = 0; i < list.count; i++) {
    const [b, g, f0, slot, s0, s1, kend] = list.items.subarray(i * 8, i * 8 + 7);
    const last = Math.min(f0! + 8, problem.qLens[b!]! * 4) - 1;
    assert.equal(kend, problem.cacheLens[b!]! + Math.floor(last / 4) + 1);
    const key = `${b}/${g}/${f0}`;
    const keys = seen.get(key) ?? [];
    for (let k = s0! * stepKeys; k < Math.min(s1! * stepKeys, kend!); k++) keys.push(k);
    seen.set(key, keys);
    assert.ok(slot! < list.slots);
  }
  for (let c = 0; c < list.combineCount; c++) {
    const [b, g, f0, slot0, ns] = list.combine.subarray(c * 8, c * 8 + 5);
    const keys = seen.get(`${b}/${g}/${f0}`)!.sort((x, y) => x - y);
    const last = Math.min(f0! + 8, problem.qLens[b!]! * 4) - 1;
    const kend = problem.cacheLens[b!]! + Math.floor(last / 4) + 1;
    assert.deepEqual(keys, Array.from({ length: kend }, (_, k) => k));
    const slots: number[] = [];
    for (let i = 0; i < list.count; i++) {
      const it = list.items.subarray(i * 8, i * 8 + 4);
      if (it[0] === b && it[1] === g && it[2] === f0) slots.push(it[3]!);
    }
    assert.deepEqual(
      slots.sort((x, y) => x - y),
      Array.from({ length: ns! }, (_, s) => slot0! + s),
    );
  }
  // Longest first.
  for (let i = 1; i < list.count; i++) {
    const len = (j: number) => list.items[j * 8 + 5]! - list.items[j * 8 + 4]!;
    assert.ok(len(i - 1) >= len(i));
  }
  const whole = buildDecodeWorkList(problem, 8, stepKeys, { targetItems: 0 });
  assert.equal(whole.split, false);
  assert.equal(whole.count, 8);
});

Deno.test("decodeWgsl() keeps the key loop free of inner loops (llvmpipe's loop cap)", () => {
  for (const cacheDtype of ["f16", "fp8_e4m3", "int8"] as const) {
    const code = decodeWgsl({
      qDtype: "f16",
      cacheDtype,
      headDim: 256,
      rows: 8,
      dimsPerLane: 8,
      keyGroups: 4,
      causal: true,
      softcap: true,
      pageAligned: false,
      split: false,
    });
    const start = code.indexOf("for (var st = st0;");
    const end = code.indexOf("// The chunk's own keys");
    assert.ok(start > 0 && end > start);
    const body = code.slice(start + 1, end);
    assert.equal(body.includes("for ("), false, `${cacheDtype}: a loop inside the key loop`);
    assert.equal(body.includes("while"), false);
  }
});
