import { acquireGpu, type GpuContext } from "../gpu.ts";
import { makeTestCase, type TestCaseOptions } from "../_testing.ts";
import { runKernelPlan } from "../op.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { referenceAppend, referenceAttention } from "../../reference/attention.ts";
import { decodeCacheElement } from "../../reference/codecs.ts";
import {
  compareOutput,
  comparePools,
  describeOutputCheck,
  describePoolCheck,
  type OutputCheck,
} from "../../reference/check.ts";
import { flashF32Variant, type FlashOptions, flashSplitDefaults, planFlash } from "./flash.ts";
import {
  BALANCE_MIN_RATIO,
  balancedSplit,
  buildWorkList,
  itemCost,
  PRECISE_ITEM_COST,
  residentItems,
  type WorkList,
} from "./work_list.ts";
import { flashWgsl } from "./template.ts";
import { generateCase } from "../../workloads/generate.ts";
import { adHocCase } from "../../workloads/loader.ts";
import { rowTilesOf } from "../work_split.ts";
import type { PagedPrefillInputs, Problem } from "../../op/types.ts";
import assert from "node:assert/strict";
import {
  attentionFlops,
  chooseFlashTile,
  choosePipelinedTile,
  F16_MIN_FLOPS,
  F16_PRECISE_KEYS,
  flashGeometry,
  flashKey,
  type FlashSpec,
  flashSpecFor,
  flashSpecProblem,
  type FlashTile,
  isSmallGrid,
  LATE_NEW_MAX_NEW_SHARE,
  newKeyShare,
  POOL_BOUND_MIN_FLOPS,
  POOL_BOUND_MIN_FLOPS_PER_BYTE,
  poolBoundPays,
  SMALL_GRID_FLOPS,
  tileProblem,
} from "./spec.ts";

let _gpu: Promise<GpuContext> | null = null;
function gpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

/**
 * Runs the flash plan on a test case and checks o (SPEC §4 tolerance) and both pools; returns
 * the plan's key.
 */
async function check(o: TestCaseOptions, options: FlashOptions = {}): Promise<string> {
  const g = await gpu();
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  const plan = await planFlash(g, dev, options);
  try {
    const out = await runKernelPlan(g, plan, dev, inputs);
    const output = compareOutput(out.o, referenceAttention(inputs, problem), problem);
    if (!output.ok) throw new Error(`${describeOutputCheck(output)}; ${plan.key}`);
    const pools = referenceAppend(inputs, problem);
    const pool = comparePools(out.kPages, out.vPages, pools.kPages, pools.vPages, problem);
    if (!pool.ok) throw new Error(describePoolCheck(pool));
    return plan.key;
  } finally {
    plan.destroy();
    dev.destroy();
  }
}

const small: FlashTile = { rows: 16, keys: 16, threads: 32, sRows: 2, oRows: 2, unrollD: true };

/** `check()` on one small causal GQA case with an fp8 and then an int8 cache. */
async function checkByteCaches(tile: FlashTile, seed: number): Promise<void> {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    await check({
      qDtype: "f16",
      cacheDtype,
      qLens: [9, 4],
      cacheLens: [40, 17],
      heads: 2,
      kvHeads: 1,
      headDim: 32,
      pageSize: 16,
      seed,
    }, { tile, targetItems: 0 });
  }
}

Deno.test("planFlash() matches the reference for a causal GQA f16 batch with permuted pages", async () => {
  await check({
    qDtype: "f16",
    qLens: [5, 19, 0, 1],
    cacheLens: [37, 3, 9, 70],
    heads: 4,
    kvHeads: 2,
    headDim: 32,
    pageSize: 8,
    seed: 11,
  }, { tile: small, targetItems: 0 });
});

Deno.test("planFlash() matches the reference with split-KV and page-aligned tiles", async () => {
  await check({
    qDtype: "bf16",
    qLens: [3, 1],
    cacheLens: [150, 97],
    heads: 8,
    kvHeads: 2,
    headDim: 16,
    pageSize: 32,
    seed: 12,
  }, { tile: small, targetItems: 64, minSplitTiles: 2 });
});

Deno.test("planFlash() matches the reference for fp8 and int8 caches", async () => {
  await checkByteCaches(small, 13);
});

Deno.test("planFlash() matches the reference non-causal with softcap and MHA", async () => {
  await check({
    qDtype: "f16",
    qLens: [7, 12],
    cacheLens: [20, 5],
    heads: 3,
    kvHeads: 3,
    headDim: 16,
    pageSize: 4,
    isCausal: false,
    softcap: 5,
    seed: 14,
  }, { tile: { ...small, qF32: true, unrollD: false }, targetItems: 0 });
});

Deno.test("planFlash() matches the reference with the default tile for head_dim 64 (MQA)", async () => {
  await check({
    qDtype: "bf16",
    qLens: [33],
    cacheLens: [40],
    heads: 4,
    kvHeads: 1,
    headDim: 64,
    pageSize: 64,
    seed: 15,
  });
});

Deno.test("buildWorkList() skips causal tiles and splits long few-row requests", () => {
  const problem = {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 2,
    totalQ: 9,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    pageSize: 16,
    numPages: 40,
    poolTokens: 640,
    maxPagesPerReq: 20,
    isCausal: true,
    smScale: 0.25,
    softcap: 0,
    qLens: [8, 1],
    cacheLens: [0, 300],
    qStarts: [0, 8],
  } as const;
  const plain = buildWorkList(problem, 4, 4, { targetItems: 0 });
  // request 0: 16 rows in 4 tiles; tile t sees keys < 2t + 2 -> 1 tile each; request 1: 2 rows, 76 tiles
  if (plain.count !== 10 || plain.split) throw new Error(JSON.stringify(plain));
  if (plain.tiles !== 2 * (1 + 1 + 2 + 2) + 2 * 76) throw new Error(`tiles ${plain.tiles}`);
  const split = buildWorkList(problem, 4, 4, { targetItems: 64, minSplitTiles: 8 });
  if (!split.split || split.count <= plain.count) throw new Error(JSON.stringify(split.count));
  if (split.tiles !== plain.tiles) throw new Error("splitting must not change the tiles visited");
});

Deno.test("balancedSplit() splits only the long row tiles of a launch whose longest row tile outlasts its share, and nothing else", () => {
  // 40 short requests (q 32, no prefix) and one long one (q 64 over 4000 keys): 32-row tiles,
  // 4 KV heads. The long request's row tiles see ~4000 keys, 125 tiles of 32, against ~9 per slot.
  const varlen = (longOld: number, kvHeads = 4) => {
    const qLens = [...Array(40).fill(32), 64];
    const cacheLens = [...Array(40).fill(0), longOld];
    return {
      qDtype: "f16",
      cacheDtype: "f16",
      batch: qLens.length,
      totalQ: qLens.reduce((a, b) => a + b, 0),
      numHeads: 4 * kvHeads,
      numKvHeads: kvHeads,
      headDim: 128,
      pageSize: 32,
      numPages: 4000,
      poolTokens: 128000,
      maxPagesPerReq: 200,
      isCausal: true,
      smScale: 0.088,
      softcap: 0,
      qLens,
      cacheLens,
      qStarts: qLens.map((_, b) => qLens.slice(0, b).reduce((x, y) => x + y, 0)),
    } as Problem;
  };
  const p = varlen(4000);
  const options = balancedSplit(p, 32, 32, 128);
  assert.deepEqual(options, {
    targetItems: residentItems(32),
    minSplitTiles: 4,
    splitBelow: Infinity,
  });
  const plain = buildWorkList(p, 32, 32, { targetItems: 512, minSplitTiles: 8, splitBelow: 128 });
  const balanced = buildWorkList(p, 32, 32, options!);
  assert.equal(plain.split, false);
  assert.equal(balanced.split, true);
  assert.equal(balanced.tiles, plain.tiles);
  // Split items are the long request's (b = 40), each at most the per-slot share (>= 4 tiles).
  const perSlot = Math.max(4, Math.ceil((plain.tiles) / residentItems(32)));
  const lengths = new Map<number, number[]>();
  for (let i = 0; i < balanced.count; i++) {
    const it = balanced.items.subarray(8 * i, 8 * i + 8);
    const units = it[5]! - it[4]!;
    assert.ok(units <= perSlot, `item ${i}: ${units} > ${perSlot}`);
    lengths.set(it[0]!, [...(lengths.get(it[0]!) ?? []), units]);
  }
  const splitRows = Array.from(
    { length: balanced.combineCount },
    (_, i) => balanced.combine.subarray(8 * i, 8 * i + 8),
  ).filter((c) => c[4]! > 1);
  assert.equal(splitRows.length, 8 * 4, "the long request's 8 row tiles x 4 KV heads");
  assert.ok(splitRows.every((c) => c[0] === 40));
  assert.ok(lengths.get(40)!.length > 8 * 4);
  for (let b = 0; b < 40; b++) assert.equal(lengths.get(b)!.length, 4 * 4);
  // A short long request: its row tiles within the ratio of the share, no split.
  const ratioOf = (old: number) => {
    const q = varlen(old);
    const units = rowTilesOf(q, 32).map((t) => Math.ceil(t.kend / 32));
    const share = (units.reduce((a, b) => a + b, 0) * q.numKvHeads) / residentItems(32);
    return Math.max(...units) / share;
  };
  const olds = Array.from({ length: 4000 }, (_, i) => i);
  const edge = olds.find((old) => ratioOf(old) >= BALANCE_MIN_RATIO)!;
  assert.notEqual(balancedSplit(varlen(edge), 32, 32, 128), null);
  assert.equal(balancedSplit(varlen(edge - 1), 32, 32, 128), null);
  // Fewer items than splitBelow: the default rules split it already.
  assert.equal(balancedSplit(varlen(4000, 1), 32, 32, 1e6), null);
});

