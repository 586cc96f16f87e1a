/**
 * WGSL template of the decode kernel (see `decode.ts` for the design and its cost model).
 *
 * One workgroup per work item = (request, KV head, up to 16 query rows of that head's group, a
 * range of keys). The workgroup is `keyGroups` groups of `lanes = D / dimsPerLane` invocations;
 * lane `n` of a group owns head dims [n * dimsPerLane, (n + 1) * dimsPerLane) of every row (q in
 * registers, loaded once per item) and of O. Per step, group `kp` takes keys
 * `base + 4 kp .. base + 4 kp + 3`: each lane loads its slice of those 4 K rows and 4 V rows (a
 * whole 16-bit row of D = 128 is 16 lanes x 16 bytes: coalesced), forms partial dots for every
 * row and stores them, 4 keys per vec4, in workgroup memory; lane `r` of the group then sums the
 * `lanes` partials of row r (one vec4 = 4 keys' scores), runs the online softmax of that row for
 * its group (running max and sum stay in that lane) and publishes P and the rescale factor;
 * every lane then accumulates O += P V on its dims. Two barriers per step, no cross-group max:
 * each group is its own softmax stream, merged once at the end of the item in workgroup memory.
 *
 * Old keys are read in a software-pipelined loop (K of step s + 1 issued after the dots of step
 * s, V of step s + 1 after the PV of step s, the page id of step s + 1 at the start of step s);
 * the chunk's own keys (k_new / v_new, at most 16) go through a second, plain loop with the
 * causal mask. Everything per key and per dim is unrolled with constant register indices; the
 * only loops inside the key loop are none.
 * @module
 */
import { FP8X4_WGSL } from "../wgsl/fp8x4.ts";
import { wgslCodecs } from "../wgsl/codecs.ts";
import { wgslQPack, wgslQPackCodec, wgslQUnpack } from "../_shared.ts";
import { DECODE_KEYS_PER_GROUP, decodeGeometry, decodeKey, type DecodeSpec } from "./spec.ts";

/** Bindings of the attention pass, in binding order (all in group 0); as the flash kernel's. */
export const DECODE_BINDINGS = [
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
  "read", // work items
  "read_write", // o (or split partials)
] as const;

/** Uniform fields of the attention pass, in order (u32 but the last two, f32). */
export const DECODE_PARAMS = [
  "batch",
  "num_heads",
  "num_kv_heads",
  "group",
  "max_pages",
  "page_shift",
  "n_items",
  "grid_x",
  "scale_n",
  "ml_base",
  "scale_a",
  "scale_b",
] as const;

/** Large finite stand-ins for -inf (WGSL has no infinity literal; fast math may drop infs). */
const M_INIT = "-1.0e30";
const MASKED = "-3.0e38";

function _lines(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join("\n");
}

function _indent(text: string, spaces: number): string {
  const pad = " ".repeat(spaces);
  return text.split("\n").map((l) => (l.length > 0 ? pad + l : l)).join("\n");
}

/**
 * The attention pass's WGSL for `spec`.
 *
 * @example
 * ```ts
 * import { decodeWgsl } from "./template.ts";
 * const code = decodeWgsl({
 *   qDtype: "bf16", cacheDtype: "fp8_e4m3", headDim: 128, rows: 8, dimsPerLane: 8,
 *   keyGroups: 8, causal: true, softcap: false, pageAligned: true, split: true,
 * });
 * ```
 */
