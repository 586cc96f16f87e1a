/**
 * Seeded inputs of a workload case (SPEC §4): random-normal q, k_new, v_new; a page pool whose
 * every byte starts as a random canary and whose referenced old slots then receive random-normal
 * K/V encoded in the cache dtype; a block table laid out in the case's page order, with junk in
 * the unreferenced entries; fp8/int8 scales derived from the data.
 *
 * Built for big pools (hundreds of MB): typed arrays only, one pass, and only referenced slots
 * are encoded. Each input comes from its own PRNG stream of the seed, so a seed reproduces the
 * case exactly.
 * @module
 */
import {
  CACHE_TENSOR_DTYPE,
  type CacheDtype,
  type PagedPrefillInputs,
  type PagedPrefillParams,
  type QDtype,
  type Tensor,
} from "../op/types.ts";
import { e4m3Encode, int8Encode, numberToBf16Bits } from "../reference/codecs.ts";
import type { WorkloadCase } from "./loader.ts";
import { createRng, type Rng } from "./random.ts";

/**
 * Options of {@linkcode generateCase}.
 *
 * @example
 * ```ts
 * import { generateCase, type GenerateOptions } from "./generate.ts";
 * import { adHocCase } from "./loader.ts";
 * const options: GenerateOptions = { sparePages: 8 };
 * const { layout } = generateCase(adHocCase(), 1, options);
 * if (layout.numPages !== 2 * 17 + 8) throw new Error();
 * ```
 */
export interface GenerateOptions {
  /** Physical pages added to the pool beyond `batch * max_pages_per_req`. @default 3 */
  sparePages?: number;
}

/**
 * Where the generator put things: facts tests and reports may want.
 *
 * @example
 * ```ts
 * import { generateCase } from "./generate.ts";
 * import { adHocCase } from "./loader.ts";
 * const { layout } = generateCase(adHocCase({ pageOrder: "shared-prefix", cacheLen: 200 }), 5);
 * if (layout.sharedPrefixPages !== Math.floor(200 / 16)) throw new Error();
 * ```
 */
export interface GeneratedLayout {
  /** Physical pages in the pool (P_tokens / page_size). */
  numPages: number;
  /** Leading logical pages every request maps to the same physical pages (shared-prefix). */
  sharedPrefixPages: number;
  /** Distinct physical pages referenced by some request. */
  referencedPages: number;
  /** Old slots that received encoded K/V (a shared slot counts once). */
  oldSlotsWritten: number;
}

/**
 * A generated case: the op's inputs and params, the seed they came from and the layout.
 *
 * @example
 * ```ts
 * import { type GeneratedCase, generateCase } from "./generate.ts";
 * import { adHocCase } from "./loader.ts";
 * const g: GeneratedCase = generateCase(adHocCase({ cacheDtype: "fp8" }), 9);
 * if (g.seed !== 9 || g.inputs.kScale?.shape[0] !== 1 || g.params.pageSize !== 16) throw new Error();
 * ```
 */
export interface GeneratedCase {
  inputs: PagedPrefillInputs;
  params: PagedPrefillParams;
  seed: number;
  layout: GeneratedLayout;
}

/** PRNG stream ids, one per input, so inputs do not depend on each other's sizes. */
const _STREAM = {
  layout: 1,
  q: 2,
  kNew: 3,
  vNew: 4,
  kOld: 5,
  vOld: 6,
  kCanary: 7,
  vCanary: 8,
  kScale: 9,
  vScale: 10,
} as const;

/** Largest finite code magnitude of each quantized cache dtype. */
const _QMAX = { fp8_e4m3: 448, int8: 127 } as const;

/** Values generated per chunk of old tokens (bounds the scratch memory). */
const _CHUNK_VALUES = 1 << 18;

