// GPU tests: every WGSL codec runs on the adapter and must agree bit for bit with the
// TypeScript codecs of reference/codecs.ts. Without an adapter these tests fail (not skip).
import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu.ts";
import { runElementwise } from "./_elementwise.ts";
import { WGSL_CODEC_NAMES, WGSL_CODECS, wgslCodecs } from "./codecs.ts";
import {
  bf16BitsToNumber,
  e4m3Encode,
  e4m3ToNumber,
  f16BitsToNumber,
  int8Encode,
  inverseScale,
  numberToBf16Bits,
  numberToF16Bits,
} from "../../reference/codecs.ts";

const SEED = (crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0) || 1;

/** mulberry32: a small seeded PRNG giving u32 values. */
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

const _f32 = new Float32Array(1);
const _u32 = new Uint32Array(_f32.buffer);
function bitsToF32(bits: number): number {
  _u32[0] = bits >>> 0;
  return _f32[0]!;
}
function f32ToBits(x: number): number {
  _f32[0] = x;
  return _u32[0]!;
}
const hex = (v: number, w = 8) => "0x" + (v >>> 0).toString(16).padStart(w, "0");

/** Collects mismatches and fails once with the count and the first few. */
class Mismatches {
  count = 0;
  first: string[] = [];
  constructor(readonly what: string) {}
  check(ok: boolean, describe: () => string): void {
    if (ok) return;
    this.count++;
    if (this.first.length < 8) this.first.push(describe());
  }
  assertNone(): void {
    assert.equal(
      this.count,
      0,
      `${this.what}: ${this.count} mismatches (seed ${SEED}); first: ${this.first.join("; ")}`,
    );
  }
}

async function withGpu(fn: (gpu: GpuContext) => Promise<void>): Promise<void> {
  const gpu = await acquireGpu();
  try {
    await fn(gpu);
  } finally {
    gpu.destroy();
  }
}

const isF16NaN = (h: number) => (h & 0x7C00) === 0x7C00 && (h & 0x3FF) !== 0;
const isF32NaN = (bits: number) => ((bits & 0x7FFFFFFF) >>> 0) > 0x7F800000;

/** f32 inputs for the f16/bf16 encoders: random patterns, ties, overflow, specials. */
function f32EncoderInputs(next: () => number): Uint32Array<ArrayBuffer> {
  const values: number[] = [];
  // Every f16 value widened to f32 (the round trip), and every bf16 value.
  for (let h = 0; h < 0x10000; h++) {
    values.push(f32ToBits(f16BitsToNumber(h)), h << 16);
  }
  // Exact f16 ties and one ulp either side: f16 normal mantissa boundary is bit 13 of f32.
  for (let i = 0; i < 20000; i++) {
    const h = next() & 0x7BFF;
    const base = f32ToBits(f16BitsToNumber(h));
    const sign = next() & 0x80000000;
    if (h >= 0x0400) {
      const tie = base + 0x1000;
      values.push(sign | tie, sign | (tie - 1), sign | (tie + 1));
    }
    // bf16 ties: half of bit 16.
    const bb = (next() & 0x7F7F0000) >>> 0;
    values.push((sign | bb | 0x8000) >>> 0, (sign | bb | 0x7FFF) >>> 0, (sign | bb | 0x8001) >>> 0);
  }
  // f16 subnormal ties: k * 2^-25 for odd k, and neighbours.
  for (let k = 1; k < 2100; k += 2) {
    const bits = f32ToBits(k * 2 ** -25);
    values.push(bits, bits - 1, bits + 1, (bits | 0x80000000) >>> 0);
  }
  // Around overflow and the smallest values.
  for (const x of [65504, 65519.99, 65520, 65536, 1e10, 2 ** -24, 2 ** -25, 2 ** -26, 3e-8]) {
    const bits = f32ToBits(x);
    for (const d of [-2, -1, 0, 1, 2]) {
      values.push(bits + d, ((bits + d) | 0x80000000) >>> 0);
    }
  }
  // bf16 overflow to inf, f32 subnormals, zeros, infinities, NaNs of both signs.
  values.push(0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF, 0x00000001, 0x807FFFFF);
  values.push(0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001);
  values.push(0xFFBFFFFF, 0x7FFFFFFF);
  // Uniform random patterns.
  for (let i = 0; i < 100000; i++) values.push(next());
  return Uint32Array.from(values, (v) => v >>> 0);
}

