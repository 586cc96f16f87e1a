/**
 * WGSL template of the subgroup-matrix ("mma") paged prefill kernel.
 *
 * One workgroup per work item = 16 * rowBlocks (query, head) rows of one KV head's query group
 * (GQA heads share every K/V tile) x a range of K/V tiles. Per tile:
 * 1. the K tile is gathered from the pages (or from k_new) into workgroup memory as f16;
 * 2. S = Q K^T on 16x16x16 subgroup matrices (Q fragments stay in registers), f32 results
 *    stored to workgroup memory;
 * 3. the softmax runs per row on threads in f32 (log2 domain): scale, softcap, mask, row max,
 *    P = exp2(s - m) written as f16; the V tile replaces the K tile meanwhile;
 * 4. O += P V on subgroup matrices (f32 accumulators in registers).
 *
 * A result matrix cannot be scaled per row, so the running max is lazy: it only moves (and O
 * is rescaled, through workgroup memory) when a row's max grows by more than 2^8; otherwise P
 * may reach 2^8, which f16 holds exactly as well as values <= 1. The row sums add the f16
 * values of P that the matrix units see. With `fixedMax` (16-bit caches) the key loop keeps each
 * row's first max and never rescales; an item whose scores outgrow f16's range there (P > 2^15)
 * runs again with the rescaled loop.
 *
 * Old (paged) keys come first, then the chunk's own keys; a tile never mixes them. fp8/int8
 * tiles hold the raw code values (exact in f16) and the scales are applied outside the
 * matrices: the K scale in the score scale (fp8) or folded into Q (int8, per channel,
 * normalised by the head's largest scale), the V scale on O's columns when the old tiles end.
 *
 * With `directKV` (f16 caches), full old tiles skip steps 1 and 3's staging: their K and V
 * subgroup matrices are loaded straight from the pools (16 keys of a block are consecutive
 * slots of one page, H_kv * D elements apart). Each iteration stages into h_s exactly what the
 * next reader of h_s needs: V of tile t only when t is staged, K of tile t + 1 only when t + 1
 * is staged; a direct tile also drops the barrier that only made its staged K tile visible.
 *
 * With `pipelined`, K and V have separate halves of the staging buffer and each iteration has
 * two phases: tile t's softmax (storing V(t) and K(t + 1)), then P V of tile t with Q K^T of
 * tile t + 1 (loading V(t + 1) and K(t + 2)); three barriers per tile instead of five.
 * @module
 */
import { wgslCodecs } from "../wgsl/codecs.ts";
import { WGSL_FIND_REQUEST, wgslQPack, wgslQPackCodec, wgslQUnpack } from "../_shared.ts";
import { wgslAppendTarget } from "../append/template.ts";
import { MMA_TILE, mmaAppendUnitsPerRow, mmaGeometry, mmaKey, type MmaSpec } from "./spec.ts";

