import { acquireGpu, type GpuContext } from "../gpu.ts";
import type { DeviceProblem } from "../variant.ts";
import { makeTestCase, type TestCaseOptions, verifyOutputs } from "../_testing.ts";
import { runKernelPlan } from "../op.ts";
import { validateProblem } from "../../op/validate.ts";
import { readBuffers, uploadInputs } from "../device_inputs.ts";
import { scaleCount, scaleSlots } from "../_shared.ts";
import {
  bf16BitsToNumber,
  f16BitsToNumber,
  inverseScale,
  numberToBf16Bits,
} from "../../reference/codecs.ts";
import type { PagedPrefillInputs, PagedPrefillParams } from "../../op/types.ts";
import { type FlashOptions, planFlash } from "./flash.ts";
import { INT8_FOLD_MAX_BOUND, type NewBoundPlan, planNewBound } from "./new_bound.ts";
import type { FlashTile } from "./spec.ts";
import assert from "node:assert/strict";

let _gpu: Promise<GpuContext> | null = null;
function gpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

const fold: FlashTile = {
  rows: 16,
  keys: 16,
  threads: 32,
  sRows: 2,
  oRows: 2,
  unrollD: false,
  f16Math: true,
  int8Fold: true,
};

const base: TestCaseOptions = {
  qDtype: "f16",
  cacheDtype: "int8",
  qLens: [9, 30, 4],
  cacheLens: [140, 0, 17],
  heads: 4,
  kvHeads: 2,
  headDim: 32,
  pageSize: 16,
  seed: 1,
};

/** Runs planFlash on inputs and checks o and the pools against the reference; the plan's key. */
async function checkInputs(
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  options: FlashOptions,
): Promise<string> {
  const g = await gpu();
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  const plan = await planFlash(g, dev, options);
  try {
    const out = await runKernelPlan(g, plan, dev, inputs);
    verifyOutputs(out, inputs, problem, plan.key);
    return plan.key;
  } finally {
    plan.destroy();
    dev.destroy();
  }
}

/** The host's largest |x * inv| of the new tokens (x the 16-bit value, inv its channel's). */
function hostBound(inputs: PagedPrefillInputs, which: "k" | "v", bf16: boolean): number {
  const x = (which === "k" ? inputs.kNew : inputs.vNew).data as Uint16Array;
  const scale = (which === "k" ? inputs.kScale : inputs.vScale)!.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const value = bf16 ? bf16BitsToNumber(x[i]!) : f16BitsToNumber(x[i]!);
    m = Math.max(m, Math.abs(Math.fround(value * inverseScale(scale[i % scale.length]!))));
  }
  return m;
}

Deno.test("int8Fold planFlash() matches the reference for f16 and bf16 q, split-KV, precise items, lateNew, qGlobal and int8Alu", async () => {
  for (
    const [qDtype, tile, options, seed] of [
      ["f16", fold, { targetItems: 0 }, 201],
      ["bf16", fold, { targetItems: 0 }, 202],
      [
        "f16",
        { ...fold, int8Alu: true, lateNew: true },
        { targetItems: 48, minSplitTiles: 2 },
        203,
      ],
      ["bf16", { ...fold, int8Alu: true, lateNew: true }, { preciseKeys: 64 }, 204],
      [
        "f16",
        { ...fold, qGlobal: true, lateNew: true },
        { targetItems: 48, minSplitTiles: 2 },
        205,
      ],
    ] as const
  ) {
    const { inputs, params } = makeTestCase({ ...base, qDtype, seed });
    const key = await checkInputs(inputs, params, { tile, ...options });
    assert.match(key, /_if(_|$)/, key);
  }
});

