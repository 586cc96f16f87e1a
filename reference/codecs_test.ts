// Exhaustive and randomized tests of the CPU codecs against independent, slow oracles:
// V8's Float16Array for f16, nearest-candidate search for bf16, nearest search over the
// 256-entry table for e4m3 and a Math.round-based rule for int8.
import assert from "node:assert/strict";
import {
  bf16BitsToNumber,
  decodeCacheElement,
  decodeHalfArray,
  e4m3Encode,
  e4m3ToNumber,
  encodeCacheElement,
  encodeHalfArray,
  f16BitsToNumber,
  int8Encode,
  inverseScale,
  numberToBf16Bits,
  numberToF16Bits,
  tensorToFloat64,
} from "./codecs.ts";
import type { CacheDtype, Tensor } from "../op/types.ts";

const SEED = (crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0) || 1;

function _rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Standard normal samples (Box-Muller) from a u32 source. */
function _normal(next: () => number): () => number {
  return () => {
    const u = (next() + 1) / 2 ** 32;
    const v = next() / 2 ** 32;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const view = new DataView(new ArrayBuffer(8));
const f32Of = (bits: number) => (view.setUint32(0, bits >>> 0), view.getFloat32(0));
const bitsOf = (x: number) => (view.setFloat32(0, x), view.getUint32(0));
const signOf = (x: number) => (view.setFloat64(0, x), view.getUint32(0) >>> 31);

const h16 = new Float16Array(1);
const h16Bits = new Uint16Array(h16.buffer);

/** Rounds to an integer with ties to even, by a different route than the codecs. */
function oracleRoundHalfEven(y: number): number {
  let r = Math.round(y); // ties toward +inf
  if (r - y === 0.5 && r % 2 !== 0) r -= 1;
  return r;
}

/** Independent e4m3 table: value of each code by the format definition. */
const E4M3_TABLE: number[] = Array.from({ length: 256 }, (_, code) => {
  const s = code >> 7 ? -1 : 1;
  const exp = (code >> 3) & 15;
  const man = code & 7;
  if (exp === 15 && man === 7) return NaN;
  return exp === 0 ? s * Math.pow(2, -6) * (man / 8) : s * Math.pow(2, exp - 7) * (1 + man / 8);
});

/** e4m3 encode by nearest search over the table, ties to the even code. */
function oracleE4m3(x: number, inv: number): number {
  const y = Math.fround(x * inv);
  const neg = signOf(x) === 1;
  if (Number.isNaN(y)) return neg ? 0xFF : 0x7F;
  const a = Math.min(Math.abs(y), 448);
  let best = 0;
  let bestErr = Infinity;
  for (let code = 0; code < 0x7F; code++) {
    const err = Math.abs(E4M3_TABLE[code]! - a);
    if (err < bestErr || (err === bestErr && code % 2 === 0)) {
      best = code;
      bestErr = err;
    }
  }
  return neg ? best | 0x80 : best;
}

function oracleInt8(x: number, inv: number): number {
  const y = Math.fround(x * inv);
  if (Number.isNaN(y)) return 0;
  return Math.max(-127, Math.min(127, oracleRoundHalfEven(Math.max(-1e9, Math.min(1e9, y))))) ||
    0;
}

/** bf16 of an f32 value by picking the nearest of the two candidate patterns. */
function oracleBf16(x: number): number {
  const f = Math.fround(x);
  const bits = bitsOf(f);
  const lo = bits >>> 16;
  if ((bits & 0xFFFF) === 0) return lo;
  const hi = lo + 1;
  const vlo = f32Of(lo << 16);
  // The pattern after the largest finite bf16 is inf; its rounding midpoint acts like 2^128.
  const vhi = (hi & 0x7FFF) === 0x7F80 ? Math.sign(f) * 2 ** 128 : f32Of(hi << 16);
  const dlo = Math.abs(f - vlo);
  const dhi = Math.abs(vhi - f);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return lo % 2 === 0 ? lo : hi;
}

/** f32 values worth testing: every f16 and bf16 value, their midpoints, randoms, extremes. */
function interestingF32(next: () => number): number[] {
  const xs: number[] = [];
  for (let h = 0; h < 0x10000; h++) {
    h16Bits[0] = h;
    const f = h16[0]!;
    xs.push(f, f32Of(h << 16), f32Of((h << 16) | 0x8000), f32Of((h << 16) | 0x7FFF));
  }
  for (let i = 0; i < 0x8000; i++) {
    // midpoints between adjacent f16 values (exact in f32 for the whole f16 range)
    xs.push((f16BitsToNumber(i) + f16BitsToNumber(i + 1)) / 2);
  }
  for (let i = 0; i < 50000; i++) xs.push(f32Of(next()));
  xs.push(65504, 65519.996, 65520, 65536, 3.4e38, 1e-45, -1e-45, 0, -0, Infinity, -Infinity);
  return xs.filter((x) => !Number.isNaN(x));
}

Deno.test("f16BitsToNumber() decodes all 65536 patterns like Float16Array", () => {
  for (let h = 0; h < 0x10000; h++) {
    h16Bits[0] = h;
    const want = h16[0]!;
    const got = f16BitsToNumber(h);
    if (Number.isNaN(want)) {
      assert.ok(Number.isNaN(got), `0x${h.toString(16)}`);
      assert.equal(signOf(got), h >> 15, `NaN sign of 0x${h.toString(16)}`);
    } else {
      assert.ok(Object.is(got, want), `0x${h.toString(16)}: ${got} vs ${want}`);
    }
  }
});

Deno.test("numberToF16Bits() inverts f16BitsToNumber() for every non-NaN pattern", () => {
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7C00) === 0x7C00 && (h & 0x3FF) !== 0) continue;
    assert.equal(numberToF16Bits(f16BitsToNumber(h)), h, `0x${h.toString(16)}`);
  }
});

