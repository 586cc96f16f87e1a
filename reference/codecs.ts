/**
 * Bit-exact element codecs of SPEC §2 on the CPU: f16, bf16, fp8 e4m3fn and int8.
 * They are the contract the WGSL codecs (`kernels/wgsl/codecs.ts`) are tested against.
 *
 * f16/bf16 values travel as raw bit patterns (numbers 0..65535), fp8 as bytes 0..255, int8
 * as signed integers -128..127. Shared conventions with the WGSL side:
 * - NaN keeps its sign and gets a canonical quiet payload: f16 `s|0x7E00`, bf16 `s|0x7FC0`,
 *   e4m3 `s|0x7F`; int8 has no NaN and encodes a NaN product as 0.
 * - The quantizing encoders compute `y = fround(x * inv)` (x and inv are f32 values, so this is
 *   the correctly rounded f32 multiply the kernels do), then round y; the sign of an e4m3 zero
 *   comes from x.
 * @module
 */
import type { CacheDtype, QDtype, Tensor } from "../op/types.ts";

const _f32 = new Float32Array(1);
const _u32 = new Uint32Array(_f32.buffer);
const _f64 = new Float64Array(1);
const _u32x2 = new Uint32Array(_f64.buffer);

/** Bit pattern of the f32 value nearest to x (round-to-nearest-even). */
function _f32Bits(x: number): number {
  _f32[0] = x;
  return _u32[0]!;
}

/** A quiet NaN whose sign bit is set when `negative` (made through an f32 pattern). */
function _nan(negative: boolean): number {
  _u32[0] = negative ? 0xFFC00000 : 0x7FC00000;
  return _f32[0]!;
}

/** Sign bit of a number, NaN and -0 included (1 when negative). */
function _signBit(x: number): number {
  _f64[0] = x;
  return _u32x2[1]! >>> 31;
}

/** Rounds a non-negative number to an integer, ties to even. */
function _roundHalfEvenNonNegative(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact for v >= 0
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2(a)) for a finite a > 0, exact. */
function _exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

/**
 * The value of an IEEE binary16 bit pattern (low 16 bits of `bits`).
 *
 * @example
 * ```ts
 * import { f16BitsToNumber } from "./codecs.ts";
 * if (f16BitsToNumber(0x3C00) !== 1 || f16BitsToNumber(0xC000) !== -2) throw new Error();
 * if (f16BitsToNumber(0x0001) !== 2 ** -24) throw new Error();
 * ```
 */
export function f16BitsToNumber(bits: number): number {
  const sign = (bits & 0x8000) ? -1 : 1;
  const e = (bits >> 10) & 0x1F;
  const m = bits & 0x3FF;
  if (e === 0x1F) return m === 0 ? sign * Infinity : _nan(sign < 0);
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/**
 * The binary16 bit pattern nearest to x: round-to-nearest-even of the exact value of x,
 * overflow (|x| >= 65520) to ±inf, NaN to sign|0x7E00.
 *
 * @example
 * ```ts
 * import { numberToF16Bits } from "./codecs.ts";
 * if (numberToF16Bits(1) !== 0x3C00 || numberToF16Bits(65520) !== 0x7C00) throw new Error();
 * if (numberToF16Bits(1 + 2 ** -11) !== 0x3C00) throw new Error(); // tie -> even
 * ```
 */
export function numberToF16Bits(x: number): number {
  const sign = _signBit(x) << 15;
  if (Number.isNaN(x)) return sign | 0x7E00;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7C00;
  if (a < 2 ** -14) {
    // subnormal: units of 2^-24; 1024 becomes the smallest normal naturally
    return sign | _roundHalfEvenNonNegative(a * 2 ** 24);
  }
  const e = _exponentOf(a);
  const q = _roundHalfEvenNonNegative(a * 2 ** (10 - e)); // 1024 ..= 2048
  return sign | (((e + 15) << 10) + q - 1024);
}

/**
 * The value of a bfloat16 bit pattern (low 16 bits of `bits`).
 *
 * @example
 * ```ts
 * import { bf16BitsToNumber } from "./codecs.ts";
 * if (bf16BitsToNumber(0x3F80) !== 1 || bf16BitsToNumber(0xC0A0) !== -5) throw new Error();
 * ```
 */
export function bf16BitsToNumber(bits: number): number {
  _u32[0] = (bits & 0xFFFF) << 16;
  return _f32[0]!;
}

/**
 * The bfloat16 bit pattern of x: x is first rounded to f32, then round-to-nearest-even on the
 * upper 16 bits of the f32 pattern (overflow to ±inf); NaN to sign|0x7FC0.
 *
 * @example
 * ```ts
 * import { numberToBf16Bits } from "./codecs.ts";
 * if (numberToBf16Bits(1) !== 0x3F80 || numberToBf16Bits(-5) !== 0xC0A0) throw new Error();
 * if (numberToBf16Bits(1 + 2 ** -8) !== 0x3F80) throw new Error(); // tie -> even
 * ```
 */
export function numberToBf16Bits(x: number): number {
  if (Number.isNaN(x)) return (_signBit(x) << 15) | 0x7FC0;
  const bits = _f32Bits(x);
  return ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16) & 0xFFFF;
}

