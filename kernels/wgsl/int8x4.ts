/**
 * A conversion-free int8 unpack for the paged kernels: four int8 codes of a word to f32
 * through their bits, with no integer-to-float conversion (a quarter-rate instruction on
 * NVIDIA GPUs, four per word in `decode_int8`).
 * @module
 */
/**
 * WGSL `int8x4(w)`: the four two's-complement int8 bytes of `w` (lowest first) as f32, exact.
 */
export const INT8X4_WGSL =
  `// Four int8 bytes of w as f32 (exact): flipping each byte's sign bit gives code + 128 in
// 0..255, which as the low mantissa bits of the f16 1024.0 (0x6400) makes 1024 + code + 128.
// Bytes 0 and 2 move together, bytes 1 and 3 down 8 bits; two f16-pair unpacks, one subtract.
fn int8x4(w: u32) -> vec4<f32> {
  let x = w ^ 0x80808080u;
  let e = unpack2x16float((x & 0x00ff00ffu) | 0x64006400u);
  let o = unpack2x16float(((x >> 8u) & 0x00ff00ffu) | 0x64006400u);
  return vec4<f32>(e.x, o.x, e.y, o.y) - vec4<f32>(1152.0);
}
`;
