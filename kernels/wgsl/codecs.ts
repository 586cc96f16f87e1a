/**
 * WGSL source of the element codecs of SPEC §2: f16, bf16, fp8 e4m3fn and int8, bit-exact with
 * `reference/codecs.ts`.
 *
 * Every encoder works on the integer bit pattern of its f32 input (`bitcast<u32>`), so nothing
 * depends on how a WGSL compiler treats NaN, infinities or f32 subnormals, and nothing can be
 * reassociated or contracted into an FMA. The only float operation in an encoder is the single
 * f32 multiply `x * inv` of the quantizing encoders, whose result is bitcast at once.
 * No function needs `enable f16;`: f16 is decoded with the core builtin `unpack2x16float`.
 *
 * Conventions shared with the TypeScript codecs:
 * - NaN keeps its sign and gets a canonical quiet payload: f16 `s|0x7E00`, bf16 `s|0x7FC0`,
 *   e4m3 `s|0x7F`. int8 has no NaN: a NaN product encodes as 0.
 * - Encoders take the sign of a zero or underflowing result from `x` (inv > 0 always), so a
 *   compiler that flushes an f32 subnormal product cannot change the result.
 * - 16-bit and 8-bit values travel in the low bits of a u32; upper bits of inputs are ignored.
 * @module
 */

/** Names of the WGSL codec functions this module defines. */
export type WgslCodecName =
  | "f16_bits_to_f32"
  | "f32_to_f16_bits"
  | "bf16_bits_to_f32"
  | "f32_to_bf16_bits"
  | "decode_e4m3"
  | "encode_e4m3"
  | "decode_int8"
  | "encode_int8";

const SOURCES: Readonly<Record<WgslCodecName, string>> = {
  f16_bits_to_f32: `// f16 bit pattern (low 16 bits of b) -> f32, exact.
fn f16_bits_to_f32(b: u32) -> f32 {
  return unpack2x16float(b & 0xFFFFu).x;
}
`,
  f32_to_f16_bits:
    `// f32 -> f16 bit pattern (low 16 bits), round-to-nearest-even; overflow -> +-inf;
// NaN -> sign | 0x7E00. Integer-only.
fn f32_to_f16_bits(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let a = bits & 0x7FFFFFFFu;
  if (a > 0x7F800000u) {
    return sign | 0x7E00u;
  }
  if (a >= 0x477FF000u) { // >= 65520: rounds to infinity
    return sign | 0x7C00u;
  }
  let e = i32(a >> 23u) - 127;
  if (e >= -14) { // f16 normal
    let mant = a & 0x7FFFFFu;
    var h = (u32(e + 15) << 10u) + (mant >> 13u);
    let rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
      h = h + 1u;
    }
    return sign | h;
  }
  if (e >= -25) { // f16 subnormal (or rounds up to the smallest normal)
    let m = (a & 0x7FFFFFu) | 0x800000u;
    let shift = u32(-1 - e); // 14 ..= 24
    var q = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
      q = q + 1u;
    }
    return sign | q;
  }
  return sign;
}
`,
  bf16_bits_to_f32: `// bf16 bit pattern (low 16 bits of b) -> f32, exact.
fn bf16_bits_to_f32(b: u32) -> f32 {
  return bitcast<f32>((b & 0xFFFFu) << 16u);
}
`,
  f32_to_bf16_bits:
    `// f32 -> bf16 bit pattern (low 16 bits): round-to-nearest-even on the upper 16 bits;
// overflow -> +-inf; NaN -> sign | 0x7FC0. Integer-only.
fn f32_to_bf16_bits(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    return ((bits >> 16u) & 0x8000u) | 0x7FC0u;
  }
  return (bits + 0x7FFFu + ((bits >> 16u) & 1u)) >> 16u;
}
`,
  decode_e4m3: `// fp8 e4m3fn byte (low 8 bits of b) -> f32, exact; 0x7F / 0xFF -> NaN.
fn decode_e4m3(b: u32) -> f32 {
  let sign = (b & 0x80u) << 24u;
  let e = (b >> 3u) & 0xFu;
  let m = b & 7u;
  if (e == 15u && m == 7u) {
    return bitcast<f32>(sign | 0x7FC00000u);
  }
  if (e == 0u) {
    // m * 2^-9: exact, built from bits so no float op is involved.
    if (m == 0u) {
      return bitcast<f32>(sign);
    }
    let lead = firstLeadingBit(m); // 0 ..= 2
    let frac = (m << (23u - lead)) & 0x7FFFFFu;
    return bitcast<f32>(sign | ((118u + lead) << 23u) | frac);
  }
  return bitcast<f32>(sign | ((e + 120u) << 23u) | (m << 20u));
}
`,
  encode_e4m3: `// fp8 e4m3fn byte (0..255) of clamp(x * inv, -448, 448): one f32 multiply, then
// round-to-nearest-even on the bits, saturating; NaN -> sign | 0x7F. Subnormals to 2^-9.
fn encode_e4m3(x: f32, inv: f32) -> u32 {
  let xb = bitcast<u32>(x);
  let sign = (xb >> 24u) & 0x80u;
  let yb = bitcast<u32>(x * inv);
  let a = yb & 0x7FFFFFFFu;
  if (a > 0x7F800000u || (xb & 0x7FFFFFFFu) > 0x7F800000u) {
    return sign | 0x7Fu;
  }
  if (a >= 0x43E00000u) { // >= 448 (and +-inf): saturate
    return sign | 0x7Eu;
  }
  let e = i32(a >> 23u) - 127;
  if (e >= -6) { // e4m3 normal
    let mant = a & 0x7FFFFFu;
    var c = (u32(e + 7) << 3u) + (mant >> 20u);
    let rem = mant & 0xFFFFFu;
    if (rem > 0x80000u || (rem == 0x80000u && (c & 1u) == 1u)) {
      c = c + 1u;
    }
    return sign | c;
  }
  if (e >= -10) { // e4m3 subnormal: round(|y| * 2^9), 8 becomes the smallest normal
    let m = (a & 0x7FFFFFu) | 0x800000u;
    let shift = u32(14 - e); // 21 ..= 24
    var q = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
      q = q + 1u;
    }
    return sign | q;
  }
  return sign;
}
`,
  decode_int8: `// int8 byte (two's complement, low 8 bits of b) -> f32, exact.
fn decode_int8(b: u32) -> f32 {
  return f32(bitcast<i32>(b << 24u) >> 24u);
}
`,
  encode_int8:
    `// int8 byte (0..255, two's complement) of clamp(round_half_even(x * inv), -127, 127):
// one f32 multiply, then integer rounding on the bits; NaN -> 0.
fn encode_int8(x: f32, inv: f32) -> u32 {
  let yb = bitcast<u32>(x * inv);
  let a = yb & 0x7FFFFFFFu;
  if (a > 0x7F800000u || (bitcast<u32>(x) & 0x7FFFFFFFu) > 0x7F800000u) {
    return 0u;
  }
  var q = 0u;
  if (a >= 0x42FF0000u) { // >= 127.5 (and +-inf): saturate
    q = 127u;
  } else if (a > 0x3F000000u) { // > 0.5 (0.5 itself rounds to even 0)
    let e = i32(a >> 23u) - 127; // -1 ..= 6
    let m = (a & 0x7FFFFFu) | 0x800000u;
    let shift = u32(23 - e); // 17 ..= 24
    q = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
      q = q + 1u;
    }
  }
  if ((yb & 0x80000000u) != 0u) {
    return (256u - q) & 0xFFu;
  }
  return q;
}
`,
};