Deno.test("int8Fold planFlash() matches the reference at D128 with bf16 q and split-KV over 2 KV heads", async () => {
  const { inputs, params } = makeTestCase({
    ...base,
    qDtype: "bf16",
    qLens: [5, 40],
    cacheLens: [300, 90],
    heads: 8,
    kvHeads: 2,
    headDim: 128,
    pageSize: 32,
    seed: 206,
  });
  await checkInputs(inputs, params, {
    tile: { ...fold, int8Alu: true, lateNew: true },
    targetItems: 48,
    minSplitTiles: 2,
  });
});

/** Runs the bound passes once; the scales buffer's kNew, vNew and fold words after them. */
async function runBound(g: GpuContext, dev: DeviceProblem, bound: NewBoundPlan): Promise<number[]> {
  const encoder = g.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  bound.encodeInto(pass);
  pass.end();
  g.device.queue.submit([encoder.finish()]);
  const slots = scaleSlots(scaleCount(dev.problem));
  const [scales] = await readBuffers(g, [[dev.scales, slots.length * 4]]);
  const words = new Float32Array(scales!.buffer, scales!.byteOffset, slots.length);
  return [words[slots.kNew]!, words[slots.vNew]!, words[slots.fold]!];
}

Deno.test("byteNewBound planFlash() matches the reference for bf16 q, split-KV, precise items and qGlobal; f16 q keeps its kernel", async () => {
  const fp8Tile: FlashTile = { ...fold, int8Fold: undefined, byteNewBound: true, fp8Alu: true };
  for (
    const [tile, options, seed] of [
      [fp8Tile, { targetItems: 0 }, 231],
      [{ ...fp8Tile, lateNew: true }, { targetItems: 48, minSplitTiles: 2 }, 232],
      [{ ...fp8Tile, lateNew: true }, { preciseKeys: 64 }, 233],
      [{ ...fp8Tile, qGlobal: true }, { targetItems: 0 }, 234],
    ] as const
  ) {
    const { inputs, params } = makeTestCase({
      ...base,
      qDtype: "bf16",
      cacheDtype: "fp8_e4m3",
      seed,
    });
    const key = await checkInputs(inputs, params, { tile, ...options });
    assert.match(key, /_nb(_|$)/, key);
  }
  // f16 q has no per-tile guard to replace: flashSpecFor drops the option.
  const { inputs, params } = makeTestCase({ ...base, cacheDtype: "fp8_e4m3", seed: 235 });
  const key = await checkInputs(inputs, params, { tile: fp8Tile, targetItems: 0 });
  assert.doesNotMatch(key, /_nb(_|$)/, key);
});

Deno.test("byteNewBound on an int8 cache (codes times their scales, factors from the largest scale) matches the reference for bf16 q, split-KV, precise items and a channel of a large scale", async () => {
  const int8Tile: FlashTile = { ...fold, int8Fold: undefined, byteNewBound: true };
  for (
    const [tile, options, seed, bigScale] of [
      [int8Tile, { targetItems: 0 }, 241, false],
      [
        { ...int8Tile, lateNew: true, int8Alu: true },
        { targetItems: 48, minSplitTiles: 2 },
        242,
        false,
      ],
      [{ ...int8Tile, lateNew: true }, { preciseKeys: 64 }, 243, false],
      [int8Tile, { targetItems: 0 }, 244, true],
    ] as const
  ) {
    const { inputs, params } = makeTestCase({ ...base, qDtype: "bf16", seed });
    if (bigScale) {
      // One K and one V channel whose codes reach 127 x 400: f16's range only through fk, fv.
      const channel = 1 * base.headDim + 5;
      (inputs.kScale!.data as Float32Array)[channel] = 400;
      (inputs.vScale!.data as Float32Array)[channel] = 400;
    }
    const key = await checkInputs(inputs, params, { tile, ...options });
    assert.match(key, /_nb(_|$)/, key);
    assert.doesNotMatch(key, /_if(_|$)/, key);
  }
});