Deno.test("WGSL_CODECS defines every codec once and needs no f16 extension", () => {
  for (const name of WGSL_CODEC_NAMES) {
    assert.equal(WGSL_CODECS.split(`fn ${name}(`).length, 2, name);
  }
  assert.ok(!WGSL_CODECS.includes("enable f16"));
  assert.ok(!/\bf16\b(?!_)/.test(WGSL_CODECS.replace(/\/\/.*$/gm, "")), "uses the f16 type");
  assert.equal(wgslCodecs(), "");
  assert.equal(
    wgslCodecs("encode_int8", "decode_e4m3", "encode_int8"),
    wgslCodecs(
      "decode_e4m3",
      "encode_int8",
    ),
  );
  assert.throws(
    () => wgslCodecs("encode_fp4" as never),
    (e: unknown) => e instanceof RangeError && /encode_fp4/.test(e.message),
  );
});

Deno.test("f16_bits_to_f32 and f32_to_f16_bits round-trip all 65536 f16 patterns on the GPU", async () => {
  await withGpu(async (gpu) => {
    const a = Uint32Array.from({ length: 0x10000 }, (_, i) => i);
    // High garbage bits must be ignored by the decoder.
    const b = Uint32Array.from(a, (v) => (v | 0xABCD0000) >>> 0);
    const out = await runElementwise(
      gpu,
      WGSL_CODECS,
      `let v = f16_bits_to_f32(b[i]);
  out[2u * i] = bitcast<u32>(v);
  out[2u * i + 1u] = f32_to_f16_bits(v);`,
      a,
      b,
      2,
    );
    const bad = new Mismatches("f16 round trip");
    for (let h = 0; h < 0x10000; h++) {
      const dec = out[2 * h]!;
      const enc = out[2 * h + 1]!;
      if (isF16NaN(h)) {
        bad.check(isF32NaN(dec), () => `${hex(h, 4)} decoded to ${hex(dec)}, not NaN`);
        bad.check(
          enc === numberToF16Bits(bitsToF32(dec)) && isF16NaN(enc) && (enc & 0x200) !== 0,
          () => `NaN ${hex(h, 4)} re-encoded to ${hex(enc, 4)}`,
        );
      } else {
        const want = f32ToBits(f16BitsToNumber(h));
        bad.check(dec === want, () => `${hex(h, 4)} decoded to ${hex(dec)}, want ${hex(want)}`);
        bad.check(enc === h, () => `${hex(h, 4)} re-encoded to ${hex(enc, 4)}`);
      }
    }
    bad.assertNone();
  });
});

Deno.test("bf16_bits_to_f32 decodes all 65536 bf16 patterns exactly on the GPU", async () => {
  await withGpu(async (gpu) => {
    const a = Uint32Array.from({ length: 0x10000 }, (_, i) => (i | 0x5A5A0000) >>> 0);
    const out = await runElementwise(
      gpu,
      WGSL_CODECS,
      `out[i] = bitcast<u32>(bf16_bits_to_f32(a[i]));`,
      a,
      a,
      1,
    );
    const bad = new Mismatches("bf16 decode");
    for (let h = 0; h < 0x10000; h++) {
      const want = (h << 16) >>> 0;
      bad.check(out[h] === want, () => `${hex(h, 4)} decoded to ${hex(out[h]!)}`);
      if (!isF32NaN(want)) {
        bad.check(
          f32ToBits(bf16BitsToNumber(h)) === want,
          () => `TS bf16BitsToNumber(${hex(h, 4)}) disagrees`,
        );
      }
    }
    bad.assertNone();
  });
});

