/**
 * The mma key loop with a fixed reference max per row (`MmaSpec.fixedMax`): it is the default
 * on 16-bit caches, its hot loop reads no flag, items whose scores outgrow f16's range run
 * again with the rescaled loop, and the results match the float64 reference either way.
 */
import { checkEmulated, GQA_VARLEN_P8, H200_D128_MMA_SPEC, TILE_2X1X16 } from "./_testing.ts";
import { mmaWgsl } from "./template.ts";
import { mmaKey, mmaSpecProblem } from "./spec.ts";
import type { TestCaseOptions } from "../_testing.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Scores ~N(0, 32) x 3: a row's max rises far above its first tile's (2^15 and more). */
const SHARP_F16: TestCaseOptions = {
  qDtype: "f16",
  cacheDtype: "f16",
  qLens: [20, 7],
  cacheLens: [90, 41],
  heads: 4,
  kvHeads: 2,
  headDim: 32,
  pageSize: 16,
  smScale: 3,
  seed: 61,
};

const GQA_VARLEN_F16: TestCaseOptions = { ...GQA_VARLEN_P8, cacheDtype: "f16", seed: 62 };

Deno.test("fixed-max mma matches the reference where scores stay within 2^15 of the first tile: f16, GQA varlen with an empty request", async () => {
  const key = await checkEmulated(GQA_VARLEN_F16, { tile: TILE_2X1X16, targetItems: 0 });
  assert(key.includes("_fm"), `fixed max is not the default on an f16 cache: ${key}`);
});

Deno.test("fixed-max mma matches the reference with sharp scores: items run again with the rescaled loop", async () => {
  const key = await checkEmulated(SHARP_F16, { tile: TILE_2X1X16, targetItems: 0 });
  assert(key.includes("_fm"), `key ${key}`);
});

Deno.test("fixed-max mma matches the reference when every item takes the fallback: classic loop, split-KV, bf16 q and cache", async () => {
  const key = await checkEmulated(
    { ...GQA_VARLEN_F16, qDtype: "bf16", cacheDtype: "bf16", seed: 63 },
    { tile: TILE_2X1X16, targetItems: 64, minSplitTiles: 1, forceRedo: true, pipelined: false },
  );
  assert(key.includes("_fm") && key.includes("_redo") && key.includes("split"), `key ${key}`);
  assert(!key.includes("_pl"), `key ${key}`);
});

Deno.test("fixed-max mma matches the reference when every item takes the fallback: the pipelined default, causal f16, sharp scores, two column warps", async () => {
  const key = await checkEmulated({ ...SHARP_F16, seed: 64 }, {
    tile: { rowBlocks: 2, colWarps: 2, keys: 32 },
    targetItems: 0,
    forceRedo: true,
  });
  assert(key.includes("_redo") && key.includes("_pl") && key.includes("_fm"), `key ${key}`);
});

for (const pipelined of [false, true]) {
  const loop = pipelined ? "pipelined" : "classic";
  Deno.test(`fixed-max mma (${loop}) runs no item again on random-normal scores, and runs the sharp ones again`, async () => {
    const options = { tile: TILE_2X1X16, targetItems: 0, pipelined, poisonRedo: true };
    // poisonRedo spoils every row of an item that took the fallback.
    const key = await checkEmulated({ ...GQA_VARLEN_F16, seed: 69 }, options);
    assert(key.includes("_fm") && key.includes("_poison"), `key ${key}`);
    let redone = false;
    try {
      await checkEmulated({ ...SHARP_F16, seed: 70 }, options);
    } catch (e) {
      redone = (e as Error).message.includes("FAILED");
      if (!redone) throw e;
    }
    assert(redone, "no item with sharp scores ran again");
  });
}

Deno.test("mma with fixedMax off keeps the rescaled loop and matches the reference with sharp scores", async () => {
  const key = await checkEmulated({ ...SHARP_F16, seed: 65 }, {
    tile: TILE_2X1X16,
    targetItems: 0,
    fixedMax: false,
  });
  assert(!key.includes("_fm"), `fixedMax: false was ignored: ${key}`);
});

Deno.test("fp8 and int8 plans keep the rescaled loop (their V scales need it)", async () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    const key = await checkEmulated({ ...GQA_VARLEN_F16, cacheDtype, seed: 66 }, {
      tile: TILE_2X1X16,
      targetItems: 0,
    });
    assert(!key.includes("_fm"), `${cacheDtype} took the fixed max: ${key}`);
  }
});