Deno.test("the new-token bound pass writes the largest |x / scale| of K and V and picks the fold, call after call, for int8 and fp8", async () => {
  for (
    const [qDtype, cacheDtype, seed] of [
      ["f16", "int8", 211],
      ["bf16", "int8", 212],
      ["bf16", "fp8_e4m3", 213],
    ] as const
  ) {
    const g = await gpu();
    const { inputs, params } = makeTestCase({ ...base, qDtype, cacheDtype, seed });
    const problem = validateProblem(inputs, params);
    const dev = uploadInputs(g, inputs, problem);
    const buffers: GPUBuffer[] = [];
    try {
      const bound = await planNewBound(g, dev, buffers);
      const bf16 = qDtype === "bf16";
      const expected = [hostBound(inputs, "k", bf16), hostBound(inputs, "v", bf16), 1];
      // The second call sees the maxima the first one reset.
      for (let call = 0; call < 2; call++) {
        assert.deepEqual(await runBound(g, dev, bound), expected, `call ${call}`);
      }
    } finally {
      buffers.forEach((b) => b.destroy());
      dev.destroy();
    }
  }
});

Deno.test("int8Fold leaves the work to the unfolded kernel when a new token's |x / scale| exceeds INT8_FOLD_MAX_BOUND", async () => {
  const { inputs, params } = makeTestCase({ ...base, seed: 221 });
  // Channel 3 of KV head 1: a scale of 1e-30 and a new token of 1.0 there, |x / scale| = 1e30.
  // Folded, every code of the K tile would sit at fk = 2^-86 times itself: zero in f16.
  const channel = 1 * base.headDim + 3;
  (inputs.kScale!.data as Float32Array)[channel] = 1e-30;
  (inputs.kNew.data as Uint16Array)[2 * base.kvHeads * base.headDim + channel] = 0x3c00;
  const g = await gpu();
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  const buffers: GPUBuffer[] = [];
  try {
    const bound = await planNewBound(g, dev, buffers);
    const k = hostBound(inputs, "k", false);
    assert.ok(k > INT8_FOLD_MAX_BOUND);
    assert.deepEqual(await runBound(g, dev, bound), [k, hostBound(inputs, "v", false), 0]);
  } finally {
    buffers.forEach((b) => b.destroy());
    dev.destroy();
  }
  await checkInputs(inputs, params, { tile: fold, targetItems: 0 });
});

/** The host's largest |x| of a bf16 case's K or V: new tokens and the pool values it reads. */
function hostPoolBound(inputs: PagedPrefillInputs, which: "k" | "v"): number {
  const fresh = (which === "k" ? inputs.kNew : inputs.vNew).data as Uint16Array;
  const pool = (which === "k" ? inputs.kPages : inputs.vPages).data as Uint16Array;
  const [, kvHeads, headDim] = inputs.kPages.shape as [number, number, number];
  const rowElems = kvHeads * headDim;
  const table = inputs.blockTable.data as Int32Array;
  const maxPages = inputs.blockTable.shape[1]!;
  const old = inputs.cacheSeqlens.data as Int32Array;
  let m = 0;
  for (const bits of fresh) m = Math.max(m, Math.abs(bf16BitsToNumber(bits)));
  for (let b = 0; b < old.length; b++) {
    for (let pos = 0; pos < old[b]!; pos++) {
      const slot = table[b * maxPages + Math.floor(pos / base.pageSize)]! * base.pageSize +
        (pos % base.pageSize);
      for (let e = 0; e < rowElems; e++) {
        m = Math.max(m, Math.abs(bf16BitsToNumber(pool[slot * rowElems + e]!)));
      }
    }
  }
  return m;
}

const bf16Case: TestCaseOptions = { ...base, qDtype: "bf16", cacheDtype: "bf16" };
const poolTile: FlashTile = { ...fold, int8Fold: undefined, poolBound: true };

