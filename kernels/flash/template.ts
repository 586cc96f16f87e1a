/**
 * WGSL templates of the flash kernel: a tiled paged prefill (one workgroup per work item =
 * rows of one KV head's query group x a range of K/V tiles) and the combine pass of split-KV.
 *
 * Generated code, not hand-written loops: the QK^T and PV inner products are unrolled with
 * named registers and constant indices, because Deno's WebGPU clamps every dynamic index into
 * workgroup/private arrays and counts every loop. Workgroup arrays are nested so each access is
 * `tile[constant][thread-dependent].c[chunk][constant]`: the clamp of the thread-dependent
 * index is the same expression for every access and the compiler computes it once.
 * @module
 */
import { wgslCodecs } from "../wgsl/codecs.ts";
import { scaleSlots, wgslQPack, wgslQPackCodec, wgslQUnpack } from "../_shared.ts";
import { FP8X4_WGSL } from "../wgsl/fp8x4.ts";
import { BF16_MAG_WGSL } from "../wgsl/bf16_mag.ts";
import { INT8X4_WGSL } from "../wgsl/int8x4.ts";
import { f16Flushes, flashGeometry, flashKey, type FlashSpec } from "./spec.ts";

/** Bindings of the attention pass, in binding order (all in group 0). */
export const FLASH_BINDINGS = [
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

/** Bindings of the combine pass. */
export const COMBINE_BINDINGS = [
  "uniform", // params
  "read", // cu_seqlens
  "read", // combine items
  "read", // partials
  "read_write", // o
] as const;

/** Uniform fields of the attention pass, in order (u32 unless named in FLASH_F32_PARAMS). */
export const FLASH_PARAMS = [
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

/** Uniform fields of the combine pass (all u32). */
export const COMBINE_PARAMS = ["num_heads", "group", "n_items", "grid_x", "ml_base"] as const;

/** Large finite stand-ins for -inf (WGSL has no infinity literal; fast math may drop infs). */
const M_INIT = "-1.0e30";
const MASKED = "-3.0e38";

/** The largest f16 value the range guard lets a value or partial sum reach (65504 - 32). */
const F16_GUARD_MAX = 65472;

/**
 * f16Math's range guard: Q, K and V enter the f16 tiles times powers of two (fq per work item,
 * fk and fv per call) so that no f16 value or partial sum can overflow for any finite input
 * (SPEC §1: no Inf or NaN comes out of finite input). The scores are divided by fq * fk and O's
 * partial sums by fv when they are added into f32, both exact. Bounds: |k~| <= 65504 (an f16
 * value, or the largest code times the largest scale times fk), so with |q~| < 2^qExp each
 * f16 lane of `qkFlush` products stays under 2^15; P <= 1 and |v~| <= vLimit keep each lane
 * of `pvFlush` PV products under 65472.
 *
 * @example
 * ```ts
 * import { f16RangeGuard } from "./template.ts";
 * f16RangeGuard(8, 32); // { qExp: -4, vLimit: 2046 }
 * ```
 */
export function f16RangeGuard(qkFlush: number, pvFlush: number): { qExp: number; vLimit: number } {
  return { qExp: -1 - Math.ceil(Math.log2(qkFlush)), vLimit: F16_GUARD_MAX / pvFlush };
}

/** A WGSL f32 literal of `x`. */
function _f32(x: number): string {
  const t = String(Math.fround(x));
  return /[.e]/.test(t) ? t : `${t}.0`;
}

/** WGSL: the four f32 words of the scales buffer from word `base` on, as a vec4. */
function _scales4(base: string): string {
  return `vec4<f32>(scales[${base}], scales[${base} + 1u], scales[${base} + 2u], scales[${base} + 3u])`;
}

function _lines(n: number, f: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => f(i)).join("\n");
}

/**
 * The attention pass's WGSL for `spec`.
 *
 * @example
 * ```ts
 * import { flashWgsl } from "./template.ts";
 * const code = flashWgsl({
 *   qDtype: "f16", cacheDtype: "f16", headDim: 64, rows: 32, keys: 32, threads: 64,
 *   sRows: 2, oRows: 4, causal: true, softcap: false, pageAligned: true, split: false,
 *   unrollD: true,
 * });
 * ```
 */
export function flashWgsl(spec: FlashSpec): string {
  const g = flashGeometry(spec);
  const D = spec.headDim;
  const T = spec.threads;
  const BR = spec.rows;
  const BC = spec.keys;
  const TRS = spec.sRows;
  const TRO = spec.oRows;
  const { d4: D4, sRowGroups: RGS, keyGroups: KG, sKeys: TCS, oRowGroups: RGO } = g;
  const { dGroups: DU, dChunks: DC, chunkElems: E, chunksPerRow: CPR } = g;
  const CPT = g.chunksPerThread;
  const byteCache = spec.cacheDtype === "fp8_e4m3" || spec.cacheDtype === "int8";
  // Codes per staged byte chunk (FlashSpec.byteChunk): 16 (a vec4<u32>), 8 (a vec2<u32>) or 4
  // (one u32, read out of the pool's vec4s).
  const words = byteCache && E === 4;
  const chunk8 = byteCache && E === 8;
  // The dequant variant's scratch: f32 pool values, a chunk of 8 in two 16-byte words.
  const f32Pool = spec.cacheDtype === "f32";
  // lateNew (implied by 4-code chunks): a byte chunk stages the pool's word only; new tokens'
  // words load at the store.
  const lateNew = byteCache && (spec.lateNew === true || words);
  // Chunks staged in two words (r, s) with a flag (n) for new tokens' 16-bit words.
  const twoWords = (byteCache && E === 16 && !lateNew) || f32Pool;
  // 8-code chunks staged with a flag (n): r holds 8 codes (r.xy) or a new token's 8 values.
  const flagOnly = chunk8 && !lateNew;
  // The staging register of a byte chunk, and the pools' element type.
  const rawType = words ? "u32" : chunk8 && lateNew ? "vec2<u32>" : "vec4<u32>";
  const poolType = chunk8 ? "vec2<u32>" : "vec4<u32>";
  const fp8 = spec.cacheDtype === "fp8_e4m3";
  // fp8 codes decoded by bit placement (fp8x4) instead of the workgroup table (FlashSpec.fp8Alu).
  const fp8Alu = fp8 && spec.fp8Alu === true;
  const int8 = spec.cacheDtype === "int8";
  // int8 codes decoded by bit placement (int8x4) instead of decode_int8 (FlashSpec.int8Alu).
  const int8Alu = int8 && spec.int8Alu === true;
  const codecs = [
    ...(spec.split ? [] : [wgslQPackCodec(spec.qDtype)]),
    ...(fp8 && !fp8Alu ? ["decode_e4m3" as const] : []),
    ...(int8 && !int8Alu ? ["decode_int8" as const] : []),
  ];
  const qTiles = (BR * D) / 8;
  const half = spec.f16Math === true;
  const { qk: qkFlush, pv: pvFlush } = f16Flushes(spec, DU);
  // Items marked precise in the work list multiply the f16 tiles' values in f32
  // (FlashSpec.preciseItems).
  const precise = half && spec.preciseItems === true;
  const qPerThread = Math.ceil(qTiles / T);
  // Q in a global scratch buffer (FlashSpec.qGlobal): row r of this item's tile is
  // qg[item * BR + r]; thread rows qb{i} = item * BR + i * RGS + rg.
  const qGlobal = spec.qGlobal === true;
  // Lane sums in f16 (f16QkLaneSum): each f16 partial then holds 4 x qkFlush products.
  const laneSum = spec.f16QkLaneSum === true;
  const guard = f16RangeGuard(laneSum ? 4 * qkFlush : qkFlush, pvFlush);
  // f16Math: the power-of-two factor of each staged K or V value (see f16RangeGuard).
  const bf16q = spec.qDtype === "bf16";
  // |q| < 2^(qe - qOff) for the biased exponent qe of the Q tile's largest |q|.
  const qOff = bf16q ? 126 : 14;
  // bf16 q: K and V factors per K/V tile, from the tile's largest bf16 |k| and |v| (the
  // staged words' bf16 bits, one workgroup atomic per tile before a barrier the loop has).
  // int8Fold: the tile holds int8 codes (new tokens divided by their scale) times fk or fv; K's
  // per-channel scales multiply Q, V's multiply O at the end (FlashSpec.int8Fold). The factors
  // come from the new tokens' bounds, so bf16 q needs no per-tile guard.
  const fold = int8 && half && spec.int8Fold === true;
  // byteNewBound: a byte tile's factors from the same bound instead of per-tile maxima.
  const byteBound = byteCache && half && spec.byteNewBound === true;
  // poolBound: a bf16 cache's factors from the largest |k| and |v| the call reads (pools and new
  // tokens; the bound pass scans both) instead of each tile's maxima.
  const poolBound = half && spec.cacheDtype === "bf16" && spec.poolBound === true;
  const bounded = fold || byteBound || poolBound;
  const tileGuard = half && bf16q && !bounded;
  const factor = (which: "k" | "v") =>
    !half ? "" : which === "v" ? " * fv" : byteCache || bf16q ? " * fk" : "";

  // -- staging of one K or V tile: raw chunks (16 bytes, or 8 or 4 with byteChunk) into
  // registers, decoded later ------------------------------------------------------------------
  const loadChunks = (which: "k" | "v", kt: string, pageVar = "tile_page") =>
    _lines(CPT, (i) => {
      const pool = `${which}_pages`;
      const fresh = `${which}_new`;
      const c = `lid + ${T * i}u`;
      const slot = spec.pageAligned
        ? `(${pageVar} << params.page_shift) | (p & page_mask)`
        : `(u32(block_table[bt_base + (p >> params.page_shift)]) << params.page_shift) | (p & page_mask)`;
      const newLoad = byteCache && !chunk8
        ? `let nb = (tok * params.num_kv_heads + kvh) * ${D / 8}u + cc * 2u;
      ${which}r${i} = ${fresh}[nb];
      ${which}s${i} = ${fresh}[nb + 1u];
      ${which}n${i} = true;`
        : `${which}r${i} = ${fresh}[(tok * params.num_kv_heads + kvh) * ${D / 8}u + cc];${
          f32Pool || flagOnly ? `\n      ${which}n${i} = true;` : ""
        }`;
      const poolLoad = f32Pool
        ? `let pw = ((slot * params.num_kv_heads + kvh) * ${CPR}u + cc) * 2u;
      ${which}r${i} = ${pool}[pw];
      ${which}s${i} = ${pool}[pw + 1u];`
        : words
        ? `${which}r${i} = ${pool}[(slot * params.num_kv_heads + kvh) * ${
          D / 16
        }u + cc / 4u][cc % 4u];`
        : flagOnly
        ? `${which}r${i} = vec4<u32>(${pool}[(slot * params.num_kv_heads + kvh) * ${CPR}u + cc], 0u, 0u);`
        : `${which}r${i} = ${pool}[(slot * params.num_kv_heads + kvh) * ${CPR}u + cc];`;
      return `  {
    let c = ${c};
    let kk = c / ${CPR}u;
    let cc = c % ${CPR}u;
    let p = ${kt} * ${BC}u + kk;
    ${which}r${i} = ${rawType}(0u);${
        twoWords ? `\n    ${which}s${i} = vec4<u32>(0u);\n    ${which}n${i} = false;` : ""
      }${flagOnly ? `\n    ${which}n${i} = false;` : ""}
    if (p < old) {
      let slot = ${slot};
      ${poolLoad}
    }${
        lateNew ? "" : ` else if (p < kend) {
      let tok = q_start + p - old;
      ${newLoad}
    }`
      }
  }`;
    });

  // lateNew: the 16-bit words of chunk (kk, cc) of tile kt when it holds a new token, loaded
  // now and passed to `use` as vec4<u32>s: two (16 values), one (8), or one whose z and w are 0
  // (4 values, half of a vec4 of k_new).
  const lateWords = (which: "k" | "v", kt: string, use: (vals: string[]) => string) => {
    const nb = `((q_start + p - old) * params.num_kv_heads + kvh) * ${D / 8}u`;
    const load = words
      ? `      let nw = ${which}_new[${nb} + cc / 2u];
      let h = vec4<u32>(select(nw.xy, nw.zw, (cc & 1u) == 1u), 0u, 0u);
${use(["h"])}`
      : chunk8
      ? `      let nw = ${which}_new[${nb} + cc];
${use(["nw"])}`
      : `      let nb = ${nb} + cc * 2u;
      let w = ${which}_new[nb];
      let w2 = ${which}_new[nb + 1u];
${use(["w", "w2"])}`;
    return `    let p = ${kt} * ${BC}u + kk;
    if (p >= old && p < kend) {
${load}
    }`;
  };
  // Writes the staged chunks of K (row kk) or V (row pos(kk)) of tile kt into the f32 tile.
  const storeChunks = (which: "k" | "v", kt: string) =>
    _lines(CPT, (i) => {
      const row = which === "k" ? `kk` : `(kk % ${KG}u) * ${TCS}u + kk / ${KG}u`;
      const arr = spec.pipelined ? `${which}s` : "kvs";
      // f16Math: every value is converted to f16 once, here (exact for f16 and the decoded fp8 /
      // int8 codes; a scaled byte value rounds like any f16).
      const put = (d4: string, v: string) =>
        `${arr}[r / ${KG}u][r % ${KG}u].c[(${d4}) / ${DU}u][(${d4}) % ${DU}u] = ${
          half ? `vec4<f16>(${v})` : v
        };`;
      const sIdx = which === "k" ? 0 : 1;
      let body: string;
      if (spec.kv16) {
        body = `    let w = ${which}r${i};
    ${put("cc * 2u", "w.xy")}
    ${put("cc * 2u + 1u", "w.zw")}`;
      } else if (f32Pool) {
        // f16Math is off (flashSpecProblem): no tile factors.
        body = `    let w = ${which}r${i};
    if (${which}n${i}) {
      ${put("cc * 2u", "vec4<f32>(unpack_q2(w.x), unpack_q2(w.y))")}
      ${put("cc * 2u + 1u", "vec4<f32>(unpack_q2(w.z), unpack_q2(w.w))")}
    } else {
      ${put("cc * 2u", "bitcast<vec4<f32>>(w)")}
      ${put("cc * 2u + 1u", `bitcast<vec4<f32>>(${which}s${i})`)}
    }`;
      } else if (!byteCache) {
        body = `    let w = ${which}r${i};
    ${put("cc * 2u", `vec4<f32>(unpack_q2(w.x), unpack_q2(w.y))${factor(which)}`)}
    ${put("cc * 2u + 1u", `vec4<f32>(unpack_q2(w.z), unpack_q2(w.w))${factor(which)}`)}`;
      } else {
        const scaled = (w: string, e: number) => {
          if (fp8Alu) {
            // fp8x4 gives code / 256: the 256 folds into the scale (exact).
            return `fp8x4(${w}) * (${half ? `${which}sc` : `scales[${sIdx}u]`} * 256.0)`;
          }
          if (fp8) {
            // f16Math: the scale with the tile factor folded in (ksc = k_scale * fk).
            return `vec4<f32>(e4m3_lut[${w} & 0xffu], e4m3_lut[(${w} >> 8u) & 0xffu], e4m3_lut[(${w} >> 16u) & 0xffu], e4m3_lut[${w} >> 24u]) * ${
              half ? `${which}sc` : `scales[${sIdx}u]`
            }`;
          }
          if (fold) {
            const codes = int8Alu
              ? `int8x4(${w})`
              : `vec4<f32>(decode_int8(${w} & 0xffu), decode_int8((${w} >> 8u) & 0xffu), decode_int8((${w} >> 16u) & 0xffu), decode_int8(${w} >> 24u))`;
            return `${codes} * f${which}`;
          }
          if (half && int8Alu) return `int8x4(${w}) * ${which}ch${e}`;
          if (half) {
            // This thread's per-channel scales times fk or fv, held in registers (int8Scales).
            return `vec4<f32>(decode_int8(${w} & 0xffu), decode_int8((${w} >> 8u) & 0xffu), decode_int8((${w} >> 16u) & 0xffu), decode_int8(${w} >> 24u)) * ${which}ch${e}`;
          }
          const base = `${sIdx}u * params.scale_n + kvh * ${D}u + cc * ${E}u + ${4 * e}u`;
          if (int8Alu) {
            return `int8x4(${w}) * ${_scales4(base)}`;
          }
          return `vec4<f32>(decode_int8(${w} & 0xffu) * scales[${base}], decode_int8((${w} >> 8u) & 0xffu) * scales[${base} + 1u], decode_int8((${w} >> 16u) & 0xffu) * scales[${base} + 2u], decode_int8(${w} >> 24u) * scales[${base} + 3u])`;
        };
        // A chunk of E elements fills E / 4 vec4 columns of the tile, from cc * E / 4 on.
        const column = (e: number) => {
          const first = E === 4 ? "cc" : `cc * ${E / 4}u`;
          return e === 0 ? first : `${first} + ${e}u`;
        };
        // int8Fold: a new token's values divided by their channels' scales (times the inverses
        // the append encodes with), then times the tile factor.
        const foldNew = (e: number) => {
          const b = `${which === "k" ? 2 : 3}u * params.scale_n + kvh * ${D}u + (${
            column(e)
          }) * 4u`;
          return ` * (${_scales4(b)} * f${which})`;
        };
        // New tokens' 16-bit values: column e is half of vec4<u32> vals[e / 2] (x, y or z, w).
        const putNew = (vals: string[]) =>
          _lines(E / 4, (e) => {
            const [a, b] = e % 2 === 0 ? ["x", "y"] : ["z", "w"];
            const w = vals[e >> 1];
            return `      ${
              put(
                column(e),
                `vec4<f32>(unpack_q2(${w}.${a}), unpack_q2(${w}.${b}))${
                  fold ? foldNew(e) : factor(which)
                }`,
              )
            }`;
          });
        // The decoded codes: column e is u32 e of the staged chunk w.
        const putCodes = _lines(
          E / 4,
          (e) => `      ${put(column(e), scaled(E === 4 ? "w" : `w.${"xyzw"[e]}`, e))}`,
        );
        body = lateNew
          ? `${lateWords(which, kt, putNew)} else {
      let w = ${which}r${i};
${putCodes}
    }`
          : `    let w = ${which}r${i};
    if (${which}n${i}) {
${putNew(chunk8 ? ["w"] : ["w", `${which}s${i}`])}
    } else {
${putCodes}
    }`;
      }
      return `  {
    let c = lid + ${T * i}u;
    let kk = c / ${CPR}u;
    let cc = c % ${CPR}u;
    let r = ${row};
${body}
  }`;
    });

  const rawDecls = (which: "k" | "v") =>
    _lines(CPT, (i) =>
      `  var ${which}r${i}: ${rawType};` +
      (twoWords ? ` var ${which}s${i}: vec4<u32>; var ${which}n${i}: bool;` : "") +
      (flagOnly ? ` var ${which}n${i}: bool;` : ""));

  // tileGuard: kv_amax holds K's maximum in word 0, V's in word 1.
  const amaxSlot = (which: "k" | "v") => (which === "k" ? 0 : 1);
  // tileGuard: this thread's largest bf16 |x| of the staged K or V words (byte caches: the new
  // tokens' words only; their codes are bounded through the scales) into the tile's atomic.
  // lateNew: the new tokens' words are loaded here for the maximum, and again at the store.
  const publishAmax = (which: "k" | "v", kt: string) => {
    if (lateNew) {
      return `    {
      var m = vec4<u32>(0u);
${
        _lines(CPT, (i) =>
          `      {
    let c = lid + ${T * i}u;
    let kk = c / ${CPR}u;
    let cc = c % ${CPR}u;
${
            lateWords(which, kt, (vals) =>
              `      m = max(m, ${
                vals.map((v) => `bf16_mag(${v})`).reduce((a, b) => `max(${a}, ${b})`)
              });`)
          }
      }`)
      }
      atomicMax(&kv_amax[${amaxSlot(which)}], max(max(m.x, m.y), max(m.z, m.w)) >> 16u);
    }`;
    }
    const maxima = Array.from(
      { length: CPT },
      (_, i) =>
        flagOnly
          ? `select(vec4<u32>(0u), bf16_mag(${which}r${i}), ${which}n${i})`
          : byteCache
          ? `select(vec4<u32>(0u), max(bf16_mag(${which}r${i}), bf16_mag(${which}s${i})), ${which}n${i})`
          : `bf16_mag(${which}r${i})`,
    );
    return `    {
      let m = ${maxima.reduce((a, b) => `max(${a}, ${b})`)};
      atomicMax(&kv_amax[${amaxSlot(which)}], max(max(m.x, m.y), max(m.z, m.w)) >> 16u);
    }`;
  };
  // int8: the thread's scale registers move from the last tile's factor to this one's, by an
  // exact power of two unless a tile's new tokens (bf16 values near bf16's limit) push a scale
  // below f32's normal range; no later tile of the item decodes a code with it then, because new
  // tokens follow the prefix and items run their tiles in order.
  const rescale = (which: "k" | "v", f: string) =>
    int8
      ? `    {
      let step = ${f} * pow2_inv(f${which});
${_lines(E / 4, (e) => `      ${which}ch${e} = ${which}ch${e} * step;`)}
    }
`
      : "";
  // tileGuard: the factors of the tile whose maxima the last barrier published, and what follows
  // from them: K's score scale, V's inverse for O's flush, the fp8 scale times the factor.
  const readFactor = (which: "k" | "v") => {
    const i = amaxSlot(which);
    const derived = which === "k" ? "sa = sq * pow2_inv(fk);" : "ivf = pow2_inv(fv);";
    return `    let f${which}_tile = ${which}_factor(atomicLoad(&kv_amax[${i}]));
${rescale(which, `f${which}_tile`)}    f${which} = f${which}_tile;
    ${derived}${fp8 ? `\n    ${which}sc = scales[${i}u] * f${which};` : ""}`;
  };
  // tileGuard: thread 0 clears a maximum once every thread has read it (ordered by barriers
  // before the next tile's atomics).
  const resetAmax = (which: "k" | "v") =>
    `    if (lid == 0u) {
      atomicStore(&kv_amax[${amaxSlot(which)}], 0u);
    }`;

  const tilePage = spec.pageAligned
    ? (kt: string) =>
      `  tile_page = select(0u, u32(block_table[bt_base + ((${kt} * ${BC}u) >> params.page_shift)]), ${kt} * ${BC}u < old);`
    : () => "";

  // K/V tile element access: f32 as stored, or 16-bit pairs unpacked at each use (kv16).
  const kArr = spec.pipelined ? "ks" : "kvs";
  const vArr = spec.pipelined ? "vs" : "kvs";
  const kvRead = (e: string) => spec.kv16 ? `unpack_q4(${e})` : e;

  // -- QK^T over one D chunk dc: TRS x TCS scores per thread --------------------------------
  // f16Math: vec4<f16> partial scores h (Q and K as stored), added into the f32 scores every
  // qkFlush D steps.
  const qkFlushLines = _lines(
    TRS,
    (i) =>
      _lines(
        TCS,
        (j) =>
          laneSum
            ? `    { let t = h${i}_${j}; s${i}_${j} = s${i}_${j} + f32((t.x + t.y) + (t.z + t.w)); h${i}_${j} = vec4<f16>(0.0); }`
            : `    { let t = vec4<f32>(h${i}_${j}); s${i}_${j} = s${i}_${j} + ((t.x + t.y) + (t.z + t.w)); h${i}_${j} = vec4<f16>(0.0); }`,
      ),
  );
  // f32Products (preciseItems' copy of the loop): f16Math's tile values widened to f32 and
  // multiplied and summed in f32, nothing to flush.
  const qkAccumulate = (i: number, j: number, f32Products: boolean) =>
    half && !f32Products
      ? `    h${i}_${j} = fma(q${i}, k${j}, h${i}_${j});`
      : `    s${i}_${j} = fma(q${i}.x, k${j}.x, s${i}_${j}); s${i}_${j} = fma(q${i}.y, k${j}.y, s${i}_${j}); s${i}_${j} = fma(q${i}.z, k${j}.z, s${i}_${j}); s${i}_${j} = fma(q${i}.w, k${j}.w, s${i}_${j});`;
  const widen = (f32Products: boolean, e: string) => f32Products ? `vec4<f32>(${e})` : e;
  const qkStep = (dc: string, f32Products: boolean) =>
    _lines(DU, (u) =>
      "    {\n" +
      _lines(TRS, (i) =>
        qGlobal
          ? `    let q${i} = ${widen(f32Products, `qg[qb${i}].c[${dc}][${u}]`)};`
          : half || spec.qF32
          ? `    let q${i} = ${widen(f32Products, `qs[${i}][rg].c[${dc}][${u}]`)};`
          : `    let q${i} = unpack_q4(qs[${i}][rg].c[${dc}][${u}]);`) +
      "\n" +
      _lines(
        TCS,
        (j) => `    let k${j} = ${widen(f32Products, kvRead(`${kArr}[${j}][kg].c[${dc}][${u}]`))};`,
      ) +
      "\n" +
      _lines(TRS, (i) =>
        _lines(TCS, (j) => qkAccumulate(i, j, f32Products))) +
      "\n    }" +
      (half && !f32Products && (u + 1) % qkFlush === 0 ? "\n" + qkFlushLines : ""));
  const qkOf = (f32Products: boolean) =>
    spec.unrollD
      ? _lines(DC, (dc) => `    {\n${qkStep(`${dc}`, f32Products)}\n    }`)
      : `    for (var dc = 0u; dc < ${DC}u; dc = dc + 1u) {\n${qkStep("dc", f32Products)}\n    }`;
  const qk = qkOf(false);

  // f16Math: sa = scale_a / (fq * fk) undoes the Q and K factors (exact powers of two).
  const sa = half ? "sa" : "params.scale_a";
  const scoreScale = spec.softcap
    // c tanh(x) = c - 2c / (e^(2x) + 1): one exp2, one reciprocal and one fma (the tanh builtin
    // cost the D64 softcap row a 2x slowdown at 128 threads, PERF_LOG v2); 2.885... = 2 log2(e),
    // and the clamp at |2x log2(e)| <= 43.3 (|x| <= 15) keeps exp2 finite.
    ? (v: string) =>
      `${v} = fma(-2.0 * params.scale_b, 1.0 / (exp2(clamp(${v} * (${sa} * 2.8853900817779268), -43.28085122666890, 43.28085122666890)) + 1.0), params.scale_b);`
    : (v: string) => `${v} = ${v} * ${sa};`;

  // -- PV over one tile: TRO rows x DC vec4 columns per thread ----------------------------
  // Pipelined: P of key group kg is relative to that group's max; f{i}_{kg} rescales it.
  // f16Math: into vec4<f16> partial O (ob), added into the f32 O every pvFlush keys.
  const pvAcc = half ? "ob" : "o";
  const pvType = half ? "f16" : "f32";
  const pvFlushLines = _lines(
    TRO,
    (i) =>
      _lines(
        DC,
        (mm) =>
          `    o${i}_${mm} = fma(vec4<f32>(ob${i}_${mm}), vec4<f32>(ivf), o${i}_${mm}); ob${i}_${mm} = vec4<f16>(0.0);`,
      ),
  );
  const pvOf = (f32Products: boolean) =>
    _lines(BC / 4, (p4) =>
      "    {\n" +
      _lines(TRO, (i) =>
        spec.pipelined
          ? `    let pp${i} = ps[${i}][rgo].c[${p4}] * f${i}_${Math.floor((p4 * 4) / TCS)};`
          // f32Products: P times 1 / fv once per 4 keys, so O needs no flush.
          : f32Products
          ? `    let pp${i} = vec4<f32>(ps[${i}][rgo].c[${p4}]) * ivf;`
          : `    let pp${i} = ps[${i}][rgo].c[${p4}];`) +
      "\n" +
      _lines(4, (e) => {
        const pos = p4 * 4 + e;
        const comp = "xyzw"[e];
        const acc = f32Products ? "o" : pvAcc;
        const type = f32Products ? "f32" : pvType;
        return "    {\n" + _lines(DC, (mm) =>
          `    let v${mm} = ${
            widen(f32Products, kvRead(`${vArr}[${Math.floor(pos / KG)}][${pos % KG}].c[${mm}][dg]`))
          };`) +
          "\n" +
          _lines(TRO, (i) =>
            _lines(
              DC,
              (mm) =>
                `    ${acc}${i}_${mm} = fma(vec4<${type}>(pp${i}.${comp}), v${mm}, ${acc}${i}_${mm});`,
            )) +
          "\n    }";
      }) + "\n    }" +
      (half && !f32Products && ((p4 + 1) * 4) % pvFlush === 0 ? "\n" + pvFlushLines : ""));
  const pv = pvOf(false);

  const rowS = (i: number) => `(rg + ${RGS * i}u)`;
  const rowO = (i: number) => `(rgo + ${RGO * i}u)`;

  // int8Fold: V's per-channel scales multiply O's columns (vec4 column mm * DU + dg), before
  // the row sums divide them or the split partials take them.
  const foldO = fold
    ? `    // int8Fold: O's columns times V's per-channel scales.
${
      _lines(DC, (mm) => {
        const b = `params.scale_n + kvh * ${D}u + (${mm * DU}u + dg) * 4u`;
        return `    let vsc${mm} = ${_scales4(b)};`;
      })
    }
${_lines(TRO, (i) => _lines(DC, (mm) => `    o${i}_${mm} = o${i}_${mm} * vsc${mm};`))}
`
    : "";
  const output = foldO + (spec.split
    ? _lines(TRO, (i) =>
      `    {
      let r = ${rowO(i)};
      var l = 0.0;
${_lines(KG, (k) => `      l = l + red[${k}][r];`)}
      if (f0 + r < nrows) {
        let base = (slot * ${BR}u + r) * ${D4}u;
${_lines(DC, (mm) => `        part[base + ${mm * DU}u + dg] = o${i}_${mm};`)}
        if (dg == 0u) {
          part[params.ml_base + slot * ${BR}u + r] = vec4<f32>(alpha_s[r], l, 0.0, 0.0);
        }
      }
    }`)
    : _lines(TRO, (i) =>
      `    {
      let r = ${rowO(i)};
      var l = 0.0;
${_lines(KG, (k) => `      l = l + red[${k}][r];`)}
      let flat = f0 + r;
      if (flat < nrows) {
        let inv = 1.0 / l;
        let tok = q_start + flat / params.group;
        let head = kvh * params.group + flat % params.group;
        let base = (tok * params.num_heads + head) * ${D4}u;
${
        _lines(DC, (mm) =>
          `        { let v = o${i}_${mm} * inv; o[base + ${
            mm * DU
          }u + dg] = vec2<u32>(pack_q2(v.xy), pack_q2(v.zw)); }`)
      }
      }
    }`));

  const v2BodyOf = (qk: string, pv: string) =>
    `  // Row state of the S layout: running max (log2 domain) and this thread's partial row sums.
${_lines(TRS, (i) => `  var m${i} = ${M_INIT};\n  var l${i} = 0.0;`)}
${
      _lines(TRS, (i) =>
        spec.causal
          ? `  let lim${i} = old + (f0 + ${rowS(i)}) / params.group;`
          : `  let lim${i} = kend;`)
    }
${_lines(TRO, (i) => _lines(DC, (mm) => `  var o${i}_${mm} = vec4<f32>(0.0);`))}
${rawDecls("k")}
${rawDecls("v")}
  var tile_page = 0u;
${_lines(TRS, (i) => _lines(TCS, (j) => `  var s${i}_${j} = 0.0;`))}
${half ? _lines(TRS, (i) => _lines(TCS, (j) => `  var h${i}_${j} = vec4<f16>(0.0);`)) : ""}
${half ? _lines(TRO, (i) => _lines(DC, (mm) => `  var ob${i}_${mm} = vec4<f16>(0.0);`)) : ""}

${tilePage("kt0")}
${loadChunks("k", "kt0")}
${tileGuard ? publishAmax("k", "kt0") + "\n" : ""}  workgroupBarrier();
${tileGuard ? readFactor("k") + "\n" : ""}${storeChunks("k", "kt0")}
  let first_lim = ${spec.causal ? "old + f0 / params.group" : "kend - 1u"};

  for (var kt = kt0; kt < kt1; kt = kt + 1u) {
${tilePage("kt")}
${loadChunks("v", "kt")}
    workgroupBarrier(); // K tile (and Q) ready
${tileGuard ? resetAmax("k") + "\n" : ""}
${_lines(TRS, (i) => _lines(TCS, (j) => `    s${i}_${j} = 0.0;`))}
${qk}

    // Scale (log2 domain), softcap, mask; row maxima of this thread's keys.
${_lines(TRS, (i) => _lines(TCS, (j) => `    ${scoreScale(`s${i}_${j}`)}`))}
    let kbase = kt * ${BC}u;
    if (kbase + ${BC - 1}u > first_lim) {
${
      _lines(TRS, (i) =>
        _lines(TCS, (j) =>
          `      { let kp = kbase + kg + ${
            KG * j
          }u; s${i}_${j} = select(${MASKED}, s${i}_${j}, kp <= lim${i} && kp < kend); }`))
    }
    }
${
      _lines(TRS, (i) =>
        `    red[kg][${rowS(i)}] = max(${
          Array.from({ length: TCS }, (_, j) =>
            `s${i}_${j}`).reduce((a, b) => `max(${a}, ${b})`)
        }, ${M_INIT});`)
    }
${
      tileGuard
        ? publishAmax("v", "kt") + "\n"
        : ""
    }    workgroupBarrier(); // row maxima ready; K tile no longer read
${tileGuard ? readFactor("v") + "\n" : ""}
${storeChunks("v", "kt")}
${
      _lines(TRS, (i) => {
        const r = rowS(i);
        const mx = Array.from({ length: KG }, (_, k) => `red[${k}][${r}]`).reduce((a, b) =>
          `max(${a}, ${b})`
        );
        const ps4 = _lines(TCS / 4, (j4) =>
          `    ps[${r} / ${RGO}u][${r} % ${RGO}u].c[kg * ${TCS / 4}u + ${j4}u] = ${
            half ? "vec4<f16>(" : ""
          }vec4<f32>(${
            [0, 1, 2, 3].map((e) => `s${i}_${4 * j4 + e}`).join(", ")
          })${half ? ")" : ""};`);
        return `    {
      let mnew = max(m${i}, ${mx});
      let alpha = exp2(m${i} - mnew);
      m${i} = mnew;
${
          _lines(TCS, (j) => `      s${i}_${j} = exp2(s${i}_${j} - mnew);`)
        }
      l${i} = l${i} * alpha + ${Array.from({ length: TCS }, (_, j) => `s${i}_${j}`).join(" + ")};
      if (kg == 0u) {
        alpha_s[${r}] = alpha;
      }
    }
${ps4}`;
      })
    }
    let more = kt + 1u < kt1;
    if (more) {
${tilePage("(kt + 1u)")}
${loadChunks("k", "(kt + 1u)")}
    }
    workgroupBarrier(); // P, alpha and V tile ready
${tileGuard ? resetAmax("v") + "\n" : ""}
${_lines(TRO, (i) => `    let a${i} = alpha_s[${rowO(i)}];`)}
${_lines(TRO, (i) => _lines(DC, (mm) => `    o${i}_${mm} = o${i}_${mm} * a${i};`))}
${pv}
${
      tileGuard
        ? `    if (more) {\n${publishAmax("k", "(kt + 1u)")}\n    }\n`
        : ""
    }    workgroupBarrier(); // V tile and P no longer read
    if (more) {
${tileGuard ? readFactor("k") + "\n" : ""}${storeChunks("k", "(kt + 1u)")}
    }
  }

  // Row sums of all key groups; m in alpha_s for the split partials.
${
      _lines(TRS, (i) =>
        `  red[kg][${rowS(i)}] = l${i};\n  if (kg == 0u) {\n    alpha_s[${rowS(i)}] = m${i};\n  }`)
    }
  workgroupBarrier();
${output}
`;

  // -- pipelined main loop (spec.pipelined): 2 barriers per tile -----------------------------
  // Iteration kt, phase A: store V(kt) from registers, issue V(kt + 1); S = QK^T from the K
  // tile; per key group max m_g, P = exp2(s - m_g) and its sum l_g into workgroup memory.
  // Barrier. Phase B: store K(kt + 1), issue K(kt + 2); the O-layout threads merge the groups'
  // (m_g, l_g) into their running (m, l) and accumulate O += (P * exp2(m_g - m)) V. Barrier.
  const pa = spec.pageAligned;
  const pageOf = (kt: string) =>
    `select(0u, u32(block_table[bt_base + ((${kt} * ${BC}u) >> params.page_shift)]), ${kt} * ${BC}u < old)`;
  const pipeOutput = _lines(TRO, (i) => {
    const r = rowO(i);
    if (spec.split) {
      return `    {
      let r = ${r};
      if (f0 + r < nrows) {
        let base = (slot * ${BR}u + r) * ${D4}u;
${_lines(DC, (mm) => `        part[base + ${mm * DU}u + dg] = o${i}_${mm};`)}
        if (dg == 0u) {
          part[params.ml_base + slot * ${BR}u + r] = vec4<f32>(mo${i}, lo${i}, 0.0, 0.0);
        }
      }
    }`;
    }
    return `    {
      let r = ${r};
      let flat = f0 + r;
      if (flat < nrows) {
        let inv = 1.0 / lo${i};
        let tok = q_start + flat / params.group;
        let head = kvh * params.group + flat % params.group;
        let base = (tok * params.num_heads + head) * ${D4}u;
${
      _lines(DC, (mm) =>
        `        { let v = o${i}_${mm} * inv; o[base + ${
          mm * DU
        }u + dg] = vec2<u32>(pack_q2(v.xy), pack_q2(v.zw)); }`)
    }
      }
    }`;
  });
  const pipelinedBody =
    `  // Row state of the O layout: running max (log2 domain) and row sum of each owned row.
${_lines(TRO, (i) => `  var mo${i} = ${M_INIT};\n  var lo${i} = 0.0;`)}
${
      _lines(TRS, (i) =>
        spec.causal
          ? `  let lim${i} = old + (f0 + ${rowS(i)}) / params.group;`
          : `  let lim${i} = kend;`)
    }
${_lines(TRO, (i) => _lines(DC, (mm) => `  var o${i}_${mm} = vec4<f32>(0.0);`))}
${rawDecls("k")}
${rawDecls("v")}
${_lines(TRS, (i) => _lines(TCS, (j) => `  var s${i}_${j} = 0.0;`))}
  let first_lim = ${spec.causal ? "old + f0 / params.group" : "kend - 1u"};

  // Prologue: K(kt0) into workgroup memory; V(kt0) and K(kt0 + 1) in flight.
${pa ? `  let pg0 = ${pageOf("kt0")};` : ""}
${loadChunks("k", "kt0", "pg0")}
${loadChunks("v", "kt0", "pg0")}
  workgroupBarrier(); // decode table ready
${storeChunks("k", "kt0")}
${pa ? `  var pg1 = ${pageOf("(kt0 + 1u)")};` : ""}
  if (kt0 + 1u < kt1) {
${loadChunks("k", "(kt0 + 1u)", "pg1")}
  }
${pa ? `  var pg2 = ${pageOf("(kt0 + 2u)")};` : ""}
  workgroupBarrier(); // Q and K(kt0) ready

  for (var kt = kt0; kt < kt1; kt = kt + 1u) {
${storeChunks("v", "kt")}
    if (kt + 1u < kt1) {
${loadChunks("v", "(kt + 1u)", "pg1")}
    }

${_lines(TRS, (i) => _lines(TCS, (j) => `    s${i}_${j} = 0.0;`))}
${qk}

    // Scale (log2 domain), softcap, mask; this key group's max, P and sum.
${_lines(TRS, (i) => _lines(TCS, (j) => `    ${scoreScale(`s${i}_${j}`)}`))}
    let kbase = kt * ${BC}u;
    if (kbase + ${BC - 1}u > first_lim) {
${
      _lines(TRS, (i) =>
        _lines(TCS, (j) =>
          `      { let kp = kbase + kg + ${
            KG * j
          }u; s${i}_${j} = select(${MASKED}, s${i}_${j}, kp <= lim${i} && kp < kend); }`))
    }
    }
${
      _lines(TRS, (i) => {
        const r = rowS(i);
        const mx = Array.from({ length: TCS }, (_, j) => `s${i}_${j}`).reduce((a, b) =>
          `max(${a}, ${b})`
        );
        const ps4 = _lines(TCS / 4, (j4) =>
          `    ps[${r} / ${RGO}u][${r} % ${RGO}u].c[kg * ${TCS / 4}u + ${j4}u] = vec4<f32>(${
            [0, 1, 2, 3].map((e) =>
              `s${i}_${4 * j4 + e}`
            ).join(", ")
          });`);
        return `    {
      let mg = max(${mx}, ${M_INIT});
${_lines(TCS, (j) => `      s${i}_${j} = exp2(s${i}_${j} - mg);`)}
      red_m[kg][${r}] = mg;
      red_l[kg][${r}] = ${Array.from({ length: TCS }, (_, j) => `s${i}_${j}`).join(" + ")};
    }
${ps4}`;
      })
    }
    workgroupBarrier(); // P, group max/sum and V(kt) ready; K(kt) no longer read

    if (kt + 1u < kt1) {
${storeChunks("k", "(kt + 1u)")}
    }
    if (kt + 2u < kt1) {
${loadChunks("k", "(kt + 2u)", "pg2")}
    }
${pa ? `    pg1 = pg2;\n    pg2 = ${pageOf("(kt + 3u)")};` : ""}
${
      _lines(TRO, (i) => {
        const r = rowO(i);
        const gm = (k: number) => `gm${i}_${k}`;
        return `${_lines(KG, (k) => `    let ${gm(k)} = red_m[${k}][${r}];`)}
    let mn${i} = max(mo${i}, ${
          Array.from({ length: KG }, (_, k) => gm(k)).reduce((a, b) => `max(${a}, ${b})`)
        });
    let a${i} = exp2(mo${i} - mn${i});
    mo${i} = mn${i};
${_lines(KG, (k) => `    let f${i}_${k} = exp2(${gm(k)} - mn${i});`)}
    lo${i} = lo${i} * a${i} + ${
          Array.from({ length: KG }, (_, k) => `f${i}_${k} * red_l[${k}][${r}]`).join(" + ")
        };
${_lines(DC, (mm) => `    o${i}_${mm} = o${i}_${mm} * a${i};`)}`;
      })
    }
${pv}
    workgroupBarrier(); // V(kt) and P no longer read; K(kt + 1) ready
  }

${pipeOutput}
`;

  // -- Q tile: rows f0 .. f0 + BR of the flattened (query, head-in-group) rows ------------
  const qLoad = (v: string, idx: string) =>
    `      let r = ${idx} / ${D / 8}u;
      let flat = f0 + r;
      if (flat < nrows) {
        let tok = q_start + flat / params.group;
        let head = kvh * params.group + flat % params.group;
        ${v} = q[(tok * params.num_heads + head) * ${D / 8}u + ${idx} % ${D / 8}u];
      }`;
  const qRowRef = (qrow: string) =>
    qGlobal ? `qg[item * ${BR}u + ${qrow}]` : `qs[${qrow} / ${RGS}u][${qrow} % ${RGS}u]`;
  const qStore = (v: string, idx: string, conv: (half: string, col: string) => string) =>
    `      let qrow = ${idx} / ${D / 8}u;
      let a = 2u * (${idx} % ${D / 8}u);
      ${qRowRef("qrow")}.c[a / ${DU}u][a % ${DU}u] = ${conv(`${v}.xy`, "a")};
      ${qRowRef("qrow")}.c[(a + 1u) / ${DU}u][(a + 1u) % ${DU}u] = ${conv(`${v}.zw`, "(a + 1u)")};`;
  const qStaging = `  // Q tile: rows f0 .. f0 + ${BR} of the flattened (query, head-in-group) rows.
  for (var e = 0u; e < ${qPerThread}u; e = e + 1u) {
    let idx = lid + e * ${T}u;
    if (idx < ${qTiles}u) {
      var v = vec4<u32>(0u);
${qLoad("v", "idx")}
${qStore("v", "idx", (w) => spec.qF32 ? `unpack_q4(${w})` : w)}
    }
  }`;
  // f16Math: the Q tile's largest |q| (f16 bits, through a workgroup atomic) sets fq so that
  // |q * fq| < 2^qExp; sa folds 1 / (fq * fk) into the score scale.
  const qStagingHalf =
    `  // Q tile: rows f0 .. f0 + ${BR} of the flattened (query, head-in-group) rows, times fq.
  var qmag = vec4<u32>(0u);
${
      _lines(qPerThread, (e) =>
        `  var qr${e} = vec4<u32>(0u);
  {
    let idx = lid + ${e * T}u;
    if (idx < ${qTiles}u) {
${qLoad(`qr${e}`, "idx")}
    }
    let t = qr${e} & vec4<u32>(0x7fff7fffu);
    qmag = max(qmag, max(t, t << vec4<u32>(16u)));
  }`)
    }
  atomicMax(&q_amax, max(max(qmag.x, qmag.y), max(qmag.z, qmag.w)) >> 16u);
  workgroupBarrier();
${
      bf16q
        ? `  // Biased bf16 exponent of the largest |q|: |q| < 2^(qe - 126). Capped where fq and its
  // inverse leave f32's normal range (|q| >= 2^${
          126 + guard.qExp
        }, where f32 scores overflow anyway).
  let qe = min(atomicLoad(&q_amax) >> 7u, ${252 + guard.qExp}u);`
        : `  // Biased f16 exponent of the largest |q|: |q| < 2^(qe - 14).
  let qe = atomicLoad(&q_amax) >> 10u;`
    }
  let fq = bitcast<f32>((${127 + guard.qExp + qOff}u - qe) << 23u);
  ${tileGuard ? "let sq" : "let sa"} = params.scale_a * bitcast<f32>((qe + ${
      127 - guard.qExp - qOff
    }u) << 23u)${tileGuard ? "" : fold ? " * pow2_inv(fk) * pow2_inv(kfold)" : " * pow2_inv(fk)"};
${
      _lines(qPerThread, (e) =>
        `  {
    let idx = lid + ${e * T}u;
    if (idx < ${qTiles}u) {
${
          qStore(`qr${e}`, "idx", (w, col) =>
            fold
              // int8Fold: K's per-channel scales (times kfold) multiply Q's columns.
              ? `vec4<f16>(unpack_q4(${w}) * fq * (${
                _scales4(`kvh * ${D}u + ${col} * 4u`)
              } * kfold))`
              : `vec4<f16>(unpack_q4(${w}) * fq)`)
        }
    }
  }`)
    }${
      qGlobal
        ? `
  // The Q tile's stores visible to the whole workgroup before QK^T reads them.
  storageBarrier();