/** Bindings of the attention pass, in binding order (all in group 0). */
export const MMA_BINDINGS = [
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

/**
 * Bindings of the attention pass with `directKV`: `MMA_BINDINGS`, then the K and V pools a
 * second time (the same buffers as bindings 4 and 5) as `array<f16>` for subgroup matrix loads.
 */
export const MMA_DIRECT_BINDINGS = [
  ...MMA_BINDINGS,
  "read", // k_pages_h
  "read", // v_pages_h
] as const;

/** Bindings of the attention pass with `fusedAppend`: `MMA_BINDINGS` with the pools read_write. */
export const MMA_FUSED_APPEND_BINDINGS = [
  ...MMA_BINDINGS.slice(0, 4),
  "read_write", // k_pages
  "read_write", // v_pages
  ...MMA_BINDINGS.slice(6),
] as const;

/** The bindings of the attention pass of `spec`, in binding order. */
export function mmaBindings(
  spec: MmaSpec,
): typeof MMA_BINDINGS | typeof MMA_DIRECT_BINDINGS | typeof MMA_FUSED_APPEND_BINDINGS {
  return spec.directKV
    ? MMA_DIRECT_BINDINGS
    : spec.fusedAppend
    ? MMA_FUSED_APPEND_BINDINGS
    : MMA_BINDINGS;
}

/** Uniform fields of the attention pass, in order (the last two are f32). */
export const MMA_PARAMS = [
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

/** Lazy rescale threshold, log2 domain: O is rescaled once a row max grows by more. */
export const MMA_RESCALE_LOG2 = 8;

/**
 * `fixedMax` limit, log2 domain: P = 2^(s - m) stays below 2^15 (f16 holds up to 65504), so a
 * row max more than this above the reference sends the item to the rescaled loop.
 */
export const MMA_FIXED_MAX_LOG2 = 15;

const M_INIT = "-1.0e30";
const MASKED = "-3.0e38";

function _lines(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join("\n");
}

/**
 * The attention pass's WGSL for `spec`.
 *
 * @example
 * ```ts
 * import { mmaWgsl } from "./template.ts";
 * const code = mmaWgsl({
 *   cacheDtype: "f16", headDim: 128, rowBlocks: 4, colWarps: 1, keys: 64, sg: 32,
 *   causal: true, softcap: false, split: false,
 * });
 * if (!code.includes("subgroupMatrixMultiplyAccumulate")) throw new Error();
 * ```
 */
export function mmaWgsl(spec: MmaSpec): string {
  const g = mmaGeometry(spec);
  const emu = spec.emulate === true;
  const D = spec.headDim;
  const D8 = D / 8;
  const D4 = D / 4;
  const BC = spec.keys;
  const WC = spec.colWarps;
  const SG = spec.sg;
  const T = g.threads;
  const BR = g.rows;
  const TPR = g.tpr;
  const { ks: KS, ss: SS, ps: PS, dBlocks: DB, dBlocksPerWarp: DBW } = g;
  const { kBlocksPerWarp: KBW, kBlocks: KB, roundBlocks: JR, rounds: NRO } = g;
  const QPR = g.qPassRows;
  const TR = spec.transposedScores === true;
  const QTS = g.qts;
  const ST = g.st;
  const ab = spec.ablate;
  // Whether a stage is left out ("all..." ablations leave out every one: the loop's skeleton).
  const off = (stage: "qk" | "pv" | "softmax" | "load") =>
    ab === stage || (ab !== undefined && ab.startsWith("all"));
  // Skeleton ablations: "all-noflag" reads the rescale flag as 0 (no uniform load, so two
  // barriers fewer per tile); "all-nosync" also drops the key loop's barriers.
  const bar = ab === "all-nosync" ? "// (barrier ablated)" : "workgroupBarrier();";
  // "flag" (every stage on) reads the rescale flag as 0, so the rescale code is compiled out
  // (right results only where no row max moves by more than 2^8 after the first tile);
  // "all-constflag" replaces the uniform load with one barrier and a uniform value that is
  // never set; "all-norescale" keeps the load but empties the rescale.
  const flagLoad = ab === "all-noflag" || ab === "all-nosync" || ab === "flag"
    ? "0u"
    : ab === "all-constflag"
    ? "select(0u, 1u, params.grid_x == 0u); workgroupBarrier()"
    : "workgroupUniformLoad(&flag).x";
  const QR = (spec.qResident === true || spec.qReload === true) && !TR;
  // Q fragments reloaded from the resident Q tile at each use instead of held in variables.
  const QL = spec.qReload === true && QR;
  const QA = QR ? "q_s" : "h_s";
  const fp8 = spec.cacheDtype === "fp8_e4m3";
  const int8 = spec.cacheDtype === "int8";
  const byteCache = fp8 || int8;
  // bf16 q (and k_new, v_new, a bf16 cache): 16-bit words are rounded to f16 while staged.
  const bf16 = spec.qDtype === "bf16";
  const IN = bf16 ? "bh2" : "h2";
  const hasVs = byteCache;
  const SPR = BC / TPR; // scores per thread per tile
  // Full old tiles read K and V as subgroup matrices straight from the f16 pools.
  // ("k": only K; V is still staged, since a row-major V block is the awkward global load).
  const DKV = spec.directKV === true || spec.directKV === "k";
  const DV = spec.directKV === true;
  // Pipelined key loop: V lives in its own half of h_s, from element VH on.
  const PL = spec.pipelined === true;
  const VH = g.vHalf;
  // Fixed reference max per row, with the rescaled loop as the item's fallback.
  const FM = spec.fixedMax === true;

  // -- subgroup matrix emitters (real builtins, or the emulation for tests) ---------------
  // Stage "qk" owns Q, K and S; stage "pv" owns P, V and O (diagnostics emulate one of them).
  type Stage = "qk" | "pv";
  const emuIn = (stage: Stage) => emu || spec.emulateStage === stage;
  const anyEmu = emu || spec.emulateStage !== undefined;
  const LT = "subgroup_matrix_left<f16, 16, 16>";
  const RT = "subgroup_matrix_right<f16, 16, 16>";
  const AT = "subgroup_matrix_result<f32, 16, 16>";
  const typeOf = (kind: "l" | "r" | "a", stage: Stage) =>
    emuIn(stage) ? "array<f32, 8>" : kind === "l" ? LT : kind === "r" ? RT : AT;
  const decl = (kind: "l" | "r" | "a", name: string, stage: Stage) =>
    `var ${name}: ${typeOf(kind, stage)};`;
  const zero = (name: string, stage: Stage) =>
    emuIn(stage) ? `${name} = array<f32, 8>();` : `${name} = ${AT}();`;
  const load = (
    kind: "l" | "r" | "a",
    name: string,
    arr: "h_s" | "p_s" | "s_s" | "q_s" | "k_pages_h" | "v_pages_h",
    off: string,
    colMajor: boolean,
    stride: number | string,
    stage: Stage,
  ) => {
    const sd = typeof stride === "number" ? `${stride}u` : stride;
    return emuIn(stage)
      ? `${name} = emu_load_${arr}(${off}, ${colMajor}, ${sd}, lane);`
      : spec.newSyntax
      ? `${name} = subgroupMatrixLoad<${typeOf(kind, stage)}, ${
        colMajor ? "col_major" : "row_major"
      }>(&${arr}, ${off}, ${sd});`
      : `${name} = subgroupMatrixLoad<${
        typeOf(kind, stage)
      }>(&${arr}, ${off}, ${colMajor}, ${sd});`;
  };
  const store = (name: string, off: string, stride: number, stage: Stage) =>
    emuIn(stage)
      ? `emu_store_s_s(${name}, ${off}, ${stride}u, lane);`
      : spec.newSyntax
      ? `subgroupMatrixStore<row_major>(&s_s, ${off}, ${name}, ${stride}u);`
      : `subgroupMatrixStore(&s_s, ${off}, ${name}, false, ${stride}u);`;
  const mma = (acc: string, l: string, r: string, stage: Stage) =>
    emuIn(stage)
      ? `${acc} = emu_mma(${l}, ${r}, ${acc}, warp, lane);`
      : `${acc} = subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc});`;
  // Reduction over the TPR threads of a softmax row (adjacent invocations of one subgroup).
  const rowReduce = (v: string, op: "max" | "add") => {
    const steps: string[] = [];
    for (let m = 1; m < TPR; m *= 2) {
      if (emu || spec.smemReduce) {
        steps.push(
          `red[lid] = ${v};\n  workgroupBarrier();\n  ${v} = ${
            op === "max" ? `max(${v}, red[lid ^ ${m}u])` : `${v} + red[lid ^ ${m}u]`
          };\n  workgroupBarrier();`,
        );
      } else {
        steps.push(
          op === "max"
            ? `${v} = max(${v}, subgroupShuffleXor(${v}, ${m}u));`
            : `${v} = ${v} + subgroupShuffleXor(${v}, ${m}u);`,
        );
      }
    }
    return steps.join("\n  ");
  };

  const emulation = !anyEmu ? "" : `
// ---- emulation of the subgroup matrix builtins (tests on adapters without matrix units) ----
// A 16x16 matrix is spread over the 32 lanes of a logical warp: lane l holds elements
// 8l .. 8l+7 in row-major order. MMAs exchange fragments through workgroup memory.
var<workgroup> emu: array<f32, ${g.warps * 512}>;
fn emu_rc(lane: u32, e: u32) -> vec2<u32> {
  let idx = lane * 8u + e;
  return vec2<u32>(idx / 16u, idx % 16u);
}
fn emu_at(rc: vec2<u32>, col_major: bool, stride: u32) -> u32 {
  return select(rc.x * stride + rc.y, rc.y * stride + rc.x, col_major);
}
fn emu_load_h_s(off: u32, col_major: bool, stride: u32, lane: u32) -> array<f32, 8> {
  var out: array<f32, 8>;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      out[e] = f32(h_s[off + emu_at(emu_rc(lane, e), col_major, stride)]);
    }
  }
  return out;
}
${
    QR
      ? `fn emu_load_q_s(off: u32, col_major: bool, stride: u32, lane: u32) -> array<f32, 8> {
  var out: array<f32, 8>;
  for (var e = 0u; e < 8u; e = e + 1u) {
    out[e] = f32(q_s[off + emu_at(emu_rc(lane, e), col_major, stride)]);
  }
  return out;
}
`
      : ""
  }fn emu_load_p_s(off: u32, col_major: bool, stride: u32, lane: u32) -> array<f32, 8> {
  var out: array<f32, 8>;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      out[e] = f32(p_s[off + emu_at(emu_rc(lane, e), col_major, stride)]);
    }
  }
  return out;
}
fn emu_load_s_s(off: u32, col_major: bool, stride: u32, lane: u32) -> array<f32, 8> {
  var out: array<f32, 8>;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      out[e] = s_s[off + emu_at(emu_rc(lane, e), col_major, stride)];
    }
  }
  return out;
}
${
    DKV
      ? ["k", "v"].map((w) =>
        `fn emu_load_${w}_pages_h(off: u32, col_major: bool, stride: u32, lane: u32) -> array<f32, 8> {
  var out: array<f32, 8>;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      out[e] = f32(${w}_pages_h[off + emu_at(emu_rc(lane, e), col_major, stride)]);
    }
  }
  return out;
}
`
      ).join("")
      : ""
  }fn emu_store_s_s(v: array<f32, 8>, off: u32, stride: u32, lane: u32) {
  var w = v;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      s_s[off + emu_at(emu_rc(lane, e), false, stride)] = w[e];
    }
  }
}
fn emu_mma(a: array<f32, 8>, b: array<f32, 8>, c: array<f32, 8>, warp: u32, lane: u32) -> array<f32, 8> {
  var aa = a;
  var bb = b;
  var out = c;
  let base = warp * 512u;
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      emu[base + lane * 8u + e] = aa[e];
      emu[base + 256u + lane * 8u + e] = bb[e];
    }
  }
  workgroupBarrier();
  if (lane < 32u) {
    for (var e = 0u; e < 8u; e = e + 1u) {
      let rc = emu_rc(lane, e);
      var s = out[e];
      for (var k = 0u; k < 16u; k = k + 1u) {
        s = s + emu[base + rc.x * 16u + k] * emu[base + 256u + k * 16u + rc.y];
      }
      out[e] = s;
    }
  }
  workgroupBarrier();
  return out;
}
`;

  // -- K/V tile: raw units into registers, decoded into h_s later ----------------------------
  // A unit is 8 elements (16 bytes of f16, 8 of codes), or with `narrowStaging` one u32 of the
  // cache (2 f16 or 4 codes): then the lanes of a warp store consecutive words of h_s, instead
  // of 16-byte units whose scalar f16 stores hit 8 of the 32 banks (4-way conflicts).
  const narrow = spec.narrowStaging === true;
  const SU = narrow ? (byteCache ? 4 : 2) : 8; // elements per unit
  const DU = D / SU; // units per row
  const UN = (BC * D) / SU / T; // units per thread
  const poolUnit = narrow ? "u32" : byteCache ? "vec2<u32>" : "vec4<u32>";
  const poolAccess = spec.fusedAppend ? "read_write" : "read";
  // fusedAppend: workgroups past the last item copy the new K/V rows into their slots, one
  // pool unit (16 bytes, or a word with narrowStaging) per invocation. 16-bit caches only.
  const upr = `${mmaAppendUnitsPerRow(spec)}u`;
  const fusedAppend = spec.fusedAppend
    ? `    // The append (SPEC §1: attention never reads these slots): unit u of the new rows.
    let u = (item - params.n_items) * ${T}u + lid;
    if (u < u32(cu_seqlens[params.batch]) * params.num_kv_heads * ${upr}) {
${wgslAppendTarget("u", upr, "      ")}
      k_pages[dst] = k_new[row * ${upr} + j];
      v_pages[dst] = v_new[row * ${upr} + j];
    }
`
    : "";
  const newUnit = narrow ? (byteCache ? "vec2<u32>" : "u32") : "vec4<u32>";
  const rawType = narrow ? newUnit : "vec4<u32>";
  const oldRaw = (w: string) =>
    !byteCache ? w : narrow ? `vec2<u32>(${w}, 0u)` : `vec4<u32>(${w}, 0u, 0u)`;
  const loadRaw = (which: "k" | "v", reg = "rw") =>
    _lines(UN, (i) =>
      `  {
    let c = lid + ${T * i}u;
    let kk = c / ${DU}u;
    let du = c % ${DU}u;
    ${reg}${i} = ${rawType}(0u);
    if (kk < cnt) {
      if (is_old) {
        let pos = base + kk;
        let slot = (u32(block_table[bt_base + (pos >> params.page_shift)]) << params.page_shift) | (pos & page_mask);
        let w = ${which}_pages[(slot * params.num_kv_heads + kvh) * ${DU}u + du];
        ${reg}${i} = ${oldRaw("w")};
      } else {
        let tok = q_start + base + kk - old;
        ${reg}${i} = ${which}_new[(tok * params.num_kv_heads + kvh) * ${DU}u + du];
      }
    }
  }`);
  const put8 = (dst: string, vals: string[]) =>
    vals.map((v, e) => `h_s[${dst} + ${e}u] = ${v};`).join(" ");
  const half8 = (w: string) =>
    [0, 1, 2, 3].flatMap((k) => {
      const c = "xyzw"[k];
      return [`${IN}(${w}.${c}).x`, `${IN}(${w}.${c}).y`];
    });
  // Two codes in the low bytes of `t`'s halves -> their f16 values (`mmaBytePairWgsl`).
  const byte4 = (c: string) => {
    const lo = `((${c} & 0xffu) | ((${c} & 0xff00u) << 8u))`;
    const hi = `(((${c} >> 16u) & 0xffu) | ((${c} >> 8u) & 0xff0000u))`;
    return [lo, hi].flatMap((t) => [`byte_pair(${t}).x`, `byte_pair(${t}).y`]);
  };
  const byte8 = (w: string) => [...byte4(`${w}.x`), ...byte4(`${w}.y`)];
  const unitValues = (w: string, old: boolean): string[] => {
    if (old && byteCache) return narrow ? byte4(`${w}.x`) : byte8(w);
    if (!narrow) return half8(w);
    return byteCache
      ? [`${IN}(${w}.x).x`, `${IN}(${w}.x).y`, `${IN}(${w}.y).x`, `${IN}(${w}.y).y`]
      : [`${IN}(${w}).x`, `${IN}(${w}).y`];
  };
  // Registers `reg`0.. into h_s from element `at` on; `oldTile`: the tile holds cache codes.
  const storeRawOf = (reg: string, at: number, oldTile: string) =>
    _lines(UN, (i) => {
      const body = byteCache
        ? `if (${oldTile}) {
      ${put8("dst", unitValues(`${reg}${i}`, true))}
    } else {
      ${put8("dst", unitValues(`${reg}${i}`, false))}
    }`
        : put8("dst", unitValues(`${reg}${i}`, false));
      return `  {
    let c = lid + ${T * i}u;
    let dst = ${at > 0 ? `${at}u + ` : ""}(c / ${DU}u) * ${KS}u + (c % ${DU}u) * ${SU}u;
    ${body}
  }`;
    });
  const storeRaw = storeRawOf("rw", 0, "is_old");

  // -- Q staging (through h_s, in passes of QPR rows), fragments into registers -----------
  const qPasses = Math.ceil(BR / QPR);
  const qUnits = Math.ceil((QPR * D8) / T);
  // int8: Q times the K scales (over the head's largest) is split into hi + lo f16 parts, so
  // the old tiles' scores keep f32-like accuracy (two MMAs per Q block there).
  const comps = int8 ? [0, 1] : [0];
  const stageQ = (oldDomain: string) =>
    _lines(qPasses * comps.length, (pc) => {
      const pass = Math.floor(pc / comps.length);
      const comp = comps[pc % comps.length]!;
      const frag = comp === 0 ? "qf" : "ql";
      // q element e as f32 (a bf16 one exactly, before any f16 rounding).
      const q32 = (e: number) =>
        bf16 ? `unpack_q2(w.${"xyzw"[e >> 1]}).${"xy"[e % 2]}` : `f32(${half8("w")[e]})`;
      const scaled = (e: number) => `${q32(e)} * (scales[sb + ${e}u] * kinv)`;
      const qe = (e: number) => TR ? `${e * QTS}u` : `${e}u`;
      const qput = (vals: string[]) =>
        vals.map((v, e) => `${QA}[dst + ${qe(e)}] = ${v};`).join(" ");
      const int8Put = _lines(8, (e) =>
        comp === 0
          ? `          ${QA}[dst + ${qe(e)}] = f16(${scaled(e)});`
          : `          { let v = ${scaled(e)}; ${QA}[dst + ${qe(e)}] = f16(v - f32(f16(v))); }`);
      const plain = comp === 0 ? qput(half8("w")) : qput(Array.from({ length: 8 }, () =>
        "f16(0.0)"));
      return `  {
    for (var i = 0u; i < ${qUnits}u; i = i + 1u) {
      let c = lid + i * ${T}u;
      if (c < ${QPR * D8}u) {
        let r = c / ${D8}u;
        let du = c % ${D8}u;
        let flat = f0 + ${pass * QPR}u + r;
        var w = vec4<u32>(0u);
        if (flat < nrows) {
          let tok = q_start + flat / params.group;
          let head = kvh * params.group + flat % params.group;
          w = q[(tok * params.num_heads + head) * ${D8}u + du];
        }
        let dst = ${
        TR ? `du * ${8 * QTS}u + r` : `${QR ? comp * BR * KS : 0}u + r * ${KS}u + du * 8u`
      };
${
        int8
          ? `        if (${oldDomain}) {
          let sb = kvh * ${D}u + du * 8u;
${int8Put}
        } else {
          ${plain}
        }`
          : `        ${plain}`
      }
      }
    }
    workgroupBarrier();
    if (${QL ? "false" : "true"} && rb >= ${(pass * QPR) / 16}u && rb < ${
        ((pass + 1) * QPR) / 16
      }u) {
${
        TR
          ? `      ${spec.rowBlocks === 1 && WC === 1 ? "const" : "let"} qoff = (rb - ${
            (pass * QPR) / 16
          }u) * 16u;
${
            _lines(DB, (kd) =>
              `      ${
                load("r", `${frag}${kd}`, "h_s", `qoff + ${kd * 16 * QTS}u`, false, QTS, "qk")
              }`)
          }`
          : `      ${spec.rowBlocks === 1 && WC === 1 ? "const" : "let"} qoff = ${
            QR ? comp * BR * KS : 0
          }u + (rb - ${(pass * QPR) / 16}u) * ${16 * KS}u;
${
            _lines(
              DB,
              (kd) =>
                `      ${load("l", `${frag}${kd}`, QA, `qoff + ${kd * 16}u`, false, KS, "qk")}`,
            )
          }`
      }
    }
    workgroupBarrier();
  }`;
    });

  // -- S = Q K^T ---------------------------------------------------------------------------
  // `direct`: K blocks straight from the f16 pool (a full old tile; `kvo[kb]` = element offset
  // of the block's first key at kv head kvh, keys kv_stride apart), else from the staged h_s.
  const qkOf = (direct: boolean) =>
    off("qk") ? "" : _lines(KBW, (i) =>
      `  {
    ${WC === 1 ? "const" : "let"} kb = wc * ${KBW}u + ${i}u;
    ${zero("sacc", "qk")}
${
        _lines(DB, (kd) => {
          const kSrc = direct ? "k_pages_h" : "h_s";
          const kOff = direct ? `kvo[kb] + ${kd * 16}u` : `kb * ${16 * KS}u + ${kd * 16}u`;
          const kStr = direct ? "kv_stride" : KS;
          if (TR) {
            return `    ${load("l", "kf", kSrc, kOff, false, kStr, "qk")}\n    ${
              mma("sacc", "kf", `qf${kd}`, "qk")
            }${
              int8 ? `\n    if (is_old) {\n      ${mma("sacc", "kf", `ql${kd}`, "qk")}\n    }` : ""
            }`;
          }
          const qAt = (comp: number) => `rb * ${16 * KS}u + ${comp * BR * KS + kd * 16}u`;
          const qa = QL ? `qa${kd}` : `qf${kd}`;
          const qb = QL ? `qb${kd}` : `ql${kd}`;
          const reload = QL ? `\n    let ${load("l", qa, "q_s", qAt(0), false, KS, "qk")}` : "";
          const reloadLo = QL ? `\n      let ${load("l", qb, "q_s", qAt(1), false, KS, "qk")}` : "";
          return `    ${load("r", "kf", kSrc, kOff, true, kStr, "qk")}${reload}\n    ${
            mma("sacc", qa, "kf", "qk")
          }${
            int8
              ? `\n    if (is_old) {${reloadLo}\n      ${mma("sacc", qb, "kf", "qk")}\n    }`
              : ""
          }`;
        })
      }
    ${
        TR
          ? store("sacc", `kb * ${16 * ST}u + rb * 16u`, ST, "qk")
          : store("sacc", `rb * ${16 * SS}u + kb * 16u`, SS, "qk")
      }
  }`);
  const qk = qkOf(false);

  // -- softmax on threads --------------------------------------------------------------------
  // Key of a thread's j-th score: interleaved over the row's TPR threads, or with
  // contiguousScores its own run of SPR keys (adjacent S reads and P writes, which the
  // compiler can merge into vector accesses when S is row-major).
  const keyOf = (j: number) =>
    spec.contiguousScores ? `rpart * ${SPR}u + ${j}u` : `${j * TPR}u + rpart`;
  const scoreOf = (j: number) => {
    const x = TR ? `s_s[(${keyOf(j)}) * ${ST}u + srow]` : `s_s[srow * ${SS}u + ${keyOf(j)}]`;
    const scaled = spec.softcap
      ? `params.scale_b * tanh(clamp(${x} * sa, -15.0, 15.0))`
      : `${x} * sa`;
    const kk = keyOf(j);
    const vis = spec.causal ? `${kk} < cnt && (is_old || base + ${kk} <= lim)` : `${kk} < cnt`;
    return `    let x${j} = select(${MASKED}, ${scaled}, ${vis});`;
  };
  // P in pairs: one pack2x16float converts two scores (one f32 -> f16 conversion each costs a
  // quarter-rate instruction on NVIDIA, like the exp2), and the row sum adds the f32 values
  // (no conversion back; they differ from the f16 ones by a rounding, < 2^-11 relative).
  const pAt = (j: number) => `p_s[srow * ${PS}u + ${keyOf(j)}]`;
  // Ablation "exp": an FMA-pipe stand-in for exp2 (wrong P), to time the exp2s alone.
  const ex = (a: string) => ab === "exp" ? `(${a}) * 0.03125 + 1.0` : `exp2(${a})`;
  const softmaxP = _lines(Math.ceil(SPR / 2), (i) => {
    const j = 2 * i;
    if (j + 1 === SPR) {
      return `    { let e = ${ex(`x${j} - m_run`)}; ${pAt(j)} = f16(e); lsum = lsum + e; }`;
    }
    return `    { let e = vec2<f32>(${ex(`x${j} - m_run`)}, ${
      ex(`x${j + 1} - m_run`)
    }); let h = h2(pack2x16float(e)); ${pAt(j)} = h.x; ${
      pAt(j + 1)
    } = h.y; lsum = lsum + e.x + e.y; }`;
  });
  // Both softmaxes: the row's scores x0.. (scaled, capped, masked) and their max over the row.
  const scoresAndMax = `${_lines(SPR, scoreOf)}
    var mx = ${Array.from({ length: SPR }, (_, j) => `x${j}`).reduce((a, b) => `max(${a}, ${b})`)};
  ${rowReduce("mx", "max")}`;
  const softmax = `  {
${scoresAndMax}
    let m_new = max(m_run, mx);
    var alpha = 1.0;
    if (m_new > m_run + ${MMA_RESCALE_LOG2}.0) {
      if (m_run > -1.0e29) {
        flag.x = 1u;
      }
      alpha = exp2(m_run - m_new);
      m_run = m_new;
    }
    var lsum = 0.0;
${softmaxP}
    l_run = l_run * alpha + lsum;
    if (rpart == 0u) {
      row_a[srow] = alpha;
    }
  }`;

  // fixedMax: a row's reference max is set by its first tile with a visible key and then kept
  // (O is never rescaled in this loop); P reaches at most 2^MMA_FIXED_MAX_LOG2, which f16 holds.
  // A row max above that raises the flag, and the item runs again with the rescaled loop.
  const softmaxFixed = `  {
${scoresAndMax}
    if (m_run < -1.0e29) {
      m_run = max(m_run, mx);
    }
    if (${spec.forceRedo ? "true" : `mx > m_run + ${MMA_FIXED_MAX_LOG2}.0`}) {
      flag.x = 1u;
    }
    var lsum = 0.0;
${softmaxP}
    l_run = l_run + lsum;
  }`;

  // -- O through the S tile in rounds: rescale (factor per row [x V scale per column]) ------
  // Round ro moves blocks jj in [ro * JR, min((ro + 1) * JR, DBW)) of every warp; warp wc's
  // block jj lands at column block (jj - ro * JR) * WC + wc of its row block.
  const roundJJ = (ro: number) =>
    Array.from({ length: DBW }, (_, jj) => jj).filter((jj) => jj >= ro * JR && jj < (ro + 1) * JR);
  const roundStore = (ro: number) =>
    roundJJ(ro).map((jj) =>
      `  ${store(`o${jj}`, `rb * ${16 * SS}u + (${jj - ro * JR}u * ${WC}u + wc) * 16u`, SS, "pv")}`
    ).join("\n");
  const roundLoad = (ro: number) =>
    roundJJ(ro).map((jj) =>
      `  ${
        load(
          "a",
          `o${jj}`,
          "s_s",
          `rb * ${16 * SS}u + (${jj - ro * JR}u * ${WC}u + wc) * 16u`,
          false,
          SS,
          "pv",
        )
      }`
    ).join("\n");
  // Element work of one round: vec4 units over BR rows x CW columns; gives r, x (column in
  // the S tile) and d (column of O) to `body`.
  const roundWork = (ro: number, body: string) => {
    const cw = roundJJ(ro).length * WC * 16;
    const units = (BR * cw) / 4;
    const per = Math.ceil(units / T);
    return `  for (var i = 0u; i < ${per}u; i = i + 1u) {
    let u = lid + i * ${T}u;
    if (u < ${units}u) {
      let r = u / ${cw / 4}u;
      let x = (u % ${cw / 4}u) * 4u;
      let cb = x / 16u;
      let d = ((cb % ${WC}u) * ${DBW}u + ${ro * JR}u + cb / ${WC}u) * 16u + x % 16u;
${body}
    }
  }`;
  };
  const vsOf = (d: string) =>
    fp8
      ? `vec4<f32>(scales[1u])`
      : `vec4<f32>(scales[params.scale_n + kvh * ${D}u + ${d}], scales[params.scale_n + kvh * ${D}u + ${d} + 1u], scales[params.scale_n + kvh * ${D}u + ${d} + 2u], scales[params.scale_n + kvh * ${D}u + ${d} + 3u])`;
  const rescale = ab === "all-norescale" ? "" : _lines(NRO, (ro) =>
    `${roundStore(ro)}
  workgroupBarrier();
${
      roundWork(
        ro,
        `      let at = r * ${SS}u + x;
      var f = vec4<f32>(row_a[r]);
${hasVs ? `      if (trans) {\n        f = f * ${vsOf("d")};\n      }` : ""}
      s_s[at] = s_s[at] * f.x;
      s_s[at + 1u] = s_s[at + 1u] * f.y;
      s_s[at + 2u] = s_s[at + 2u] * f.z;
      s_s[at + 3u] = s_s[at + 3u] * f.w;`,
      )
    }
  workgroupBarrier();
${roundLoad(ro)}
${ro + 1 < NRO ? "  workgroupBarrier();" : ""}`);

  // -- O += P V --------------------------------------------------------------------------
  // `direct`: V blocks straight from the f16 pool (see qkOf), else from the staged h_s.
  const pvOf = (direct: boolean) =>
    _lines(KB, (kb) =>
      `  {
    ${load("l", "pf", "p_s", `rb * ${16 * PS}u + ${kb * 16}u`, false, PS, "pv")}
${
        _lines(DBW, (jj) =>
          `    ${
            load(
              "r",
              "vf",
              direct ? "v_pages_h" : "h_s",
              direct
                ? `kvo[${kb}u] + (wc * ${DBW}u + ${jj}u) * 16u`
                : `${VH + kb * 16 * KS}u + (wc * ${DBW}u + ${jj}u) * 16u`,
              false,
              direct ? "kv_stride" : KS,
              "pv",
            )
          }\n    ${mma(`o${jj}`, "pf", "vf", "pv")}`)
      }
  }`);
  const pv = pvOf(false);

  // -- output: normalised o, or partials for the combine pass -----------------------------
  const outBody = spec.split
    ? `      let flat = f0 + r;
      if (flat < nrows) {
        var v = vec4<f32>(s_s[r * ${SS}u + x], s_s[r * ${SS}u + x + 1u], s_s[r * ${SS}u + x + 2u], s_s[r * ${SS}u + x + 3u]);
${hasVs ? `        if (pend_vs) {\n          v = v * ${vsOf("d")};\n        }` : ""}
        part[(slot * ${BR}u + r) * ${D4}u + d / 4u] = v;
      }`
    : `      let flat = f0 + r;
      if (flat < nrows) {
        var v = vec4<f32>(s_s[r * ${SS}u + x], s_s[r * ${SS}u + x + 1u], s_s[r * ${SS}u + x + 2u], s_s[r * ${SS}u + x + 3u]);
${hasVs ? `        if (pend_vs) {\n          v = v * ${vsOf("d")};\n        }` : ""}
        v = v * (1.0 / row_l[r]);
        let tok = q_start + flat / params.group;
        let head = kvh * params.group + flat % params.group;
        o[(tok * params.num_heads + head) * ${D4}u + d / 4u] = vec2<u32>(pack_q2(v.xy), pack_q2(v.zw));
      }`;
  const output = _lines(NRO, (ro) =>
    `${roundStore(ro)}
  workgroupBarrier();
${roundWork(ro, outBody)}
${ro + 1 < NRO ? "  workgroupBarrier();" : ""}`);

  // -- directKV: which tiles skip staging ------------------------------------------------------
  // Tile t is direct when it is a full old tile ((t + 1) * Bc <= old) and pages hold whole
  // 16-key blocks (page_size >= 16; page sizes are powers of two). Every value it depends on
  // is workgroup-uniform, so the barriers it guards stay in uniform control flow.
  const dirOf = (t: string) => `${t} * ${BC}u + ${BC}u <= old && params.page_shift >= 4u`;
  // `code` (staging into h_s) only when the tile named by `cond` is not direct.
  const staged = (cond: string, code: string) =>
    DKV && code.trim() !== "" ? `    if (!${cond}) {\n${code}\n    }` : code;
  // Element offset in the pools of each 16-key block's first key at kv head kvh (one
  // block_table lookup per block, from uniform values only, so the same in every lane).
  const kvOffsets = _lines(KB, (kb) =>
    `      {
        let pos = base + ${kb * 16}u;
        let slot0 = (u32(block_table[bt_base + (pos >> params.page_shift)]) << params.page_shift) | (pos & page_mask);
        kvo[${kb}u] = slot0 * kv_stride + kvh * ${D}u;
      }`);
  const qkStep = DKV
    ? `    if (dir) {
${kvOffsets}
${qkOf(true)}
    } else {
${qk}
    }`
    : qk;
  const pvStep = off("pv") ? "" : DV
    ? `    if (dir) {
${pvOf(true)}
    } else {
${pv}
    }`
    : pv;

  // Diagnostic: item 0 copies its first tile's S into the output binding; all stop there.
  const sTotal = spec.dumpTile ? BC * KS : TR ? BC * ST : BR * SS;
  const dA = spec.dumpTile ? "h_s" : "s_s";
  const dumpScores = `    if (t == t0) {
      if (item == 0u) {
        for (var i = lid; i < ${spec.split ? sTotal / 4 : sTotal / 2}u; i = i + ${T}u) {
          ${
    spec.split
      ? `part[i] = vec4<f32>(f32(${dA}[4u * i]), f32(${dA}[4u * i + 1u]), f32(${dA}[4u * i + 2u]), f32(${dA}[4u * i + 3u]));`
      : `o[i] = vec2<u32>(bitcast<u32>(f32(${dA}[2u * i])), bitcast<u32>(f32(${dA}[2u * i + 1u])));`
  }
        }
      }
      return;
    }`;

  const outBinding = spec.split
    ? "@group(0) @binding(11) var<storage, read_write> part: array<vec4<f32>>;"
    : "@group(0) @binding(11) var<storage, read_write> o: array<vec2<u32>>;";

  // -- the key loop ----------------------------------------------------------------------
  // is_old, base and cnt of tile `t` (a WGSL expression; parenthesise sums): old (paged) tiles
  // first, then the chunk's own keys. `decl` is "var ", "let " or "" (assign).
  const tileVars = (t: string, indent: string, decl: "var " | "let " | "") =>
    `${indent}${decl}is_old = ${t} < n_old;
${indent}${decl}base = select(old + (${t} - n_old) * ${BC}u, ${t} * ${BC}u, is_old);
${indent}${decl}cnt = select(min(${BC}u, kend - base), min(${BC}u, old - base), is_old);`;

  // Classic: per tile, stage K, S = Q K^T, softmax while V is staged, P V; four barriers.
  // `decl` declares the first tile's is_old, base and cnt ("var ") or assigns them (""), and
  // `fixed` gives the loop of `fixedMax`: no rescale, a plain barrier where the flag is read.
  const firstTile = (decl: "var " | "") =>
    `  // First K tile.
${tileVars("t0", "  ", decl)}
${
      staged(
        `(${dirOf("t0")})`,
        `${loadRaw("k")}
${storeRaw}`,
      )
    }
`;
  const classicLoopOf = (fixed: boolean) => `
  for (var t = t0; t < t1; t = t + 1u) {
${tileVars("t", "    ", "")}
    let sa = select(params.scale_a, scale_old, is_old);
    let trans = ${hasVs ? "t == n_old && t > t0" : "false"};
${
    DKV
      ? `    // Direct tile: K${
        DV ? " and V come from the pools; h_s is neither written nor read" : " comes from the pool"
      }.
    let dir = ${dirOf("t")};`
      : ""
  }
${off("load") ? "" : DV ? staged("dir", loadRaw("v")) : loadRaw("v")}
${
    DKV
      ? `    if (!dir) {
      ${bar} // K tile ready (the previous tile's end barrier covers the rest)
    }`
      : `    ${bar} // K tile ready; last P V done`
  }