Deno.test("the bound pass of a bf16 cache reads every pool value of tokens under cache_seqlens and none of the canaries past them", async () => {
  const g = await gpu();
  // Page size 16 and shared prefix pages: requests that share pages and end mid-page, next to
  // slots of random canary bits (NaNs and values far over the bound among them).
  const { inputs, params } = makeTestCase({
    ...bf16Case,
    cacheLens: [140, 23, 17],
    sharedPrefixPages: 1,
    seed: 241,
  });
  // Planted at the edges of what the call reads: K 200 at request 0's last old token, V 300 at
  // request 2's first; 60000 in request 0's first slot past its old tokens (read by no one).
  const slotOf = (b: number, pos: number) => {
    const maxPages = inputs.blockTable.shape[1]!;
    const page = (inputs.blockTable.data as Int32Array)[b * maxPages + Math.floor(pos / 16)]!;
    return (page * 16 + (pos % 16)) * bf16Case.kvHeads * bf16Case.headDim;
  };
  const kPool = inputs.kPages.data as Uint16Array;
  kPool[slotOf(0, 139) + 7] = numberToBf16Bits(200);
  (inputs.vPages.data as Uint16Array)[slotOf(2, 0) + 40] = numberToBf16Bits(-300);
  kPool[slotOf(0, 140) + 7] = numberToBf16Bits(60000);
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  const buffers: GPUBuffer[] = [];
  try {
    const bound = await planNewBound(g, dev, buffers);
    const expected = [hostPoolBound(inputs, "k"), hostPoolBound(inputs, "v"), 1];
    assert.deepEqual(expected, [200, 300, 1]);
    for (let call = 0; call < 2; call++) {
      assert.deepEqual(await runBound(g, dev, bound), expected, `call ${call}`);
    }
    // The bound is above the new tokens' alone: the pools were read.
    const newOnly = Math.max(
      ...Array.from(inputs.kNew.data as Uint16Array, (x) => Math.abs(bf16BitsToNumber(x))),
    );
    assert.ok(expected[0]! > newOnly, `${expected[0]} <= ${newOnly}`);
  } finally {
    buffers.forEach((b) => b.destroy());
    dev.destroy();
  }
});

Deno.test("poolBound planFlash() matches the reference for bf16, split-KV, precise items and qGlobal", async () => {
  for (
    const [tile, options, seed] of [
      [poolTile, { targetItems: 0 }, 251],
      [poolTile, { targetItems: 48, minSplitTiles: 2 }, 252],
      [poolTile, { preciseKeys: 64 }, 253],
      [{ ...poolTile, qGlobal: true }, { targetItems: 0 }, 254],
    ] as const
  ) {
    const { inputs, params } = makeTestCase({ ...bf16Case, seed });
    const key = await checkInputs(inputs, params, { tile, ...options });
    assert.match(key, /_pb(_|$)/, key);
  }
});

Deno.test("poolBound leaves the work to the per-tile kernel when a pool value the call reads exceeds INT8_FOLD_MAX_BOUND", async () => {
  const { inputs, params } = makeTestCase({ ...bf16Case, seed: 261 });
  // The last old token of request 0, channel 5 of V: 2^24 (bf16 0x4b80), over the bound; the
  // per-tile guard of the fallback scales that tile alone.
  const pos = base.cacheLens[0]! - 1;
  const table = inputs.blockTable.data as Int32Array;
  const slot = table[Math.floor(pos / base.pageSize)]! * base.pageSize + (pos % base.pageSize);
  (inputs.vPages.data as Uint16Array)[slot * base.kvHeads * base.headDim + 5] = 0x4b80;
  const g = await gpu();
  const problem = validateProblem(inputs, params);
  const dev = uploadInputs(g, inputs, problem);
  const buffers: GPUBuffer[] = [];
  try {
    const bound = await planNewBound(g, dev, buffers);
    const [, v, foldWord] = await runBound(g, dev, bound);
    assert.equal(v, 2 ** 24);
    assert.equal(foldWord, 0);
  } finally {
    buffers.forEach((b) => b.destroy());
    dev.destroy();
  }
  const key = await checkInputs(inputs, params, { tile: poolTile, targetItems: 0 });
  assert.match(key, /_pb(_|$)/, key);
});
