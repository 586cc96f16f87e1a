// Tests of the SPEC §4 checks: output tolerance and statistics, non-finite outputs, sampled
// rows, bit-exact pool comparison and the one-line descriptions.
import assert from "node:assert/strict";
import {
  compareOutput,
  comparePools,
  describeOutputCheck,
  describePoolCheck,
  OUTPUT_TOLERANCES,
} from "./check.ts";
import { bf16BitsToNumber, encodeHalfArray, f16BitsToNumber } from "./codecs.ts";
import type { ReferenceAttention, ReferenceRow } from "./attention.ts";
import { validateProblem } from "../op/validate.ts";
import {
  CACHE_TENSOR_DTYPE,
  type CacheDtype,
  type Problem,
  type QDtype,
  type Tensor,
} from "../op/types.ts";

const SEED = (crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0) || 1;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = rng(SEED);
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

/** A validated problem with two requests of q lengths 3 and 2 (tokens 0-2 and 3-4). */
function makeProblem(qDtype: QDtype, cacheDtype: CacheDtype = qDtype): Problem {
  const T = 5, H = 4, Hkv = 2, D = 8, P = 16;
  const half = (n: number) => encodeHalfArray(qDtype, Array.from({ length: n }, normal));
  const poolDtype = CACHE_TENSOR_DTYPE[cacheDtype];
  const pool = (): Tensor =>
    poolDtype === "f8_e4m3"
      ? { dtype: poolDtype, shape: [P, Hkv, D], data: new Uint8Array(P * Hkv * D).fill(0x31) }
      : poolDtype === "i8"
      ? { dtype: poolDtype, shape: [P, Hkv, D], data: new Int8Array(P * Hkv * D).fill(-3) }
      : { dtype: poolDtype, shape: [P, Hkv, D], data: half(P * Hkv * D) };
  const scale = cacheDtype === "fp8_e4m3"
    ? { dtype: "f32" as const, shape: [1], data: Float32Array.of(0.1) }
    : cacheDtype === "int8"
    ? { dtype: "f32" as const, shape: [Hkv, D], data: new Float32Array(Hkv * D).fill(0.02) }
    : undefined;
  return validateProblem({
    q: { dtype: qDtype, shape: [T, H, D], data: half(T * H * D) },
    kNew: { dtype: qDtype, shape: [T, Hkv, D], data: half(T * Hkv * D) },
    vNew: { dtype: qDtype, shape: [T, Hkv, D], data: half(T * Hkv * D) },
    kPages: pool(),
    vPages: pool(),
    ...(scale ? { kScale: scale, vScale: scale } : {}),
    cuSeqlensQ: { dtype: "i32", shape: [3], data: Int32Array.of(0, 3, 5) },
    cacheSeqlens: { dtype: "i32", shape: [2], data: Int32Array.of(4, 1) },
    blockTable: { dtype: "i32", shape: [2, 2], data: Int32Array.of(2, 0, 3, -1) },
  }, { pageSize: 4 });
}

const ALL_ROWS: ReferenceRow[] = [0, 1, 2, 0, 1].map((row, token) => ({
  request: token < 3 ? 0 : 1,
  row,
  token,
}));

/** A random float64 reference over the given rows and o = reference rounded to q's dtype. */
function makeOutput(
  problem: Problem,
  rows: ReferenceRow[] = ALL_ROWS,
): { ref: ReferenceAttention; o: Tensor } {
  const size = problem.numHeads * problem.headDim;
  const ref = { rows, o: Float64Array.from({ length: rows.length * size }, normal) };
  const full = new Float64Array(problem.totalQ * size).fill(0.25);
  rows.forEach((r, n) => full.set(ref.o.subarray(n * size, (n + 1) * size), r.token * size));
  const o: Tensor = {
    dtype: problem.qDtype,
    shape: [problem.totalQ, problem.numHeads, problem.headDim],
    data: encodeHalfArray(problem.qDtype, full),
  };
  return { ref, o };
}

const decodeOf = (dtype: QDtype) => dtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;