Deno.test("f32_to_f16_bits and f32_to_bf16_bits match the TypeScript encoders on ties, overflow, NaN and random f32", async () => {
  await withGpu(async (gpu) => {
    const a = f32EncoderInputs(_rng(SEED));
    const out = await runElementwise(
      gpu,
      WGSL_CODECS,
      `let x = bitcast<f32>(a[i]);
  out[2u * i] = f32_to_f16_bits(x);
  out[2u * i + 1u] = f32_to_bf16_bits(x);`,
      a,
      a,
      2,
    );
    const bad = new Mismatches("f32 -> f16/bf16");
    for (let i = 0; i < a.length; i++) {
      const x = bitsToF32(a[i]!);
      const wantH = numberToF16Bits(x);
      const wantB = numberToBf16Bits(x);
      bad.check(
        out[2 * i] === wantH,
        () => `f16(${hex(a[i]!)}) = ${hex(out[2 * i]!, 4)}, want ${hex(wantH, 4)}`,
      );
      bad.check(
        out[2 * i + 1] === wantB,
        () => `bf16(${hex(a[i]!)}) = ${hex(out[2 * i + 1]!, 4)}, want ${hex(wantB, 4)}`,
      );
    }
    // NaN keeps its sign with a canonical quiet payload, whatever the TS side does.
    const nanAt = (bits: number) => a.indexOf(bits >>> 0);
    for (const [bits, h, bf] of [[0x7FC00000, 0x7E00, 0x7FC0], [0xFFC00000, 0xFE00, 0xFFC0]]) {
      const i = nanAt(bits!);
      assert.equal(out[2 * i], h);
      assert.equal(out[2 * i + 1], bf);
    }
    bad.assertNone();
  });
});

Deno.test("decode_e4m3 and decode_int8 decode all 256 codes exactly on the GPU", async () => {
  await withGpu(async (gpu) => {
    const a = Uint32Array.from({ length: 256 }, (_, i) => (i | 0xC3000F00) >>> 0);
    const out = await runElementwise(
      gpu,
      WGSL_CODECS,
      `out[2u * i] = bitcast<u32>(decode_e4m3(a[i]));
  out[2u * i + 1u] = bitcast<u32>(decode_int8(a[i]));`,
      a,
      a,
      2,
    );
    const bad = new Mismatches("e4m3/int8 decode");
    for (let c = 0; c < 256; c++) {
      const e = out[2 * c]!;
      if ((c & 0x7F) === 0x7F) {
        bad.check(isF32NaN(e), () => `e4m3 ${hex(c, 2)} decoded to ${hex(e)}, not NaN`);
        bad.check((e >>> 31) === c >> 7, () => `e4m3 NaN ${hex(c, 2)} lost its sign`);
      } else {
        const want = f32ToBits(e4m3ToNumber(c));
        bad.check(e === want, () => `e4m3 ${hex(c, 2)} decoded to ${hex(e)}, want ${hex(want)}`);
      }
      const i8 = out[2 * c + 1]!;
      const wantI8 = f32ToBits(c >= 128 ? c - 256 : c);
      bad.check(i8 === wantI8, () => `int8 ${hex(c, 2)} decoded to ${hex(i8)}`);
    }
    bad.assertNone();
  });
});