/**
 * The inputs and params of case `c` for `seed`: deterministic per seed, different across seeds,
 * and always a valid call (`validateProblem()` accepts it).
 *
 * - q, k_new, v_new: standard normal, rounded to the q dtype.
 * - Pool: `batch * max_pages_per_req + sparePages` pages, filled with random canary bytes (for
 *   fp8 and 16-bit pools some are NaN codes: unreferenced slots must never be read), then every
 *   old slot (position < cache_len) gets a standard-normal K/V row encoded in the cache dtype.
 *   Append slots keep canary bytes until the op overwrites them.
 * - Page order: `contiguous` (request b's logical page j = physical page b * max_pages + j);
 *   `permuted` (the same through a random permutation of the pool); `shared-prefix` (logical
 *   pages j < S = min_b floor(cache_len_b / page_size), the full pages before every request's
 *   append region, map to the same physical pages for every request; the rest are distinct and
 *   permuted; when S = 0 this is `permuted`).
 * - Unreferenced block-table entries: junk (-1, stale in-range ids, out-of-range ids).
 * - fp8 scales (per tensor): maxabs / 448 times a random factor in [0.5, 2]; int8 scales (per
 *   channel [H_kv, D]): maxabs / 127 times a random factor per channel. maxabs is taken over
 *   k_new (v_new) and the first old tokens (all of them up to 2^18 values), so factors < 1
 *   make some appends saturate.
 *
 * @example
 * ```ts
 * import { generateCase } from "./generate.ts";
 * import { adHocCase } from "./loader.ts";
 * import { validateProblem } from "../op/validate.ts";
 * const { inputs, params } = generateCase(adHocCase({ cacheDtype: "int8" }), 42);
 * const problem = validateProblem(inputs, params);
 * if (problem.cacheDtype !== "int8" || problem.batch !== 2) throw new Error();
 * ```
 */
export function generateCase(
  c: WorkloadCase,
  seed: number,
  options: GenerateOptions = {},
): GeneratedCase {
  const rng = createRng(seed);
  const B = c.batch, M = c.maxPagesPerReq, ps = c.pageSize;
  const H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, E = Hkv * D;
  const spare = options.sparePages ?? 3;
  const numPages = B * M + spare;
  const totalQ = c.qLens.reduce((a, b) => a + b, 0);

  const cu = new Int32Array(B + 1);
  for (let b = 0; b < B; b++) cu[b + 1] = cu[b]! + c.qLens[b]!;
  const { table, shared } = _blockTable(c, numPages, rng.fork(_STREAM.layout));

  const q = _halfNormal(c.qDtype, totalQ * H * D, rng.fork(_STREAM.q));
  const kNew = _halfNormal(c.qDtype, totalQ * E, rng.fork(_STREAM.kNew));
  const vNew = _halfNormal(c.qDtype, totalQ * E, rng.fork(_STREAM.vNew));

  const { slots, referencedPages } = _oldSlots(c, table, numPages);
  const kPool = _pool(c.cacheDtype, numPages * ps * E, rng.fork(_STREAM.kCanary));
  const vPool = _pool(c.cacheDtype, numPages * ps * E, rng.fork(_STREAM.vCanary));
  const kScale = _fillOld(c, kPool, slots, kNew, rng.fork(_STREAM.kOld), rng.fork(_STREAM.kScale));
  const vScale = _fillOld(c, vPool, slots, vNew, rng.fork(_STREAM.vOld), rng.fork(_STREAM.vScale));

  const poolShape = [numPages * ps, Hkv, D];
  const tensorDtype = CACHE_TENSOR_DTYPE[c.cacheDtype];
  const inputs: PagedPrefillInputs = {
    q: { dtype: c.qDtype, shape: [totalQ, H, D], data: q },
    kNew: { dtype: c.qDtype, shape: [totalQ, Hkv, D], data: kNew },
    vNew: { dtype: c.qDtype, shape: [totalQ, Hkv, D], data: vNew },
    kPages: { dtype: tensorDtype, shape: poolShape, data: kPool } as Tensor,
    vPages: { dtype: tensorDtype, shape: poolShape, data: vPool } as Tensor,
    cuSeqlensQ: { dtype: "i32", shape: [B + 1], data: cu },
    cacheSeqlens: { dtype: "i32", shape: [B], data: Int32Array.from(c.cacheLens) },
    blockTable: { dtype: "i32", shape: [B, M], data: table },
  };
  if (kScale && vScale) {
    const scaleShape = c.cacheDtype === "int8" ? [Hkv, D] : [1];
    inputs.kScale = { dtype: "f32", shape: scaleShape, data: kScale };
    inputs.vScale = { dtype: "f32", shape: scaleShape, data: vScale };
  }
  const params: PagedPrefillParams = {
    pageSize: ps,
    isCausal: c.isCausal,
    smScale: c.smScale,
    softcap: c.softcap,
  };
  return {
    inputs,
    params,
    seed,
    layout: {
      numPages,
      sharedPrefixPages: shared,
      referencedPages,
      oldSlotsWritten: slots.length,
    },
  };
}

