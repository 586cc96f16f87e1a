// paged_prefill_simple_q-f16_kv-f16_d128_wg64_causal
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
  let w = row * 64u + 2u * j;
  return vec4<f32>(unpack_q2(k_pages[w]), unpack_q2(k_pages[w + 1u]));
}

fn v_old(row: u32, g: u32, j: u32) -> vec4<f32> {
  let w = row * 64u + 2u * j;
  return vec4<f32>(unpack_q2(v_pages[w]), unpack_q2(v_pages[w + 1u]));
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
  for (var j = 0u; j < D4; j++) {
    acc[j] = acc[j] * correction;
  }
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
  let kv_end = old + i + 1u; // causal: up to the row's own position

  let q_word = (t * params.num_heads + h) * 64u;
  for (var j = 0u; j < D4; j++) {
    let w = q_word + 2u * j;
    q_row[j] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale;
    acc[j] = vec4<f32>(0.0);
  }
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
      for (var j = 0u; j < D4; j++) {
        dot_qk += dot(q_row[j], k_old(row, g, j));
      }
      let weight = online_weight(score(dot_qk));
      for (var j = 0u; j < D4; j++) {
        acc[j] += weight * v_old(row, g, j);
      }
    }
  }

  // The chunk's own keys: positions old .. kv_end - 1 at full precision.
  for (var p = old; p < kv_end; p++) {
    let row = (start + p - old) * params.num_kv_heads + g;
    var dot_qk = 0.0;
    for (var j = 0u; j < D4; j++) {
      dot_qk += dot(q_row[j], k_chunk(row, g, j));
    }
    let weight = online_weight(score(dot_qk));
    for (var j = 0u; j < D4; j++) {
      acc[j] += weight * v_chunk(row, g, j);
    }
  }

  // o = acc / l, rounded once to q's dtype, two elements per word.
  for (var j = 0u; j < D4; j++) {
    let x = acc[j] / l_run;
    o[q_word + 2u * j] = pack_q2(x.xy);
    o[q_word + 2u * j + 1u] = pack_q2(x.zw);
  }
}