/**
 * The value of an fp8 e4m3fn byte: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits,
 * subnormals `m * 2^-9`, 0x7F/0xFF NaN, no infinities.
 *
 * @example
 * ```ts
 * import { e4m3ToNumber } from "./codecs.ts";
 * if (e4m3ToNumber(0x38) !== 1 || e4m3ToNumber(0x7E) !== 448) throw new Error();
 * if (e4m3ToNumber(0x81) !== -(2 ** -9) || !Number.isNaN(e4m3ToNumber(0x7F))) throw new Error();
 * ```
 */
export function e4m3ToNumber(byte: number): number {
  const sign = (byte & 0x80) ? -1 : 1;
  const e = (byte >> 3) & 0xF;
  const m = byte & 7;
  if (e === 15 && m === 7) return _nan(sign < 0);
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (8 + m) * 2 ** (e - 10);
}

/**
 * fp8 e4m3fn byte of `clamp(x * inv, -448, 448)` (SPEC §2): `y = fround(x * inv)`, saturated
 * to ±448, rounded to nearest with ties to even; NaN (x or y) to sign(x)|0x7F. The sign of
 * a zero result is the sign of x. `x` and `inv` must be f32 values, `inv > 0`.
 *
 * @example
 * ```ts
 * import { e4m3Encode } from "./codecs.ts";
 * if (e4m3Encode(1, 1) !== 0x38 || e4m3Encode(1000, 1) !== 0x7E) throw new Error();
 * if (e4m3Encode(-3, 0.5) !== 0xBC) throw new Error(); // -1.5
 * ```
 */
export function e4m3Encode(x: number, inv: number): number {
  const sign = _signBit(x) << 7;
  const y = Math.fround(x * inv);
  if (Number.isNaN(y) || Number.isNaN(x)) return sign | 0x7F;
  const a = Math.abs(y);
  if (a >= 448) return sign | 0x7E;
  if (a < 2 ** -6) return sign | _roundHalfEvenNonNegative(a * 512);
  const e = _exponentOf(a);
  const q = _roundHalfEvenNonNegative(a * 2 ** (3 - e)); // 8 ..= 16
  return sign | (((e + 7) << 3) + q - 8);
}

/**
 * int8 code of `clamp(round_half_even(fround(x * inv)), -127, 127)` (SPEC §2), as a signed
 * integer; a NaN product encodes as 0. `x` and `inv` must be f32 values, `inv > 0`.
 *
 * @example
 * ```ts
 * import { int8Encode } from "./codecs.ts";
 * if (int8Encode(2.5, 1) !== 2 || int8Encode(-3.5, 1) !== -4) throw new Error();
 * if (int8Encode(1e6, 1) !== 127 || int8Encode(-1e6, 1) !== -127) throw new Error();
 * ```
 */
export function int8Encode(x: number, inv: number): number {
  const y = Math.fround(x * inv);
  if (Number.isNaN(y)) return 0;
  const q = Math.min(127, _roundHalfEvenNonNegative(Math.min(Math.abs(y), 128)));
  return y < 0 ? -q || 0 : q;
}

/**
 * The inverse scale the encoders multiply by: `fround(1 / scale)`, computed once per scale
 * element (SPEC §2). Kernels receive it from the host and never divide.
 *
 * @example
 * ```ts
 * import { inverseScale } from "./codecs.ts";
 * if (inverseScale(0.5) !== 2 || inverseScale(3) !== Math.fround(1 / 3)) throw new Error();
 * ```
 */
export function inverseScale(scale: number): number {
  return Math.fround(1 / scale);
}

