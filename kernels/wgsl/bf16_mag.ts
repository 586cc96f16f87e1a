/**
 * The bf16 magnitude trick flash's per-tile range guard and the bound pass's pool scan share.
 * @module
 */
/**
 * WGSL `bf16_mag(w)`: for each u32 of `w` (two bf16s), the larger of its halves' magnitude bits in
 * the high half (the low half is not meaningful: `>> 16u`, or `& 0xffff0000u` for the f32 whose
 * high half that bf16 is).
 */
export const BF16_MAG_WGSL =
  `// Each 16-bit half's magnitude bits in the high half (max over both halves, >> 16).
fn bf16_mag(w: vec4<u32>) -> vec4<u32> {
  let t = w & vec4<u32>(0x7fff7fffu);
  return max(t, t << vec4<u32>(16u));
}
`;