Deno.test("flashSplitDefaults() leaves f16 tiles unsplit from 128 row tiles on and splits fewer towards 512 items", () => {
  const llama = (batch: number, qLen: number, old: number) =>
    ({
      qDtype: "f16",
      cacheDtype: "f16",
      batch,
      totalQ: batch * qLen,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 128,
      pageSize: 64,
      numPages: batch * 520,
      poolTokens: batch * 520 * 64,
      maxPagesPerReq: 520,
      isCausal: true,
      smScale: 0.088,
      softcap: 0,
      qLens: Array(batch).fill(qLen),
      cacheLens: Array(batch).fill(old),
      qStarts: Array.from({ length: batch }, (_, b) => b * qLen),
    }) as const;
  const f16Tile: FlashTile = { ...small, rows: 64, keys: 64, f16Math: true };
  const list = (p: ReturnType<typeof llama>, tile: FlashTile) => {
    const d = flashSplitDefaults(tile);
    return buildWorkList(p, tile.rows, tile.keys, d);
  };
  // Seed: 32 row tiles x 8 KV heads = 256 items, unsplit.
  const seed = list(llama(1, 512, 4096), f16Tile);
  assert.deepEqual([seed.count, seed.split], [256, false]);
  // Decode q16 shape: 8 x 1 row tile x 8 heads = 64 items, split to about 512.
  const q16 = list(llama(8, 16, 32000), f16Tile);
  assert.ok(q16.split && q16.count >= 448 && q16.count <= 576, `${q16.count}`);
  // The f32 tiles keep splitting the seed towards 1024 items.
  const f32 = list(llama(1, 512, 4096), { ...f16Tile, f16Math: false });
  assert.ok(f32.split && f32.count > 256, `${f32.count}`);
});

Deno.test("planFlash() matches the reference for decode-like rows with a one-row-per-thread tile", async () => {
  await check({
    qDtype: "f16",
    cacheDtype: "int8",
    qLens: [1, 2, 1],
    cacheLens: [300, 77, 129],
    heads: 8,
    kvHeads: 2,
    headDim: 32,
    pageSize: 16,
    seed: 16,
  }, {
    tile: { rows: 8, keys: 32, threads: 64, sRows: 1, oRows: 1, unrollD: false },
    targetItems: 32,
    minSplitTiles: 2,
  });
});

Deno.test("chooseFlashTile() finds a tile for every head_dim multiple of 16 and cache dtype", () => {
  const limits = [
    { workgroupBytes: 32768, invocations: 1024 }, // lavapipe
    { workgroupBytes: 49152, invocations: 1024 }, // NVIDIA Vulkan
    { workgroupBytes: 32768, invocations: 256, f16: true }, // f16 arithmetic tiles first
    { workgroupBytes: 49152, invocations: 256, f16: true },
  ];
  for (const lim of limits) {
    for (let D = 16; D <= 256; D += 16) {
      for (const cacheDtype of ["f16", "fp8_e4m3"] as const) {
        for (const qLen of [1, 512]) {
          const problem = {
            qDtype: "f16",
            cacheDtype,
            batch: 1,
            totalQ: qLen,
            numHeads: 8,
            numKvHeads: 2,
            headDim: D,
            pageSize: 16,
            numPages: 64,
            poolTokens: 1024,
            maxPagesPerReq: 64,
            isCausal: true,
            smScale: 0.1,
            softcap: 0,
            qLens: [qLen],
            qStarts: [0],
            cacheLens: [100],
          } as const;
          if (!chooseFlashTile(problem, lim)) {
            throw new Error(`no tile for D ${D} ${cacheDtype} q ${qLen} in ${lim.workgroupBytes}`);
          }
        }
      }
    }
  }
});

Deno.test("planFlash() matches the reference with the smallest fallback tile (D16, fp8)", async () => {
  await check({
    qDtype: "bf16",
    cacheDtype: "fp8_e4m3",
    qLens: [6, 3],
    cacheLens: [21, 50],
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    pageSize: 1,
    seed: 17,
  });
});

// -- the pipelined loop (PERF_LOG v3): 16-bit K/V tiles (kv16) or f32, 2 barriers per tile --

const pipe16: FlashTile = { ...small, unrollD: false, pipelined: true, kv16: true };
const pipe32: FlashTile = { ...small, unrollD: false, pipelined: true };

Deno.test("pipelined planFlash() matches the reference for a causal GQA f16 batch with 16-bit K/V tiles", async () => {
  await check({
    qDtype: "f16",
    qLens: [5, 19, 0, 1],
    cacheLens: [37, 3, 9, 70],
    heads: 4,
    kvHeads: 2,
    headDim: 32,
    pageSize: 8,
    seed: 21,
  }, { tile: pipe16, targetItems: 0 });
});

Deno.test("pipelined planFlash() matches the reference for fp8 and int8 caches (f32 K/V tiles)", async () => {
  await checkByteCaches(pipe32, 22);
});

Deno.test("pipelined planFlash() matches the reference with split-KV (bf16, page-aligned)", async () => {
  await check({
    qDtype: "bf16",
    qLens: [3, 1],
    cacheLens: [150, 97],
    heads: 8,
    kvHeads: 2,
    headDim: 16,
    pageSize: 32,
    seed: 23,
  }, { tile: pipe16, targetItems: 64, minSplitTiles: 2 });
});

Deno.test("pipelined planFlash() matches the reference non-causal with softcap and MHA", async () => {
  await check({
    qDtype: "f16",
    qLens: [7, 12],
    cacheLens: [20, 5],
    heads: 3,
    kvHeads: 3,
    headDim: 16,
    pageSize: 4,
    isCausal: false,
    softcap: 5,
    seed: 24,
  }, { tile: pipe16, targetItems: 0 });
});

Deno.test("pipelined planFlash() matches the reference with its default tiles for D64, D128 and D256", async () => {
  for (const [headDim, qLen, cacheLen] of [[64, 33, 40], [128, 20, 50], [256, 9, 30]]) {
    await check({
      qDtype: "f16",
      qLens: [qLen!],
      cacheLens: [cacheLen!],
      heads: 4,
      kvHeads: 2,
      headDim: headDim!,
      pageSize: 16,
      seed: 25 + headDim!,
    }, { pipelined: true });
  }
});

Deno.test("pipelined planFlash() matches the reference for decode-like rows (f16 and int8, split)", async () => {
  for (const cacheDtype of ["f16", "int8"] as const) {
    await check({
      qDtype: "f16",
      cacheDtype,
      qLens: [1, 2, 1],
      cacheLens: [300, 77, 129],
      heads: 8,
      kvHeads: 2,
      headDim: 32,
      pageSize: 16,
      seed: 26,
    }, {
      tile: {
        rows: 8,
        keys: 32,
        threads: 64,
        sRows: 1,
        oRows: 1,
        unrollD: false,
        pipelined: true,
        kv16: cacheDtype === "f16",
      },
      targetItems: 32,
      minSplitTiles: 2,
    });
  }
});

Deno.test("choosePipelinedTile() picks 64x32 with 16-bit K/V on 48 KiB and a smaller tile on 32 KiB", () => {
  const problem = {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 1,
    totalQ: 512,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    pageSize: 64,
    numPages: 72,
    poolTokens: 4608,
    maxPagesPerReq: 72,
    isCausal: true,
    smScale: 0.1,
    softcap: 0,
    qLens: [512],
    qStarts: [0],
    cacheLens: [4096],
  } as const;
  const h200 = choosePipelinedTile(problem, { workgroupBytes: 49152, invocations: 1024 });
  if (h200?.rows !== 64 || h200.keys !== 32 || h200.threads !== 256 || !h200.kv16) {
    throw new Error(JSON.stringify(h200));
  }
  const lvp = choosePipelinedTile(problem, { workgroupBytes: 32768, invocations: 1024 });
  if (lvp?.rows !== 32 || !lvp.pipelined) throw new Error(JSON.stringify(lvp));
  const fp8 = choosePipelinedTile(
    { ...problem, cacheDtype: "fp8_e4m3" },
    { workgroupBytes: 49152, invocations: 1024 },
  );
  if (fp8?.keys !== 16 || fp8.kv16) throw new Error(JSON.stringify(fp8));
});

// -- f16 arithmetic (f16Math): f16 tiles, vec4<f16> products, partial sums flushed into f32 --

const half: FlashTile = { ...small, unrollD: false, f16Math: true };

Deno.test("f16Math planFlash() matches the reference for a causal GQA f16 batch, flushing by default, every step or once per tile", async () => {
  for (const flush of [{}, { f16QkFlush: 1, f16PvFlush: 4 }, { f16QkFlush: 4, f16PvFlush: 16 }]) {
    await check({
      qDtype: "f16",
      qLens: [5, 19, 0, 1],
      cacheLens: [37, 3, 9, 70],
      heads: 4,
      kvHeads: 2,
      headDim: 64,
      pageSize: 8,
      seed: 31,
    }, { tile: { ...half, ...flush }, targetItems: 0 });
  }
});