/**
 * The value of one stored cache element (SPEC §2): f16/bf16 bits decoded exactly; fp8 byte and
 * int8 code (-128..127) times `scale` (the product is exact in float64). `scale` is ignored for
 * f16/bf16.
 *
 * @example
 * ```ts
 * import { decodeCacheElement } from "./codecs.ts";
 * if (decodeCacheElement("fp8_e4m3", 0x38, 0.25) !== 0.25) throw new Error();
 * if (decodeCacheElement("int8", -3, 0.5) !== -1.5) throw new Error();
 * if (decodeCacheElement("bf16", 0x3F80, 7) !== 1) throw new Error();
 * ```
 */
export function decodeCacheElement(dtype: CacheDtype, raw: number, scale: number): number {
  switch (dtype) {
    case "f16":
      return f16BitsToNumber(raw);
    case "bf16":
      return bf16BitsToNumber(raw);
    case "fp8_e4m3":
      return e4m3ToNumber(raw) * scale;
    case "int8":
      return raw * scale;
    default:
      throw new TypeError(`Cannot decode cache dtype "${dtype as string}": unknown dtype`);
  }
}

/**
 * The stored form of one value in a cache dtype (SPEC §2): f16/bf16 bit patterns, fp8 byte
 * 0..255, int8 code -127..127. `inv` (see `inverseScale`) is ignored for f16/bf16.
 *
 * @example
 * ```ts
 * import { encodeCacheElement } from "./codecs.ts";
 * if (encodeCacheElement("f16", 1, 1) !== 0x3C00) throw new Error();
 * if (encodeCacheElement("fp8_e4m3", 1, 4) !== 0x48) throw new Error(); // 4
 * if (encodeCacheElement("int8", -0.3, 10) !== -3) throw new Error();
 * ```
 */
export function encodeCacheElement(dtype: CacheDtype, x: number, inv: number): number {
  switch (dtype) {
    case "f16":
      return numberToF16Bits(x);
    case "bf16":
      return numberToBf16Bits(x);
    case "fp8_e4m3":
      return e4m3Encode(x, inv);
    case "int8":
      return int8Encode(x, inv);
    default:
      throw new TypeError(`Cannot encode cache dtype "${dtype as string}": unknown dtype`);
  }
}

/**
 * Decodes a whole f16 or bf16 bit-pattern array to float64 values.
 *
 * @example
 * ```ts
 * import { decodeHalfArray } from "./codecs.ts";
 * const v = decodeHalfArray("bf16", Uint16Array.of(0x3F80, 0xC000));
 * if (v[0] !== 1 || v[1] !== -2) throw new Error();
 * ```
 */
export function decodeHalfArray(dtype: QDtype, bits: ArrayLike<number>): Float64Array {
  const decode = dtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
  const out = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = decode(bits[i]!);
  return out;
}

/**
 * Encodes numbers as f16 or bf16 bit patterns (round-to-nearest-even as `numberToF16Bits` /
 * `numberToBf16Bits`).
 *
 * @example
 * ```ts
 * import { encodeHalfArray } from "./codecs.ts";
 * const b = encodeHalfArray("f16", [1, -2, 0.5]);
 * if (b[0] !== 0x3C00 || b[1] !== 0xC000 || b[2] !== 0x3800) throw new Error();
 * ```
 */
export function encodeHalfArray(dtype: QDtype, values: ArrayLike<number>): Uint16Array {
  const encode = dtype === "f16" ? numberToF16Bits : numberToBf16Bits;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]!);
  return out;
}

/**
 * Float64 values of a q-side or f32/i32 tensor: f16/bf16 decoded exactly, f32/i32 as is.
 * Cache-dtype tensors (f8_e4m3, i8) need a scale: use `decodeCacheElement`.
 *
 * @example
 * ```ts
 * import { tensorToFloat64 } from "./codecs.ts";
 * const t = { dtype: "f16" as const, shape: [2], data: Uint16Array.of(0x3C00, 0x4000) };
 * const v = tensorToFloat64(t);
 * if (v[0] !== 1 || v[1] !== 2) throw new Error();
 * ```
 */
export function tensorToFloat64(tensor: Tensor): Float64Array {
  switch (tensor.dtype) {
    case "f16":
    case "bf16":
      return decodeHalfArray(tensor.dtype, tensor.data as Uint16Array);
    case "f32":
    case "i32":
      return Float64Array.from(tensor.data as Float32Array | Int32Array);
    default:
      throw new TypeError(
        `Cannot decode a ${tensor.dtype} tensor without a scale: expected f16, bf16, f32 or i32`,
      );
  }
}
