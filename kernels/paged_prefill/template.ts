/**
 * The simple paged prefill kernel as a WGSL template: `spec -> WGSL source`.
 *
 * One invocation per (query token, query head). It finds its request by binary search over
 * cu_seqlens, keeps the pre-scaled q row and an f32 accumulator in private memory and runs an
 * online softmax (base 2) over the visible keys: old keys page by page through the block table
 * (dequantized with the scale), then the chunk's own keys from k_new/v_new at full precision.
 * o is divided by the softmax sum and rounded once to q's dtype, written as whole u32 words.
 * @module
 */
import { type WgslCodecName, wgslCodecs } from "../wgsl/codecs.ts";
import {
  WGSL_FIND_REQUEST,
  wgslByteDecode,
  wgslByteDecodeCodec,
  wgslQPack,
  wgslQPackCodec,
  wgslQUnpack,
} from "../_shared.ts";
import { type PagedPrefillSpec, specKey } from "./spec.ts";

/**
 * `count` copies of a WGSL statement block with constant indices, one per line. Loops over D
 * are unrolled: constant indices into private arrays need no clamping, and Mesa's llvmpipe
 * caps the loop iterations of an invocation (a rolled D loop inside the key loop hits the cap
 * after ~1000 keys at D = 128 and silently stops).
 */
function _unroll(count: number, block: (j: number) => string, indent: string): string {
  return Array.from({ length: count }, (_, j) => block(j)).join(`\n${indent}`);
}

/**
 * Bindings of the simple kernel, in binding order (all in group 0): params, q, k_new, v_new,
 * k_pages, v_pages, scales, cu_seqlens, cache_seqlens, block_table, o.
 *
 * @example
 * ```ts ignore
 * const { pipeline, layout } = await cachedPipeline(gpu, key, pagedPrefillWgsl(spec), SIMPLE_BINDINGS);
 * ```
 */
export const SIMPLE_BINDINGS = [
  "uniform", // params
  "read", // q
  "read", // k_new
  "read", // v_new
  "read", // k_pages
  "read", // v_pages
  "read", // scales
  "read", // cu_seqlens
  "read", // cache_seqlens
  "read", // block_table
  "read_write", // o
] as const;

/**
 * Names and WGSL types of the simple kernel's uniform fields, in order (4-byte scalars).
 *
 * @example
 * ```ts ignore
 * SIMPLE_PARAMS.map(([name]) => name).indexOf("q_scale"); // 9
 * ```
 */
export const SIMPLE_PARAMS = [
  ["batch", "u32"],
  ["total_q", "u32"],
  ["num_heads", "u32"],
  ["num_kv_heads", "u32"],
  ["group_size", "u32"],
  ["max_pages", "u32"],
  ["page_size", "u32"],
  ["page_shift", "u32"],
  ["scale_n", "u32"],
  ["q_scale", "f32"],
  ["cap_log2e", "f32"],
] as const;

/** One kind of operand row the kernel loads as vec4 pieces. */
function _loader(name: string, buffer: string, spec: PagedPrefillSpec, scale: string): string {
  const D = spec.headDim;
  const cache = spec.cacheDtype;
  if (cache === "f32") {
    // The dequant variant's scratch: f32 values as stored, four words per piece.
    return `fn ${name}(row: u32, g: u32, j: u32) -> vec4<f32> {
  let w = row * ${D}u + 4u * j;
  return bitcast<vec4<f32>>(vec4<u32>(${buffer}[w], ${buffer}[w + 1u], ${buffer}[w + 2u], ${buffer}[w + 3u]));
}
`;
  }
  if (cache === "f16" || cache === "bf16") {
    return `fn ${name}(row: u32, g: u32, j: u32) -> vec4<f32> {
  let w = row * ${D / 2}u + 2u * j;
  return vec4<f32>(unpack_q2(${buffer}[w]), unpack_q2(${buffer}[w + 1u]));
}
`;
  }
  const scaleExpr = cache === "fp8_e4m3"
    ? `scales[${scale}]`
    : `vec4<f32>(scales[c], scales[c + 1u], scales[c + 2u], scales[c + 3u])`;
  const channel = cache === "int8" ? `  let c = ${scale} + g * ${D}u + 4u * j;\n` : "";
  return `fn ${name}(row: u32, g: u32, j: u32) -> vec4<f32> {
${channel}  return decode_byte4(${buffer}[row * ${D / 4}u + j]) * ${scaleExpr};
}
`;
}

/**
 * Generates the WGSL of the simple kernel for `spec`. Deterministic: the same spec always
 * gives the same text (golden files under `tests/testdata/` pin three specs).
 *
 * @example
 * ```ts ignore
 * const code = pagedPrefillWgsl({
 *   qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, causal: true, softcap: false, workgroupSize: 64,
 * });
 * device.createShaderModule({ code });
 * ```
 */