${_lines(TRS, (i) => `  let qb${i} = item * ${BR}u + ${i * RGS}u + rg;`)}`
        : ""
    }`;
  const codeMax = fp8 ? 448 : 127;
  // Words of the scales buffer past the 4n scales (`scaleSlots`): kMax, vMax, kNew, vNew, fold.
  const slots = scaleSlots(0);
  const slot = (i: number) => `scales[4u * params.scale_n${i === 0 ? "" : ` + ${i}u`}]`;
  // Bounds on |K| and |V| a factor must respect: the largest code times the largest scale (byte
  // caches); for bf16 q (tileGuard), also the tile's largest bf16 |k| or |v| (`bits`).
  const kTerms = byteCache ? [`${_f32(F16_GUARD_MAX / codeMax)} / ${slot(slots.kMax)}`] : [];
  const vTerms = byteCache ? [`${_f32(guard.vLimit / codeMax)} / ${slot(slots.vMax)}`] : [];
  const tileTerm = (limit: number) =>
    `${_f32(limit)} / max(bitcast<f32>(bits << 16u), ${_f32(2 ** -60)})`;
  // A K or V factor: the largest power of two under every bound. f16 q adds `cap` (new K / V
  // values are f16, |x| <= 65504), a constant power of two when nothing else bounds it.
  const guardFactor = (cap: number, terms: string[]) =>
    terms.length === 0
      ? _f32(2 ** Math.floor(Math.log2(cap)))
      : `pow2_floor(${[_f32(cap), ...terms].reduce((a, b) => `min(${a}, ${b})`)})`;
  const factorFn = (which: "k" | "v", terms: string[], limit: number) =>
    `fn ${which}_factor(bits: u32) -> f32 {
  return pow2_floor(${[...terms, tileTerm(limit)].reduce((a, b) => `min(${a}, ${b})`)});
}`;
  const tileFactorFns =
    `// bf16 q: a tile's K or V factor from its largest bf16 |x| (bits) and the code bounds.
${factorFn("k", kTerms, F16_GUARD_MAX)}
${factorFn("v", vTerms, guard.vLimit)}
${BF16_MAG_WGSL}`;
  // int8: every chunk a thread stages has the same 16 channels (threads % chunksPerRow == 0, see
  // flashSpecProblem), so their k and v scales times fk, fv live in 2 x chunkElems / 4 vec4
  // registers (8 for 16-code chunks, 4 or 2 with byteChunk 8 or 4).
  const int8Scales = (kind: "let" | "var") => {
    const load = (which: "k" | "v", e: number) => {
      const b = `${which === "v" ? "params.scale_n + " : ""}sc_base + ${4 * e}u`;
      return `  ${kind} ${which}ch${e} = ${_scales4(b)} * f${which};`;
    };
    return `
  // This thread's k and v scales (channels (lid % ${CPR}) * ${E} .. + ${
      E - 1
    } of KV head kvh) times fk, fv.
  let sc_base = kvh * ${D}u + (lid % ${CPR}u) * ${E}u;
${_lines(E / 4, (e) => load("k", e))}
${_lines(E / 4, (e) => load("v", e))}`;
  };
  // The factors of a kernel bounded once per call (int8Fold, byteNewBound, poolBound): fk and fv
  // the largest powers of two under the bounds `k` and `v` give, then what follows from them.
  const boundFactors = (what: string, k: string, v: string, derived: string[]) =>
    [
      `  // f16 range guard (f16RangeGuard), ${what}`,
      `  let fk = pow2_floor(${k});`,
      `  let fv = pow2_floor(${v});`,
      "  let ivf = pow2_inv(fv);",
      ...derived.map((line) => `  ${line}`),
    ].join("\n");
  // int8Fold: the largest power of two under the codes' bound (127) and the new tokens' (the
  // kNew / vNew words the bound pass wrote); kfold keeps |q * scale * kfold| <= |q|.
  const foldFactors = boundFactors(
    "int8Fold: codes and new tokens' x / scale times fk, fv.",
    `min(${_f32(F16_GUARD_MAX / codeMax)}, ${_f32(F16_GUARD_MAX)} / max(${slot(slots.kNew)}, 1.0))`,
    `min(${_f32(guard.vLimit / codeMax)}, ${_f32(guard.vLimit)} / max(${slot(slots.vNew)}, 1.0))`,
    [`let kfold = pow2_floor(1.0 / ${slot(slots.kMax)});`],
  );
  // int8Fold and its fallback are both dispatched; the bound pass's fold word picks one.
  const foldGate = bounded
    ? `\n  // int8Fold, byteNewBound, poolBound: the bound pass ruled it out; the fallback kernel does
  // this item.
  if (${slot(slots.fold)} == 0.0) {
    return;
  }`
    : spec.boundFallback
    ? `\n  // boundFallback: the bounded kernel did this item.
  if (${slot(slots.fold)} != 0.0) {
    return;
  }`
    : "";
  // byteNewBound: codes are at most codeMax times the largest scale (kMax, vMax: fp8's one
  // scale), new tokens the bound (their |x / scale|) times it.
  const byteBoundFactors = boundFactors(
    "byteNewBound: fk, fv from the codes' and new tokens' bounds.",
    `${_f32(F16_GUARD_MAX)} / (max(${slot(slots.kNew)}, ${_f32(codeMax)}) * ${slot(slots.kMax)})`,
    `${_f32(guard.vLimit)} / (max(${slot(slots.vNew)}, ${_f32(codeMax)}) * ${slot(slots.vMax)})`,
    fp8 ? ["let ksc = scales[0u] * fk;", "let vsc = scales[1u] * fv;"] : [],
  ) + (int8 ? int8Scales("let") : "");
  // poolBound: every value the call reads is at most the bound. A bound under 2^-40 (all zero)
  // takes the factors of 2^-40, normal f32s whose inverses are too.
  const poolBoundFactors = boundFactors(
    "poolBound: fk, fv from the largest |k| and |v| read.",
    `${_f32(F16_GUARD_MAX)} / max(${slot(slots.kNew)}, ${_f32(2 ** -40)})`,
    `${_f32(guard.vLimit)} / max(${slot(slots.vNew)}, ${_f32(2 ** -40)})`,
    [],
  );
  const guardFactors = fold
    ? foldFactors
    : byteBound
    ? byteBoundFactors
    : poolBound
    ? poolBoundFactors
    : tileGuard
    ? `  // f16 range guard (f16RangeGuard), bf16 q: fk, fv, the score scale sa (and the fp8 scales
  // times the factors) are set per K/V tile from each tile's maxima.
  var fk = 1.0;
  var fv = 1.0;
  var ivf = 1.0;
  var sa = 0.0;${fp8 ? "\n  var ksc = scales[0u];\n  var vsc = scales[1u];" : ""}${
      int8 ? int8Scales("var") : ""
    }`
    : `  // f16 range guard (f16RangeGuard): K and V values times fk, fv (powers of two).
  let fk = ${guardFactor(1, kTerms)};
  let fv = ${guardFactor(guard.vLimit / 65504, vTerms)};
  let ivf = pow2_inv(fv);${
      fp8 ? "\n  let ksc = scales[0u] * fk;\n  let vsc = scales[1u] * fv;" : ""
    }${int8 ? int8Scales("let") : ""}`;

  return `${half ? "enable f16;\n" : ""}// ${flashKey(spec)}
// Tiled paged prefill: workgroup = ${BR} (query, head) rows of one KV head's group x a range of
// ${BC}-key tiles; S = QK^T as ${TRS}x${TCS} per thread, O as ${TRO} rows x ${DC} vec4 per thread.
// Generated by kernels/flash/template.ts; do not edit.

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
@group(0) @binding(2) var<storage, read> k_new: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> v_new: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> k_pages: array<${poolType}>;
@group(0) @binding(5) var<storage, read> v_pages: array<${poolType}>;
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

${
    qGlobal
      ? "// Q rows: in the global scratch buffer qg (QRowG, below)."
      : `// Q rows (f32, or 16-bit pairs: 4 elements per vec2); one padding entry per row avoids bank conflicts.
