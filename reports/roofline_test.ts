import assert from "node:assert/strict";
import type { Problem } from "../op/types.ts";
import {
  defaultScaleElements,
  rooflineBound,
  rooflineBytes,
  rooflineCosts,
  rooflineEvaluate,
  type RooflineShape,
  visiblePairsOf,
} from "./roofline.ts";

const SEED: RooflineShape = {
  qLens: [512],
  cacheLens: [4096],
  numHeads: 32,
  numKvHeads: 8,
  headDim: 128,
  qDtype: "f16",
  cacheDtype: "f16",
  isCausal: true,
  maxPagesPerReq: 72,
};

/** Counts visible (row, key) pairs by walking every row and key, as the op defines visibility. */
function bruteForcePairs(qLen: number, old: number, causal: boolean): number {
  let n = 0;
  for (let i = 0; i < qLen; i++) {
    for (let p = 0; p < old + qLen; p++) {
      if (!causal || p <= old + i) n++;
    }
  }
  return n;
}

/**
 * Counts bytes by walking every tensor element the call must touch once, per head and dim,
 * with the element size of the tensor that holds it.
 */
function bruteForceBytes(s: RooflineShape): number {
  const sq = 2;
  const sc = s.cacheDtype === "fp8_e4m3" || s.cacheDtype === "int8" ? 1 : 2;
  let bytes = 0;
  for (let b = 0; b < s.qLens.length; b++) {
    for (let t = 0; t < s.qLens[b]!; t++) {
      for (let h = 0; h < s.numHeads; h++) {
        for (let d = 0; d < s.headDim; d++) bytes += sq /* q */ + sq /* o */;
      }
      for (let g = 0; g < s.numKvHeads; g++) {
        for (let d = 0; d < s.headDim; d++) {
          bytes += sq + sq; // k_new, v_new read
          bytes += sc + sc; // k, v appended
        }
      }
    }
    for (let t = 0; t < s.cacheLens[b]!; t++) {
      for (let g = 0; g < s.numKvHeads; g++) {
        for (let d = 0; d < s.headDim; d++) bytes += sc + sc; // old k, v read
      }
    }
  }
  const scaleFloats = s.cacheDtype === "fp8_e4m3"
    ? 1 + 1
    : s.cacheDtype === "int8"
    ? s.numKvHeads * s.headDim * 2
    : 0;
  bytes += scaleFloats * 4;
  const batch = s.qLens.length;
  const i32s = batch + 1 /* cu_seqlens_q */ + batch /* cache_seqlens */ +
    batch * s.maxPagesPerReq /* block_table */;
  return bytes + i32s * 4;
}

Deno.test("visiblePairsOf() matches a brute-force count of visible (row, key) pairs", () => {
  for (const causal of [true, false]) {
    for (let q = 0; q <= 7; q++) {
      for (let old = 0; old <= 9; old++) {
        assert.equal(
          visiblePairsOf(q, old, causal),
          bruteForcePairs(q, old, causal),
          `${q}/${old}`,
        );
      }
    }
  }
});

Deno.test("rooflineCosts() counts 4*H*D FLOPs per visible pair over a varlen batch", () => {
  const shape: RooflineShape = {
    qLens: [3, 0, 5, 1],
    cacheLens: [4, 7, 0, 9],
    numHeads: 6,
    numKvHeads: 2,
    headDim: 8,
    qDtype: "bf16",
    cacheDtype: "int8",
    isCausal: true,
    maxPagesPerReq: 5,
  };
  for (const isCausal of [true, false]) {
    const s = { ...shape, isCausal };
    let pairs = 0;
    for (let b = 0; b < 4; b++) pairs += bruteForcePairs(s.qLens[b]!, s.cacheLens[b]!, isCausal);
    // One multiply-add per (row, key, head, dim) for QK^T and another for PV.
    let flops = 0;
    for (let h = 0; h < s.numHeads; h++) {
      for (let d = 0; d < s.headDim; d++) flops += 2 * pairs + 2 * pairs;
    }
    const c = rooflineCosts(s);
    assert.equal(c.visiblePairs, pairs);
    assert.equal(c.flops, flops);
    assert.equal(c.exps, pairs * s.numHeads);
    assert.equal(c.tanhs, 0);
    assert.equal(rooflineCosts({ ...s, softcap: 30 }).tanhs, pairs * s.numHeads);
  }
});

Deno.test("rooflineBytes() matches an element-by-element count for every cache dtype", () => {
  for (const cacheDtype of ["f16", "bf16", "fp8_e4m3", "int8"] as const) {
    const shape: RooflineShape = {
      qLens: [2, 5, 0],
      cacheLens: [3, 0, 11],
      numHeads: 4,
      numKvHeads: 2,
      headDim: 4,
      qDtype: cacheDtype === "bf16" ? "bf16" : "f16",
      cacheDtype,
      isCausal: false,
      maxPagesPerReq: 3,
    };
    assert.equal(rooflineBytes(shape).total, bruteForceBytes(shape), cacheDtype);
  }
});