${qkStep}
    ${bar} // S ready; K tile no longer read
${spec.dumpScores ? dumpScores : ""}
${off("load") ? "" : DV ? staged("dir", storeRaw) : storeRaw}
${off("softmax") ? "" : fixed ? softmaxFixed : softmax}
    let more = t + 1u < t1;
${DKV ? "    var dir_n = false;" : ""}
    if (more) {
      let tn = t + 1u;
${tileVars("tn", "      ", "")}
${DKV ? `      dir_n = ${dirOf("tn")};` : ""}
${off("load") ? "" : staged("dir_n", loadRaw("k"))}
    }
${
    fixed
      ? `    ${bar} // P and V tile ready`
      : `    let need = ${flagLoad}; // P, alpha and V tile ready
    if (${spec.alwaysRescale ? "true" : "need != 0u || trans"}) {
${rescale}
    }`
  }

${pvStep}
    ${bar} // V tile and P no longer read
${
    fixed ? "" : `    if (lid == 0u) {
      flag.x = 0u;
    }`
  }
    if (more) {
${int8 ? `      if (t + 1u == n_old) {\n${stageQ("false")}\n      }` : ""}
${off("load") ? "" : staged("dir_n", storeRaw)}
    }
  }

`;
  const classicLoop = `${firstTile("var ")}${classicLoopOf(false)}`;
  // fixedMax: the loop without a rescale; when any row's scores rose more than 2^15 above
  // the reference of its first visible tile (f16 P could overflow), the item runs again with
  // the lazily rescaled loop. The flag is read once per item, not once per tile.
  const fixedLoop = (fast: string, fallback: string) =>
    `${fast}
  let redo = workgroupUniformLoad(&flag).x;
  if (redo != 0u) {
    // Every invocation has read the flag (the uniform load ends with a barrier).
    if (lid == 0u) {
      flag.x = 0u;
    }
${_lines(DBW, (jj) => `    ${zero(`o${jj}`, "pv")}`)}
    m_run = ${M_INIT};
    l_run = 0.0;
${fallback}${spec.poisonRedo ? "\n    l_run = l_run * 1024.0; // test hook: poisonRedo" : ""}
  }