Deno.test("numberToF16Bits() rounds to nearest even like Float16Array, ties and overflow included", () => {
  const next = _rng(SEED);
  const normal = _normal(next);
  const xs = interestingF32(next);
  for (let i = 0; i < 50000; i++) xs.push(normal() * 2 ** ((next() % 40) - 30));
  for (const x of xs) {
    h16[0] = x;
    assert.equal(numberToF16Bits(x), h16Bits[0], `x = ${x} (seed ${SEED})`);
  }
  assert.equal(numberToF16Bits(65519.99), 0x7BFF);
  assert.equal(numberToF16Bits(65520), 0x7C00);
  assert.equal(numberToF16Bits(-1e300), 0xFC00);
  assert.equal(numberToF16Bits(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal
  assert.equal(numberToF16Bits(3 * 2 ** -25), 0x0002); // tie -> even
  assert.equal(numberToF16Bits(-0), 0x8000);
});

Deno.test("numberToF16Bits() maps NaN to a quiet NaN that keeps the sign", () => {
  assert.equal(numberToF16Bits(NaN), 0x7E00);
  assert.equal(numberToF16Bits(f32Of(0xFFC00001)), 0xFE00);
  assert.equal(numberToF16Bits(f16BitsToNumber(0xFC01)), 0xFE00);
});

Deno.test("bf16BitsToNumber() decodes all 65536 patterns as the upper half of an f32", () => {
  for (let h = 0; h < 0x10000; h++) {
    const want = f32Of(h << 16);
    const got = bf16BitsToNumber(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got));
    else assert.ok(Object.is(got, want), `0x${h.toString(16)}`);
  }
});

Deno.test("numberToBf16Bits() rounds the f32 value to the nearest bf16 with ties to even", () => {
  const next = _rng(SEED ^ 0x1234567);
  for (const x of interestingF32(next)) {
    assert.equal(numberToBf16Bits(x), oracleBf16(x), `x = ${x} (seed ${SEED})`);
  }
  assert.equal(numberToBf16Bits(f32Of(0x3F808000)), 0x3F80); // tie -> even (down)
  assert.equal(numberToBf16Bits(f32Of(0x3F818000)), 0x3F82); // tie -> even (up)
  assert.equal(numberToBf16Bits(f32Of(0x7F7FFFFF)), 0x7F80); // overflow -> inf
  assert.equal(numberToBf16Bits(-Infinity), 0xFF80);
});

Deno.test("numberToBf16Bits() rounds float64 input to f32 first (double rounding by design)", () => {
  // 1 + 2^-8 + 2^-30 is above the bf16 tie in float64, but rounds to the tie 1 + 2^-8 in f32.
  const x = 1 + 2 ** -8 + 2 ** -30;
  assert.equal(Math.fround(x), 1 + 2 ** -8);
  assert.equal(numberToBf16Bits(x), 0x3F80);
  assert.equal(numberToBf16Bits(NaN), 0x7FC0);
  assert.equal(numberToBf16Bits(f32Of(0xFF800001)), 0xFFC0);
});

Deno.test("e4m3ToNumber() decodes all 256 codes like the format table", () => {
  for (let c = 0; c < 256; c++) {
    const want = E4M3_TABLE[c]!;
    const got = e4m3ToNumber(c);
    if (Number.isNaN(want)) {
      assert.ok(Number.isNaN(got) && signOf(got) === c >> 7, `0x${c.toString(16)}`);
    } else assert.ok(Object.is(got, want), `0x${c.toString(16)}: ${got} vs ${want}`);
  }
  assert.equal(e4m3ToNumber(0x7E), 448);
  assert.equal(e4m3ToNumber(0x01), 2 ** -9);
  assert.equal(e4m3ToNumber(0x08), 2 ** -6);
});

Deno.test("e4m3Encode() picks the nearest code with ties to even for every f16 value at several scales", () => {
  const next = _rng(SEED ^ 0xABCDEF);
  const invs = [1, 2, inverseScale(0.37), inverseScale(Math.fround(2 ** ((next() % 20) - 12)))];
  for (const inv of invs) {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7C00) === 0x7C00) continue;
      const x = f16BitsToNumber(h);
      assert.equal(e4m3Encode(x, inv), oracleE4m3(x, inv), `x = ${x}, inv = ${inv}`);
    }
  }
});

