/**
 * Test-only input builder for the kernel tests: seeded random-normal tensors, pools full of
 * random canary bytes, page tables in several orders, shared prefix pages and junk in the
 * unreferenced block table entries. Not re-exported; the product's workload generator lives
 * in `workloads/generate.ts`.
 * @module
 */
import type {
  CacheDtype,
  PagedPrefillInputs,
  PagedPrefillParams,
  QDtype,
  Tensor,
} from "../op/types.ts";
import { CACHE_TENSOR_DTYPE } from "../op/types.ts";
import type { PagedPrefillOutputs, Problem } from "../op/types.ts";
import {
  encodeCacheElement,
  inverseScale,
  numberToBf16Bits,
  numberToF16Bits,
} from "../reference/codecs.ts";
import { referenceAppend, referenceAttention } from "../reference/attention.ts";
import {
  compareOutput,
  comparePools,
  describeOutputCheck,
  describePoolCheck,
  type OutputCheck,
} from "../reference/check.ts";

/** Shape and layout of one test case. */
export interface TestCaseOptions {
  qDtype: QDtype;
  cacheDtype?: CacheDtype;
  qLens: readonly number[];
  cacheLens: readonly number[];
  heads: number;
  kvHeads: number;
  headDim: number;
  pageSize: number;
  /** Block table row length. @default pages needed by the longest request + 1 */
  maxPages?: number;
  isCausal?: boolean;
  softcap?: number | null;
  smScale?: number | null;
  /** Physical page order. @default "permuted" */
  pageOrder?: "contiguous" | "permuted";
  /** Pages (wholly below every request's old length) all requests share. @default 0 */
  sharedPrefixPages?: number;
  /** Fill unreferenced block table entries with -1, out-of-range and stale ids. @default true */
  junk?: boolean;
  /** Extra never-referenced pages in the pool (canaries). @default 2 */
  extraPages?: number;
  /**
   * Every q, k and v value (and the fp8/int8 scales) times this: large-magnitude inputs that
   * stay finite in the input dtype. @default 1
   */
  magnitude?: number;
  seed: number;
}

/** A seeded generator of uniform [0, 1) numbers (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from `rand` (Box-Muller). */
export function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function _half(dtype: QDtype, values: number, rand: () => number, magnitude: number): Tensor {
  const data = new Uint16Array(values);
  const enc = dtype === "f16" ? numberToF16Bits : numberToBf16Bits;
  for (let i = 0; i < values; i++) data[i] = enc(magnitude * normal(rand));
  return { dtype, shape: [], data };
}