`;

  // Pipelined (MmaSpec.pipelined): K and V have their own halves of h_s. Phase one of
  // iteration t: tile t's softmax, storing V(t) and K(t + 1) from registers. Phase two:
  // P V for tile t and S = Q K^T for tile t + 1 in one stretch of matrix work, while V(t + 1)
  // and K(t + 2) are loaded from memory. Three barriers per tile (the flag's uniform load is
  // two) instead of five.
  //
  // tileAt declares is_old, base and cnt of `tile` in a block, shadowing the loop's own (which
  // belong to tile t): loadRaw reads them by these names.
  const tileAt = (tile: string) => tileVars(`(${tile})`, "      ", "let ");
  const noLoad = off("load");
  // `decl` and `fixed` as for classicLoopOf; with `fixed` (fixedMax) a plain barrier replaces
  // the flag's uniform load: two barriers per tile.
  const pipelinedLoopOf = (fixed: boolean, decl: "var " | "") =>
    `  // Prologue: K(t0) staged and S(t0) computed; V(t0) and K(t0 + 1) wait in registers.
${tileVars("t0", "  ", decl)}
${noLoad ? "" : `${loadRaw("k", "rk")}\n${storeRawOf("rk", 0, "is_old")}`}
  workgroupBarrier(); // K(t0) ready