Deno.test("e4m3Encode() round-trips every finite code and saturates at +-448", () => {
  for (let c = 0; c < 256; c++) {
    if ((c & 0x7F) === 0x7F) continue;
    assert.equal(e4m3Encode(e4m3ToNumber(c), 1), c);
  }
  assert.equal(e4m3Encode(464, 1), 0x7E); // would round to the NaN slot without the clamp
  assert.equal(e4m3Encode(-1e30, 1), 0xFE);
  assert.equal(e4m3Encode(Infinity, 1), 0x7E);
  assert.equal(e4m3Encode(449, inverseScale(1)), 0x7E);
  assert.equal(e4m3Encode(3 * 2 ** -10, 1), 0x02); // tie between codes 1 and 2 -> even
  assert.equal(e4m3Encode(2 ** -10, 1), 0x00); // tie between 0 and 2^-9 -> even
  assert.equal(e4m3Encode(-(2 ** -12), 1), 0x80); // underflow keeps the sign
  assert.equal(e4m3Encode(1.0625, 1), 0x38); // tie 1 | 1.125 -> even (1)
  assert.equal(e4m3Encode(1.1875, 1), 0x3A); // tie 1.125 | 1.25 -> even (1.25)
});

Deno.test("e4m3Encode() keeps the sign of NaN as 0x7F / 0xFF", () => {
  assert.equal(e4m3Encode(NaN, 1), 0x7F);
  assert.equal(e4m3Encode(f32Of(0xFFC00000), 1), 0xFF);
  assert.equal(e4m3Encode(-Infinity, 0), 0xFF); // -inf * 0 = NaN, sign from x
});

Deno.test("e4m3Encode() multiplies once in f32 before rounding", () => {
  // x * inv in float64 is just above the tie 1.0625; rounded to f32 first it is the tie itself.
  const x = Math.fround(1.0625 + 2 ** -23);
  const inv = Math.fround(1 - 2 ** -24);
  assert.ok(x * inv > 1.0625 && Math.fround(x * inv) === 1.0625);
  assert.equal(e4m3Encode(x, inv), 0x38);
});

Deno.test("int8Encode() rounds half to even and clamps to +-127 for every f16 value at several scales", () => {
  const invs = [1, 2, 10, inverseScale(0.013), inverseScale(3.7)];
  for (const inv of invs) {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7C00) === 0x7C00) continue;
      const x = f16BitsToNumber(h);
      assert.equal(int8Encode(x, inv), oracleInt8(x, inv), `x = ${x}, inv = ${inv}`);
    }
  }
  assert.equal(int8Encode(0.5, 1), 0);
  assert.equal(int8Encode(1.5, 1), 2);
  assert.equal(int8Encode(-2.5, 1), -2);
  assert.equal(int8Encode(127.5, 1), 127);
  assert.equal(int8Encode(-128, 1), -127);
  assert.equal(int8Encode(-Infinity, 1), -127);
  assert.ok(Object.is(int8Encode(-0.2, 1), 0), "no negative zero");
  assert.equal(int8Encode(NaN, 1), 0);
});