Deno.test("compareOutput() accepts the reference rounded to the output dtype and reports exact statistics", () => {
  for (const qDtype of ["f16", "bf16"] as const) {
    const problem = makeProblem(qDtype);
    const { ref, o } = makeOutput(problem);
    const check = compareOutput(o, ref, problem);
    assert.equal(check.ok, true, describeOutputCheck(check));
    assert.equal(check.checkedRows, 5);
    assert.equal(check.checkedElements, 5 * 4 * 8);
    assert.equal(check.mismatches, 0);
    assert.deepEqual(check.failingRequests, []);
    assert.equal(check.firstBad, undefined);
    assert.equal(check.atol, OUTPUT_TOLERANCES[qDtype].atol);
    const decode = decodeOf(qDtype);
    const errs = ref.o.map((r, i) => Math.abs(decode((o.data as Uint16Array)[i]!) - r));
    assert.equal(check.maxAbsErr, Math.max(...errs));
    assert.ok(check.maxAbsErr > 0, "rounding leaves some error");
    const l2 = Math.hypot(...errs) / Math.hypot(...ref.o);
    assert.ok(Math.abs(check.relL2Err - l2) <= 1e-12 * l2);
    const rel = Math.max(...errs.map((e, i) => e / Math.max(Math.abs(ref.o[i]!), check.atol)));
    assert.equal(check.maxRelErr, rel);
    const used = Math.max(
      ...errs.map((e, i) => e / (check.atol + check.rtol * Math.abs(ref.o[i]!))),
    );
    assert.equal(check.toleranceUsed, used);
    assert.ok(used > 0 && used <= 1, `${used}`);
  }
});

Deno.test("compareOutput() flags an element beyond atol + rtol * |ref| and names where it is", () => {
  const problem = makeProblem("f16");
  const { ref, o } = makeOutput(problem);
  // token 4 = request 1 row 1, head 2, dim 5; ref 0.996 vs o 1.0: 0.004 > 0.002 + 0.002 * 0.996
  const at = (4 * 4 + 2) * 8 + 5;
  ref.o[at] = 0.996;
  (o.data as Uint16Array)[at] = 0x3C00;
  // A second element just inside: 0.003 <= 0.002 + 0.002 * 0.997
  ref.o[3] = 0.997;
  (o.data as Uint16Array)[3] = 0x3C00;
  const check = compareOutput(o, ref, problem);
  assert.equal(check.ok, false);
  assert.equal(check.mismatches, 1);
  // The bad element uses 0.004 / (0.002 + 0.002 * 0.996) of its tolerance.
  assert.ok(Math.abs(check.toleranceUsed - (1 - 0.996) / (0.002 + 0.002 * 0.996)) < 1e-9);
  assert.deepEqual(check.failingRequests, [1]);
  assert.deepEqual(check.firstBad, {
    request: 1,
    row: 1,
    token: 4,
    head: 2,
    dim: 5,
    actual: 1,
    expected: 0.996,
  });
  assert.ok(Math.abs(check.maxAbsErr - 0.004) < 1e-12);
  const line = describeOutputCheck(check);
  assert.match(line, /^FAILED: 1 of 160 elements \(5 rows\) outside atol 0.002 \+ rtol 0.002/);
  assert.match(line, /failing requests \[1\]/);
  assert.match(
    line,
    /first bad: request 1 row 1 \(token 4\) head 2 dim 5: got 1.00, expected 0.996/,
  );
});

Deno.test("compareOutput() fails on NaN and Inf in o and keeps the error statistics finite", () => {
  for (const [bits, qDtype] of [[0x7E00, "f16"], [0xFC00, "f16"], [0x7FC0, "bf16"]] as const) {
    const problem = makeProblem(qDtype);
    const { ref, o } = makeOutput(problem);
    (o.data as Uint16Array)[17] = bits;
    (o.data as Uint16Array)[100] = bits;
    const check = compareOutput(o, ref, problem);
    assert.equal(check.ok, false);
    assert.equal(check.nonFinite, 2);
    assert.equal(check.mismatches, 2);
    assert.ok(Number.isFinite(check.maxAbsErr) && Number.isFinite(check.relL2Err));
    assert.equal(check.firstBad?.token, 0);
    assert.equal(check.firstBad?.head, 2);
    assert.equal(check.firstBad?.dim, 1);
    assert.match(describeOutputCheck(check), /2 non-finite/);
  }
});