/** Every codec function name, in source order. */
export const WGSL_CODEC_NAMES: readonly WgslCodecName[] = Object.keys(SOURCES) as WgslCodecName[];

/**
 * All WGSL codec functions in one string, to paste into a shader module:
 * `f16_bits_to_f32`, `f32_to_f16_bits`, `bf16_bits_to_f32`, `f32_to_bf16_bits`, `decode_e4m3`,
 * `encode_e4m3`, `decode_int8`, `encode_int8`. Needs no WGSL extension.
 *
 * @example
 * ```ts
 * import { WGSL_CODECS } from "./codecs.ts";
 * const shader = `${WGSL_CODECS}
 * @group(0) @binding(0) var<storage, read_write> buf: array<u32>;
 * @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
 *   buf[id.x] = f32_to_f16_bits(bf16_bits_to_f32(buf[id.x]));
 * }`;
 * if (!shader.includes("fn encode_e4m3(x: f32, inv: f32) -> u32")) throw new Error();
 * ```
 */
export const WGSL_CODECS: string = WGSL_CODEC_NAMES.map((n) => SOURCES[n]).join("\n");

/**
 * The WGSL source of only the named codec functions (each once, in a fixed order), so a
 * kernel template can include what it uses. The functions do not call each other.
 *
 * @example
 * ```ts
 * import { wgslCodecs } from "./codecs.ts";
 * const src = wgslCodecs("decode_e4m3", "encode_e4m3");
 * if (!src.includes("fn decode_e4m3") || src.includes("fn encode_int8")) throw new Error();
 * ```
 */
export function wgslCodecs(...names: WgslCodecName[]): string {
  for (const n of names) {
    if (!(n in SOURCES)) {
      throw new RangeError(
        `Cannot emit WGSL codec "${n}": expected one of ${WGSL_CODEC_NAMES.join(", ")}`,
      );
    }
  }
  const wanted = new Set(names);
  return WGSL_CODEC_NAMES.filter((n) => wanted.has(n)).map((n) => SOURCES[n]).join("\n");
}