${
        half
          ? `struct QRow { c: array<array<vec4<f16>, ${DU}>, ${DC}>, pad: vec4<f16>, }`
          : spec.qF32
          ? `struct QRow { c: array<array<vec4<f32>, ${DU}>, ${DC}>, pad: vec4<f32>, }`
          : `struct QRow { c: array<array<vec2<u32>, ${DU}>, ${DC}>, pad: vec2<u32>, }`
      }`
  }
// A K row (QK^T) or V row (PV) in f32; padded likewise.
${
    half
      ? `struct KRow { c: array<array<vec4<f16>, ${DU}>, ${DC}>, pad: vec4<f16>, }`
      : spec.kv16
      ? `struct KRow { c: array<array<vec2<u32>, ${DU}>, ${DC}>, pad: vec2<u32>, }`
      : `struct KRow { c: array<array<vec4<f32>, ${DU}>, ${DC}>, pad: vec4<f32>, }`
  }
// P row, in the key order of the S layout (thread kg's keys are contiguous).
struct PRow { c: array<vec4<${half ? "f16" : "f32"}>, ${BC / 4}>, pad: vec4<${
    half ? "f16" : "f32"
  }>, }

${
    qGlobal
      ? `// This work item's Q tile, scaled f16 rows (FlashSpec.qGlobal); read through L1.