Deno.test("f16Math planFlash() matches the reference at D128 with split-KV, page-aligned tiles and a rolled D loop", async () => {
  await check({
    qDtype: "f16",
    qLens: [6, 1],
    cacheLens: [300, 140],
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    pageSize: 32,
    seed: 32,
  }, { tile: half, targetItems: 48, minSplitTiles: 2 });
});

Deno.test("f16Math planFlash() matches the reference for fp8 and int8 caches (scaled codes in f16 tiles)", async () => {
  await checkByteCaches(half, 34);
});

Deno.test("f16Math planFlash() matches the reference non-causal with softcap (MHA, unrolled D)", async () => {
  await check({
    qDtype: "f16",
    qLens: [7, 12],
    cacheLens: [20, 5],
    heads: 3,
    kvHeads: 3,
    headDim: 32,
    pageSize: 4,
    isCausal: false,
    softcap: 5,
    seed: 33,
  }, { tile: { ...half, unrollD: true }, targetItems: 0 });
});

// -- qGlobal: the f16 Q tile in a global scratch buffer instead of workgroup memory --

const qGlobalTile: FlashTile = { ...half, qGlobal: true };

// -- Rows that see few keys: precise items (F16_PRECISE_KEYS) --

Deno.test("buildWorkList() marks the items of the row tiles its precise filter accepts, and only those", () => {
  const problem = {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 3,
    totalQ: 70,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    pageSize: 16,
    numPages: 40,
    poolTokens: 640,
    maxPagesPerReq: 20,
    isCausal: true,
    smScale: 0.25,
    softcap: 0,
    qLens: [40, 10, 20],
    cacheLens: [0, 300, 5],
    qStarts: [0, 40, 50],
  } as const;
  const items = (l: WorkList) =>
    Array.from({ length: l.count }, (_, i) => Array.from(l.items.slice(8 * i, 8 * i + 8)));
  const plain = buildWorkList(problem, 8, 8, { targetItems: 0 });
  assert.equal(plain.preciseCount, 0);
  assert.ok(items(plain).every((it) => it[7] === 0));
  const marked = buildWorkList(problem, 8, 8, { targetItems: 0 }, (t) => t.kbegin <= 16);
  // 4 queries per row tile (8 rows, group 2). Request 0 (no prefix): tiles 0-3 start at <= 16
  // keys (query 12 sees 13); request 2 (5 old keys): tiles 0-2 (query 8 sees 14); request 1
  // none; times 2 KV heads.
  assert.equal(marked.preciseCount, 2 * (4 + 3));
  for (const it of items(marked)) {
    const [b, , f0] = it;
    const firstKeys = problem.cacheLens[b!]! + Math.floor(f0! / 2) + 1;
    assert.equal(it[7], firstKeys <= 16 ? 1 : 0, JSON.stringify(it));
  }
  // The marks change nothing else.
  const unmark = (l: WorkList) => items(l).map((it) => it.slice(0, 7).join()).sort();
  assert.deepEqual(unmark(marked), unmark(plain));
  // The launch order weighs a precise item's units by PRECISE_ITEM_COST: non-increasing cost,
  // and a precise item of 2 tiles before an f16 item of 3 (request 0's tile 2 against request 2's
  // tile 3, whose first query sees 5 + 12 + 1 keys).
  const costs = items(marked).map((it) => itemCost(it));
  assert.ok(costs.every((c, i) => i === 0 || c <= costs[i - 1]!), costs.join());
  assert.equal(PRECISE_ITEM_COST, 2);
  const at = (b: number, f0: number) =>
    items(marked).findIndex((it) => it[0] === b && it[2] === f0 && it[1] === 0);
  assert.ok(at(0, 16) < at(2, 24), `${at(0, 16)} >= ${at(2, 24)}`);
  // preciseCost 1 (tune.ts's sweep): units alone, the f16 item of 3 tiles first.
  const byUnits = buildWorkList(
    problem,
    8,
    8,
    { targetItems: 0, preciseCost: 1 },
    (t) => t.kbegin <= 16,
  );
  const at1 = (b: number, f0: number) =>
    items(byUnits).findIndex((it) => it[0] === b && it[2] === f0 && it[1] === 0);
  assert.ok(at1(0, 16) > at1(2, 24), `${at1(0, 16)} <= ${at1(2, 24)}`);
  assert.equal(itemCost([0, 0, 0, 0, 0, 2, 16, 1], 3), 6);
});

Deno.test("planFlash() runs the rows that see few keys as precise items: a property-test case at 1.01x the tolerance on its f16 tile passes", async () => {
  // tests/property_test.ts, PP_TEST_SEED=661967124 (D32, fp8): on the default f16 tile one
  // element of the 22-key row was at 1.01x SPEC §4's f16 tolerance.
  const g = await gpu();
  const { inputs, params } = generateCase(
    adHocCase({
      batch: 2,
      heads: 8,
      headsKv: 2,
      headDim: 32,
      qLen: [2, 22],
      cacheLen: [159, 0],
      pageSize: 2,
      causal: true,
      softcap: null,
      smScale: null,
      dtype: "f16",
      cacheDtype: "fp8",
      pageOrder: "permuted",
    }),
    661967124,
  );
  const problem = validateProblem(inputs, params);
  const expected = referenceAttention(inputs, problem);
  // The f16 tile lavapipe's 32 KB pick for D32 (the default before F16_MIN_FLOPS sent problems
  // this small to the f32 tiles).
  const tile: FlashTile = {
    rows: 32,
    keys: 32,
    threads: 64,
    sRows: 2,
    oRows: 4,
    unrollD: false,
    f16Math: true,
    fp8Alu: true,
    lateNew: true,
  };
  const run = async (options: FlashOptions) => {
    const dev = uploadInputs(g, inputs, problem);
    const plan = await planFlash(g, dev, options);
    try {
      const out = await runKernelPlan(g, plan, dev, inputs);
      return { output: compareOutput(out.o, expected, problem), key: plan.key };
    } finally {
      plan.destroy();
      dev.destroy();
    }
  };
  // The premise: every row on the f16 tile as it is fails (the case this test guards).
  const plain = await run({ tile, preciseKeys: 0 });
  assert.ok(!plain.output.ok, describeOutputCheck(plain.output));
  // Request 1 (no prefix) precise, request 0 (160+ keys) not.
  const planned = await run({ tile, preciseKeys: F16_PRECISE_KEYS });
  assert.ok(planned.output.ok, describeOutputCheck(planned.output));
  // f32 products in both QK^T and PV: 0.22 of the tolerance on lavapipe; with f16 QK^T left in
  // the precise copy 0.49, with f16 PV 0.63.
  assert.ok(planned.output.toleranceUsed < 0.35, describeOutputCheck(planned.output));
  assert.match(planned.key, /_hm_.*_px(_|$)/);
  // The default plan of a problem this small: f32 tiles (F16_MIN_FLOPS).
  const small = await run({});
  assert.doesNotMatch(small.key, /_hm/);
  assert.ok(small.output.ok, describeOutputCheck(small.output));
});

Deno.test("planFlash() takes the f32 tile when every item would be precise, and f16 products otherwise", async () => {
  // Problems above F16_MIN_FLOPS (32 requests of 48 queries, group 4, D128); plans only, the
  // outputs of both paths are checked above and below.
  const g = await gpu();
  const keyOf = async (cacheLens: (b: number) => number) => {
    const { inputs, params } = makeTestCase({
      qDtype: "f16",
      qLens: Array(32).fill(48),
      cacheLens: Array.from({ length: 32 }, (_, b) => cacheLens(b)),
      heads: 32,
      kvHeads: 8,
      headDim: 128,
      pageSize: 16,
      seed: 72,
    });
    const problem = validateProblem(inputs, params);
    assert.ok(attentionFlops(problem) >= F16_MIN_FLOPS);
    const dev = uploadInputs(g, inputs, problem);
    try {
      const plan = await planFlash(g, dev);
      plan.destroy();
      return plan.key;
    } finally {
      dev.destroy();
    }
  };
  // Every row sees at most 48 keys: one copy of the loop, f32 products.
  const short = await keyOf(() => 0);
  assert.doesNotMatch(short, /_hm/, short);
  // Half the requests past the threshold: f16 tiles, precise items for the others.
  const mixed = await keyOf((b) => (b % 2 ? 300 : 0));
  assert.match(mixed, /_hm.*_px/, mixed);
  // No request under it: no precise copy.
  const long = await keyOf(() => 80);
  assert.match(long, /_hm/, long);
  assert.doesNotMatch(long, /_px/, long);
});

Deno.test("planFlash() with precise items matches the reference beside split-KV items, for bf16 q, byte caches, D128, an unrolled D loop and Q in global memory", async () => {
  const tile = { ...half, rows: 16, keys: 16 };
  for (
    const [qDtype, cacheDtype, headDim, shape] of [
      ["bf16", "bf16", 64, tile],
      ["f16", "int8", 128, tile],
      ["bf16", "fp8_e4m3", 32, { ...tile, unrollD: true }],
      ["f16", "f16", 64, { ...tile, unrollD: true }],
      ["bf16", "int8", 64, { ...tile, qGlobal: true, lateNew: true, int8Alu: true }],
    ] as const
  ) {
    // Request 0: 3 queries over 600 old keys (split); 1: no prefix; 2: 40 old keys, so its
    // first rows see <= 64 keys and its last ones more; 3: non-empty chunk of 0 queries.
    const key = await check({
      qDtype,
      cacheDtype,
      qLens: [3, 30, 60, 0],
      cacheLens: [600, 0, 40, 7],
      heads: 4,
      kvHeads: 2,
      headDim,
      pageSize: 16,
      seed: 71,
    }, { tile: shape, preciseKeys: F16_PRECISE_KEYS, targetItems: 64 });
    assert.match(key, /_split_.*_px(_|$)/, key);
  }
});

