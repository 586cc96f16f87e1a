/**
 * The append kernel as a WGSL template: writes each new token's k/v row into its cache slot,
 * encoded in the cache dtype (SPEC §1, §2). One invocation per (token, kv head, unit of 1 or
 * 4 cache words): every invocation writes whole, distinct u32 words, so there are no write
 * races and no other byte of the pools changes.
 * @module
 */
import type { CacheDtype, QDtype } from "../../op/types.ts";
import { wgslCodecs } from "../wgsl/codecs.ts";
import { DTYPE_KEY, WGSL_FIND_REQUEST, wgslQUnpack } from "../_shared.ts";

/** What the append kernel's WGSL depends on. */
export interface AppendSpec {
  /** dtype of k_new / v_new. */
  qDtype: QDtype;
  /** dtype of the pools written. */
  cacheDtype: CacheDtype;
  /** D; a multiple of 4. */
  headDim: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
  /**
   * Cache words one invocation writes: 4 (one 16-byte load and store per pool; needs
   * `appendWordsPerRow(spec) % 4 == 0`) or 1. Default 4 where the row allows it.
   */
  unitWords?: 1 | 4;
}

/**
 * Default invocations per workgroup of the append kernel.
 *
 * @example
 * ```ts ignore
 * planAppend(gpu, dev, { workgroupSize: APPEND_WORKGROUP_SIZE });
 * ```
 */
export const APPEND_WORKGROUP_SIZE = 64;

/**
 * Bindings of the append kernel, in binding order (all in group 0): params, k_new, v_new,
 * k_pages, v_pages, scales, cu_seqlens, cache_seqlens, block_table.
 *
 * @example
 * ```ts ignore
 * const { pipeline, layout } = await cachedPipeline(gpu, key, code, APPEND_BINDINGS);
 * ```
 */
export const APPEND_BINDINGS = [
  "uniform", // params
  "read", // k_new
  "read", // v_new
  "read_write", // k_pages
  "read_write", // v_pages
  "read", // scales
  "read", // cu_seqlens
  "read", // cache_seqlens
  "read", // block_table
] as const;

/**
 * Names of the append kernel's uniform fields, in order (all u32).
 *
 * @example
 * ```ts ignore
 * APPEND_PARAMS.indexOf("page_shift"); // 4: byte offset 16 of the uniform buffer
 * ```
 */
export const APPEND_PARAMS = [
  "batch",
  "total_q",
  "num_kv_heads",
  "max_pages",
  "page_shift",
  "scale_n",
] as const;

/**
 * The key spelling every spec field; labels the module, pipeline and buffers.
 *
 * @example
 * ```ts ignore
 * appendKey({ qDtype: "bf16", cacheDtype: "int8", headDim: 64, workgroupSize: 64 });
 * // "paged_append_q-bf16_kv-int8_d64_wg64"
 * ```
 */
export function appendKey(spec: AppendSpec): string {
  return `paged_append_q-${spec.qDtype}_kv-${
    DTYPE_KEY[spec.cacheDtype]
  }_d${spec.headDim}_wg${spec.workgroupSize}${appendUnitWords(spec) === 4 ? "_v4" : ""}`;
}

/**
 * Cache words each invocation writes: `spec.unitWords` where the row holds whole units of it,
 * else 1.
 *
 * @example
 * ```ts ignore
 * appendUnitWords({ qDtype: "f16", cacheDtype: "f16", headDim: 12, workgroupSize: 64 }); // 1 (6 words)
 * ```
 */
export function appendUnitWords(spec: AppendSpec): 1 | 4 {
  const unit = spec.unitWords ?? 4;
  return appendWordsPerRow(spec) % unit === 0 ? unit : 1;
}

/**
 * Invocations of the append kernel: one per (new token, kv head, unit of cache words).
 *
 * @example
 * ```ts ignore
 * appendInvocations({ qDtype: "f16", cacheDtype: "f16", headDim: 128, workgroupSize: 64 }, 512, 8); // 65536
 * ```
 */
export function appendInvocations(spec: AppendSpec, totalQ: number, kvHeads: number): number {
  return totalQ * kvHeads * appendWordsPerRow(spec) / appendUnitWords(spec);
}

/**
 * Cache words per row of D elements: D / 2 for 16-bit caches, D / 4 for 1-byte caches.
 *
 * @example
 * ```ts ignore
 * appendWordsPerRow({ qDtype: "f16", cacheDtype: "int8", headDim: 128, workgroupSize: 64 }); // 32
 * ```
 */
export function appendWordsPerRow(spec: AppendSpec): number {
  return spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8"
    ? spec.headDim / 4
    : spec.headDim / 2;
}

/**
 * WGSL lines that place unit `idx` of the new rows (`upr` units per row of one KV head) in the
 * pools: `j` (unit in the row), `row` (t * H_kv + g), `t`, `g`, request `b`, logical position
 * `p`, `page`, `slot` and `dst` (the unit's index in a pool). Needs `find_request` and the
 * bindings and params the append kernel names (num_kv_heads, max_pages, page_shift); the mma
 * kernel's fused append uses it too.
 *
 * @example
 * ```ts ignore
 * wgslAppendTarget("u", "16u", "    "); // "    let j = u % 16u; // unit within the row\n..."
 * ```
 */
