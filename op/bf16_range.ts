/**
 * Whether a bf16 problem's values fit f16's range, so a kernel may compute on f16 operands
 * (the subgroup-matrix kernel takes f16 only): every finite value of q, k_new, v_new and, for a
 * bf16 cache, of the cache slots attention reads has |x| <= 65504. Smaller values convert with
 * at most f16's rounding (relative 2^-11, absolute 2^-25 below 2^-14), far inside the bf16
 * output tolerance (SPEC §4); larger ones would become infinities.
 * @module
 */
import { bf16BitsToNumber } from "../reference/codecs.ts";

/** bf16 bits (sign cleared) of 65280, the largest bf16 value not above f16's 65504. */
const BF16_F16_MAX_BITS = 0x477f;

/** Index of the first bf16 value in `bits[from, to)` outside f16's range, or -1. */
function firstOutside(bits: Uint16Array, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const a = bits[i]! & 0x7fff;
    // Infinities and NaN (exponent all ones) convert to themselves.
    if (a > BF16_F16_MAX_BITS && a < 0x7f80) return i;
  }
  return -1;
}

function describe(name: string, bits: Uint16Array, i: number, width: number, rows: string) {
  const value = bf16BitsToNumber(bits[i]!);
  const row = Math.floor(i / width);
  return `${name}[${row}][${i % width}] (${rows} ${row}) is ${value}`;
}

/**
 * Where the first bf16 value outside f16's range is ("q[3][17] (token 3) is 1e+06"), or null
 * when all fit. `q`, `kNew`, `vNew` are [T, heads * D] bf16 bits; `kPages`, `vPages` (bf16
 * cache only, else null) are [P_tokens, H_kv * D], of which only the slots of each request's
 * first `cacheLens[b]` positions are read (the pages of `blockTable`, `maxPagesPerReq` a row).
 *
 * @example
 * ```ts
 * import { bf16OutsideF16 } from "./bf16_range.ts";
 * const q = new Uint16Array([0x3f80, 0x4780]); // 1, 65536
 * const none = new Uint16Array(0);
 * const where = bf16OutsideF16(
 *   { q, kNew: none, vNew: none, kPages: null, vPages: null },
 *   { qWidth: 2, kvWidth: 2, pageSize: 1, maxPagesPerReq: 0, cacheLens: [], blockTable: new Int32Array(0) },
 * );
 * if (where !== "q[0][1] (token 0) is 65536") throw new Error(String(where));
 * ```
 */
export function bf16OutsideF16(
  data: {
    q: Uint16Array;
    kNew: Uint16Array;
    vNew: Uint16Array;
    kPages: Uint16Array | null;
    vPages: Uint16Array | null;
  },
  shape: {
    /** H * D */
    qWidth: number;
    /** H_kv * D */
    kvWidth: number;
    pageSize: number;
    maxPagesPerReq: number;
    cacheLens: readonly number[];
    blockTable: Int32Array;
  },
): string | null {
  const fresh = [["q", data.q, shape.qWidth], ["k_new", data.kNew, shape.kvWidth], [
    "v_new",
    data.vNew,
    shape.kvWidth,
  ]] as const;
  for (const [name, bits, width] of fresh) {
    const i = firstOutside(bits, 0, bits.length);
    if (i >= 0) return describe(name, bits, i, width, "token");
  }
  const w = shape.kvWidth;
  for (const [name, bits] of [["k_pages", data.kPages], ["v_pages", data.vPages]] as const) {
    if (bits === null) continue;
    for (let b = 0; b < shape.cacheLens.length; b++) {
      const old = shape.cacheLens[b]!;
      for (let pos = 0; pos < old; pos += shape.pageSize) {
        const page = shape.blockTable[b * shape.maxPagesPerReq + pos / shape.pageSize]!;
        const slots = Math.min(shape.pageSize, old - pos);
        const from = page * shape.pageSize * w;
        const i = firstOutside(bits, from, from + slots * w);
        if (i >= 0) return describe(name, bits, i, w, "slot");
      }
    }
  }
  return null;
}