/** Builds inputs and params of a case; see `TestCaseOptions`. */
export function makeTestCase(
  o: TestCaseOptions,
): { inputs: PagedPrefillInputs; params: PagedPrefillParams } {
  const rand = seededRandom(o.seed);
  const mag = o.magnitude ?? 1;
  const cache = o.cacheDtype ?? o.qDtype;
  const B = o.qLens.length;
  const H = o.heads, Hkv = o.kvHeads, D = o.headDim, ps = o.pageSize;
  const totalQ = o.qLens.reduce((a, b) => a + b, 0);
  const needed = o.qLens.map((q, b) => Math.ceil((q + o.cacheLens[b]!) / ps));
  const maxPages = o.maxPages ?? Math.max(1, ...needed) + 1;
  const shared = o.sharedPrefixPages ?? 0;
  for (let b = 0; b < B; b++) {
    if (shared * ps > o.cacheLens[b]!) throw new RangeError("shared pages must lie below old");
  }
  const own = needed.map((n) => n - shared);
  const numPages = shared + own.reduce((a, b) => a + b, 0) + (o.extraPages ?? 2);
  const order = Array.from({ length: numPages }, (_, i) => i);
  if ((o.pageOrder ?? "permuted") === "permuted") {
    for (let i = numPages - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
  }
  let next = 0;
  const sharedIds = Array.from({ length: shared }, () => order[next++]!);
  const table = new Int32Array(B * maxPages);
  for (let b = 0; b < B; b++) {
    for (let lp = 0; lp < maxPages; lp++) {
      let id: number;
      if (lp < shared) id = sharedIds[lp]!;
      else if (lp < needed[b]!) id = order[next++]!;
      else if (o.junk ?? true) {
        const r = rand();
        id = r < 0.3 ? -1 : r < 0.6 ? numPages + Math.floor(rand() * 1000) : order[0]!;
      } else id = 0;
      table[b * maxPages + lp] = id;
    }
  }
  // Pools: random canary bytes everywhere, then valid encoded values in old slots.
  const rowElems = Hkv * D;
  const poolElems = numPages * ps * rowElems;
  const scaleShape = cache === "int8" ? [Hkv, D] : [1];
  const makeScale = (): Float32Array => {
    const n = cache === "int8" ? rowElems : 1;
    const s = new Float32Array(n);
    // fp8: |x| * inv stays well under 448; int8: ~3 sigma maps near 127.
    for (let i = 0; i < n; i++) {
      s[i] = mag * (cache === "int8" ? (2.5 + 1.5 * rand()) / 127 : (1 + rand()) / 64);
    }
    return s;
  };
  const quantized = cache === "fp8_e4m3" || cache === "int8";
  const kScale = quantized ? makeScale() : undefined;
  const vScale = quantized ? makeScale() : undefined;
  const makePool = (scale: Float32Array | undefined): Tensor => {
    const bytes = new Uint8Array(poolElems * (quantized ? 1 : 2));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    const tdtype = CACHE_TENSOR_DTYPE[cache];
    const data = tdtype === "i8"
      ? new Int8Array(bytes.buffer)
      : quantized
      ? bytes
      : new Uint16Array(bytes.buffer);
    for (let b = 0; b < B; b++) {
      for (let pos = 0; pos < o.cacheLens[b]!; pos++) {
        const slot = table[b * maxPages + Math.floor(pos / ps)]! * ps + (pos % ps);
        for (let e = 0; e < rowElems; e++) {
          const inv = scale ? inverseScale(scale[cache === "int8" ? e : 0]!) : 1;
          const x = Math.fround(mag * normal(rand));
          data[slot * rowElems + e] = quantized
            ? encodeCacheElement(cache, x, inv)
            : cache === "f16"
            ? numberToF16Bits(x)
            : numberToBf16Bits(x);
        }
      }
    }
    return { dtype: tdtype, shape: [numPages * ps, Hkv, D], data };
  };
  const kPages = makePool(kScale);
  const vPages = makePool(vScale);
  const q = _half(o.qDtype, totalQ * H * D, rand, mag);
  const kNew = _half(o.qDtype, totalQ * Hkv * D, rand, mag);
  const vNew = _half(o.qDtype, totalQ * Hkv * D, rand, mag);
  const cu = new Int32Array(B + 1);
  o.qLens.forEach((q, b) => cu[b + 1] = cu[b]! + q);
  const inputs: PagedPrefillInputs = {
    q: { ...q, shape: [totalQ, H, D] },
    kNew: { ...kNew, shape: [totalQ, Hkv, D] },
    vNew: { ...vNew, shape: [totalQ, Hkv, D] },
    kPages,
    vPages,
    cuSeqlensQ: { dtype: "i32", shape: [B + 1], data: cu },
    cacheSeqlens: { dtype: "i32", shape: [B], data: Int32Array.from(o.cacheLens) },
    blockTable: { dtype: "i32", shape: [B, maxPages], data: table },
  };
  if (kScale && vScale) {
    inputs.kScale = { dtype: "f32", shape: scaleShape, data: kScale };
    inputs.vScale = { dtype: "f32", shape: scaleShape, data: vScale };
  }
  const params: PagedPrefillParams = {
    pageSize: ps,
    isCausal: o.isCausal ?? true,
    smScale: o.smScale ?? null,
    softcap: o.softcap ?? null,
  };
  return { inputs, params };
}

/** A deep copy of `inputs` (to check that a call leaves them untouched). */
export function cloneInputs(inputs: PagedPrefillInputs): PagedPrefillInputs {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) {
    if (t) out[name] = { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() } as Tensor;
  }
  return out as unknown as PagedPrefillInputs;
}

/**
 * Checks the op's outputs against the float64 reference (SPEC §4 tolerance on every row of o)
 * and the expected pools (bit-exact over every byte, canaries included); throws with the
 * checks' descriptions on failure.
 */
export function verifyOutputs(
  out: PagedPrefillOutputs,
  inputs: PagedPrefillInputs,
  problem: Problem,
  what = "",
): OutputCheck {
  const ref = referenceAttention(inputs, problem);
  const o = compareOutput(out.o, ref, problem);
  const expected = referenceAppend(inputs, problem);
  const pools = comparePools(out.kPages, out.vPages, expected.kPages, expected.vPages, problem);
  if (!o.ok || !pools.ok) {
    throw new Error(
      `${what}\n  o: ${describeOutputCheck(o)}\n  pools: ${describePoolCheck(pools)}`,
    );
  }
  return o;
}