/** The block table in the case's page order, junk in unreferenced entries. */
function _blockTable(
  c: WorkloadCase,
  numPages: number,
  rng: Rng,
): { table: Int32Array; shared: number } {
  const B = c.batch, M = c.maxPagesPerReq, ps = c.pageSize;
  const ids = new Int32Array(numPages);
  for (let i = 0; i < numPages; i++) ids[i] = i;
  if (c.pageOrder !== "contiguous") rng.shuffle(ids);
  let shared = 0;
  if (c.pageOrder === "shared-prefix" && B > 0) {
    shared = Infinity;
    for (const old of c.cacheLens) shared = Math.min(shared, Math.floor(old / ps));
  }
  const table = new Int32Array(B * M);
  for (let b = 0; b < B; b++) {
    const referenced = Math.ceil((c.cacheLens[b]! + c.qLens[b]!) / ps);
    for (let j = 0; j < M; j++) {
      let id: number;
      if (j < referenced) id = j < shared ? ids[j]! : ids[shared + b * (M - shared) + j - shared]!;
      else {
        const kind = rng.int(4);
        id = kind === 0 ? -1 : kind === 1
          ? rng.int(numPages) // stale but in range
          : kind === 2
          ? numPages + rng.int(1 << 20) // past the pool
          : -2 - rng.int(1 << 20);
      }
      table[b * M + j] = id;
    }
  }
  return { table, shared };
}

/**
 * Physical slots of every old position, in request order, each written once: a page mapped by
 * an earlier request (a shared prefix page, always a full page) is skipped by later ones.
 */
function _oldSlots(c: WorkloadCase, table: Int32Array, numPages: number) {
  const ps = c.pageSize, M = c.maxPagesPerReq;
  const owner = new Int32Array(numPages).fill(-1);
  let total = 0;
  for (const old of c.cacheLens) total += old;
  const slots = new Int32Array(total);
  let n = 0, referencedPages = 0;
  for (let b = 0; b < c.batch; b++) {
    const old = c.cacheLens[b]!;
    const referenced = Math.ceil((old + c.qLens[b]!) / ps);
    for (let j = 0; j < referenced; j++) {
      const page = table[b * M + j]!;
      const first = owner[page] === -1;
      if (first) {
        owner[page] = b;
        referencedPages++;
      }
      if (owner[page] !== b || j * ps >= old) continue;
      const end = Math.min(ps, old - j * ps);
      for (let o = 0; o < end; o++) slots[n++] = page * ps + o;
    }
  }
  return { slots: slots.subarray(0, n), referencedPages };
}