struct QRowG { c: array<array<vec4<f16>, ${DU}>, ${DC}>, }
@group(0) @binding(12) var<storage, read_write> qg: array<QRowG>;`
      : `var<workgroup> qs: array<array<QRow, ${RGS}>, ${TRS}>;`
  }
${
    spec.pipelined
      ? `var<workgroup> ks: array<array<KRow, ${KG}>, ${TCS}>;
var<workgroup> vs: array<array<KRow, ${KG}>, ${TCS}>;
var<workgroup> ps: array<array<PRow, ${RGO}>, ${TRO}>;
// Per key group and row: max (log2 domain) and sum of exp2(s - max) over this tile's keys.
var<workgroup> red_m: array<array<f32, ${BR}>, ${KG}>;
var<workgroup> red_l: array<array<f32, ${BR}>, ${KG}>;`
      : `var<workgroup> kvs: array<array<KRow, ${KG}>, ${TCS}>;
var<workgroup> ps: array<array<PRow, ${RGO}>, ${TRO}>;
var<workgroup> red: array<array<f32, ${BR}>, ${KG}>;
var<workgroup> alpha_s: array<f32, ${BR}>;`
  }
${fp8 && !fp8Alu ? `var<workgroup> e4m3_lut: array<f32, 256>;\n` : ""}${fp8Alu ? FP8X4_WGSL : ""}${
    int8Alu ? INT8X4_WGSL : ""
  }${
    half
      ? `var<workgroup> q_amax: atomic<u32>;${
        tileGuard
          ? "\n// bf16 q: the largest bf16 |k| and |v| bits of the tile being staged.\nvar<workgroup> kv_amax: array<atomic<u32>, 2>;"
          : ""
      }
