// paged_prefill_simple_q-f16_kv-int8_d128_wg64_noncausal
// One invocation per (query token, query head): online softmax (base 2, f32) over the visible
// keys; old keys from the page pool through the block table, new keys from k_new/v_new.

// f32 -> f16 bit pattern (low 16 bits), round-to-nearest-even; overflow -> +-inf;
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

// int8 byte (two's complement, low 8 bits of b) -> f32, exact.
fn decode_int8(b: u32) -> f32 {
  return f32(bitcast<i32>(b << 24u) >> 24u);
}

struct Params {
  batch: u32,
  total_q: u32,
  num_heads: u32,
  num_kv_heads: u32,
  group_size: u32,
  max_pages: u32,
  page_size: u32,
  page_shift: u32,
  scale_n: u32,
  q_scale: f32,
  cap_log2e: f32,
}

const D4: u32 = 32u; // vec4 pieces per row of D = 128
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<u32>;
@group(0) @binding(2) var<storage, read> k_new: array<u32>;
@group(0) @binding(3) var<storage, read> v_new: array<u32>;
@group(0) @binding(4) var<storage, read> k_pages: array<u32>;
@group(0) @binding(5) var<storage, read> v_pages: array<u32>;
@group(0) @binding(6) var<storage, read> scales: array<f32>; // [k, v, k_inv, v_inv] x scale_n
@group(0) @binding(7) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(9) var<storage, read> block_table: array<i32>;
@group(0) @binding(10) var<storage, read_write> o: array<u32>;

var<private> q_row: array<vec4<f32>, D4>;
var<private> acc: array<vec4<f32>, D4>;
var<private> m_run: f32; // running max score (log2 units)
var<private> l_run: f32; // running sum of exp2(s - m_run)

// Two f16 elements of a u32 word (low half first) as f32.
fn unpack_q2(w: u32) -> vec2<f32> {
  return unpack2x16float(w);
}

// Two f32 rounded to nearest even into f16, packed in a u32 word (first in the low half).
fn pack_q2(v: vec2<f32>) -> u32 {
  return f32_to_f16_bits(v.x) | (f32_to_f16_bits(v.y) << 16u);
}

// Four int8 bytes of a u32 word (lowest byte first) as f32, before scaling.
fn decode_byte4(w: u32) -> vec4<f32> {
  return vec4<f32>(
    decode_int8(w & 0xffu),
    decode_int8((w >> 8u) & 0xffu),
    decode_int8((w >> 16u) & 0xffu),
    decode_int8(w >> 24u),
  );
}

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

// Rows of D elements: (token or slot) * H_kv + g; j = vec4 piece; g picks int8 channel scales.
fn k_old(row: u32, g: u32, j: u32) -> vec4<f32> {
  let c = 0u + g * 128u + 4u * j;
  return decode_byte4(k_pages[row * 32u + j]) * vec4<f32>(scales[c], scales[c + 1u], scales[c + 2u], scales[c + 3u]);
}

fn v_old(row: u32, g: u32, j: u32) -> vec4<f32> {
  let c = params.scale_n + g * 128u + 4u * j;
  return decode_byte4(v_pages[row * 32u + j]) * vec4<f32>(scales[c], scales[c + 1u], scales[c + 2u], scales[c + 3u]);
}

fn k_chunk(row: u32, g: u32, j: u32) -> vec4<f32> {
  let w = row * 64u + 2u * j;
  return vec4<f32>(unpack_q2(k_new[w]), unpack_q2(k_new[w + 1u]));
}

fn v_chunk(row: u32, g: u32, j: u32) -> vec4<f32> {
  let w = row * 64u + 2u * j;
  return vec4<f32>(unpack_q2(v_new[w]), unpack_q2(v_new[w + 1u]));
}

// q is pre-scaled by sm_scale * log2(e): the dot product is the score in log2 units.
fn score(x: f32) -> f32 {
  return x;
}