Deno.test("qGlobal planFlash() matches the reference for f16 and bf16 q, unsplit and split-KV", async () => {
  for (
    const [qDtype, options] of [
      ["f16", { targetItems: 0 }],
      ["bf16", { targetItems: 48, minSplitTiles: 2 }],
    ] as const
  ) {
    await check({
      qDtype,
      qLens: [5, 19, 0, 33],
      cacheLens: [37, 3, 9, 70],
      heads: 8,
      kvHeads: 2,
      headDim: 128,
      pageSize: 16,
      seed: 41,
    }, { tile: qGlobalTile, ...options });
  }
});

Deno.test("qGlobal planFlash() matches the reference at D256 with two D chunks per thread (the default D256 shape, scaled down)", async () => {
  await check({
    qDtype: "bf16",
    qLens: [9, 40],
    cacheLens: [100, 7],
    heads: 4,
    kvHeads: 1,
    headDim: 256,
    pageSize: 32,
    seed: 43,
  }, {
    tile: { ...qGlobalTile, rows: 32, keys: 32, threads: 128, sRows: 2, oRows: 8 },
    targetItems: 0,
  });
});

Deno.test("qGlobal planFlash() matches the reference for fp8 and int8 caches", async () => {
  await checkByteCaches(qGlobalTile, 42);
});

Deno.test("fp8Alu planFlash() matches the reference for fp8 caches on f16 tiles (int8 unchanged)", async () => {
  await checkByteCaches({ ...half, fp8Alu: true }, 44);
  await checkByteCaches({ ...qGlobalTile, fp8Alu: true }, 45);
});

// -- lateNew: byte chunks stage the pool's word only; new tokens' words load at the store --

Deno.test("lateNew planFlash() matches the reference for fp8 and int8 caches on f32, f16 and qGlobal tiles", async () => {
  await checkByteCaches({ ...small, lateNew: true }, 46);
  await checkByteCaches({ ...half, fp8Alu: true, lateNew: true }, 47);
  await checkByteCaches({ ...qGlobalTile, fp8Alu: true, lateNew: true }, 48);
});

Deno.test("int8Alu planFlash() matches the reference for int8 caches on f32, f16 and qGlobal tiles, with and without lateNew", async () => {
  for (
    const [tile, seed] of [
      [{ ...small, int8Alu: true }, 81],
      [{ ...half, int8Alu: true }, 82],
      [{ ...half, int8Alu: true, lateNew: true }, 83],
      [{ ...qGlobalTile, int8Alu: true, lateNew: true }, 84],
    ] as const
  ) {
    const key = await check({
      qDtype: "f16",
      cacheDtype: "int8",
      qLens: [9, 4],
      cacheLens: [140, 17],
      heads: 2,
      kvHeads: 1,
      headDim: 32,
      pageSize: 16,
      seed,
    }, { tile, targetItems: 0 });
    assert.match(key, /_ia(_|$)/, key);
  }
  // bf16 q (each tile's factors from its maxima) with split-KV at D128.
  await check({
    qDtype: "bf16",
    cacheDtype: "int8",
    qLens: [5, 1],
    cacheLens: [300, 90],
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    pageSize: 32,
    seed: 85,
  }, { tile: { ...half, int8Alu: true, lateNew: true }, targetItems: 48, minSplitTiles: 2 });
});

Deno.test("lateNew planFlash() matches the reference for bf16 q (the tile maxima read the new tokens' words) with split-KV", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    await check({
      qDtype: "bf16",
      cacheDtype,
      qLens: [6, 1, 0, 29],
      cacheLens: [300, 140, 20, 3],
      heads: 8,
      kvHeads: 2,
      headDim: 64,
      pageSize: 32,
      seed: 49,
    }, { tile: { ...half, fp8Alu: true, lateNew: true }, targetItems: 48, minSplitTiles: 2 });
  }
});

// -- byteChunk: byte chunks of 8 codes (one vec2<u32>) or 4 (one u32) instead of 16 --

Deno.test("byteChunk 8 and 4 planFlash() match the reference for fp8 and int8 caches on f32, f16 and qGlobal tiles", async () => {
  for (const byteChunk of [8, 4] as const) {
    await checkByteCaches({ ...small, byteChunk }, 51);
    await checkByteCaches({ ...half, fp8Alu: true, byteChunk }, 52);
    await checkByteCaches({ ...qGlobalTile, fp8Alu: true, byteChunk }, 54);
  }
  // fp8 through the workgroup table; 8-code chunks with their new tokens loaded late.
  await checkByteCaches({ ...half, byteChunk: 8 }, 53);
  await checkByteCaches({ ...half, fp8Alu: true, byteChunk: 8, lateNew: true }, 57);
});

Deno.test("byteChunk 8 and 4 planFlash() match the reference for bf16 q at D128 (split-KV) and D256", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    for (const byteChunk of [8, 4] as const) {
      await check({
        qDtype: "bf16",
        cacheDtype,
        qLens: [6, 1, 0, 29],
        cacheLens: [150, 70, 20, 3],
        heads: 8,
        kvHeads: 2,
        headDim: 128,
        pageSize: 32,
        seed: 55,
      }, { tile: { ...half, fp8Alu: true, byteChunk }, targetItems: 48, minSplitTiles: 2 });
    }
    await check({
      qDtype: "bf16",
      cacheDtype,
      qLens: [9, 20],
      cacheLens: [70, 7],
      heads: 4,
      kvHeads: 1,
      headDim: 256,
      pageSize: 32,
      seed: 56,
    }, {
      tile: {
        ...qGlobalTile,
        rows: 32,
        keys: 32,
        threads: 128,
        sRows: 2,
        oRows: 8,
        fp8Alu: true,
        byteChunk: 8,
      },
      targetItems: 0,
    });
  }
});

Deno.test("lateNew and byteChunk are refused without a 1-byte cache or on the pipelined loop, and dropped by flashSpecFor for 16-bit caches", () => {
  const base: FlashSpec = {
    qDtype: "f16",
    cacheDtype: "fp8_e4m3",
    headDim: 32,
    ...small,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    lateNew: true,
  };
  assert.equal(flashSpecProblem(base), null);
  assert.match(flashKey(base), /_ln$/);
  assert.equal(flashSpecProblem({ ...base, cacheDtype: "f16" }), "lateNew needs a 1-byte cache");
  assert.equal(flashSpecProblem({ ...base, cacheDtype: "f32" }), "lateNew needs a 1-byte cache");
  assert.equal(flashSpecProblem({ ...base, pipelined: true }), "lateNew needs the v2 loop");
  const chunked: FlashSpec = { ...base, lateNew: false, byteChunk: 8 };
  assert.equal(flashSpecProblem(chunked), null);
  assert.match(flashKey(chunked), /_bc8$/);
  assert.equal(flashGeometry(chunked).chunkElems, 8);
  assert.equal(flashGeometry({ ...chunked, byteChunk: 4 }).chunkElems, 4);
  assert.equal(flashGeometry({ ...chunked, byteChunk: undefined }).chunkElems, 16);
  assert.equal(
    flashSpecProblem({ ...chunked, cacheDtype: "bf16" }),
    "byteChunk needs a 1-byte cache",
  );
  assert.equal(flashSpecProblem({ ...chunked, pipelined: true }), "byteChunk needs the v2 loop");
  assert.equal(
    flashSpecProblem({ ...chunked, byteChunk: 2 as 4 }),
    "byteChunk 2 is not 4, 8 or 16",
  );
  const problem: Problem = {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 1,
    totalQ: 8,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    pageSize: 16,
    numPages: 4,
    poolTokens: 64,
    maxPagesPerReq: 4,
    isCausal: true,
    smScale: 0.1,
    softcap: 0,
    qLens: [8],
    qStarts: [0],
    cacheLens: [40],
  };
  const tile = { ...small, lateNew: true };
  assert.equal(tileProblem(problem, tile, { workgroupBytes: 32768, invocations: 256 }), null);
  assert.equal(flashSpecFor(problem, tile, false).lateNew, undefined);
  assert.equal(flashSpecFor({ ...problem, cacheDtype: "int8" }, tile, false).lateNew, true);
  const chunkedTile = { ...small, byteChunk: 8 as const };
  assert.equal(flashSpecFor(problem, chunkedTile, false).byteChunk, undefined);
  assert.equal(
    flashSpecFor({ ...problem, cacheDtype: "fp8_e4m3" }, chunkedTile, false).byteChunk,
    8,
  );
});