${noLoad ? "" : loadRaw("v", "rv")}
  if (t0 + 1u < t1) {
${tileAt("t0 + 1u")}
${noLoad ? "" : loadRaw("k", "rk")}
  }
${qk}
  workgroupBarrier(); // S(t0) ready

  for (var t = t0; t < t1; t = t + 1u) {
    let more = t + 1u < t1;
${
      int8
        ? `    if (more && t + 1u == n_old) {
      // Q K^T of the first new tile is next: Q without the K scales (h_s is free here).
${stageQ("false")}
    }`
        : ""
    }
${tileVars("t", "    ", "")}
    let sa = select(params.scale_a, scale_old, is_old);
    let trans = ${hasVs ? "t == n_old && t > t0" : "false"};
${off("softmax") ? "" : fixed ? softmaxFixed : softmax}
${noLoad ? "" : storeRawOf("rv", VH, "is_old")}
    if (more) {
${noLoad ? "" : storeRawOf("rk", 0, "t + 1u < n_old")}
    }
${
      fixed
        ? `    ${bar} // P, V(t) and K(t + 1) ready; S(t) read`
        : `    let need = ${flagLoad}; // P, alpha, V(t) and K(t + 1) ready; S(t) read
    if (${spec.alwaysRescale ? "true" : "need != 0u || trans"}) {
${rescale}
      workgroupBarrier(); // O is back in registers before S(t + 1) reuses the buffer
    }
    // Safe right away: the uniform load ends with a barrier, so every invocation has read it.
    if (lid == 0u) {
      flag.x = 0u;
    }`
    }
    if (more) {
${tileAt("t + 1u")}
${noLoad ? "" : loadRaw("v", "rv")}
    }
    if (t + 2u < t1) {
${tileAt("t + 2u")}
${noLoad ? "" : loadRaw("k", "rk")}
    }
    if (more) {
      // Tile t + 1's: int8 runs the second (lo) product only on old tiles.
      is_old = t + 1u < n_old;
${qk}
    }
${pvStep}
    ${bar} // S(t + 1) ready; P, V(t) and K(t + 1) read
  }