// Online softmax step for score s: rescales acc and returns the weight of the new value row.
fn online_weight(s: f32) -> f32 {
  let m_new = max(m_run, s);
  let correction = exp2(m_run - m_new);
  let weight = exp2(s - m_new);
  l_run = l_run * correction + weight;
  m_run = m_new;
  { acc[0u] = acc[0u] * correction; }
  { acc[1u] = acc[1u] * correction; }
  { acc[2u] = acc[2u] * correction; }
  { acc[3u] = acc[3u] * correction; }
  { acc[4u] = acc[4u] * correction; }
  { acc[5u] = acc[5u] * correction; }
  { acc[6u] = acc[6u] * correction; }
  { acc[7u] = acc[7u] * correction; }
  { acc[8u] = acc[8u] * correction; }
  { acc[9u] = acc[9u] * correction; }
  { acc[10u] = acc[10u] * correction; }
  { acc[11u] = acc[11u] * correction; }
  { acc[12u] = acc[12u] * correction; }
  { acc[13u] = acc[13u] * correction; }
  { acc[14u] = acc[14u] * correction; }
  { acc[15u] = acc[15u] * correction; }
  { acc[16u] = acc[16u] * correction; }
  { acc[17u] = acc[17u] * correction; }
  { acc[18u] = acc[18u] * correction; }
  { acc[19u] = acc[19u] * correction; }
  { acc[20u] = acc[20u] * correction; }
  { acc[21u] = acc[21u] * correction; }
  { acc[22u] = acc[22u] * correction; }
  { acc[23u] = acc[23u] * correction; }
  { acc[24u] = acc[24u] * correction; }
  { acc[25u] = acc[25u] * correction; }
  { acc[26u] = acc[26u] * correction; }
  { acc[27u] = acc[27u] * correction; }
  { acc[28u] = acc[28u] * correction; }
  { acc[29u] = acc[29u] * correction; }
  { acc[30u] = acc[30u] * correction; }
  { acc[31u] = acc[31u] * correction; }
  return weight;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = (wid.y * nwg.x + wid.x) * WG + lid;
  if (idx >= params.total_q * params.num_heads) {
    return;
  }
  let t = idx / params.num_heads; // packed query token
  let h = idx % params.num_heads; // query head
  let g = h / params.group_size; // kv head
  let b = find_request(t);
  let start = u32(cu_seqlens[b]);
  let q_len = u32(cu_seqlens[b + 1u]) - start;
  let i = t - start;
  let old = u32(cache_seqlens[b]);
  let kv_end = old + q_len; // non-causal: the whole chunk

  let q_word = (t * params.num_heads + h) * 64u;
  { let w = q_word + 2u * 0u; q_row[0u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[0u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 1u; q_row[1u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[1u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 2u; q_row[2u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[2u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 3u; q_row[3u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[3u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 4u; q_row[4u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[4u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 5u; q_row[5u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[5u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 6u; q_row[6u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[6u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 7u; q_row[7u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[7u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 8u; q_row[8u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[8u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 9u; q_row[9u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[9u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 10u; q_row[10u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[10u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 11u; q_row[11u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[11u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 12u; q_row[12u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[12u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 13u; q_row[13u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[13u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 14u; q_row[14u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[14u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 15u; q_row[15u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[15u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 16u; q_row[16u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[16u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 17u; q_row[17u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[17u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 18u; q_row[18u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[18u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 19u; q_row[19u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[19u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 20u; q_row[20u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[20u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 21u; q_row[21u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[21u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 22u; q_row[22u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[22u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 23u; q_row[23u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[23u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 24u; q_row[24u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[24u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 25u; q_row[25u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[25u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 26u; q_row[26u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[26u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 27u; q_row[27u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[27u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 28u; q_row[28u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[28u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 29u; q_row[29u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[29u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 30u; q_row[30u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[30u] = vec4<f32>(0.0); }
  { let w = q_word + 2u * 31u; q_row[31u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[31u] = vec4<f32>(0.0); }
  m_run = -1.0e30;
  l_run = 0.0;

  // Old keys: positions 0 .. old - 1, page by page through the block table.
  let old_pages = (old + params.page_size - 1u) >> params.page_shift;
  for (var lp = 0u; lp < old_pages; lp++) {
    let page = u32(block_table[b * params.max_pages + lp]);
    let in_page = min(params.page_size, old - (lp << params.page_shift));
    for (var off = 0u; off < in_page; off++) {
      let row = ((page << params.page_shift) + off) * params.num_kv_heads + g;
      var dot_qk = 0.0;
      { dot_qk += dot(q_row[0u], k_old(row, g, 0u)); }
      { dot_qk += dot(q_row[1u], k_old(row, g, 1u)); }
      { dot_qk += dot(q_row[2u], k_old(row, g, 2u)); }
      { dot_qk += dot(q_row[3u], k_old(row, g, 3u)); }
      { dot_qk += dot(q_row[4u], k_old(row, g, 4u)); }
      { dot_qk += dot(q_row[5u], k_old(row, g, 5u)); }
      { dot_qk += dot(q_row[6u], k_old(row, g, 6u)); }
      { dot_qk += dot(q_row[7u], k_old(row, g, 7u)); }
      { dot_qk += dot(q_row[8u], k_old(row, g, 8u)); }
      { dot_qk += dot(q_row[9u], k_old(row, g, 9u)); }
      { dot_qk += dot(q_row[10u], k_old(row, g, 10u)); }
      { dot_qk += dot(q_row[11u], k_old(row, g, 11u)); }
      { dot_qk += dot(q_row[12u], k_old(row, g, 12u)); }
      { dot_qk += dot(q_row[13u], k_old(row, g, 13u)); }
      { dot_qk += dot(q_row[14u], k_old(row, g, 14u)); }
      { dot_qk += dot(q_row[15u], k_old(row, g, 15u)); }
      { dot_qk += dot(q_row[16u], k_old(row, g, 16u)); }
      { dot_qk += dot(q_row[17u], k_old(row, g, 17u)); }
      { dot_qk += dot(q_row[18u], k_old(row, g, 18u)); }
      { dot_qk += dot(q_row[19u], k_old(row, g, 19u)); }
      { dot_qk += dot(q_row[20u], k_old(row, g, 20u)); }
      { dot_qk += dot(q_row[21u], k_old(row, g, 21u)); }
      { dot_qk += dot(q_row[22u], k_old(row, g, 22u)); }
      { dot_qk += dot(q_row[23u], k_old(row, g, 23u)); }
      { dot_qk += dot(q_row[24u], k_old(row, g, 24u)); }
      { dot_qk += dot(q_row[25u], k_old(row, g, 25u)); }
      { dot_qk += dot(q_row[26u], k_old(row, g, 26u)); }
      { dot_qk += dot(q_row[27u], k_old(row, g, 27u)); }
      { dot_qk += dot(q_row[28u], k_old(row, g, 28u)); }
      { dot_qk += dot(q_row[29u], k_old(row, g, 29u)); }
      { dot_qk += dot(q_row[30u], k_old(row, g, 30u)); }
      { dot_qk += dot(q_row[31u], k_old(row, g, 31u)); }
      let weight = online_weight(score(dot_qk));
      { acc[0u] += weight * v_old(row, g, 0u); }
      { acc[1u] += weight * v_old(row, g, 1u); }
      { acc[2u] += weight * v_old(row, g, 2u); }
      { acc[3u] += weight * v_old(row, g, 3u); }
      { acc[4u] += weight * v_old(row, g, 4u); }
      { acc[5u] += weight * v_old(row, g, 5u); }
      { acc[6u] += weight * v_old(row, g, 6u); }
      { acc[7u] += weight * v_old(row, g, 7u); }
      { acc[8u] += weight * v_old(row, g, 8u); }
      { acc[9u] += weight * v_old(row, g, 9u); }
      { acc[10u] += weight * v_old(row, g, 10u); }
      { acc[11u] += weight * v_old(row, g, 11u); }
      { acc[12u] += weight * v_old(row, g, 12u); }
      { acc[13u] += weight * v_old(row, g, 13u); }
      { acc[14u] += weight * v_old(row, g, 14u); }
      { acc[15u] += weight * v_old(row, g, 15u); }
      { acc[16u] += weight * v_old(row, g, 16u); }
      { acc[17u] += weight * v_old(row, g, 17u); }
      { acc[18u] += weight * v_old(row, g, 18u); }
      { acc[19u] += weight * v_old(row, g, 19u); }
      { acc[20u] += weight * v_old(row, g, 20u); }
      { acc[21u] += weight * v_old(row, g, 21u); }
      { acc[22u] += weight * v_old(row, g, 22u); }
      { acc[23u] += weight * v_old(row, g, 23u); }
      { acc[24u] += weight * v_old(row, g, 24u); }
      { acc[25u] += weight * v_old(row, g, 25u); }
      { acc[26u] += weight * v_old(row, g, 26u); }
      { acc[27u] += weight * v_old(row, g, 27u); }
      { acc[28u] += weight * v_old(row, g, 28u); }
      { acc[29u] += weight * v_old(row, g, 29u); }
      { acc[30u] += weight * v_old(row, g, 30u); }
      { acc[31u] += weight * v_old(row, g, 31u); }
    }
  }

  // The chunk's own keys: positions old .. kv_end - 1 at full precision.
  for (var p = old; p < kv_end; p++) {
    let row = (start + p - old) * params.num_kv_heads + g;
    var dot_qk = 0.0;
    { dot_qk += dot(q_row[0u], k_chunk(row, g, 0u)); }
    { dot_qk += dot(q_row[1u], k_chunk(row, g, 1u)); }
    { dot_qk += dot(q_row[2u], k_chunk(row, g, 2u)); }
    { dot_qk += dot(q_row[3u], k_chunk(row, g, 3u)); }
    { dot_qk += dot(q_row[4u], k_chunk(row, g, 4u)); }
    { dot_qk += dot(q_row[5u], k_chunk(row, g, 5u)); }
    { dot_qk += dot(q_row[6u], k_chunk(row, g, 6u)); }
    { dot_qk += dot(q_row[7u], k_chunk(row, g, 7u)); }
    { dot_qk += dot(q_row[8u], k_chunk(row, g, 8u)); }
    { dot_qk += dot(q_row[9u], k_chunk(row, g, 9u)); }
    { dot_qk += dot(q_row[10u], k_chunk(row, g, 10u)); }
    { dot_qk += dot(q_row[11u], k_chunk(row, g, 11u)); }
    { dot_qk += dot(q_row[12u], k_chunk(row, g, 12u)); }
    { dot_qk += dot(q_row[13u], k_chunk(row, g, 13u)); }
    { dot_qk += dot(q_row[14u], k_chunk(row, g, 14u)); }
    { dot_qk += dot(q_row[15u], k_chunk(row, g, 15u)); }
    { dot_qk += dot(q_row[16u], k_chunk(row, g, 16u)); }
    { dot_qk += dot(q_row[17u], k_chunk(row, g, 17u)); }
    { dot_qk += dot(q_row[18u], k_chunk(row, g, 18u)); }
    { dot_qk += dot(q_row[19u], k_chunk(row, g, 19u)); }
    { dot_qk += dot(q_row[20u], k_chunk(row, g, 20u)); }
    { dot_qk += dot(q_row[21u], k_chunk(row, g, 21u)); }
    { dot_qk += dot(q_row[22u], k_chunk(row, g, 22u)); }
    { dot_qk += dot(q_row[23u], k_chunk(row, g, 23u)); }
    { dot_qk += dot(q_row[24u], k_chunk(row, g, 24u)); }
    { dot_qk += dot(q_row[25u], k_chunk(row, g, 25u)); }
    { dot_qk += dot(q_row[26u], k_chunk(row, g, 26u)); }
    { dot_qk += dot(q_row[27u], k_chunk(row, g, 27u)); }
    { dot_qk += dot(q_row[28u], k_chunk(row, g, 28u)); }
    { dot_qk += dot(q_row[29u], k_chunk(row, g, 29u)); }
    { dot_qk += dot(q_row[30u], k_chunk(row, g, 30u)); }
    { dot_qk += dot(q_row[31u], k_chunk(row, g, 31u)); }
    let weight = online_weight(score(dot_qk));
    { acc[0u] += weight * v_chunk(row, g, 0u); }
    { acc[1u] += weight * v_chunk(row, g, 1u); }
    { acc[2u] += weight * v_chunk(row, g, 2u); }
    { acc[3u] += weight * v_chunk(row, g, 3u); }
    { acc[4u] += weight * v_chunk(row, g, 4u); }
    { acc[5u] += weight * v_chunk(row, g, 5u); }
    { acc[6u] += weight * v_chunk(row, g, 6u); }
    { acc[7u] += weight * v_chunk(row, g, 7u); }
    { acc[8u] += weight * v_chunk(row, g, 8u); }
    { acc[9u] += weight * v_chunk(row, g, 9u); }
    { acc[10u] += weight * v_chunk(row, g, 10u); }
    { acc[11u] += weight * v_chunk(row, g, 11u); }
    { acc[12u] += weight * v_chunk(row, g, 12u); }
    { acc[13u] += weight * v_chunk(row, g, 13u); }
    { acc[14u] += weight * v_chunk(row, g, 14u); }
    { acc[15u] += weight * v_chunk(row, g, 15u); }
    { acc[16u] += weight * v_chunk(row, g, 16u); }
    { acc[17u] += weight * v_chunk(row, g, 17u); }
    { acc[18u] += weight * v_chunk(row, g, 18u); }
    { acc[19u] += weight * v_chunk(row, g, 19u); }
    { acc[20u] += weight * v_chunk(row, g, 20u); }
    { acc[21u] += weight * v_chunk(row, g, 21u); }
    { acc[22u] += weight * v_chunk(row, g, 22u); }
    { acc[23u] += weight * v_chunk(row, g, 23u); }
    { acc[24u] += weight * v_chunk(row, g, 24u); }
    { acc[25u] += weight * v_chunk(row, g, 25u); }
    { acc[26u] += weight * v_chunk(row, g, 26u); }
    { acc[27u] += weight * v_chunk(row, g, 27u); }
    { acc[28u] += weight * v_chunk(row, g, 28u); }
    { acc[29u] += weight * v_chunk(row, g, 29u); }
    { acc[30u] += weight * v_chunk(row, g, 30u); }
    { acc[31u] += weight * v_chunk(row, g, 31u); }
  }

  // o = acc / l, rounded once to q's dtype, two elements per word.
  { let x = acc[0u] / l_run; o[q_word + 2u * 0u] = pack_q2(x.xy); o[q_word + 2u * 0u + 1u] = pack_q2(x.zw); }
  { let x = acc[1u] / l_run; o[q_word + 2u * 1u] = pack_q2(x.xy); o[q_word + 2u * 1u + 1u] = pack_q2(x.zw); }
  { let x = acc[2u] / l_run; o[q_word + 2u * 2u] = pack_q2(x.xy); o[q_word + 2u * 2u + 1u] = pack_q2(x.zw); }
  { let x = acc[3u] / l_run; o[q_word + 2u * 3u] = pack_q2(x.xy); o[q_word + 2u * 3u + 1u] = pack_q2(x.zw); }
  { let x = acc[4u] / l_run; o[q_word + 2u * 4u] = pack_q2(x.xy); o[q_word + 2u * 4u + 1u] = pack_q2(x.zw); }
  { let x = acc[5u] / l_run; o[q_word + 2u * 5u] = pack_q2(x.xy); o[q_word + 2u * 5u + 1u] = pack_q2(x.zw); }
  { let x = acc[6u] / l_run; o[q_word + 2u * 6u] = pack_q2(x.xy); o[q_word + 2u * 6u + 1u] = pack_q2(x.zw); }
  { let x = acc[7u] / l_run; o[q_word + 2u * 7u] = pack_q2(x.xy); o[q_word + 2u * 7u + 1u] = pack_q2(x.zw); }
  { let x = acc[8u] / l_run; o[q_word + 2u * 8u] = pack_q2(x.xy); o[q_word + 2u * 8u + 1u] = pack_q2(x.zw); }
  { let x = acc[9u] / l_run; o[q_word + 2u * 9u] = pack_q2(x.xy); o[q_word + 2u * 9u + 1u] = pack_q2(x.zw); }
  { let x = acc[10u] / l_run; o[q_word + 2u * 10u] = pack_q2(x.xy); o[q_word + 2u * 10u + 1u] = pack_q2(x.zw); }
  { let x = acc[11u] / l_run; o[q_word + 2u * 11u] = pack_q2(x.xy); o[q_word + 2u * 11u + 1u] = pack_q2(x.zw); }
  { let x = acc[12u] / l_run; o[q_word + 2u * 12u] = pack_q2(x.xy); o[q_word + 2u * 12u + 1u] = pack_q2(x.zw); }
  { let x = acc[13u] / l_run; o[q_word + 2u * 13u] = pack_q2(x.xy); o[q_word + 2u * 13u + 1u] = pack_q2(x.zw); }
  { let x = acc[14u] / l_run; o[q_word + 2u * 14u] = pack_q2(x.xy); o[q_word + 2u * 14u + 1u] = pack_q2(x.zw); }
  { let x = acc[15u] / l_run; o[q_word + 2u * 15u] = pack_q2(x.xy); o[q_word + 2u * 15u + 1u] = pack_q2(x.zw); }
  { let x = acc[16u] / l_run; o[q_word + 2u * 16u] = pack_q2(x.xy); o[q_word + 2u * 16u + 1u] = pack_q2(x.zw); }
  { let x = acc[17u] / l_run; o[q_word + 2u * 17u] = pack_q2(x.xy); o[q_word + 2u * 17u + 1u] = pack_q2(x.zw); }
  { let x = acc[18u] / l_run; o[q_word + 2u * 18u] = pack_q2(x.xy); o[q_word + 2u * 18u + 1u] = pack_q2(x.zw); }
  { let x = acc[19u] / l_run; o[q_word + 2u * 19u] = pack_q2(x.xy); o[q_word + 2u * 19u + 1u] = pack_q2(x.zw); }
  { let x = acc[20u] / l_run; o[q_word + 2u * 20u] = pack_q2(x.xy); o[q_word + 2u * 20u + 1u] = pack_q2(x.zw); }
  { let x = acc[21u] / l_run; o[q_word + 2u * 21u] = pack_q2(x.xy); o[q_word + 2u * 21u + 1u] = pack_q2(x.zw); }
  { let x = acc[22u] / l_run; o[q_word + 2u * 22u] = pack_q2(x.xy); o[q_word + 2u * 22u + 1u] = pack_q2(x.zw); }
  { let x = acc[23u] / l_run; o[q_word + 2u * 23u] = pack_q2(x.xy); o[q_word + 2u * 23u + 1u] = pack_q2(x.zw); }
  { let x = acc[24u] / l_run; o[q_word + 2u * 24u] = pack_q2(x.xy); o[q_word + 2u * 24u + 1u] = pack_q2(x.zw); }
  { let x = acc[25u] / l_run; o[q_word + 2u * 25u] = pack_q2(x.xy); o[q_word + 2u * 25u + 1u] = pack_q2(x.zw); }
  { let x = acc[26u] / l_run; o[q_word + 2u * 26u] = pack_q2(x.xy); o[q_word + 2u * 26u + 1u] = pack_q2(x.zw); }
  { let x = acc[27u] / l_run; o[q_word + 2u * 27u] = pack_q2(x.xy); o[q_word + 2u * 27u + 1u] = pack_q2(x.zw); }
  { let x = acc[28u] / l_run; o[q_word + 2u * 28u] = pack_q2(x.xy); o[q_word + 2u * 28u + 1u] = pack_q2(x.zw); }
  { let x = acc[29u] / l_run; o[q_word + 2u * 29u] = pack_q2(x.xy); o[q_word + 2u * 29u + 1u] = pack_q2(x.zw); }
  { let x = acc[30u] / l_run; o[q_word + 2u * 30u] = pack_q2(x.xy); o[q_word + 2u * 30u + 1u] = pack_q2(x.zw); }
  { let x = acc[31u] / l_run; o[q_word + 2u * 31u] = pack_q2(x.xy); o[q_word + 2u * 31u + 1u] = pack_q2(x.zw); }
}