Deno.test("int8Alu is refused without an int8 cache and dropped by flashSpecFor for other caches", () => {
  const spec: FlashSpec = {
    qDtype: "f16",
    cacheDtype: "int8",
    headDim: 32,
    ...small,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    int8Alu: true,
  };
  assert.equal(flashSpecProblem(spec), null);
  assert.match(flashKey(spec), /_ia$/);
  assert.ok(flashWgsl(spec).includes("fn int8x4("));
  assert.ok(!flashWgsl(spec).includes("fn decode_int8("));
  assert.ok(flashWgsl({ ...spec, int8Alu: false }).includes("fn decode_int8("));
  for (const cacheDtype of ["f16", "bf16", "fp8_e4m3", "f32"] as const) {
    assert.equal(flashSpecProblem({ ...spec, cacheDtype }), "int8Alu needs an int8 cache");
  }
  const problem: Problem = {
    qDtype: "f16",
    cacheDtype: "fp8_e4m3",
    batch: 1,
    totalQ: 8,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    pageSize: 16,
    numPages: 4,
    poolTokens: 64,
    maxPagesPerReq: 4,
    isCausal: true,
    smScale: 0.1,
    softcap: 0,
    qLens: [8],
    qStarts: [0],
    cacheLens: [40],
  };
  const tile = { ...small, int8Alu: true };
  assert.equal(flashSpecFor(problem, tile, false).int8Alu, undefined);
  assert.equal(flashSpecFor({ ...problem, cacheDtype: "int8" }, tile, false).int8Alu, true);
  // The f16 tiles decode int8 by bit placement by default (v12); the f32 ones do not.
  const h200 = { workgroupBytes: 49152, invocations: 1024, f16: true, storageBuffers: 12 };
  for (const headDim of [64, 128, 256]) {
    const int8 = {
      ...problem,
      cacheDtype: "int8" as const,
      headDim,
      smScale: headDim ** -0.5,
      qLens: [512],
      cacheLens: [4096],
      numHeads: 32,
      numKvHeads: 8,
    };
    assert.equal(chooseFlashTile(int8, h200)?.int8Alu, true, `D${headDim}`);
    assert.equal(chooseFlashTile(int8, { ...h200, f16: false })?.int8Alu, undefined);
  }
});

Deno.test("preciseItems is refused without f16Math or on the pipelined loop, and spelled in the key", () => {
  const spec: FlashSpec = {
    qDtype: "f16",
    cacheDtype: "f16",
    headDim: 32,
    ...small,
    unrollD: false,
    f16Math: true,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    preciseItems: true,
  };
  assert.equal(flashSpecProblem(spec), null);
  assert.match(flashKey(spec), /_hm_px$/);
  assert.ok(flashWgsl(spec).includes("let precise_item = it1.w != 0u;"));
  assert.ok(!flashWgsl({ ...spec, preciseItems: false }).includes("precise_item"));
  const refused = "preciseItems needs f16Math and the v2 loop";
  assert.equal(flashSpecProblem({ ...spec, f16Math: false }), refused);
  assert.equal(flashSpecProblem({ ...spec, pipelined: true, kv16: true }), refused);
});

Deno.test("chooseFlashTile() loads byte caches' new tokens late on D64 and D256 tiles, not on the 64-row D128 tile", () => {
  const h200 = { workgroupBytes: 49152, invocations: 1024, f16: true, storageBuffers: 12 };
  const problem = (headDim: number, cacheDtype: Problem["cacheDtype"]): Problem => ({
    qDtype: "f16",
    cacheDtype,
    batch: 1,
    totalQ: 512,
    numHeads: 32,
    numKvHeads: 8,
    headDim,
    pageSize: 64,
    numPages: 72,
    poolTokens: 4608,
    maxPagesPerReq: 72,
    isCausal: true,
    smScale: 1 / Math.sqrt(headDim),
    softcap: 0,
    qLens: [512],
    qStarts: [0],
    cacheLens: [4096],
  });
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    const d128 = chooseFlashTile(problem(128, cacheDtype), h200)!;
    assert.equal(d128.rows, 64);
    assert.equal(flashSpecFor(problem(128, cacheDtype), d128, false).lateNew, undefined);
    for (const headDim of [64, 256]) {
      const tile = chooseFlashTile(problem(headDim, cacheDtype), h200)!;
      assert.equal(
        flashSpecFor(problem(headDim, cacheDtype), tile, false).lateNew,
        true,
        `D${headDim}`,
      );
    }
  }
});

/** The manifest's varlen row (mostly new keys) with `qDtype` q over a `cacheDtype` cache. */
function varlenProblem(qDtype: "f16" | "bf16", cacheDtype: Problem["cacheDtype"]): Problem {
  const qLens = [100, 0, 37, 256, 1, 513];
  return {
    qDtype,
    cacheDtype,
    batch: 6,
    totalQ: 907,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    pageSize: 32,
    numPages: 390,
    poolTokens: 12480,
    maxPagesPerReq: 65,
    isCausal: true,
    smScale: 128 ** -0.5,
    softcap: 0,
    qLens,
    qStarts: qLens.map((_, i) => qLens.slice(0, i).reduce((a, b) => a + b, 0)),
    cacheLens: [0, 300, 1000, 17, 2048, 64],
  };
}

Deno.test("newKeyShare() counts the (row, key) pairs on new tokens, causal and not", () => {
  // Causal: rows see 2 old + 1..3 new keys (6 of 12), and 0 old + 1 new (1 of 1).
  assert.equal(newKeyShare({ qLens: [3, 1], cacheLens: [2, 0], isCausal: true }), 7 / 13);
  // Non-causal: every row sees all 3 new and 2 old keys.
  assert.equal(newKeyShare({ qLens: [3], cacheLens: [2], isCausal: false }), 9 / 15);
  assert.equal(newKeyShare({ qLens: [0, 0], cacheLens: [5, 0], isCausal: true }), 0);
  assert.ok(Math.abs(newKeyShare(varlenProblem("f16", "f16")) - 0.691) < 1e-3);
});

Deno.test("chooseFlashTile() stages new tokens with the codes on f16 q's 32-row byte tiles where most keys are new, late elsewhere", () => {
  const h200 = { workgroupBytes: 49152, invocations: 1024, f16: true, storageBuffers: 12 };
  const lateNew = (p: Problem) => {
    const tile = chooseFlashTile(p, h200)!;
    assert.equal(tile.rows, 32);
    return flashSpecFor(p, tile, false).lateNew;
  };
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    assert.equal(lateNew(varlenProblem("f16", cacheDtype)), undefined, cacheDtype);
    assert.equal(lateNew(varlenProblem("bf16", cacheDtype)), true, cacheDtype);
    // The same batch with more old tokens: new keys under half of them.
    const older = (extra: number): Problem => {
      const p = varlenProblem("f16", cacheDtype);
      return { ...p, cacheLens: p.cacheLens.map((c) => c + extra) };
    };
    const share = (extra: number) => newKeyShare(older(extra));
    // The smallest extra prefix that takes the share under the threshold.
    let edge = 0;
    while (share(edge) >= LATE_NEW_MAX_NEW_SHARE) edge++;
    assert.equal(lateNew(older(edge - 1)), undefined, `${cacheDtype} +${edge - 1}`);
    assert.equal(lateNew(older(edge)), true, `${cacheDtype} +${edge}`);
  }
});

Deno.test("chooseFlashTile() bounds bf16-q int8 tiles under 64 rows by the new tokens (byteNewBound) and folds the 64-row ones", () => {
  const h200 = { workgroupBytes: 49152, invocations: 1024, f16: true, storageBuffers: 12 };
  const varlen = varlenProblem("bf16", "int8");
  const small = flashSpecFor(varlen, chooseFlashTile(varlen, h200)!, false);
  assert.equal(small.rows, 32);
  assert.equal(small.byteNewBound, true);
  assert.equal(small.int8Fold, undefined);
  assert.match(flashKey(small), /_nb(_|$)/);
  // f16 q on the same tile: neither (no per-tile guard to replace).
  const f16 = varlenProblem("f16", "int8");
  const f16Spec = flashSpecFor(f16, chooseFlashTile(f16, h200)!, false);
  assert.equal(f16Spec.byteNewBound, undefined);
  assert.equal(f16Spec.int8Fold, undefined);
  // One long request: 64-row tiles, folded.
  const long: Problem = {
    ...varlen,
    batch: 1,
    totalQ: 512,
    qLens: [512],
    qStarts: [0],
    cacheLens: [4096],
    numPages: 144,
    poolTokens: 4608,
    maxPagesPerReq: 144,
  };
  const big = flashSpecFor(long, chooseFlashTile(long, h200)!, false);
  assert.equal(big.rows, 64);
  assert.equal(big.int8Fold, true);
  assert.equal(big.byteNewBound, undefined);
});

Deno.test("byteNewBound is refused without a 1-byte cache, f16Math, on the pipelined loop or with int8Fold", () => {
  const spec: FlashSpec = {
    qDtype: "bf16",
    cacheDtype: "int8",
    headDim: 32,
    ...small,
    f16Math: true,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    byteNewBound: true,
  };
  assert.equal(flashSpecProblem(spec), null);
  assert.equal(flashSpecProblem({ ...spec, cacheDtype: "fp8_e4m3" }), null);
  const why = "byteNewBound needs a 1-byte cache, f16Math and the v2 loop";
  for (const cacheDtype of ["f16", "bf16", "f32"] as const) {
    assert.equal(flashSpecProblem({ ...spec, cacheDtype }), why);
  }
  assert.equal(flashSpecProblem({ ...spec, f16Math: false }), why);
  assert.equal(flashSpecProblem({ ...spec, pipelined: true }), why);
  assert.equal(
    flashSpecProblem({ ...spec, int8Fold: true }),
    "byteNewBound and int8Fold exclude each other",
  );
});

Deno.test("qGlobal tiles declare no workgroup memory for Q", () => {
  const spec: FlashSpec = {
    qDtype: "f16",
    cacheDtype: "f16",
    headDim: 128,
    rows: 64,
    keys: 32,
    threads: 256,
    sRows: 2,
    oRows: 4,
    causal: true,
    softcap: false,
    pageAligned: true,
    split: false,
    unrollD: false,
    f16Math: true,
  };
  const withQ = flashGeometry(spec).workgroupBytes;
  const without = flashGeometry({ ...spec, qGlobal: true }).workgroupBytes;
  assert.equal(withQ - without, 64 * (128 / 4 + 1) * 8);
  assert.notEqual(flashKey(spec), flashKey({ ...spec, qGlobal: true }));
});