/** Random standard normals rounded to f16 or bf16 bit patterns. */
function _halfNormal(dtype: QDtype, n: number, rng: Rng): Uint16Array {
  const out = new Uint16Array(n);
  if (dtype === "f16") {
    // Float16Array stores with round-to-nearest-even, as numberToF16Bits does.
    rng.fillNormal(new Float16Array(out.buffer, out.byteOffset, n));
    return out;
  }
  const chunk = new Float32Array(Math.min(n, _CHUNK_VALUES));
  for (let start = 0; start < n; start += chunk.length) {
    const count = Math.min(chunk.length, n - start);
    rng.fillNormal(chunk, 0, count);
    for (let i = 0; i < count; i++) out[start + i] = numberToBf16Bits(chunk[i]!);
  }
  return out;
}

type _Pool = Uint16Array | Uint8Array | Int8Array;

/** A pool of the cache dtype with every byte a random canary. */
function _pool(dtype: CacheDtype, n: number, rng: Rng): _Pool {
  const pool = dtype === "fp8_e4m3"
    ? new Uint8Array(n)
    : dtype === "int8"
    ? new Int8Array(n)
    : new Uint16Array(n);
  rng.fillBytes(new Uint8Array(pool.buffer, pool.byteOffset, pool.byteLength));
  return pool;
}

/** |x| maxima of f16/bf16 rows [tokens, E]: per channel (length E) or per tensor (length 1). */
function _maxAbsHalf(dtype: QDtype, bits: Uint16Array, E: number, out: Float64Array): void {
  const perChannel = out.length > 1;
  const values = dtype === "f16"
    ? new Float16Array(bits.buffer, bits.byteOffset, bits.length)
    : null;
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < bits.length; i++) {
    let a: number;
    if (values) a = Math.abs(values[i]!);
    else {
      u32[0] = bits[i]! << 16;
      a = Math.abs(f32[0]!);
    }
    const k = perChannel ? i % E : 0;
    if (a > out[k]!) out[k] = a;
  }
}

function _maxAbs(values: Float32Array, E: number, out: Float64Array): void {
  const perChannel = out.length > 1;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    const k = perChannel ? i % E : 0;
    if (a > out[k]!) out[k] = a;
  }
}

/**
 * Writes standard-normal rows into the old slots of `pool`, encoded in the cache dtype, and
 * returns the scales it used (null for 16-bit caches). The first chunk of rows, together with
 * `fresh` (k_new or v_new), calibrates the scales before anything is encoded.
 */
function _fillOld(
  c: WorkloadCase,
  pool: _Pool,
  slots: Int32Array,
  fresh: Uint16Array,
  rng: Rng,
  scaleRng: Rng,
): Float32Array | null {
  const E = c.numKvHeads * c.headDim;
  const dtype = c.cacheDtype;
  const rowsPerChunk = Math.max(1, Math.floor(_CHUNK_VALUES / E));
  const firstRows = Math.min(slots.length, rowsPerChunk);
  const chunk = new Float32Array(firstRows * E);
  const chunkU32 = new Uint32Array(chunk.buffer);
  rng.fillNormal(chunk);

  let scale: Float32Array | null = null;
  let inv = new Float32Array(0);
  if (dtype === "fp8_e4m3" || dtype === "int8") {
    const maxAbs = new Float64Array(dtype === "int8" ? E : 1);
    _maxAbsHalf(c.qDtype, fresh, E, maxAbs);
    _maxAbs(chunk, E, maxAbs);
    scale = new Float32Array(maxAbs.length);
    inv = new Float32Array(maxAbs.length);
    for (let k = 0; k < maxAbs.length; k++) {
      const m = maxAbs[k]! > 0 ? maxAbs[k]! : 1;
      let s = Math.fround((m / _QMAX[dtype]) * scaleRng.uniform(0.5, 2));
      if (!(s > 0 && Number.isFinite(s))) s = Math.fround(1 / _QMAX[dtype]);
      scale[k] = s;
      inv[k] = Math.fround(1 / s); // inverseScale(s)
    }
  }
  const f16Pool = dtype === "f16"
    ? new Float16Array(pool.buffer, pool.byteOffset, pool.length)
    : null;
  const tables = dtype === "fp8_e4m3" || dtype === "int8" ? _quantTables(dtype) : null;
  const perChannel = dtype === "int8";

  const encodeRows = (start: number, rows: number) => {
    for (let r = 0; r < rows; r++) {
      const dst = slots[start + r]! * E, src = r * E;
      if (f16Pool) f16Pool.set(chunk.subarray(src, src + E), dst);
      else if (dtype === "bf16") {
        for (let e = 0; e < E; e++) pool[dst + e] = numberToBf16Bits(chunk[src + e]!);
      } else if (tables) {
        // y = fround(x * inv) by a Float32Array store, then the encoder's tables.
        if (perChannel) { for (let e = 0; e < E; e++) chunk[src + e] = chunk[src + e]! * inv[e]!; }
        else for (let e = 0; e < E; e++) chunk[src + e] = chunk[src + e]! * inv[0]!;
        for (let e = 0; e < E; e++) {
          const u = chunkU32[src + e]!;
          pool[dst + e] = (u & 0xFFFF) === 0 ? tables.exact[u >>> 16]! : tables.above[u >>> 16]!;
        }
      }
    }
  };
  encodeRows(0, firstRows);
  for (let start = firstRows; start < slots.length; start += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, slots.length - start);
    rng.fillNormal(chunk, 0, rows * E);
    encodeRows(start, rows);
  }
  return scale;
}

