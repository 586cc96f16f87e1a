// paged_append_q-f16_kv-fp8_d128_wg64_v4
// One invocation per (new token, kv head, unit of 4 cache words): k_new/v_new row -> its cache slot.

// fp8 e4m3fn byte (0..255) of clamp(x * inv, -448, 448): one f32 multiply, then
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

struct Params {
  batch: u32,
  total_q: u32,
  num_kv_heads: u32,
  max_pages: u32,
  page_shift: u32,
  scale_n: u32,
}

const UPR: u32 = 8u; // units per row of D = 128 (32 cache words)
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_new: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v_new: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> k_pages: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> v_pages: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> scales: array<f32>; // [k, v, k_inv, v_inv] x scale_n
@group(0) @binding(6) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(7) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> block_table: array<i32>;

// The request b holding packed token t: the last b with cu_seqlens[b] <= t. Empty requests
// share their start with the next request, so they are never chosen.
fn find_request(t: u32) -> u32 {
  var lo = 0u;
  var hi = params.batch - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (u32(cu_seqlens[mid]) <= t) {
      lo = mid;
    } else {
      hi = mid - 1u;
    }
  }
  return lo;
}

// Two f16 elements of a u32 word (low half first) as f32.
fn unpack_q2(w: u32) -> vec2<f32> {
  return unpack2x16float(w);
}

// Four elements (two source words) into one word of fp8_e4m3 bytes, lowest byte first,
// each encoded from its f32 value with the inverse scale (per tensor).
fn encode_word(w0: u32, w1: u32, c: u32, inv_base: u32) -> u32 {
  let x = vec4<f32>(unpack_q2(w0), unpack_q2(w1));
  return encode_e4m3(x[0], scales[inv_base])
    | (encode_e4m3(x[1], scales[inv_base]) << 8u)
    | (encode_e4m3(x[2], scales[inv_base]) << 16u)
    | (encode_e4m3(x[3], scales[inv_base]) << 24u);
}

// Sixteen elements (two source units) into one unit of four cache words.
fn encode_unit(s0: vec4<u32>, s1: vec4<u32>, c: u32, inv_base: u32) -> vec4<u32> {
  return vec4<u32>(
    encode_word(s0.x, s0.y, c, inv_base),
    encode_word(s0.z, s0.w, c + 4u, inv_base),
    encode_word(s1.x, s1.y, c + 8u, inv_base),
    encode_word(s1.z, s1.w, c + 12u, inv_base),
  );
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = (wid.y * nwg.x + wid.x) * WG + lid;
  if (idx >= params.total_q * params.num_kv_heads * UPR) {
    return;
  }
  let j = idx % UPR; // unit within the row
  let row = idx / UPR; // t * H_kv + g
  let t = row / params.num_kv_heads;
  let g = row % params.num_kv_heads;
  let b = find_request(t);
  let p = u32(cache_seqlens[b]) + t - u32(cu_seqlens[b]); // logical position
  let page = u32(block_table[b * params.max_pages + (p >> params.page_shift)]);
  let slot = (page << params.page_shift) + (p & ((1u << params.page_shift) - 1u));
  let dst = (slot * params.num_kv_heads + g) * UPR + j;
  let src = row * 16u + 2u * j; // two source units per cache unit
  let c = g * 128u + 16u * j; // channel of the unit's first element
  k_pages[dst] = encode_unit(k_new[src], k_new[src + 1u], c, 2u * params.scale_n);
  v_pages[dst] = encode_unit(v_new[src], v_new[src + 1u], c, 3u * params.scale_n);
}