// 2^floor(log2 x) of a positive normal x; 1 / x of a power of two x.
fn pow2_floor(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) & 0x7f800000u);
}
fn pow2_inv(x: f32) -> f32 {
  return bitcast<f32>((254u << 23u) - (bitcast<u32>(x) & 0x7f800000u));
}
${tileGuard ? tileFactorFns : ""}`
      : ""
  }
${wgslQUnpack(spec.qDtype)}
${spec.split ? "" : wgslQPack(spec.qDtype)}
${wgslCodecs(...codecs)}
// Four 16-bit elements (two words) as f32.
fn unpack_q4(w: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack_q2(w.x), unpack_q2(w.y));
}

@compute @workgroup_size(${T})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let item = wid.y * params.grid_x + wid.x;
  if (item >= params.n_items) {
    return;
  }${foldGate}
  let it0 = items[2u * item];
  let it1 = items[2u * item + 1u];
  let b = it0.x;
  let kvh = it0.y;
  let f0 = it0.z;
  let slot = it0.w;
  let kt0 = it1.x;
  let kt1 = it1.y;
  let kend = it1.z;${precise ? "\n  let precise_item = it1.w != 0u;" : ""}
  let q_start = u32(cu_seqlens[b]);
  let nrows = (u32(cu_seqlens[b + 1u]) - q_start) * params.group;
  let old = u32(cache_seqlens[b]);
  let bt_base = b * params.max_pages;
  let page_mask = (1u << params.page_shift) - 1u;
  let rg = lid / ${KG}u;
  let kg = lid % ${KG}u;
  let rgo = lid / ${DU}u;
  let dg = lid % ${DU}u;
${half ? guardFactors : ""}
${
    fp8 && !fp8Alu
      ? `  for (var e = lid; e < 256u; e = e + ${T}u) {\n    e4m3_lut[e] = decode_e4m3(e);\n  }`
      : ""
  }

${half ? qStagingHalf : qStaging}
${
    spec.pipelined
      ? pipelinedBody
      // preciseItems: the whole loop twice, with f32 products and with f16 ones, one per item
      // (v12: a branch around QK^T and PV alone made the byte caches' kernels 3-5% slower).
      : precise
      ? `  if (precise_item) {\n${v2BodyOf(qkOf(true), pvOf(true))}\n  } else {\n${
        v2BodyOf(qk, pv)
      }\n  }`
      : v2BodyOf(qk, pv)
  }
}
`;
}