Deno.test("compareOutput() uses the looser bf16 tolerance and honours explicit tolerances", () => {
  for (const qDtype of ["f16", "bf16"] as const) {
    const problem = makeProblem(qDtype);
    const { ref, o } = makeOutput(problem);
    const decode = decodeOf(qDtype);
    for (let i = 0; i < ref.o.length; i++) {
      ref.o[i] = decode((o.data as Uint16Array)[i]!) + 0.01 * (i % 2 ? 1 : -1);
    }
    assert.equal(compareOutput(o, ref, problem).ok, qDtype === "bf16");
    assert.equal(compareOutput(o, ref, problem, { atol: 0.0101, rtol: 0 }).ok, true);
    assert.equal(compareOutput(o, ref, problem, { atol: 0.0099, rtol: 0 }).ok, false);
  }
});

Deno.test("compareOutput() checks only the reference's sampled rows", () => {
  const problem = makeProblem("bf16");
  const rows = [ALL_ROWS[0]!, ALL_ROWS[2]!, ALL_ROWS[4]!];
  const { ref, o } = makeOutput(problem, rows);
  // Garbage, even NaN, in rows that were not sampled does not count.
  (o.data as Uint16Array).fill(0x7FC0, 1 * 32, 2 * 32);
  const check = compareOutput(o, ref, problem);
  assert.equal(check.ok, true, describeOutputCheck(check));
  assert.equal(check.checkedRows, 3);
  assert.match(describeOutputCheck(check), /^ok: 3 rows \(96 elements\) within atol 0.016/);
});

Deno.test("compareOutput() rejects a wrong dtype, shape or reference size with TypeError", () => {
  const problem = makeProblem("f16");
  const { ref, o } = makeOutput(problem);
  const cases: Array<[Tensor, ReferenceAttention, RegExp]> = [
    [{ ...o, dtype: "bf16" }, ref, /expected dtype f16, got bf16/],
    [{ ...o, shape: [5, 4, 4] }, ref, /expected shape \[5, 4, 8\], got \[5, 4, 4\]/],
    [{ ...o, data: new Uint16Array(10) }, ref, /expected 160 elements/],
    [o, { rows: ref.rows, o: ref.o.subarray(1) }, /159 values for 5 rows, expected 160/],
  ];
  for (const [actual, r, pattern] of cases) {
    assert.throws(
      () => compareOutput(actual, r, problem),
      (e: unknown) => e instanceof TypeError && pattern.test(e.message),
    );
  }
});

/** Random pools of the problem's cache dtype, and a copy of each. */
function makePools(problem: Problem): Tensor[] {
  const shape = [problem.poolTokens, problem.numKvHeads, problem.headDim];
  const n = shape[0]! * shape[1]! * shape[2]!;
  const dtype = CACHE_TENSOR_DTYPE[problem.cacheDtype];
  const make = (): Tensor => {
    const bytes = new Uint8Array(n * (dtype === "f16" || dtype === "bf16" ? 2 : 1) + 6);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    // A view at a non-zero offset into a larger buffer must be compared by its own bytes.
    const data = dtype === "i8"
      ? new Int8Array(bytes.buffer, 2, n)
      : dtype === "f8_e4m3"
      ? new Uint8Array(bytes.buffer, 2, n)
      : new Uint16Array(bytes.buffer, 2, n);
    return { dtype, shape, data } as Tensor;
  };
  const k = make(), v = make();
  return [k, v, { ...k, data: k.data.slice() }, { ...v, data: v.data.slice() }];
}