`;
  const pipelinedLoop = pipelinedLoopOf(false, "var ");

  return `// ${mmaKey(spec)}
// Paged prefill on subgroup matrices: workgroup = ${BR} (query, head) rows of one KV head's
// group x a range of ${BC}-key tiles; ${g.warps} warps (${spec.rowBlocks} row blocks x ${WC});
// 16x16x16 f16 -> f32 tiles. Generated by kernels/mma/template.ts; do not edit.
${
    emu ? "enable f16;" : `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);`
  }

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
@group(0) @binding(1) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> k_new: array<${newUnit}>;
@group(0) @binding(3) var<storage, read> v_new: array<${newUnit}>;
@group(0) @binding(4) var<storage, ${poolAccess}> k_pages: array<${poolUnit}>;
@group(0) @binding(5) var<storage, ${poolAccess}> v_pages: array<${poolUnit}>;
@group(0) @binding(6) var<storage, read> scales: array<f32>;
@group(0) @binding(7) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(9) var<storage, read> block_table: array<i32>;
@group(0) @binding(10) var<storage, read> items: array<vec4<u32>>;
${outBinding}
${
    DKV
      ? `// The same buffers as k_pages / v_pages, as f16 elements for subgroup matrix loads.
@group(0) @binding(12) var<storage, read> k_pages_h: array<f16>;
@group(0) @binding(13) var<storage, read> v_pages_h: array<f16>;
`
      : ""
  }