const _tableCache = new Map<"fp8_e4m3" | "int8", { exact: Int16Array; above: Int16Array }>();

/**
 * `encode(y, 1)` of the quantized cache dtype for every f32 y, keyed by the upper 16 bits of y:
 * `exact` for y whose low 16 bits are zero, `above` for any y whose low bits are not. Every
 * rounding boundary of both encoders (a midpoint of two e4m3 codes: 5 significant bits; a
 * half-integer below 127.5: at most 8) has zero low bits, so a y strictly inside
 * (hi16 << 16, next pattern) encodes like any other point there: the tables reproduce the
 * reference encoders exactly (the tests check it).
 */
function _quantTables(dtype: "fp8_e4m3" | "int8"): { exact: Int16Array; above: Int16Array } {
  const cached = _tableCache.get(dtype);
  if (cached) return cached;
  const encode = dtype === "fp8_e4m3" ? e4m3Encode : int8Encode;
  const exact = new Int16Array(65536), above = new Int16Array(65536);
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let hi = 0; hi < 65536; hi++) {
    u32[0] = hi << 16;
    exact[hi] = encode(f32[0]!, 1);
    u32[0] = (hi << 16) | 1;
    above[hi] = encode(f32[0]!, 1);
  }
  const tables = { exact, above };
  _tableCache.set(dtype, tables);
  return tables;
}

const _scratchF32 = new Float32Array(1);
const _scratchU32 = new Uint32Array(_scratchF32.buffer);

/**
 * The generator's table encoder: `e4m3Encode(x, inv)` or `int8Encode(x, inv)` of the
 * reference codecs for f32 `x` and `inv`, by lookup (exported so tests can compare the two).
 *
 * @example
 * ```ts
 * import { quantizeFast } from "./generate.ts";
 * import { e4m3Encode, int8Encode } from "../reference/codecs.ts";
 * const x = Math.fround(1.2345), inv = Math.fround(1 / 0.01);
 * if (quantizeFast("fp8_e4m3", x, inv) !== e4m3Encode(x, inv)) throw new Error();
 * if (quantizeFast("int8", x, inv) !== int8Encode(x, inv)) throw new Error();
 * ```
 */
export function quantizeFast(dtype: "fp8_e4m3" | "int8", x: number, inv: number): number {
  if (Number.isNaN(x)) return dtype === "fp8_e4m3" ? e4m3Encode(x, inv) : int8Encode(x, inv);
  const t = _quantTables(dtype);
  _scratchF32[0] = x * inv;
  const u = _scratchU32[0]!;
  return (u & 0xFFFF) === 0 ? t.exact[u >>> 16]! : t.above[u >>> 16]!;
}