export function wgslAppendTarget(idx: string, upr: string, indent: string): string {
  return [
    `let j = ${idx} % ${upr}; // unit within the row`,
    `let row = ${idx} / ${upr}; // t * H_kv + g`,
    "let t = row / params.num_kv_heads;",
    "let g = row % params.num_kv_heads;",
    "let b = find_request(t);",
    "let p = u32(cache_seqlens[b]) + t - u32(cu_seqlens[b]); // logical position",
    "let page = u32(block_table[b * params.max_pages + (p >> params.page_shift)]);",
    "let slot = (page << params.page_shift) + (p & ((1u << params.page_shift) - 1u));",
    `let dst = (slot * params.num_kv_heads + g) * ${upr} + j;`,
  ].map((l) => indent + l).join("\n");
}

/**
 * Generates the append kernel's WGSL for `spec`.
 *
 * @example
 * ```ts ignore
 * const code = appendWgsl({ qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, workgroupSize: 64 });
 * ```
 */
export function appendWgsl(spec: AppendSpec): string {
  const D = spec.headDim;
  if (D % 4 !== 0 || D < 4) {
    throw new RangeError(`Cannot generate the append kernel for head_dim ${D}: need D % 4 == 0`);
  }
  const wpr = appendWordsPerRow(spec);
  const unit = appendUnitWords(spec);
  const upr = wpr / unit;
  const quantized = spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8";
  // Pools are read and written in units: u32 words, or vec4<u32> (four words, 16 bytes).
  const word = unit === 4 ? "vec4<u32>" : "u32";
  let helpers = "";
  let store: string;
  if (!quantized) {
    store = `  // ${spec.cacheDtype} cache: an exact copy of the unit (${2 * unit} elements).
  k_pages[dst] = k_new[row * UPR + j];
  v_pages[dst] = v_new[row * UPR + j];`;
  } else {
    const fp8 = spec.cacheDtype === "fp8_e4m3";
    const f = fp8 ? "encode_e4m3" : "encode_int8";
    const inv = (k: number) => fp8 ? "scales[inv_base]" : `scales[inv_base + c + ${k}u]`;
    helpers = `${wgslQUnpack(spec.qDtype).trim()}

// Four elements (two source words) into one word of ${spec.cacheDtype} bytes, lowest byte first,
// each encoded from its f32 value with the inverse scale (${
      fp8 ? "per tensor" : "per channel c = g * D + d"
    }).
fn encode_word(w0: u32, w1: u32, c: u32, inv_base: u32) -> u32 {
  let x = vec4<f32>(unpack_q2(w0), unpack_q2(w1));
  return ${f}(x[0], ${inv(0)})
    | (${f}(x[1], ${inv(1)}) << 8u)
    | (${f}(x[2], ${inv(2)}) << 16u)
    | (${f}(x[3], ${inv(3)}) << 24u);
}
`;
    if (unit === 4) {
      helpers += `
// Sixteen elements (two source units) into one unit of four cache words.
fn encode_unit(s0: vec4<u32>, s1: vec4<u32>, c: u32, inv_base: u32) -> vec4<u32> {
  return vec4<u32>(
    encode_word(s0.x, s0.y, c, inv_base),
    encode_word(s0.z, s0.w, c + 4u, inv_base),
    encode_word(s1.x, s1.y, c + 8u, inv_base),
    encode_word(s1.z, s1.w, c + 12u, inv_base),
  );
}
`;
      store = `  let src = row * ${2 * upr}u + 2u * j; // two source units per cache unit
  let c = g * ${D}u + 16u * j; // channel of the unit's first element
  k_pages[dst] = encode_unit(k_new[src], k_new[src + 1u], c, 2u * params.scale_n);
  v_pages[dst] = encode_unit(v_new[src], v_new[src + 1u], c, 3u * params.scale_n);`;
    } else {
      store = `  let src = row * ${D / 2}u + 2u * j; // two source words per cache word
  let c = g * ${D}u + 4u * j; // channel of the word's first element
  k_pages[dst] = encode_word(k_new[src], k_new[src + 1u], c, 2u * params.scale_n);
  v_pages[dst] = encode_word(v_new[src], v_new[src + 1u], c, 3u * params.scale_n);`;
    }
  }
  const codecs = quantized
    ? "\n" + wgslCodecs(spec.cacheDtype === "fp8_e4m3" ? "encode_e4m3" : "encode_int8").trim() +
      "\n"
    : "";
  return `// ${appendKey(spec)}
// One invocation per (new token, kv head, unit of ${unit} cache word${
    unit > 1 ? "s" : ""
  }): k_new/v_new row -> its cache slot.
${codecs}
struct Params {
${APPEND_PARAMS.map((n) => `  ${n}: u32,`).join("\n")}
}

const UPR: u32 = ${upr}u; // units per row of D = ${D} (${wpr} cache words)
const WG: u32 = ${spec.workgroupSize}u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_new: array<${word}>;
@group(0) @binding(2) var<storage, read> v_new: array<${word}>;
@group(0) @binding(3) var<storage, read_write> k_pages: array<${word}>;
@group(0) @binding(4) var<storage, read_write> v_pages: array<${word}>;
@group(0) @binding(5) var<storage, read> scales: array<f32>; // [k, v, k_inv, v_inv] x scale_n
@group(0) @binding(6) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(7) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> block_table: array<i32>;

${WGSL_FIND_REQUEST.trim()}
${helpers ? "\n" + helpers : ""}
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
${wgslAppendTarget("idx", "UPR", "  ")}
${store}
}
`;
}