Deno.test("comparePools() accepts identical pools byte for byte", () => {
  for (const cache of ["f16", "bf16", "fp8_e4m3", "int8"] as const) {
    const problem = makeProblem(cache === "bf16" ? "bf16" : "f16", cache);
    const [k, v, ek, ev] = makePools(problem) as [Tensor, Tensor, Tensor, Tensor];
    const check = comparePools(k, v, ek, ev, problem);
    assert.equal(check.ok, true);
    assert.equal(check.checkedBytes, 2 * k.data.byteLength);
    assert.equal(check.badBytes, 0);
    assert.match(describePoolCheck(check), /^ok: k and v pools bit-exact/);
  }
});

Deno.test("comparePools() counts differing bytes and elements and names the first bad slot", () => {
  const problem = makeProblem("f16");
  const [k, v, ek, ev] = makePools(problem) as [Tensor, Tensor, Tensor, Tensor];
  // v pool: token 6 (page 1 offset 2), head 1, dim 3 differs in both bytes; another element in
  // one byte. k pool: token 9 head 0 dim 0 differs in its low byte. k is reported first.
  const vAt = (6 * 2 + 1) * 8 + 3;
  (v.data as Uint16Array)[vAt] = (ev.data as Uint16Array)[vAt]! ^ 0x0101;
  (v.data as Uint16Array)[vAt + 9] = (ev.data as Uint16Array)[vAt + 9]! ^ 0x8000;
  const kAt = 9 * 16;
  (k.data as Uint16Array)[kAt] = (ek.data as Uint16Array)[kAt]! ^ 0x0001;
  const check = comparePools(k, v, ek, ev, problem);
  assert.equal(check.ok, false);
  assert.equal(check.badBytes, 4);
  assert.equal(check.badElements, 3);
  assert.deepEqual(check.firstBad, {
    pool: "k",
    dtype: "f16",
    token: 9,
    page: 2,
    offset: 1,
    head: 0,
    dim: 0,
    actual: (k.data as Uint16Array)[kAt],
    expected: (ek.data as Uint16Array)[kAt],
  });
  assert.match(
    describePoolCheck(check),
    /^FAILED: 4 of 1024 pool bytes differ \(3 elements\); first bad: k_pages token 9 \(page 2 offset 1\) head 0 dim 0: got 0x[0-9a-f]{4}, expected 0x[0-9a-f]{4}$/,
  );
  // Only the v pool wrong: its first element is named.
  (k.data as Uint16Array)[kAt] = (ek.data as Uint16Array)[kAt]!;
  const vOnly = comparePools(k, v, ek, ev, problem);
  assert.equal(vOnly.firstBad?.pool, "v");
  assert.equal(vOnly.firstBad?.token, 6);
  assert.equal(vOnly.firstBad?.head, 1);
  assert.equal(vOnly.firstBad?.dim, 3);
});

Deno.test("comparePools() reports int8 values signed and fp8 bytes in hex", () => {
  for (const cache of ["int8", "fp8_e4m3"] as const) {
    const problem = makeProblem("bf16", cache);
    const [k, v, ek, ev] = makePools(problem) as [Tensor, Tensor, Tensor, Tensor];
    k.data[5] = -100;
    ek.data[5] = cache === "int8" ? 27 : 0x1B;
    if (cache === "fp8_e4m3") k.data[5] = 0x9C;
    const line = describePoolCheck(comparePools(k, v, ek, ev, problem));
    assert.match(line, cache === "int8" ? /got -100, expected 27$/ : /got 0x9c, expected 0x1b$/);
  }
});

Deno.test("comparePools() rejects pools of the wrong dtype or shape with TypeError", () => {
  const problem = makeProblem("f16");
  const [k, v, ek, ev] = makePools(problem) as [Tensor, Tensor, Tensor, Tensor];
  assert.throws(
    () => comparePools({ ...k, dtype: "bf16" }, v, ek, ev, problem),
    (e: unknown) =>
      e instanceof TypeError && /k_pages: expected dtype f16, got bf16/.test(e.message),
  );
  assert.throws(
    () => comparePools(k, v, ek, { ...ev, shape: [8, 2, 8] }, problem),
    (e: unknown) =>
      e instanceof TypeError && /expected v_pages: expected shape \[16, 2, 8\]/.test(e.message),
  );
});