/** 1 for each pool slot the attention reads (positions below each request's old), else 0. */
function slotsRead(inputs: PagedPrefillInputs, problem: Problem): Uint8Array {
  const read = new Uint8Array(problem.poolTokens);
  const table = inputs.blockTable.data as Int32Array;
  for (let b = 0; b < problem.batch; b++) {
    for (let pos = 0; pos < problem.cacheLens[b]!; pos++) {
      const page = table[b * problem.maxPagesPerReq + Math.floor(pos / problem.pageSize)]!;
      read[page * problem.pageSize + (pos % problem.pageSize)] = 1;
    }
  }
  return read;
}

/** `compareOutput()` of a flash run, with the largest |ref| and decoded K or V value. */
async function errorOf(
  o: TestCaseOptions,
  options: FlashOptions,
  scales?: (s: Float32Array) => void,
  edit?: (inputs: PagedPrefillInputs, problem: Problem) => void,
): Promise<OutputCheck & { maxRef: number; maxCache: number }> {
  const g = await gpu();
  const { inputs, params } = makeTestCase(o);
  if (scales) { for (const t of [inputs.kScale!, inputs.vScale!]) scales(t.data as Float32Array); }
  const problem = validateProblem(inputs, params);
  edit?.(inputs, problem);
  // Largest decoded K or V value the attention reads (positions below each request's old).
  let maxCache = 0;
  const rowElems = problem.numKvHeads * problem.headDim;
  const read = slotsRead(inputs, problem);
  for (const [pool, scale] of [[inputs.kPages, inputs.kScale], [inputs.vPages, inputs.vScale]]) {
    if (!scale) continue;
    for (let slot = 0; slot < problem.poolTokens; slot++) {
      if (!read[slot]) continue;
      for (let e = 0; e < rowElems; e++) {
        const raw = (pool!.data as Uint8Array | Int8Array)[slot * rowElems + e]!;
        const sc = (scale.data as Float32Array)[problem.cacheDtype === "int8" ? e : 0]!;
        const x = decodeCacheElement(problem.cacheDtype, raw, sc);
        if (Number.isFinite(x)) maxCache = Math.max(maxCache, Math.abs(x));
      }
    }
  }
  const dev = uploadInputs(g, inputs, problem);
  const plan = await planFlash(g, dev, options);
  try {
    const out = await runKernelPlan(g, plan, dev, inputs);
    const ref = referenceAttention(inputs, problem);
    const maxRef = ref.o.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    return { ...compareOutput(out.o, ref, problem), maxRef, maxCache };
  } finally {
    plan.destroy();
    dev.destroy();
  }
}

Deno.test("f16Math keeps every output finite and its error relative to the inputs' scale for q, k and v up to 3000 (f16, fp8 and int8 caches)", async () => {
  for (const cacheDtype of ["f16", "fp8_e4m3", "int8"] as const) {
    for (const magnitude of [300, 3000]) {
      const o: TestCaseOptions = {
        qDtype: "f16",
        cacheDtype,
        qLens: [9, 4],
        cacheLens: [40, 17],
        heads: 2,
        kvHeads: 1,
        headDim: 32,
        pageSize: 16,
        magnitude,
        // Scores of unit scale, as with unit inputs: products of size magnitude^2.
        smScale: 1 / (Math.sqrt(32) * magnitude * magnitude),
        seed: 35,
      };
      for (const tile of [half, { ...half, f16QkLaneSum: true }]) {
        const half16 = await errorOf(o, { tile, targetItems: 0 });
        const what = `${cacheDtype} x${magnitude} ${JSON.stringify(tile)}: ${
          JSON.stringify(half16)
        }`;
        // Before the range guard: 832 of 832 outputs NaN (q k products over 65504).
        assert.equal(half16.nonFinite, 0, what);
        // f16 arithmetic: ~1.5e-3 of the scale of v (measured); the f32 path is inside SPEC §4.
        assert.ok(half16.maxAbsErr <= 5e-3 * half16.maxRef, what);
      }
      const f32 = await errorOf(o, { tile: small, targetItems: 0 });
      assert.ok(f32.ok, `${cacheDtype} x${magnitude} f32 path: ${describeOutputCheck(f32)}`);
    }
  }
});

Deno.test("f16Math keeps every output finite with fp8 and int8 scales that decode past the f16 range", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    // Scales x 20000: decoded K and V reach ~1e5 (f16's largest value is 65504).
    const o: TestCaseOptions = {
      qDtype: "f16",
      cacheDtype,
      qLens: [9, 4],
      cacheLens: [40, 17],
      heads: 2,
      kvHeads: 1,
      headDim: 32,
      pageSize: 16,
      smScale: 1e-5,
      seed: 36,
    };
    const big = (s: Float32Array) => s.forEach((x, i) => s[i] = x * 20000);
    const r = await errorOf(o, { tile: half, targetItems: 0 }, big);
    const what = `${cacheDtype}: ${JSON.stringify(r)}`;
    assert.ok(r.maxCache > 65504, what);
    assert.equal(r.nonFinite, 0, what);
    assert.ok(r.maxAbsErr <= 5e-3 * r.maxRef, what);
  }
});

// -- bf16 on f16 tiles: K and V factors per K/V tile from its data, Q's from its tile --

Deno.test("f16Math planFlash() matches the reference for bf16 q with bf16, fp8 and int8 caches (split-KV, page-aligned)", async () => {
  for (const cacheDtype of ["bf16", "fp8_e4m3", "int8"] as const) {
    await check({
      qDtype: "bf16",
      cacheDtype,
      qLens: [6, 1, 0, 9],
      cacheLens: [300, 140, 20, 0],
      heads: 8,
      kvHeads: 2,
      headDim: 64,
      pageSize: 32,
      seed: 38,
    }, { tile: half, targetItems: 48, minSplitTiles: 2 });
  }
});

Deno.test("f16Math with bf16 keeps its error relative to the inputs' scale for q, k and v from 1e-6 to 1e6, past f16's range both ways", async () => {
  for (const cacheDtype of ["bf16", "fp8_e4m3", "int8"] as const) {
    for (const magnitude of [1e-6, 1e6]) {
      const o: TestCaseOptions = {
        qDtype: "bf16",
        cacheDtype,
        qLens: [9, 4],
        cacheLens: [40, 17],
        heads: 2,
        kvHeads: 1,
        headDim: 32,
        pageSize: 16,
        magnitude,
        smScale: 1 / (Math.sqrt(32) * magnitude * magnitude),
        seed: 39,
      };
      const r = await errorOf(o, { tile: half, targetItems: 0 });
      const what = `${cacheDtype} x${magnitude}: ${JSON.stringify(r)}`;
      assert.equal(r.nonFinite, 0, what);
      // Powers of two only move the f16 window: the same relative error as at unit scale.
      assert.ok(r.maxAbsErr <= 5e-3 * r.maxRef, what);
    }
  }
});

Deno.test("lateNew and byteChunk with bf16 q take each tile's factors from every word of a new token's chunk", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    const o: TestCaseOptions = {
      qDtype: "bf16",
      cacheDtype,
      qLens: [9, 4],
      cacheLens: [40, 17],
      heads: 2,
      kvHeads: 1,
      headDim: 32,
      pageSize: 16,
      smScale: 1 / (Math.sqrt(32) * 65536),
      seed: 50,
    };
    // New tokens' elements 8-15 of every 16 (a 16-code chunk's second word, an 8-code chunk's
    // odd chunks, a 4-code chunk's upper half of a vec4 of k_new) times 2^16, past f16's range: a
    // tile factor that missed them would overflow the f16 tile.
    const secondWordsBig = (inputs: PagedPrefillInputs) => {
      for (const t of [inputs.kNew, inputs.vNew]) {
        const bits = t.data as Uint16Array;
        bits.forEach((b, i) => {
          if (i % 16 >= 8) bits[i] = b + (16 << 7);
        });
      }
    };
    for (
      const staging of [
        { lateNew: true },
        { byteChunk: 4 as const },
        { byteChunk: 8 as const },
        { byteChunk: 8 as const, lateNew: true },
      ]
    ) {
      const r = await errorOf(
        o,
        { tile: { ...half, fp8Alu: true, ...staging }, targetItems: 0 },
        undefined,
        secondWordsBig,
      );
      const what = `${cacheDtype} ${JSON.stringify(staging)}: ${JSON.stringify(r)}`;
      assert.equal(r.nonFinite, 0, what);
      assert.ok(r.maxAbsErr <= 5e-3 * r.maxRef, what);
    }
  }
});

/** bf16 bits of the largest finite value. */
const BF16_MAX_BITS = 0x7f7f;

/** Sets every pool slot that no request reads (beyond old, unreferenced pages) to `bits`. */
function fillUnreadSlots(inputs: PagedPrefillInputs, problem: Problem, bits: number): number {
  const read = slotsRead(inputs, problem);
  const rowElems = problem.numKvHeads * problem.headDim;
  let filled = 0;
  for (const pool of [inputs.kPages, inputs.vPages]) {
    for (let slot = 0; slot < problem.poolTokens; slot++) {
      if (read[slot]) continue;
      (pool.data as Uint16Array).fill(bits, slot * rowElems, (slot + 1) * rowElems);
      filled++;
    }
  }
  return filled;
}