export function pagedPrefillWgsl(spec: PagedPrefillSpec): string {
  const D = spec.headDim;
  if (D % 4 !== 0 || D < 4 || D > 256) {
    throw new RangeError(
      `Cannot generate the simple kernel for head_dim ${D}: need D % 4 == 0, 4 <= D <= 256`,
    );
  }
  const quantized = spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8";
  const codecs: WgslCodecName[] = [wgslQPackCodec(spec.qDtype)];
  if (quantized) codecs.push(wgslByteDecodeCodec(spec.cacheDtype as "fp8_e4m3" | "int8"));
  const kvEnd = spec.causal
    ? "old + i + 1u; // causal: up to the row's own position"
    : "old + q_len; // non-causal: the whole chunk";
  const score = spec.softcap
    ? `// q is pre-scaled by sm_scale / softcap: s = softcap * tanh(x), in log2 units. tanh is
// exactly +-1 in f32 beyond |x| = 9, the clamp keeps exp-based tanh from overflowing.
fn score(x: f32) -> f32 {
  return params.cap_log2e * tanh(clamp(x, -10.0, 10.0));
}
`
    : `// q is pre-scaled by sm_scale * log2(e): the dot product is the score in log2 units.
fn score(x: f32) -> f32 {
  return x;
}
`;
  return `// ${specKey("simple", spec)}
// One invocation per (query token, query head): online softmax (base 2, f32) over the visible
// keys; old keys from the page pool through the block table, new keys from k_new/v_new.

${wgslCodecs(...codecs).trim()}

struct Params {
${SIMPLE_PARAMS.map(([n, t]) => `  ${n}: ${t},`).join("\n")}
}

const D4: u32 = ${D / 4}u; // vec4 pieces per row of D = ${D}
const WG: u32 = ${spec.workgroupSize}u;

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

${wgslQUnpack(spec.qDtype).trim()}

${wgslQPack(spec.qDtype).trim()}
${quantized ? "\n" + wgslByteDecode(spec.cacheDtype as "fp8_e4m3" | "int8").trim() + "\n" : ""}
${WGSL_FIND_REQUEST.trim()}

// Rows of D elements: (token or slot) * H_kv + g; j = vec4 piece; g picks int8 channel scales.
${_loader("k_old", "k_pages", spec, "0u")}
${_loader("v_old", "v_pages", spec, "params.scale_n")}
${_loader("k_chunk", "k_new", { ...spec, cacheDtype: spec.qDtype }, "")}
${_loader("v_chunk", "v_new", { ...spec, cacheDtype: spec.qDtype }, "")}
${score}
// Online softmax step for score s: rescales acc and returns the weight of the new value row.
fn online_weight(s: f32) -> f32 {
  let m_new = max(m_run, s);
  let correction = exp2(m_run - m_new);
  let weight = exp2(s - m_new);
  l_run = l_run * correction + weight;
  m_run = m_new;
  ${_unroll(D / 4, (j) => `{ acc[${j}u] = acc[${j}u] * correction; }`, "  ")}
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
  let kv_end = ${kvEnd}

  let q_word = (t * params.num_heads + h) * ${D / 2}u;
  ${
    _unroll(
      D / 4,
      (j) =>
        `{ let w = q_word + 2u * ${j}u; q_row[${j}u] = vec4<f32>(unpack_q2(q[w]), unpack_q2(q[w + 1u])) * params.q_scale; acc[${j}u] = vec4<f32>(0.0); }`,
      "  ",
    )
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
      ${_unroll(D / 4, (j) => `{ dot_qk += dot(q_row[${j}u], k_old(row, g, ${j}u)); }`, "      ")}
      let weight = online_weight(score(dot_qk));
      ${_unroll(D / 4, (j) => `{ acc[${j}u] += weight * v_old(row, g, ${j}u); }`, "      ")}
    }
  }

  // The chunk's own keys: positions old .. kv_end - 1 at full precision.
  for (var p = old; p < kv_end; p++) {
    let row = (start + p - old) * params.num_kv_heads + g;
    var dot_qk = 0.0;
    ${_unroll(D / 4, (j) => `{ dot_qk += dot(q_row[${j}u], k_chunk(row, g, ${j}u)); }`, "    ")}
    let weight = online_weight(score(dot_qk));
    ${_unroll(D / 4, (j) => `{ acc[${j}u] += weight * v_chunk(row, g, ${j}u); }`, "    ")}
  }

  // o = acc / l, rounded once to q's dtype, two elements per word.
  ${
    _unroll(
      D / 4,
      (j) =>
        `{ let x = acc[${j}u] / l_run; o[q_word + 2u * ${j}u] = pack_q2(x.xy); o[q_word + 2u * ${j}u + 1u] = pack_q2(x.zw); }`,
      "  ",
    )
  }
}
`;
}
