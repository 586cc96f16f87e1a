/**
 * The branch-free e4m3 unpack both paged kernels share (the decode kernel since v8, flash's f16
 * tiles since v10): four fp8 codes of a word to f32 through their bits, no table.
 * @module
 */
/**
 * WGSL `fp8x4(w)`: the four e4m3fn bytes of `w` (lowest first) as f32 divided by 256, exact for
 * every code, NaN codes NaN. Branch-free, so the unrolled key loop stays one basic block.
 */
export const FP8X4_WGSL =
  `// Four e4m3fn bytes of w as f32 divided by 256 (exact): each byte's bits moved into an f16
// (same mantissa, exponent bias 15 instead of 7; subnormals included). Bytes 0 and 2 move
// together (sign up 8 bits, magnitude up 7), bytes 1 and 3 too (sign in place, magnitude down
// 1). A NaN code (magnitude 0x7f) lands on exponent 01111 with mantissa 1110000000; adding 1
// below an all-ones magnitude carries into the exponent's top bit (0x4000), set only then,
// which makes the f16 a NaN.
fn fp8x4(w: u32) -> vec4<f32> {
  let em = (w << 7u) & 0x3f803f80u;
  let om = (w >> 1u) & 0x3f803f80u;
  let even = ((w << 8u) & 0x80008000u) | em | ((em + 0x00800080u) & 0x40004000u);
  let odd = (w & 0x80008000u) | om | ((om + 0x00800080u) & 0x40004000u);
  let e = unpack2x16float(even);
  let o = unpack2x16float(odd);
  return vec4<f32>(e.x, o.x, e.y, o.y);
}
`;