Deno.test("f16Math with bf16 takes each tile's factors from the values it reads, never from unread pool slots at bf16's largest value", async () => {
  // Page sizes 1 to 64 (tiles span pages, or pages span tiles); 16-key tiles over 37-300 keys.
  for (const pageSize of [1, 8, 64]) {
    let filled = 0;
    const r = await errorOf(
      {
        qDtype: "bf16",
        cacheDtype: "bf16",
        qLens: [5, 19, 0, 1],
        cacheLens: [37, 3, 9, 300],
        heads: 4,
        kvHeads: 2,
        headDim: 32,
        pageSize,
        extraPages: 3,
        seed: 40 + pageSize,
      },
      { tile: half, targetItems: 0 },
      undefined,
      (inputs, problem) => filled = fillUnreadSlots(inputs, problem, BF16_MAX_BITS),
    );
    const what = `page ${pageSize}: ${JSON.stringify(r)}`;
    assert.ok(filled > 0, what);
    assert.equal(r.nonFinite, 0, what);
    // A factor taken from a 3.4e38 canary would flush every real value to zero in f16.
    assert.ok(r.ok, what);
  }
});

Deno.test("flashSpecProblem() refuses f16Math where it cannot hold", () => {
  const base: FlashSpec = {
    qDtype: "f16",
    cacheDtype: "f16",
    headDim: 32,
    ...small,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    f16Math: true,
  };
  assert.equal(flashSpecProblem(base), null);
  // bf16 enters f16 tiles through the range guard's data-derived factors.
  assert.equal(flashSpecProblem({ ...base, qDtype: "bf16", cacheDtype: "bf16" }), null);
  assert.equal(flashSpecProblem({ ...base, cacheDtype: "int8" }), null);
  assert.equal(flashSpecProblem({ ...base, qF32: true }), "f16Math holds Q as f16");
  assert.equal(flashSpecProblem({ ...base, pipelined: true }), "f16Math needs the v2 loop");
  // The dequant variant's f32 scratch: f32 tiles only.
  assert.equal(flashSpecProblem({ ...base, cacheDtype: "f32" }), "f16Math reads no f32 pool");
  assert.equal(flashSpecProblem({ ...base, cacheDtype: "f32", f16Math: false }), null);
  assert.equal(
    flashSpecProblem({ ...base, cacheDtype: "f32", f16Math: false, pipelined: true, kv16: true }),
    "kv16 needs a 16-bit cache",
  );
  assert.equal(
    flashSpecProblem({ ...base, f16QkFlush: 3 }),
    "f16QkFlush 3 does not divide 4 D steps",
  );
  assert.equal(
    flashSpecProblem({ ...base, f16PvFlush: 6 }),
    "f16PvFlush 6 is not a multiple of 4 dividing 16 keys",
  );
  assert.equal(
    flashSpecProblem({ ...base, f16Math: false, f16PvFlush: 8 }),
    "f16QkFlush, f16PvFlush, f16QkLaneSum and qGlobal need f16Math",
  );
  assert.equal(
    flashSpecProblem({ ...base, f16Math: false, qGlobal: true }),
    "f16QkFlush, f16PvFlush, f16QkLaneSum and qGlobal need f16Math",
  );
  assert.equal(flashSpecProblem({ ...base, fp8Alu: true }), "fp8Alu needs an fp8_e4m3 cache");
  assert.equal(
    flashSpecProblem({ ...base, f16Math: false, f16QkLaneSum: true }),
    "f16QkFlush, f16PvFlush, f16QkLaneSum and qGlobal need f16Math",
  );
  // int8 scales sit in registers: every chunk of a thread must hold the same channels.
  const int8Narrow: FlashSpec = {
    ...base,
    cacheDtype: "int8",
    headDim: 256,
    rows: 16,
    keys: 16,
    threads: 8,
    sRows: 2,
    oRows: 2,
  };
  assert.equal(
    flashSpecProblem(int8Narrow),
    "f16Math with int8 needs threads 8 a multiple of 16 chunks per row",
  );
  assert.equal(flashSpecProblem({ ...int8Narrow, cacheDtype: "fp8_e4m3" }), null);
  assert.equal(flashSpecProblem({ ...int8Narrow, f16Math: false }), null);
  assert.match(flashKey({ ...base, f16QkLaneSum: true }), /_hmls$/);
  assert.match(flashKey({ ...base, f16QkFlush: 2, f16PvFlush: 8 }), /_hm2p8$/);
  assert.match(flashKey(base), /_hm$/);
});

Deno.test("chooseFlashTile() picks f16-arithmetic tiles for every dtype on a shader-f16 device, f32 ones without shader-f16, when turned off or for a sharp score scale", () => {
  const problem = (qDtype: "f16" | "bf16", cacheDtype: "f16" | "bf16" | "int8", headDim = 128) =>
    ({
      qDtype,
      cacheDtype,
      batch: 1,
      totalQ: 512,
      numHeads: 32,
      numKvHeads: 8,
      headDim,
      pageSize: 64,
      numPages: 80,
      poolTokens: 5120,
      maxPagesPerReq: 72,
      isCausal: true,
      smScale: 1 / Math.sqrt(headDim),
      softcap: 0,
      qLens: [512],
      qStarts: [0],
      cacheLens: [4096],
    }) as const;
  const h200 = { workgroupBytes: 49152, invocations: 256, f16: true, storageBuffers: 12 };
  const shape = (t: FlashTile | null) =>
    t
      ? `${t.rows}x${t.keys}/${t.threads} s${t.sRows}o${t.oRows}${t.f16Math ? " f16" : ""}${
        t.qGlobal ? " qg" : ""
      }`
      : "none";
  assert.equal(shape(chooseFlashTile(problem("f16", "f16"), h200)), "64x64/256 s2o8 f16");
  assert.equal(shape(chooseFlashTile(problem("f16", "int8"), h200)), "64x64/256 s2o8 f16");
  assert.equal(shape(chooseFlashTile(problem("f16", "f16", 64), h200)), "64x128/256 s4o4 f16");
  // D64 with fp8's decode table still fits 128-key tiles in 48 KiB; 40 KB takes 64 keys.
  const d64fp8 = { ...problem("f16", "f16", 64), cacheDtype: "fp8_e4m3" } as const;
  assert.equal(shape(chooseFlashTile(d64fp8, h200)), "64x128/256 s4o4 f16");
  assert.equal(
    shape(chooseFlashTile(d64fp8, { ...h200, workgroupBytes: 40000 })),
    "64x64/256 s4o4 f16",
  );
  // D256: Q in a global scratch buffer (a 12th storage buffer) for 64-key tiles; else 16 keys.
  assert.equal(shape(chooseFlashTile(problem("f16", "f16", 256), h200)), "64x64/256 s2o8 f16 qg");
  assert.equal(
    shape(chooseFlashTile(problem("f16", "f16", 256), { ...h200, storageBuffers: 11 })),
    "64x16/256 s1o4 f16",
  );
  assert.equal(
    shape(chooseFlashTile(problem("bf16", "int8", 256), h200)),
    "64x64/256 s2o8 f16 qg",
  );
  assert.equal(shape(chooseFlashTile(problem("bf16", "bf16"), h200)), "64x64/256 s2o8 f16");
  assert.equal(shape(chooseFlashTile(problem("bf16", "int8"), h200)), "64x64/256 s2o8 f16");
  // No shader-f16, or f16 math turned off: the f32 tiles.
  assert.equal(
    shape(chooseFlashTile(problem("f16", "f16"), { ...h200, f16: false })),
    "64x32/256 s2o4",
  );
  assert.equal(shape(chooseFlashTile(problem("f16", "f16"), h200, false)), "64x32/256 s2o4");
  // A sharper softmax than 1.25 / sqrt(D): f16 scores would cost the tolerance, f32 tiles.
  const sharp = { ...problem("f16", "f16"), smScale: 1.26 / Math.sqrt(128) };
  assert.equal(shape(chooseFlashTile(sharp, h200)), "64x32/256 s2o4");
  const edge = { ...problem("f16", "f16"), smScale: 1.24 / Math.sqrt(128) };
  assert.equal(shape(chooseFlashTile(edge, h200)), "64x64/256 s2o8 f16");
  // tileProblem() names why an explicit tile cannot run.
  const f16Tile = chooseFlashTile(problem("f16", "f16"), h200)!;
  assert.equal(
    tileProblem(problem("f16", "f16"), f16Tile, { ...h200, f16: false }),
    "tile f16Math needs shader-f16, the device has none",
  );
  assert.equal(
    tileProblem(problem("f16", "f16"), f16Tile, { ...h200, invocations: 128 }),
    "tile threads 256 exceed the device's 128 invocations",
  );
  assert.match(
    tileProblem(problem("f16", "f16"), f16Tile, { ...h200, workgroupBytes: 32768 })!,
    /^tile needs \d+ bytes of workgroup memory, the device has 32768$/,
  );
  assert.equal(tileProblem(problem("f16", "f16"), f16Tile, h200), null);
  // qGlobal binds a 12th storage buffer, and exists only on f16 tiles.
  const qg = { ...f16Tile, qGlobal: true };
  assert.equal(
    tileProblem(problem("f16", "f16"), qg, { ...h200, storageBuffers: 11 }),
    "tile qGlobal binds 12 storage buffers, the device allows 11",
  );
  assert.equal(tileProblem(problem("f16", "f16"), qg, { ...h200, storageBuffers: 12 }), null);
  assert.equal(
    tileProblem(problem("f16", "f16"), { ...qg, f16Math: false }, { ...h200, storageBuffers: 12 }),
    "f16QkFlush, f16PvFlush, f16QkLaneSum and qGlobal need f16Math",
  );
  // D 96 has no 32 D groups: 256 invocations with O 2 x 3.
  assert.equal(shape(chooseFlashTile(problem("f16", "f16", 96), h200)), "64x64/256 s2o2 f16");
  // Small grids take 32-row tiles, two per SM: few FLOPs (one request of 64 queries)...
  const short = { ...problem("f16", "f16"), totalQ: 64, qLens: [64] };
  assert.equal(attentionFlops(short) < SMALL_GRID_FLOPS, true);
  assert.equal(shape(chooseFlashTile(short, h200)), "32x32/128 s2o4 f16");
  // ...or requests mostly shorter than a 64-row tile (q 1 and 16 over 32k caches: 4 and 64 rows)...
  const qLens = Array.from({ length: 8 }, (_, i) => (i % 2 ? 16 : 1));
  const few = {
    ...problem("f16", "f16"),
    batch: 8,
    totalQ: 68,
    qLens,
    qStarts: qLens.map((_, i) => qLens.slice(0, i).reduce((a, b) => a + b, 0)),
    cacheLens: Array(8).fill(32768),
  };
  assert.equal(attentionFlops(few) > SMALL_GRID_FLOPS, true);
  assert.equal(isSmallGrid(few), true);
  assert.equal(shape(chooseFlashTile(few, h200)), "32x32/128 s2o4 f16");
  // ...but not the seed-shaped problem, nor D64, nor f32 tiles.
  assert.equal(isSmallGrid(problem("f16", "f16")), false);
  assert.equal(shape(chooseFlashTile({ ...short, headDim: 64 }, h200)), "64x128/256 s4o4 f16");
  assert.equal(shape(chooseFlashTile(short, { ...h200, f16: false })), "64x32/256 s2o4");
  // lavapipe's 32 KiB: the f16 tiles take half the bytes, so a 64-row tile still fits.
  const lavapipe = { workgroupBytes: 32768, invocations: 256, f16: true };
  assert.equal(shape(chooseFlashTile(problem("f16", "f16"), lavapipe)), "64x32/256 s2o4 f16");
});