Deno.test("rooflineCosts() gives the hand-computed numbers of the seed llama workload", () => {
  const c = rooflineCosts(SEED);
  // 4*32*128*(512*4096 + 512*513/2) = 16384 * 2228480
  assert.equal(c.flops, 36_511_416_320);
  assert.ok(Math.abs(c.flops / 1e9 - 36.5) < 0.05);
  // q + o: 2 B * 512 * 32 * 128 * 2 = 8 MiB; k_new + v_new: 2 B * 512 * 8 * 128 * 2 = 2 MiB
  assert.equal(c.bytesBreakdown.q + c.bytesBreakdown.o, 8_388_608);
  assert.equal(c.bytesBreakdown.kvNew, 2_097_152);
  // old pages: 2 B * 4096 * 8 * 128 * 2 = 16 MiB; append: 2 MiB
  assert.equal(c.bytesBreakdown.cacheRead, 16_777_216);
  assert.equal(c.bytesBreakdown.cacheWrite, 2_097_152);
  assert.equal(c.bytesBreakdown.scales, 0);
  // (1+1) + 1 + 72 = 75 i32s
  assert.equal(c.bytesBreakdown.metadata, 300);
  assert.equal(c.bytes, 29_360_428);
  assert.ok(Math.abs(c.arithmeticIntensity - 36_511_416_320 / 29_360_428) < 1e-9);

  // fp8 cache: old pages and append at 1 byte, plus two f32 scales.
  const fp8 = rooflineCosts({ ...SEED, cacheDtype: "fp8_e4m3" });
  assert.equal(fp8.flops, c.flops);
  assert.equal(fp8.bytes, 8_388_608 + 2_097_152 + 8_388_608 + 1_048_576 + 8 + 300);
  // int8 cache: per-channel scales, 2 * 8 * 128 floats.
  const int8 = rooflineCosts({ ...SEED, cacheDtype: "int8" });
  assert.equal(int8.bytes, fp8.bytes - 8 + 2 * 8 * 128 * 4);
});

Deno.test("rooflineCosts() accepts a validated Problem as is", () => {
  const problem: Problem = {
    ...SEED,
    batch: 1,
    totalQ: 512,
    pageSize: 64,
    numPages: 72,
    poolTokens: 4608,
    smScale: 1 / Math.sqrt(128),
    softcap: 0,
    qStarts: [0],
  };
  assert.equal(rooflineCosts(problem).flops, 36_511_416_320);
});

Deno.test("defaultScaleElements() and an explicit scaleElements override", () => {
  assert.equal(defaultScaleElements("f16", 8, 128), 0);
  assert.equal(defaultScaleElements("fp8_e4m3", 8, 128), 2);
  assert.equal(defaultScaleElements("int8", 8, 128), 2048);
  const base = rooflineBytes({ ...SEED, cacheDtype: "fp8_e4m3" });
  const over = rooflineBytes({ ...SEED, cacheDtype: "fp8_e4m3", scaleElements: 10 });
  assert.equal(over.total - base.total, 32);
});

Deno.test("rooflineBound() takes the lower roof and names it", () => {
  const ceiling = { bytesPerSecond: 4.8e12, flopsPerSecond: 67e12 };
  const ridge = 67e12 / 4.8e12;
  const mem = rooflineBound(ridge / 2, ceiling);
  assert.equal(mem.bound, "memory");
  assert.ok(Math.abs(mem.attainableFlopsPerSecond - 33.5e12) < 1);
  const comp = rooflineBound(ridge * 3, ceiling);
  assert.equal(comp.bound, "compute");
  assert.equal(comp.attainableFlopsPerSecond, 67e12);
  assert.equal(comp.ridgeIntensity, ridge);
  assert.throws(() => rooflineBound(1, { bytesPerSecond: 0, flopsPerSecond: 1 }), RangeError);
});

Deno.test("rooflineEvaluate() gives efficiency against the attainable roof", () => {
  const c = rooflineCosts(SEED);
  const e = rooflineEvaluate(c, 0.5, { bytesPerSecond: 20e9, flopsPerSecond: 100e9 });
  // AI ~1244 >> ridge 5: compute bound, attainable 100 GFLOP/s.
  assert.equal(e.bound, "compute");
  assert.equal(e.attainableFlopsPerSecond, 100e9);
  assert.ok(Math.abs(e.achievedFlopsPerSecond - 73_022_832_640) < 1);
  assert.ok(Math.abs(e.efficiency - 0.7302283264) < 1e-9);
  assert.ok(Math.abs(e.fractionOfBandwidth - 29_360_428 / 0.5 / 20e9) < 1e-12);
  assert.throws(() => rooflineEvaluate(c, 0, { bytesPerSecond: 1, flopsPerSecond: 1 }), /> 0/);
});

Deno.test("rooflineCosts() rejects mismatched qLens and cacheLens", () => {
  assert.throws(
    () => rooflineCosts({ ...SEED, cacheLens: [1, 2] }),
    (e: unknown) =>
      e instanceof RangeError && /qLens has 1 entries and cacheLens 2/.test(e.message),
  );
});