// ${
    PL
      ? `K tile from element 0, V tile from element ${VH} (Q while staging)`
      : "K tile, then V tile (and Q while staging)"
  }: ${BC} rows x D, f16, row stride ${KS}.
var<workgroup> h_s: array<f16, ${g.hElems}>;
${
    QR
      ? `// Q tile, resident for the whole item.
var<workgroup> q_s: array<f16, ${(int8 ? 2 : 1) * BR * KS + KS}>;`
      : ""
  }
// S tile (f32, row stride ${SS}); also O blocks on their way to rescaling or output.
var<workgroup> s_s: array<f32, ${g.sElems}>;
// P tile (f16, row stride ${PS}).
var<workgroup> p_s: array<f16, ${g.pElems}>;
var<workgroup> row_a: array<f32, ${BR}>;
var<workgroup> row_l: array<f32, ${BR}>;
// A vec4, not a u32: with a 4-byte workgroup variable in the module, NVIDIA's Vulkan driver
// (580, through Dawn) loads subgroup matrices from the f16 arrays one row too far
// (docs/PERF_LOG_MMA.md, run 9). Every workgroup variable here is a multiple of 16 bytes.
var<workgroup> flag: vec4<u32>;
${emulation}
${emu || spec.smemReduce ? `var<workgroup> red: array<f32, ${T}>;` : ""}
// Two f16 elements of a u32 word (low half first).
fn h2(w: u32) -> vec2<f16> {
  return ${emu || spec.unpackH2 ? "vec2<f16>(unpack2x16float(w))" : "bitcast<vec2<f16>>(w)"};
}
${byteCache ? mmaBytePairWgsl(fp8 ? "fp8_e4m3" : "int8") : ""}
${
    bf16
      ? `${wgslQUnpack("bf16")}// Two bf16 elements of a u32 word (low half first), rounded to f16.
fn bh2(w: u32) -> vec2<f16> {
  return vec2<f16>(unpack_q2(w));
}`
      : ""
  }