Deno.test("inverseScale() rounds 1 / scale to f32", () => {
  const next = _rng(SEED ^ 77);
  for (let i = 0; i < 1000; i++) {
    const s = f32Of((next() % 0x3F000000) + 0x20000000);
    const inv = inverseScale(s);
    assert.equal(inv, Math.fround(inv));
    assert.ok(Math.abs(inv * s - 1) < 2 ** -23, `scale ${s}`);
  }
  assert.equal(inverseScale(0.25), 4);
});

Deno.test("decodeCacheElement() and encodeCacheElement() dispatch on the cache dtype", () => {
  const next = _rng(SEED ^ 99);
  const normal = _normal(next);
  for (let i = 0; i < 2000; i++) {
    const x = Math.fround(normal());
    const scale = Math.fround(0.01 + (next() / 2 ** 32));
    const inv = inverseScale(scale);
    const cases: Array<[CacheDtype, number]> = [
      ["f16", numberToF16Bits(x)],
      ["bf16", numberToBf16Bits(x)],
      ["fp8_e4m3", e4m3Encode(x, inv)],
      ["int8", int8Encode(x, inv)],
    ];
    for (const [dtype, raw] of cases) {
      assert.equal(encodeCacheElement(dtype, x, inv), raw, dtype);
    }
    assert.equal(decodeCacheElement("f16", cases[0]![1], scale), f16BitsToNumber(cases[0]![1]));
    assert.equal(decodeCacheElement("bf16", cases[1]![1], scale), bf16BitsToNumber(cases[1]![1]));
    assert.equal(
      decodeCacheElement("fp8_e4m3", cases[2]![1], scale),
      e4m3ToNumber(cases[2]![1]) * scale,
    );
    assert.equal(decodeCacheElement("int8", cases[3]![1], scale), cases[3]![1] * scale);
    // Quantization error is at most half a step (int8) or half an ulp of e4m3 (relative 1/16).
    const dq = decodeCacheElement("int8", cases[3]![1], scale);
    if (Math.abs(x) < 127 * scale) assert.ok(Math.abs(dq - x) <= scale * 0.5 + 1e-6);
  }
  assert.equal(decodeCacheElement("int8", -128, 0.5), -64);
});

Deno.test("decodeCacheElement() and encodeCacheElement() reject an unknown dtype with TypeError", () => {
  assert.throws(
    () => decodeCacheElement("fp4" as CacheDtype, 1, 1),
    (e: unknown) => e instanceof TypeError && /fp4/.test(e.message),
  );
  assert.throws(
    () => encodeCacheElement("e5m2" as CacheDtype, 1, 1),
    (e: unknown) => e instanceof TypeError && /e5m2/.test(e.message),
  );
});

Deno.test("decodeHalfArray(), encodeHalfArray() and tensorToFloat64() convert whole arrays", () => {
  const next = _rng(SEED ^ 5);
  const normal = _normal(next);
  const values = Array.from({ length: 257 }, normal);
  for (const dtype of ["f16", "bf16"] as const) {
    const bits = encodeHalfArray(dtype, values);
    const one = dtype === "f16" ? numberToF16Bits : numberToBf16Bits;
    assert.deepEqual([...bits], values.map(one));
    const back = decodeHalfArray(dtype, bits);
    assert.deepEqual([...tensorToFloat64({ dtype, shape: [257], data: bits })], [...back]);
    for (let i = 0; i < values.length; i++) {
      assert.ok(Math.abs(back[i]! - values[i]!) <= Math.abs(values[i]!) * 2 ** -8);
    }
  }
  const i32: Tensor = { dtype: "i32", shape: [3], data: Int32Array.of(-5, 0, 7) };
  assert.deepEqual([...tensorToFloat64(i32)], [-5, 0, 7]);
  assert.throws(
    () => tensorToFloat64({ dtype: "f8_e4m3", shape: [1], data: Uint8Array.of(1) }),
    (e: unknown) => e instanceof TypeError && /f8_e4m3/.test(e.message),
  );
});