/**
 * The combine pass of split-KV: merges the partial (m, l, O) of each row's splits into o.
 *
 * @example
 * ```ts
 * import { combineWgsl } from "./template.ts";
 * const code = combineWgsl({ qDtype: "bf16", headDim: 128, rows: 64, threads: 128 });
 * ```
 */
export function combineWgsl(
  spec: { qDtype: FlashSpec["qDtype"]; headDim: number; rows: number; threads: number },
): string {
  const D4 = spec.headDim / 4;
  const BR = spec.rows;
  const T = spec.threads;
  return `// ${combineKey(spec)}: merges split-KV partials into o.
struct Params {
  num_heads: u32,
  group: u32,
  n_items: u32,
  grid_x: u32,
  ml_base: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cu_seqlens: array<i32>;
@group(0) @binding(2) var<storage, read> items: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec2<u32>>;

${wgslQPack(spec.qDtype)}
${wgslCodecs(wgslQPackCodec(spec.qDtype))}

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
  let kvh = it0.y;
  let f0 = it0.z;
  let slot0 = it0.w;
  let ns = it1.x;
  let q_start = u32(cu_seqlens[b]);
  let nrows = (u32(cu_seqlens[b + 1u]) - q_start) * params.group;
  for (var e = lid; e < ${BR * D4}u; e = e + ${T}u) {
    let r = e / ${D4}u;
    let d4 = e % ${D4}u;
    let flat = f0 + r;
    if (flat < nrows) {
      var mx = ${M_INIT};
      for (var s = 0u; s < ns; s = s + 1u) {
        mx = max(mx, part[params.ml_base + (slot0 + s) * ${BR}u + r].x);
      }
      var acc = vec4<f32>(0.0);
      var l = 0.0;
      for (var s = 0u; s < ns; s = s + 1u) {
        let ml = part[params.ml_base + (slot0 + s) * ${BR}u + r];
        let w = exp2(ml.x - mx);
        l = l + w * ml.y;
        acc = acc + w * part[((slot0 + s) * ${BR}u + r) * ${D4}u + d4];
      }
      let v = acc / l;
      let tok = q_start + flat / params.group;
      let head = kvh * params.group + flat % params.group;
      o[(tok * params.num_heads + head) * ${D4}u + d4] = vec2<u32>(pack_q2(v.xy), pack_q2(v.zw));
    }
  }
}
`;
}

/** Key of the combine pass. */
export function combineKey(
  spec: { qDtype: FlashSpec["qDtype"]; headDim: number; rows: number; threads: number },
): string {
  return `paged_prefill_flash_combine_q-${spec.qDtype}_d${spec.headDim}_r${spec.rows}_wg${spec.threads}`;
}