export function decodeWgsl(spec: DecodeSpec): string {
  const geo = decodeGeometry(spec);
  const { lanes: L, threads: T, stepKeys: SK, chunks: C, rowsPerLane: RPL } = geo;
  const R = spec.rows;
  const KG = spec.keyGroups;
  const D = spec.headDim;
  const D4 = D / 4;
  const U = DECODE_KEYS_PER_GROUP;
  const fp8 = spec.cacheDtype === "fp8_e4m3";
  const int8 = spec.cacheDtype === "int8";
  const byteCache = fp8 || int8;
  const RS = L + 1; // row stride of the partial-dot buffer, in vec4 (padded: no bank conflicts)
  const codecs = [
    ...(spec.split ? [] : [wgslQPackCodec(spec.qDtype)]),
  ];

  // Element types: QW holds one lane's dims of a 16-bit row; CW of a cache row.
  const QW = C === 2 ? "vec4<u32>" : "vec2<u32>";
  const CW = byteCache ? (C === 2 ? "vec2<u32>" : "u32") : QW;
  const zeroQ = `${QW}(0u)`;
  const zeroC = byteCache && C === 1 ? "0u" : `${CW}(0u)`;
  const qChunk = (w: string, c: number) =>
    C === 2
      ? c === 0
        ? `vec4<f32>(unpack_q2(${w}.x), unpack_q2(${w}.y))`
        : `vec4<f32>(unpack_q2(${w}.z), unpack_q2(${w}.w))`
      : `vec4<f32>(unpack_q2(${w}.x), unpack_q2(${w}.y))`;
  const dec4 = fp8 ? "fp8x4" : "i8x4";
  const cacheChunk = (w: string, c: number) =>
    !byteCache ? qChunk(w, c) : C === 2 ? `${dec4}(${w}.${"xy"[c]})` : `${dec4}(${w})`;

  const qAt = (r: number, c: number) => `q${r}_${c}`;
  const oAt = (r: number, c: number) => `o${r}_${c}`;
  // The 4 dims of chunk c of this lane, as an index into a [.., D] scale array.
  const dimBase = (c: number) => `ln * ${4 * C}u + ${4 * c}u`;

  // -- q rows into registers (int8: scaled by the per-channel K scale) -------------------
  const loadQ = (scaled: boolean) =>
    _lines(R, (r) =>
      `{
  let f = f0 + ${r}u;
  var w = ${zeroQ};
  if (f < nrows) {
    let tok = q_start + f / params.group;
    let head = g * params.group + f % params.group;
    w = q[(tok * params.num_heads + head) * ${L}u + ln];
  }
${_lines(C, (c) => `  ${qAt(r, c)} = ${qChunk("w", c)}${scaled ? ` * ksc${c}` : ""};`)}
}`);

  // -- partial dots of 4 keys for every row, into workgroup memory -----------------------
  const dots = (reg: string, chunk: (w: string, c: number) => string) =>
    `${_lines(U, (u) => _lines(C, (c) => `let kf${u}_${c} = ${chunk(`${reg}${u}`, c)};`))}
${
      _lines(R, (r) => {
        const d = (u: number) =>
          Array.from({ length: C }, (_, c) => `dot(${qAt(r, c)}, kf${u}_${c})`).join(" + ");
        return `red[(kp * ${R}u + ${r}u) * ${RS}u + ln] = vec4<f32>(${
          Array.from({ length: U }, (_, u) => d(u)).join(", ")
        });`;
      })
    }`;

  // -- the row owners: full scores, online softmax, P and alpha ---------------------------
  const scored = spec.softcap
    ? "params.scale_b * tanh(clamp(acc * sa, vec4<f32>(-15.0), vec4<f32>(15.0)))"
    : "acc * sa";
  const reduce = (mode: "old" | "new") =>
    _lines(RPL, (j) => {
      const ok = mode === "old"
        ? "kpos < vec4<u32>(pend)"
        : spec.causal
        ? `(kpos < vec4<u32>(ne)) & (kpos <= vec4<u32>(old + (f0 + r) / params.group))`
        : "kpos < vec4<u32>(ne)";
      return `{
  let r = ln + ${j * L}u;
  if (r < ${R}u) {
    let rb = (kp * ${R}u + r) * ${RS}u;
    let acc = ${Array.from({ length: L }, (_, n) => `red[rb + ${n}u]`).join(" + ")};
    let kpos = vec4<u32>(base + kp * ${U}u) + vec4<u32>(0u, 1u, 2u, 3u);
    let s = select(vec4<f32>(${MASKED}), ${scored}, ${ok});
    let mx = max(m${j}, max(max(s.x, s.y), max(s.z, s.w)));
    let al = exp2(m${j} - mx);
    let pv = exp2(s - vec4<f32>(mx));
    l${j} = l${j} * al + ((pv.x + pv.y) + (pv.z + pv.w));
    m${j} = mx;
    pb[kp * ${R}u + r] = pv;
    ab[kp * ${R}u + r] = al;
  }
}`;
    });

  // -- O = O * alpha + P V on this lane's dims --------------------------------------------
  const pv = (reg: string, chunk: (w: string, c: number) => string) =>
    `${_lines(U, (u) => _lines(C, (c) => `let vf${u}_${c} = ${chunk(`${reg}${u}`, c)};`))}
${
      _lines(R, (r) =>
        `{
  let pr = pb[kp * ${R}u + ${r}u];
  let ar = ab[kp * ${R}u + ${r}u];
${
          _lines(C, (c) => {
            let e = `${oAt(r, c)} * ar`;
            for (let u = 0; u < U; u++) e = `fma(vec4<f32>(pr.${"xyzw"[u]}), vf${u}_${c}, ${e})`;
            return `  ${oAt(r, c)} = ${e};`;
          })
        }
}`)
    }`;

  // -- loads of the old keys of the step starting at `b` (slots kept for the V loads) ---------
  const slotExpr = (p: string, page: string) =>
    spec.pageAligned
      ? `(${page} << params.page_shift) | (${p} & page_mask)`
      : `(u32(block_table[bt_base + (${p} >> params.page_shift)]) << params.page_shift) | (${p} & page_mask)`;
  const loadK = (b: string, page: string) =>
    _lines(U, (u) =>
      `{
  let p = ${b} + kp * ${U}u + ${u}u;
  kr${u} = ${zeroC};
  if (p < pend) {
    sl${u} = ${slotExpr("p", page)};
    kr${u} = k_pages[(sl${u} * params.num_kv_heads + g) * ${L}u + ln];
  }
}`);
  const loadV = (b: string) =>
    _lines(U, (u) =>
      `{
  let p = ${b} + kp * ${U}u + ${u}u;
  vr${u} = ${zeroC};
  if (p < pend) {
    vr${u} = v_pages[(sl${u} * params.num_kv_heads + g) * ${L}u + ln];
  }
}`);
  const pageOf = (b: string) =>
    `if (${b} < pend) {\n  pg = u32(block_table[bt_base + (${b} >> params.page_shift)]);\n}`;

  const oldLoop = `// Old keys [k0, pend), from the pages; every row sees all of them.
if (k0 < pend) {
  let sa = sa_old;
  let st_end = (pend + ${SK - 1}u) / ${SK}u;
  var pg = 0u;
${spec.pageAligned ? _indent(pageOf("k0"), 2) : ""}
${_indent(loadK("k0", "pg"), 2)}
${_indent(loadV("k0"), 2)}
  for (var st = st0; st < st_end; st = st + 1u) {
    let base = st * ${SK}u;
    let nbase = base + ${SK}u;
${spec.pageAligned ? _indent(pageOf("nbase"), 4) : ""}
${_indent(dots("kr", cacheChunk), 4)}
${_indent(loadK("nbase", "pg"), 4)}
    workgroupBarrier(); // partial dots ready
${_indent(reduce("old"), 4)}
    workgroupBarrier(); // P and alpha ready; partial dots free
${_indent(pv("vr", cacheChunk), 4)}
${_indent(loadV("nbase"), 4)}
  }
}`;

  const newLoads = _lines(U, (u) =>
    `{
  let p = base + kp * ${U}u + ${u}u;
  kn${u} = ${zeroQ};
  vn${u} = ${zeroQ};
  if (p < ne) {
    let at = ((q_start + p - old) * params.num_kv_heads + g) * ${L}u + ln;
    kn${u} = k_new[at];
    vn${u} = v_new[at];
  }
}`);
  const newLoop = `// The chunk's own keys [nb, ne), at full precision, causal mask per row.
let nb = max(k0, old);
let ne = k1;
if (nb < ne) {
  let sa = params.scale_a;
${int8 ? _indent(loadQ(false), 2) : ""}
  for (var base = nb; base < ne; base = base + ${SK}u) {
${_indent(newLoads, 4)}
${_indent(dots("kn", qChunk), 4)}
    workgroupBarrier(); // partial dots ready
${_indent(reduce("new"), 4)}
    workgroupBarrier(); // P and alpha ready; partial dots free
${_indent(pv("vn", qChunk), 4)}
  }
}`;

  // V scale of the old keys' accumulation (fp8: x256 of the f16 route, int8: per channel).
  const vScale = fp8
    ? `let vsc = scales[params.scale_n] * 256.0;
${_lines(R, (r) => _lines(C, (c) => `${oAt(r, c)} = ${oAt(r, c)} * vsc;`))}`
    : int8
    ? `${
      _lines(C, (c) =>
        `let vsc${c} = vec4<f32>(${
          [0, 1, 2, 3].map((e) =>
            `scales[params.scale_n + g * ${D}u + ${dimBase(c)} + ${e}u]`
          )
            .join(", ")
        });`)
    }
${_lines(R, (r) => _lines(C, (c) => `${oAt(r, c)} = ${oAt(r, c)} * vsc${c};`))}`
    : "";

  const kScaleInt8 = int8
    ? _lines(
      C,
      (c) =>
        `let ksc${c} = vec4<f32>(${
          [0, 1, 2, 3].map((e) => `scales[g * ${D}u + ${dimBase(c)} + ${e}u]`).join(", ")
        });`,
    )
    : "";

  const output = spec.split
    ? `let at = (slot * ${R}u + r) * ${D4}u + n * ${C}u + c;
    part[at] = acc;`
    : `if (f0 + r < nrows) {
      let f = f0 + r;
      let tok = q_start + f / params.group;
      let head = g * params.group + f % params.group;
      let v = acc * (1.0 / rml[r].y);
      o[(tok * params.num_heads + head) * ${D4}u + n * ${C}u + c] = vec2<u32>(pack_q2(v.xy), pack_q2(v.zw));
    }`;

  const merge = `// Merge the ${KG} groups' softmax streams: (m, l) per row, then O chunk by chunk.
workgroupBarrier(); // the last step's P and alpha are read
${
    _lines(RPL, (j) =>
      `{
  let r = ln + ${j * L}u;
  if (r < ${R}u) {
    pb[kp * ${R}u + r] = vec4<f32>(m${j}, l${j}, 0.0, 0.0);
  }
}`)
  }
workgroupBarrier(); // (m, l) of every group ready
if (lid < ${R}u) {
  var mx = ${M_INIT};
  for (var kk = 0u; kk < ${KG}u; kk = kk + 1u) {
    mx = max(mx, pb[kk * ${R}u + lid].x);
  }
  var ls = 0.0;
  for (var kk = 0u; kk < ${KG}u; kk = kk + 1u) {
    let ml = pb[kk * ${R}u + lid];
    let fk = exp2(ml.x - mx);
    ab[kk * ${R}u + lid] = fk;
    ls = ls + fk * ml.y;
  }
  rml[lid] = vec2<f32>(mx, ls);${
    spec.split
      ? `
  part[params.ml_base + slot * ${R}u + lid] = vec4<f32>(mx, ls, 0.0, 0.0);`
      : ""
  }
}
workgroupBarrier(); // merge factors ready
${
    _lines(R, (r) =>
      `{
  let fk = ab[kp * ${R}u + ${r}u];
${_lines(C, (c) => `  ${oAt(r, c)} = ${oAt(r, c)} * fk;`)}
}`)
  }
${
    _lines(C, (c) =>
      `${c > 0 ? "workgroupBarrier(); // previous chunk summed\n" : ""}${
        _lines(R, (r) =>
          `red[(kp * ${R}u + ${r}u) * ${RS}u + ln] = ${oAt(r, c)};`)
      }
workgroupBarrier(); // chunk ${c} of every group's O ready
for (var e = lid; e < ${R * L}u; e = e + ${T}u) {
  let r = e / ${L}u;
  let n = e % ${L}u;
  let c = ${c}u;
  var acc = vec4<f32>(0.0);
  for (var kk = 0u; kk < ${KG}u; kk = kk + 1u) {
    acc = acc + red[(kk * ${R}u + r) * ${RS}u + n];
  }
  {
    ${output}
  }
}`)
  }`;

  return `// ${decodeKey(spec)}
// Decode attention: workgroup = ${R} (query, head) rows of one KV head's group x a key range;
// ${KG} key groups x ${L} lanes (${spec.dimsPerLane} dims per lane), ${SK} keys per step.
// Generated by kernels/decode/template.ts; do not edit.

struct Params {
  batch: u32,
  num_heads: u32,
  num_kv_heads: u32,
  group: u32,
  max_pages: u32,
  page_shift: u32,
  n_items: u32,
  grid_x: u32,
  scale_n: u32,
  ml_base: u32,
  scale_a: f32,
  scale_b: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${QW}>;
@group(0) @binding(2) var<storage, read> k_new: array<${QW}>;
@group(0) @binding(3) var<storage, read> v_new: array<${QW}>;
@group(0) @binding(4) var<storage, read> k_pages: array<${CW}>;
@group(0) @binding(5) var<storage, read> v_pages: array<${CW}>;
@group(0) @binding(6) var<storage, read> scales: array<f32>;
@group(0) @binding(7) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(9) var<storage, read> block_table: array<i32>;
@group(0) @binding(10) var<storage, read> items: array<vec4<u32>>;
${
    spec.split
      ? "@group(0) @binding(11) var<storage, read_write> part: array<vec4<f32>>;"
      : "@group(0) @binding(11) var<storage, read_write> o: array<vec2<u32>>;"
  }

// Partial dots [group][row][lane] (4 keys per vec4), then one O chunk per group in the merge.
var<workgroup> red: array<vec4<f32>, ${KG * R * RS}>;
// P of the step's 4 keys per [group][row], then (m, l) per group and row in the merge.
var<workgroup> pb: array<vec4<f32>, ${KG * R}>;
// Rescale factor of O per [group][row], then each group's merge factor.
var<workgroup> ab: array<f32, ${KG * R}>;
// Merged (m, l) per row.
var<workgroup> rml: array<vec2<f32>, ${R}>;

${wgslQUnpack(spec.qDtype)}
${spec.split ? "" : wgslQPack(spec.qDtype)}
${wgslCodecs(...codecs)}
${fp8 ? FP8X4_WGSL : ""}${
    int8
      ? `// Four int8 bytes of w (lowest first) as f32, exact.
fn i8x4(w: u32) -> vec4<f32> {
  let i = bitcast<i32>(w);
  return vec4<f32>(vec4<i32>(i << 24u, i << 16u, i << 8u, i) >> vec4<u32>(24u));
}
`
      : ""
  }
@compute @workgroup_size(${T})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let item = wid.y * params.grid_x + wid.x;
  if (item >= params.n_items) {
    return;
  }
  let it0 = items[2u * item];
  let it1 = items[2u * item + 1u];
  let b = it0.x;
  let g = it0.y;
  let f0 = it0.z;
  let slot = it0.w;
  let st0 = it1.x;
  let k0 = st0 * ${SK}u;
  let k1 = min(it1.y * ${SK}u, it1.z);
  let q_start = u32(cu_seqlens[b]);
  let nrows = (u32(cu_seqlens[b + 1u]) - q_start) * params.group;
  let old = u32(cache_seqlens[b]);
  let pend = min(k1, old);
  let bt_base = b * params.max_pages;
  let page_mask = (1u << params.page_shift) - 1u;
  let kp = lid / ${L}u;
  let ln = lid % ${L}u;
  let sa_old = params.scale_a${fp8 ? " * scales[0u] * 256.0" : ""};

${_indent(kScaleInt8, 2)}
${_lines(R, (r) => _lines(C, (c) => `  var ${qAt(r, c)}: vec4<f32>;`))}
${_indent(loadQ(int8), 2)}
${_lines(R, (r) => _lines(C, (c) => `  var ${oAt(r, c)} = vec4<f32>(0.0);`))}
${_lines(RPL, (j) => `  var m${j} = ${M_INIT};\n  var l${j} = 0.0;`)}
${_lines(U, (u) => `  var kr${u}: ${CW};\n  var vr${u}: ${CW};\n  var sl${u} = 0u;`)}
${_lines(U, (u) => `  var kn${u}: ${QW};\n  var vn${u}: ${QW};`)}

${_indent(oldLoop, 2)}
${_indent(vScale, 2)}

${_indent(newLoop, 2)}

${_indent(merge, 2)}
}
`;
}
