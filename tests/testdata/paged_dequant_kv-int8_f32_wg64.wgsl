// paged_dequant_kv-int8_f32_wg64
// One invocation per word of 4 int8 elements of a referenced page: decode, times the
// scale (f32), stored as f32 (no rounding), one vec4 of the scratch pool.

// int8 byte (two's complement, low 8 bits of b) -> f32, exact.
fn decode_int8(b: u32) -> f32 {
  return f32(bitcast<i32>(b << 24u) >> 24u);
}

struct Params {
  num_words: u32, // source words to convert: scratch pages * page_size * row_words
  row_words: u32, // source words per token: H_kv * D / 4
  page_shift: u32,
  scale_n: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_pages: array<u32>;
@group(0) @binding(2) var<storage, read> v_pages: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>; // [k, v, k_inv, v_inv] x scale_n
@group(0) @binding(4) var<storage, read> page_list: array<i32>;
@group(0) @binding(5) var<storage, read_write> k_scratch: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v_scratch: array<vec4<f32>>;

// Four int8 bytes of a u32 word (lowest byte first) as f32, before scaling.
fn decode_byte4(w: u32) -> vec4<f32> {
  return vec4<f32>(
    decode_int8(w & 0xffu),
    decode_int8((w >> 8u) & 0xffu),
    decode_int8((w >> 16u) & 0xffu),
    decode_int8(w >> 24u),
  );
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = (wid.y * nwg.x + wid.x) * WG + lid;
  if (idx >= params.num_words) {
    return;
  }
  let token = idx / params.row_words; // scratch token
  let r = idx % params.row_words; // word within the token's H_kv * D elements
  let page = u32(page_list[token >> params.page_shift]);
  let src_token = (page << params.page_shift) + (token & ((1u << params.page_shift) - 1u));
  let src = src_token * params.row_words + r;
  let c = 4u * r; // channel g * D + d of the word's first element
  k_scratch[idx] = decode_byte4(k_pages[src]) * vec4<f32>(scales[0u + c], scales[0u + c + 1u], scales[0u + c + 2u], scales[0u + c + 3u]);
  v_scratch[idx] = decode_byte4(v_pages[src]) * vec4<f32>(scales[params.scale_n + c], scales[params.scale_n + c + 1u], scales[params.scale_n + c + 2u], scales[params.scale_n + c + 3u]);
}