${spec.fusedAppend ? WGSL_FIND_REQUEST : ""}
${spec.split ? "" : wgslQPack(bf16 ? "bf16" : "f16")}
${
    wgslCodecs(
      ...(spec.split ? [] : [wgslQPackCodec(bf16 ? "bf16" : "f16")]),
    )
  }

@compute @workgroup_size(${T})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let item = wid.y * params.grid_x + wid.x;
  if (item >= params.n_items) {
${fusedAppend}    return;
  }
  let it0 = items[2u * item];
  let it1 = items[2u * item + 1u];
  let b = it0.x;
  let kvh = it0.y;
  let f0 = it0.z;
  let slot = it0.w;
  let t0 = it1.x;
  let t1 = it1.y;
  let kend = it1.z;
  let n_old = it1.w;
  let q_start = u32(cu_seqlens[b]);
  let nrows = (u32(cu_seqlens[b + 1u]) - q_start) * params.group;
  let old = u32(cache_seqlens[b]);
  let bt_base = b * params.max_pages;
  let page_mask = (1u << params.page_shift) - 1u;
  let warp = lid / ${SG}u;
  let lane = lid % ${SG}u;
  ${spec.rowBlocks === 1 && WC === 1 ? "const rb = 0u;" : `let rb = warp / ${WC}u;`}
  ${WC === 1 ? "const wc = 0u;" : `let wc = warp % ${WC}u;`}
  let srow = lid / ${TPR}u;
  let rpart = lid % ${TPR}u;
  let lim = old + (f0 + srow) / params.group;
${
    int8
      ? `  var kmax = 0.0;
  for (var d = 0u; d < ${D}u; d = d + 1u) {
    kmax = max(kmax, scales[kvh * ${D}u + d]);
  }
  let kinv = 1.0 / kmax;
  let scale_old = params.scale_a * kmax;`
      : fp8
      ? `  let scale_old = params.scale_a * scales[0u];`
      : `  let scale_old = params.scale_a;`
  }
  if (lid == 0u) {
    flag.x = 0u;
  }

${_lines(DB, (kd) => `  ${decl(TR ? "r" : "l", `qf${kd}`, "qk")}`)}
${int8 ? _lines(DB, (kd) => `  ${decl(TR ? "r" : "l", `ql${kd}`, "qk")}`) : ""}
${_lines(DBW, (jj) => `  ${decl("a", `o${jj}`, "pv")}`)}
  ${decl("a", "sacc", "qk")}
  ${decl(TR ? "l" : "r", "kf", "qk")}
  ${decl("r", "vf", "pv")}
  ${decl("l", "pf", "pv")}
${_lines(DBW, (jj) => `  ${zero(`o${jj}`, "pv")}`)}
${
    _lines(UN, (i) =>
      PL ? `  var rk${i}: ${rawType};\n  var rv${i}: ${rawType};` : `  var rw${i}: ${rawType};`)
  }
${
    DKV
      ? `  // directKV: pool row stride (elements between consecutive slots) and block offsets.
  let kv_stride = params.num_kv_heads * ${D}u;
  var kvo: array<u32, ${KB}>;`
      : ""
  }
  var m_run = ${M_INIT};
  var l_run = 0.0;

  // Q fragments (the int8 K scales folded in while the item is in its old tiles).
${stageQ("t0 < n_old")}

${
    FM
      ? PL ? fixedLoop(pipelinedLoopOf(true, "var "), pipelinedLoopOf(false, "")) : fixedLoop(
        `${firstTile("var ")}${classicLoopOf(true)}`,
        `${firstTile("")}${classicLoopOf(false)}`,
      )
      : PL
      ? pipelinedLoop
      : classicLoop
  }  // Row sums of all threads of a row; m for the split partials.
  ${rowReduce("l_run", "add")}
  if (rpart == 0u) {
    row_l[srow] = l_run;
    row_a[srow] = m_run;
  }
  let pend_vs = ${hasVs ? "t1 <= n_old" : "false"};
${output}
${
    spec.split
      ? `  workgroupBarrier();
  if (lid < ${BR}u && f0 + lid < nrows) {
    part[params.ml_base + slot * ${BR}u + lid] = vec4<f32>(row_a[lid], row_l[lid], 0.0, 0.0);
  }`
      : ""
  }
}
`;
}

/** Workgroup rows of a spec (16 per row block), for the host. */
export function mmaRows(spec: MmaSpec): number {
  return MMA_TILE * spec.rowBlocks;
}

/**
 * WGSL `fn byte_pair(t: u32) -> vec2<f16>`: the exact values of two fp8 e4m3 or int8 codes held
 * in the low bytes of `t`'s 16-bit halves, with integer ops on the word and one f16 vector op
 * (needs the module's `h2`). A 256-entry table did the same with one workgroup load per code,
 * but random codes made those loads conflict on memory banks (docs/PERF_LOG_MMA.md, run 22).
 * - e4m3: sign to bit 15 and the 7 exponent/mantissa bits to bits 7..13 make the f16 of the
 *   value x 2^-8, exactly (subnormals too); x 256 restores it. The NaN code (field 0x7f) gets
 *   exponent 31 first: (field + 1) & 0x80 is set for that field only.
 * - int8: 0x6400 | (code ^ 0x80) is the f16 1024 + code + 128; minus 1152 leaves the code.
 */
export function mmaBytePairWgsl(dtype: "fp8_e4m3" | "int8"): string {
  const body = dtype === "fp8_e4m3"
    ? `let f = t & 0x007f007fu;
  let nan = ((f + 0x00010001u) & 0x00800080u) * 0xf8u;
  return h2(((t & 0x00800080u) << 8u) | (f << 7u) | nan) * vec2<f16>(256.0);`
    : `return h2(0x64006400u | (t ^ 0x00800080u)) - vec2<f16>(1152.0);`;
  return `// Two ${dtype} codes (low bytes of each 16-bit half) -> f16, exact.
fn byte_pair(t: u32) -> vec2<f16> {
  ${body}
}
`;
}