Deno.test("planFlash() refuses an explicit tile the device cannot hold, in one line naming the bytes", async () => {
  const g = await gpu();
  const { inputs, params } = makeTestCase({
    qDtype: "f16",
    qLens: [3],
    cacheLens: [20],
    heads: 2,
    kvHeads: 1,
    headDim: 256,
    pageSize: 16,
    seed: 41,
  });
  const dev = uploadInputs(g, inputs, validateProblem(inputs, params));
  try {
    // ~117 KB of workgroup memory (f32 K/V and P at D256): more than any adapter offers.
    const tile: FlashTile = {
      rows: 64,
      keys: 64,
      threads: 256,
      sRows: 2,
      oRows: 8,
      unrollD: false,
    };
    await assert.rejects(planFlash(g, dev, { tile }), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(
        e.message,
        /^Cannot plan flash attention on ".+": tile needs \d+ bytes of workgroup memory, the device has \d+$/,
      );
      return true;
    });
  } finally {
    dev.destroy();
  }
});

Deno.test("flash-f32 plans flash without f16 arithmetic, and claims only problems where flash would use it", async () => {
  const g = await gpu();
  const o: TestCaseOptions = {
    qDtype: "f16",
    qLens: [9, 4],
    cacheLens: [40, 17],
    heads: 2,
    kvHeads: 1,
    headDim: 32,
    pageSize: 16,
    magnitude: 300,
    smScale: 1 / (Math.sqrt(32) * 300 * 300),
    seed: 37,
  };
  const { inputs, params } = makeTestCase(o);
  const f16 = validateProblem(inputs, params);
  // Claims: a problem large enough for flash's f16 products (F16_MIN_FLOPS), not a small one.
  const big = {
    ...f16,
    qLens: [512, 512],
    cacheLens: [4096, 4096],
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    smScale: 128 ** -0.5,
  };
  assert.ok(attentionFlops(big) >= F16_MIN_FLOPS && attentionFlops(f16) < F16_MIN_FLOPS);
  const bf16 = { ...big, qDtype: "bf16", cacheDtype: "bf16" } as const;
  assert.equal(flashF32Variant.supports(bf16, g) === null, g.hasF16);
  assert.equal(flashF32Variant.supports(big, g) === null, g.hasF16);
  assert.match(
    flashF32Variant.supports(big, { ...g, hasF16: false })!,
    /already multiplies in f32 here \(no shader-f16/,
  );
  assert.match(flashF32Variant.supports(f16, g)!, /a problem under F16_MIN_FLOPS/);
  if (!g.hasF16) return;
  const dev = uploadInputs(g, inputs, f16);
  const plan = await flashF32Variant.plan(g, dev);
  try {
    assert.doesNotMatch(plan.key, /_hm/);
    const out = await runKernelPlan(g, plan, dev, inputs);
    const output = compareOutput(out.o, referenceAttention(inputs, f16), f16);
    assert.ok(output.ok, describeOutputCheck(output));
  } finally {
    plan.destroy();
    dev.destroy();
  }
});

Deno.test("chooseFlashTile() bounds bf16 caches by the pools' scan on long prefill rows up to D128, not on short, decode-like or D256 rows", () => {
  const h200 = { workgroupBytes: 49152, invocations: 1024, f16: true, storageBuffers: 12 };
  const problem = (
    headDim: number,
    qLen: number,
    old = 32768,
    qDtype: "f16" | "bf16" = "bf16",
  ): Problem => ({
    qDtype,
    cacheDtype: qDtype,
    batch: 1,
    totalQ: qLen,
    numHeads: 32,
    numKvHeads: 8,
    headDim,
    pageSize: 64,
    numPages: 520,
    poolTokens: 33280,
    maxPagesPerReq: 520,
    isCausal: true,
    smScale: 1 / Math.sqrt(headDim),
    softcap: 0,
    qLens: [qLen],
    qStarts: [0],
    cacheLens: [old],
  });
  const bounded = (p: Problem) => {
    const tile = chooseFlashTile(p, h200)!;
    return flashSpecFor(p, tile, false).poolBound === true;
  };
  // 32k old keys: q 1024 gives ~4k attention FLOPs per byte of the pools' scan, q 16 (the
  // decode-like rows) 64.
  assert.equal(bounded(problem(128, 1024)), true);
  assert.equal(bounded(problem(64, 1024)), true);
  assert.equal(bounded(problem(128, 16)), false);
  assert.equal(bounded(problem(256, 1024)), false);
  assert.equal(bounded(problem(128, 1024, 32768, "f16")), false);
  // Each threshold at its edge: the first q length that reaches it, and the one before.
  const first = (ok: (q: number) => boolean) =>
    Array.from({ length: 4096 }, (_, i) => i + 1).find(ok)!;
  const scanBytes = 32768 * 8 * 128 * 4;
  const perByte = first((q) =>
    attentionFlops(problem(128, q)) >= POOL_BOUND_MIN_FLOPS_PER_BYTE * scanBytes
  );
  assert.ok(attentionFlops(problem(128, perByte)) >= POOL_BOUND_MIN_FLOPS);
  assert.equal(poolBoundPays(problem(128, perByte)), true);
  assert.equal(poolBoundPays(problem(128, perByte - 1)), false);
  // A short prefix: FLOPs per byte plenty, the FLOP threshold decides.
  const total = first((q) => attentionFlops(problem(128, q, 512)) >= POOL_BOUND_MIN_FLOPS);
  assert.equal(poolBoundPays(problem(128, total, 512)), true);
  assert.equal(poolBoundPays(problem(128, total - 1, 512)), false);
});

Deno.test("poolBound is refused without a bf16 cache and q, f16Math or the v2 loop, and spelled in the key", () => {
  const spec: FlashSpec = {
    qDtype: "bf16",
    cacheDtype: "bf16",
    headDim: 32,
    ...small,
    unrollD: false,
    f16Math: true,
    causal: true,
    softcap: false,
    pageAligned: false,
    split: false,
    poolBound: true,
  };
  assert.equal(flashSpecProblem(spec), null);
  assert.match(flashKey(spec), /_pb$/);
  const refused = "poolBound needs a bf16 cache and q, f16Math and the v2 loop";
  assert.equal(flashSpecProblem({ ...spec, cacheDtype: "f16" }), refused);
  assert.equal(flashSpecProblem({ ...spec, qDtype: "f16", cacheDtype: "f16" }), refused);
  assert.equal(flashSpecProblem({ ...spec, f16Math: false }), refused);
  assert.equal(flashSpecProblem({ ...spec, pipelined: true }), refused);
  // Its fallback: the per-tile kernel, which returns where the bound pass let poolBound work.
  const fallback = { ...spec, poolBound: false, boundFallback: true };
  assert.equal(flashSpecProblem(fallback), null);
  assert.ok(flashWgsl(fallback).includes("atomicMax(&kv_amax"));
  assert.ok(!flashWgsl(spec).includes("atomicMax(&kv_amax"));
  assert.equal(
    flashSpecProblem({ ...fallback, cacheDtype: "f16", qDtype: "f16" }),
    "boundFallback needs an int8, fp8 or bf16 cache, f16Math and no bounded option",
  );
});