Deno.test("pipelined fixed-max mma matches the reference with sharp scores: items run again with the rescaled pipelined loop", async () => {
  const key = await checkEmulated({ ...SHARP_F16, seed: 67 }, {
    tile: TILE_2X1X16,
    targetItems: 0,
    pipelined: true,
  });
  assert(key.includes("_pl") && key.includes("_fm"), `key ${key}`);
});

Deno.test("pipelined fixed-max mma matches the reference when every item takes the fallback: split-KV, GQA varlen", async () => {
  const key = await checkEmulated({ ...GQA_VARLEN_F16, seed: 68 }, {
    tile: TILE_2X1X16,
    targetItems: 64,
    minSplitTiles: 1,
    pipelined: true,
    forceRedo: true,
  });
  assert(key.includes("_pl") && key.includes("_redo") && key.includes("split"), `key ${key}`);
});

Deno.test("fixed-max WGSL reads the rescale flag once per item, after the hot loop, and rescales only in the fallback", () => {
  const spec = { ...H200_D128_MMA_SPEC, widePaddedScores: true, fixedMax: true };
  const code = mmaWgsl(spec);
  const hot = code.indexOf("for (var t = t0; t < t1; t = t + 1u)");
  const redo = code.indexOf("let redo = workgroupUniformLoad(&flag).x;");
  const fallback = code.indexOf("for (var t = t0; t < t1; t = t + 1u)", redo);
  assert(hot > 0 && redo > hot && fallback > redo, "loop, flag read, fallback loop out of order");
  const hotLoop = code.slice(hot, redo);
  assert(!hotLoop.includes("workgroupUniformLoad"), "the hot loop reads the flag per tile");
  assert(!hotLoop.includes("row_a[r]"), "the hot loop holds the rescale");
  assert(code.slice(fallback).includes("row_a[r]"), "the fallback lost the rescale");
  assert(hotLoop.includes(`mx > m_run + 15.0`), "the hot loop does not check P's range");
  const plain = mmaWgsl({ ...H200_D128_MMA_SPEC, widePaddedScores: true });
  assert(!plain.includes("let redo"), "a spec without fixedMax has the fallback");
});

Deno.test("pipelined fixed-max WGSL has two barriers per tile in its hot loop and no flag read there", () => {
  const spec = { ...H200_D128_MMA_SPEC, pipelined: true, fixedMax: true };
  const code = mmaWgsl(spec);
  const hot = code.indexOf("for (var t = t0; t < t1; t = t + 1u)");
  const redo = code.indexOf("let redo = workgroupUniformLoad(&flag).x;");
  assert(hot > 0 && redo > hot, "hot loop and flag read out of order");
  const hotLoop = code.slice(hot, redo);
  assert(!hotLoop.includes("workgroupUniformLoad"), "the hot loop reads the flag per tile");
  const barriers = hotLoop.split("workgroupBarrier()").length - 1;
  assert(barriers === 2, `${barriers} barriers per tile in the hot loop`);
  const rescaled = mmaWgsl({ ...H200_D128_MMA_SPEC, pipelined: true });
  assert(rescaled.includes("workgroupUniformLoad(&flag)"), "the rescaled loop lost its flag");
});

Deno.test("mma specs refuse fixedMax with directKV, fp8 or int8, and its test hooks without it, naming them", () => {
  const base = { ...H200_D128_MMA_SPEC, fixedMax: true };
  assert(mmaSpecProblem(base) === null, `${mmaSpecProblem(base)}`);
  assert(mmaKey(base).endsWith("_fm"), mmaKey(base));
  assert(mmaSpecProblem({ ...base, pipelined: true }) === null, "pipelined fixedMax refused");
  for (
    const bad of [
      { directKV: true },
      { cacheDtype: "fp8_e4m3" },
      { cacheDtype: "int8" },
    ] as const
  ) {
    const why = mmaSpecProblem({ ...base, ...bad });
    assert(why !== null && why.includes("fixedMax"), `${JSON.stringify(bad)}: ${why}`);
  }
  for (const hook of [{ forceRedo: true }, { poisonRedo: true }]) {
    const why = mmaSpecProblem({ ...H200_D128_MMA_SPEC, ...hook });
    assert(why !== null && why.includes(Object.keys(hook)[0]!), `${why}`);
  }
});