Deno.test("encode_e4m3 and encode_int8 match the TypeScript encoders for every finite f16 value at several scales", async () => {
  await withGpu(async (gpu) => {
    const next = _rng(SEED ^ 0x9E3779B9);
    const randomScale = () => Math.fround(2 ** ((next() / 2 ** 32) * 16 - 10));
    const scales = [1, 0.5, 4, 1 / 32, 0.37, 0.0123, 3.3, randomScale(), randomScale()].map(
      Math.fround,
    );
    const xs: number[] = [];
    const invs: number[] = [];
    for (const scale of scales) {
      const inv = f32ToBits(inverseScale(scale));
      for (let h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) === 0x7C00) continue; // finite f16 only here
        xs.push(f32ToBits(f16BitsToNumber(h)));
        invs.push(inv);
      }
      // Saturation probes at +-448 * scale and +-127.5 * scale, and a few ulps around them.
      for (const edge of [448, 464, 480, 127, 127.5, 128, 126.5]) {
        const bits = f32ToBits(Math.fround(edge * scale));
        for (let d = -3; d <= 3; d++) {
          xs.push(bits + d, ((bits + d) | 0x80000000) >>> 0);
          invs.push(inv, inv);
        }
      }
    }
    // Specials: zeros, infinities, NaNs of both signs, f32 subnormals, huge products.
    for (
      const bits of [
        0,
        0x80000000,
        0x7F800000,
        0xFF800000,
        0x7FC00000,
        0xFFC00000,
        0x7F800001,
        1,
        0x807FFFFF,
        0x7F7FFFFF,
      ]
    ) {
      for (const inv of [1, 2 ** 20, 2 ** -20]) {
        xs.push(bits);
        invs.push(f32ToBits(inv));
      }
    }
    // x * inv in exact arithmetic lies just above an e4m3 tie (1.0625) and an int8 tie (2.5);
    // the correctly rounded f32 product is the tie itself. A fused or wider multiply fails here.
    for (const tie of [1.0625, 2.5]) {
      xs.push(f32ToBits(tie + tie * 2 ** -23));
      invs.push(f32ToBits(1 - 2 ** -24));
    }
    const a = Uint32Array.from(xs, (v) => v >>> 0);
    const b = Uint32Array.from(invs, (v) => v >>> 0);
    const out = await runElementwise(
      gpu,
      WGSL_CODECS,
      `let x = bitcast<f32>(a[i]);
  let inv = bitcast<f32>(b[i]);
  out[2u * i] = encode_e4m3(x, inv);
  out[2u * i + 1u] = encode_int8(x, inv);`,
      a,
      b,
      2,
    );
    const bad = new Mismatches("e4m3/int8 encode");
    for (let i = 0; i < a.length; i++) {
      const x = bitsToF32(a[i]!);
      const inv = bitsToF32(b[i]!);
      const wantE = e4m3Encode(x, inv);
      const wantI = int8Encode(x, inv) & 0xFF;
      const what = () => `x=${hex(a[i]!)} (${x}) inv=${hex(b[i]!)}`;
      bad.check(
        out[2 * i] === wantE,
        () => `e4m3 ${what()}: ${hex(out[2 * i]!, 2)}, want ${hex(wantE, 2)}`,
      );
      bad.check(
        out[2 * i + 1] === wantI,
        () => `int8 ${what()}: ${hex(out[2 * i + 1]!, 2)}, want ${hex(wantI, 2)}`,
      );
    }
    // NaN keeps its sign as 0x7F / 0xFF; int8 maps NaN to 0; saturation is exact.
    const at = (bits: number) => xs.indexOf(bits);
    assert.equal(out[2 * at(0x7FC00000)], 0x7F);
    assert.equal(out[2 * at(0xFFC00000)], 0xFF);
    assert.equal(out[2 * at(0x7FC00000) + 1], 0);
    assert.equal(out[2 * at(0x7F800000)], 0x7E);
    assert.equal(out[2 * at(0xFF800000) + 1], 0x81);
    assert.equal(out[2 * at(f32ToBits(1.0625 + 1.0625 * 2 ** -23))], 0x38);
    assert.equal(out[2 * at(f32ToBits(2.5 + 2.5 * 2 ** -23)) + 1], 2);
    bad.assertNone();
  });
});
