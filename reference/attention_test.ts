// Tests of the float64 reference: hand-checkable cases (single key, uniform scores, softcap,
// sm_scale, causal masking, GQA mapping), paging invariance, row selection, append encoding,
// and a cross-check against a direct evaluation built on decodeCacheElement().
import assert from "node:assert/strict";
import { referenceAppend, referenceAttention, sampleReferenceRows } from "./attention.ts";
import {
  bf16BitsToNumber,
  decodeCacheElement,
  e4m3ToNumber,
  encodeCacheElement,
  f16BitsToNumber,
  inverseScale,
  numberToBf16Bits,
  numberToF16Bits,
} from "./codecs.ts";
import { validateProblem } from "../op/validate.ts";
import {
  CACHE_TENSOR_DTYPE,
  type CacheDtype,
  type PagedPrefillInputs,
  type Problem,
  type QDtype,
  type TensorData,
} from "../op/types.ts";

const SEED = (crypto.getRandomValues(new Uint32Array(1))[0]! >>> 0) || 1;

/** Deterministic standard normal value of a key of integers (hash -> Box-Muller). */
function hashNormal(...key: number[]): number {
  let h = 0x811C9DC5 ^ SEED;
  for (const k of key) {
    h = Math.imul(h ^ (k | 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5BD1E995);
    h ^= h >>> 15;
  }
  const u1 = ((h >>> 0) + 1) / 2 ** 32;
  const h2 = Math.imul(h ^ 0x9E3779B9, 0x85EBCA6B);
  const u2 = ((h2 ^ (h2 >>> 16)) >>> 0) / 2 ** 32;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Which tensor a value belongs to. */
type Kind = "q" | "k" | "v";
/** Logical value of q[b][row][h][d] or K/V[b][position][g][d]. */
type ValueFn = (kind: Kind, b: number, pos: number, head: number, d: number) => number;

interface CaseSpec {
  qDtype: QDtype;
  cacheDtype?: CacheDtype;
  qLens: number[];
  cacheLens: number[];
  H: number;
  Hkv: number;
  D: number;
  pageSize: number;
  order?: "contiguous" | "permuted" | "shared";
  isCausal?: boolean;
  softcap?: number | null;
  smScale?: number | null;
  /** fp8: [1]; int8: [Hkv * D]. @default random */
  kScale?: number[];
  vScale?: number[];
  value?: ValueFn;
}

const randomValue: ValueFn = (kind, b, pos, head, d) =>
  hashNormal(kind.charCodeAt(0), b, pos, head, d);

/** Builds inputs whose logical contents come from `spec.value`, paged per `spec.order`. */
function buildCase(spec: CaseSpec): { inputs: PagedPrefillInputs; problem: Problem } {
  const { qDtype, qLens, cacheLens, H, Hkv, D, pageSize } = spec;
  const cacheDtype = spec.cacheDtype ?? qDtype;
  const value = spec.value ?? randomValue;
  const B = qLens.length;
  const T = qLens.reduce((a, b) => a + b, 0);
  const starts = qLens.map((_, b) => qLens.slice(0, b).reduce((a, x) => a + x, 0));
  const pagesOf = qLens.map((q, b) => Math.ceil((q + cacheLens[b]!) / pageSize));
  const maxPages = Math.max(1, ...pagesOf) + 1;
  const shared = spec.order === "shared" ? Math.floor(Math.min(...cacheLens) / pageSize) : 0;
  const numPages = pagesOf.reduce((a, n) => a + n, 0) + 2;
  const ids = Array.from({ length: numPages }, (_, i) => i);
  if (spec.order !== "contiguous") {
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(((hashNormal(i, 99) * 1e6) % 1 + 1) % 1 * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
  }
  const table = new Int32Array(B * maxPages).fill(-1);
  let nextPage = 0;
  for (let b = 0; b < B; b++) {
    for (let lp = 0; lp < pagesOf[b]!; lp++) {
      table[b * maxPages + lp] = b > 0 && lp < shared ? table[lp]! : ids[nextPage++]!;
    }
  }
  const P = numPages * pageSize;
  const poolDtype = CACHE_TENSOR_DTYPE[cacheDtype];
  const makePool = (salt: number) => {
    const n = P * Hkv * D;
    const data: TensorData[typeof poolDtype] = poolDtype === "f8_e4m3"
      ? new Uint8Array(n)
      : poolDtype === "i8"
      ? new Int8Array(n)
      : new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      // canary bytes / bits everywhere first
      data[i] = Math.floor(Math.abs(hashNormal(salt, i)) * 1e6) % (poolDtype === "i8" ? 255 : 256) -
        (poolDtype === "i8" ? 127 : 0);
    }
    return data as Uint16Array | Uint8Array | Int8Array;
  };
  const kPool = makePool(1), vPool = makePool(2);
  const channels = Hkv * D;
  const scaleOf = (given: number[] | undefined, salt: number): Float32Array | undefined => {
    if (cacheDtype === "fp8_e4m3") {
      return Float32Array.of(given?.[0] ?? 0.01 + Math.abs(hashNormal(salt)) / 100);
    }
    if (cacheDtype === "int8") {
      return Float32Array.from(
        { length: channels },
        (_, c) => given?.[c] ?? 0.005 + Math.abs(hashNormal(salt, c)) / 50,
      );
    }
    return undefined;
  };
  const kScale = scaleOf(spec.kScale, 3), vScale = scaleOf(spec.vScale, 4);
  const halfEncode = qDtype === "f16" ? numberToF16Bits : numberToBf16Bits;
  const q = new Uint16Array(T * H * D), kNew = new Uint16Array(T * channels);
  const vNew = new Uint16Array(T * channels);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < cacheLens[b]! + qLens[b]!; p++) {
      const old = p < cacheLens[b]!;
      const phys = table[b * maxPages + Math.floor(p / pageSize)]! * pageSize + (p % pageSize);
      const token = starts[b]! + p - cacheLens[b]!;
      for (let g = 0; g < Hkv; g++) {
        for (let d = 0; d < D; d++) {
          const c = g * D + d;
          const kv = [value("k", b, p, g, d), value("v", b, p, g, d)] as const;
          if (old) {
            kPool[phys * channels + c] = encodeCacheElement(
              cacheDtype,
              kv[0],
              kScale ? inverseScale(kScale[cacheDtype === "int8" ? c : 0]!) : 1,
            );
            vPool[phys * channels + c] = encodeCacheElement(
              cacheDtype,
              kv[1],
              vScale ? inverseScale(vScale[cacheDtype === "int8" ? c : 0]!) : 1,
            );
          } else {
            kNew[token * channels + c] = halfEncode(kv[0]);
            vNew[token * channels + c] = halfEncode(kv[1]);
          }
        }
      }
    }
    for (let i = 0; i < qLens[b]!; i++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          q[((starts[b]! + i) * H + h) * D + d] = halfEncode(value("q", b, i, h, d));
        }
      }
    }
  }
  const inputs: PagedPrefillInputs = {
    q: { dtype: qDtype, shape: [T, H, D], data: q },
    kNew: { dtype: qDtype, shape: [T, Hkv, D], data: kNew },
    vNew: { dtype: qDtype, shape: [T, Hkv, D], data: vNew },
    kPages: { dtype: poolDtype, shape: [P, Hkv, D], data: kPool },
    vPages: { dtype: poolDtype, shape: [P, Hkv, D], data: vPool },
    cuSeqlensQ: { dtype: "i32", shape: [B + 1], data: Int32Array.from([0, ...starts.slice(1), T]) },
    cacheSeqlens: { dtype: "i32", shape: [B], data: Int32Array.from(cacheLens) },
    blockTable: { dtype: "i32", shape: [B, maxPages], data: table },
  };
  if (B === 0) inputs.cuSeqlensQ.data = Int32Array.of(0);
  if (kScale) {
    inputs.kScale = { dtype: "f32", shape: kScale.length === 1 ? [1] : [Hkv, D], data: kScale };
  }
  if (vScale) {
    inputs.vScale = { dtype: "f32", shape: vScale.length === 1 ? [1] : [Hkv, D], data: vScale };
  }
  const problem = validateProblem(inputs, {
    pageSize,
    isCausal: spec.isCausal,
    softcap: spec.softcap,
    smScale: spec.smScale,
  });
  return { inputs, problem };
}

/** Decoded value of K or V at (b, p, g, d) as stored in the inputs, by the public codecs. */
function storedKV(
  inputs: PagedPrefillInputs,
  problem: Problem,
  kind: "k" | "v",
  b: number,
  p: number,
  g: number,
  d: number,
): number {
  const old = problem.cacheLens[b]!;
  const c = g * problem.headDim + d;
  const channels = problem.numKvHeads * problem.headDim;
  const half = problem.qDtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
  if (p >= old) {
    const t = problem.qStarts[b]! + p - old;
    return half((kind === "k" ? inputs.kNew : inputs.vNew).data[t * channels + c]!);
  }
  const page = inputs.blockTable
    .data[b * problem.maxPagesPerReq + Math.floor(p / problem.pageSize)]!;
  const phys = page * problem.pageSize + (p % problem.pageSize);
  const pool = kind === "k" ? inputs.kPages : inputs.vPages;
  const scale = kind === "k" ? inputs.kScale : inputs.vScale;
  const s = scale ? scale.data[scale.data.length === 1 ? 0 : c]! : 1;
  return decodeCacheElement(problem.cacheDtype, pool.data[phys * channels + c]!, s);
}

/** Direct evaluation of SPEC §1 for one (b, row, h), via log-sum-exp. */
function directRow(
  inputs: PagedPrefillInputs,
  problem: Problem,
  b: number,
  row: number,
  h: number,
): number[] {
  const D = problem.headDim;
  const g = Math.floor(h / (problem.numHeads / problem.numKvHeads));
  const token = problem.qStarts[b]! + row;
  const half = problem.qDtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
  const q = Array.from(
    { length: D },
    (_, d) => half(inputs.q.data[(token * problem.numHeads + h) * D + d]!),
  );
  const old = problem.cacheLens[b]!;
  const end = problem.isCausal ? old + row + 1 : old + problem.qLens[b]!;
  const s: number[] = [];
  for (let p = 0; p < end; p++) {
    let x = 0;
    for (let d = 0; d < D; d++) x += q[d]! * storedKV(inputs, problem, "k", b, p, g, d);
    x *= problem.smScale;
    s.push(problem.softcap > 0 ? problem.softcap * Math.tanh(x / problem.softcap) : x);
  }
  const m = Math.max(...s);
  const lse = m + Math.log(s.reduce((a, x) => a + Math.exp(x - m), 0));
  return Array.from({ length: D }, (_, d) => {
    let acc = 0;
    for (let p = 0; p < end; p++) {
      acc += Math.exp(s[p]! - lse) * storedKV(inputs, problem, "v", b, p, g, d);
    }
    return acc;
  });
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    assert.ok(
      Math.abs(a - e) <= tol * (1 + Math.abs(e)),
      `${what}: element ${i} is ${a}, expected ${e} (seed ${SEED})`,
    );
  }
}

const CACHE_DTYPES: CacheDtype[] = ["f16", "bf16", "fp8_e4m3", "int8"];

Deno.test("referenceAttention() returns v_new exactly when a row sees only its own key, per GQA group", () => {
  for (const qDtype of ["f16", "bf16"] as const) {
    const { inputs, problem } = buildCase({
      qDtype,
      qLens: [1, 1, 1],
      cacheLens: [0, 0, 0],
      H: 6,
      Hkv: 2,
      D: 8,
      pageSize: 4,
    });
    const { rows, o } = referenceAttention(inputs, problem);
    assert.deepEqual(rows.map((r) => r.token), [0, 1, 2]);
    for (const { token } of rows) {
      for (let h = 0; h < 6; h++) {
        const g = Math.floor(h / 3);
        for (let d = 0; d < 8; d++) {
          const want = storedKV(inputs, problem, "v", token, 0, g, d);
          assert.equal(o[(token * 6 + h) * 8 + d], want, `${qDtype} token ${token} head ${h}`);
        }
      }
    }
  }
});

Deno.test("referenceAttention() averages the visible values when all keys are equal, for every cache dtype", () => {
  // Keys equal at every position and exactly representable in every cache dtype (e4m3 codes
  // times a power-of-two scale), so all scores tie and the softmax is uniform.
  const D = 8;
  const key = Array.from({ length: D }, (_, d) => e4m3ToNumber(0x30 + ((d * 5 + SEED) % 24)) / 4);
  for (const qDtype of ["f16", "bf16"] as const) {
    for (const cacheDtype of CACHE_DTYPES) {
      if ((cacheDtype === "f16" || cacheDtype === "bf16") && cacheDtype !== qDtype) continue;
      for (const isCausal of [true, false]) {
        const { inputs, problem } = buildCase({
          qDtype,
          cacheDtype,
          qLens: [3, 0, 5, 1],
          cacheLens: [6, 4, 0, 9],
          H: 4,
          Hkv: 2,
          D,
          pageSize: 4,
          isCausal,
          kScale: cacheDtype === "int8" ? new Array(2 * D).fill(1 / 64) : [0.25],
          value: (kind, b, pos, head, d) =>
            kind === "k" ? key[d]! * (head + 1) : randomValue(kind, b, pos, head, d),
        });
        const { rows, o } = referenceAttention(inputs, problem);
        for (const [n, { request: b, row }] of rows.entries()) {
          const visible = isCausal ? problem.cacheLens[b]! + row + 1 : problem.cacheLens[b]! +
            problem.qLens[b]!;
          for (let h = 0; h < 4; h++) {
            const g = h >> 1;
            const mean = Array.from({ length: D }, (_, d) => {
              let sum = 0;
              for (let p = 0; p < visible; p++) sum += storedKV(inputs, problem, "v", b, p, g, d);
              return sum / visible;
            });
            const got = o.subarray((n * 4 + h) * D, (n * 4 + h + 1) * D);
            assertClose(
              got,
              mean,
              1e-14,
              `${qDtype}/${cacheDtype} causal=${isCausal} b${b} r${row} h${h}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("referenceAttention() applies softcap * tanh(s / softcap) and sm_scale before the softmax", () => {
  const base = {
    qDtype: "f16" as const,
    qLens: [1],
    cacheLens: [1],
    H: 1,
    Hkv: 1,
    D: 4,
    pageSize: 1,
    isCausal: false,
  };
  // Large scores so the cap matters: q = 2, k = +-3 per channel.
  const value: ValueFn = (kind, _b, pos, _h, d) =>
    kind === "q" ? 2 : kind === "k" ? (pos === 0 ? 3 : -1.5) * (d % 2 ? 1 : 0.5) : pos * 10 + d;
  const expected = (smScale: number, softcap: number) => {
    const dots = [3 * 2 * (0.5 + 1) * 2, -1.5 * 2 * (0.5 + 1) * 2]; // q.k for positions 0, 1
    const s = dots.map((x) => x * smScale).map((x) =>
      softcap > 0 ? softcap * Math.tanh(x / softcap) : x
    );
    const w = s.map((x) => Math.exp(x - Math.max(...s)));
    return Array.from({ length: 4 }, (_, d) => (w[0]! * d + w[1]! * (10 + d)) / (w[0]! + w[1]!));
  };
  for (
    const [smScale, softcap] of [[null, null], [0.3, null], [0.3, 2], [1, 5], [1, 0], [
      0.5,
      1e9,
    ]] as const
  ) {
    const { inputs, problem } = buildCase({ ...base, value, smScale, softcap });
    const { o } = referenceAttention(inputs, problem);
    assertClose(
      o,
      expected(smScale ?? 0.5, softcap ?? 0),
      1e-13,
      `sm_scale ${smScale} softcap ${softcap}`,
    );
  }
  const run = (softcap: number | null) => {
    const { inputs, problem } = buildCase({ ...base, value, smScale: 1, softcap });
    return referenceAttention(inputs, problem).o;
  };
  const capped = run(2), plain = run(null);
  assert.ok(Math.abs(capped[0]! - plain[0]!) > 0.01, "softcap must change a large-score result");
});

Deno.test("referenceAttention() masks later positions when causal and sees all of them otherwise", () => {
  const spec: CaseSpec = {
    qDtype: "bf16",
    cacheDtype: "fp8_e4m3",
    qLens: [5],
    cacheLens: [7],
    H: 2,
    Hkv: 1,
    D: 8,
    pageSize: 2,
  };
  for (const isCausal of [true, false]) {
    const a = buildCase({ ...spec, isCausal });
    // Change only the last chunk token's key and value.
    const b = buildCase({
      ...spec,
      isCausal,
      value: (kind, r, pos, head, d) =>
        (kind !== "q" && pos === 11 ? 3 : 0) + randomValue(kind, r, pos, head, d),
    });
    const oa = referenceAttention(a.inputs, a.problem).o;
    const ob = referenceAttention(b.inputs, b.problem).o;
    const rowSize = 2 * 8;
    for (let row = 0; row < 5; row++) {
      const same = oa.subarray(row * rowSize, (row + 1) * rowSize).every((x, i) =>
        x === ob[row * rowSize + i]
      );
      assert.equal(same, isCausal && row < 4, `causal=${isCausal} row ${row}`);
    }
  }
});

Deno.test("referenceAttention() gives the same output for contiguous, permuted and shared-prefix pages", () => {
  for (const cacheDtype of CACHE_DTYPES) {
    const qDtype = cacheDtype === "bf16" ? "bf16" : "f16";
    const spec: CaseSpec = {
      qDtype,
      cacheDtype,
      qLens: [3, 2, 4],
      cacheLens: [9, 10, 8],
      H: 4,
      Hkv: 2,
      D: 4,
      pageSize: 4,
      softcap: 7,
      // The shared prefix (positions < 8) must hold the same content in every request.
      value: (kind, b, pos, head, d) =>
        randomValue(kind, kind !== "q" && pos < 8 ? 0 : b, pos, head, d),
    };
    const outs = (["contiguous", "permuted", "shared"] as const).map((order) => {
      const { inputs, problem } = buildCase({ ...spec, order });
      return referenceAttention(inputs, problem).o;
    });
    assert.deepEqual(outs[1], outs[0], `${cacheDtype} permuted`);
    assert.deepEqual(outs[2], outs[0], `${cacheDtype} shared`);
  }
});

Deno.test("referenceAttention() matches a direct log-sum-exp evaluation on random inputs", () => {
  for (const cacheDtype of CACHE_DTYPES) {
    for (const qDtype of ["f16", "bf16"] as const) {
      if ((cacheDtype === "f16" || cacheDtype === "bf16") && cacheDtype !== qDtype) continue;
      const isCausal = cacheDtype !== "int8";
      const { inputs, problem } = buildCase({
        qDtype,
        cacheDtype,
        qLens: [4, 1, 0, 3],
        cacheLens: [5, 13, 2, 0],
        H: 4,
        Hkv: 1,
        D: 12,
        pageSize: 2,
        isCausal,
        softcap: cacheDtype === "fp8_e4m3" ? 3 : null,
        smScale: cacheDtype === "f16" ? 0.7 : null,
      });
      const { rows, o } = referenceAttention(inputs, problem);
      for (const [n, { request, row }] of rows.entries()) {
        for (let h = 0; h < 4; h++) {
          assertClose(
            o.subarray((n * 4 + h) * 12, (n * 4 + h + 1) * 12),
            directRow(inputs, problem, request, row, h),
            1e-12,
            `${qDtype}/${cacheDtype} b${request} r${row} h${h}`,
          );
        }
      }
    }
  }
});

Deno.test("referenceAttention() computes only the requested rows, in the order asked", () => {
  const { inputs, problem } = buildCase({
    qDtype: "f16",
    qLens: [4, 3],
    cacheLens: [2, 5],
    H: 2,
    Hkv: 2,
    D: 4,
    pageSize: 2,
  });
  const all = referenceAttention(inputs, problem);
  const ask = [{ request: 1, row: 2 }, { request: 0, row: 0 }, { request: 1, row: 0 }];
  const some = referenceAttention(inputs, problem, { rows: ask });
  assert.deepEqual(some.rows, [{ request: 1, row: 2, token: 6 }, { request: 0, row: 0, token: 0 }, {
    request: 1,
    row: 0,
    token: 4,
  }]);
  const stride = 2 * 4;
  for (const [n, r] of some.rows.entries()) {
    assert.deepEqual(
      some.o.subarray(n * stride, (n + 1) * stride),
      all.o.subarray(r.token * stride, (r.token + 1) * stride),
    );
  }
  assert.equal(referenceAttention(inputs, problem, { rows: [] }).o.length, 0);
});

Deno.test("referenceAttention() rejects rows outside a request with RangeError", () => {
  const { inputs, problem } = buildCase({
    qDtype: "f16",
    qLens: [2, 0],
    cacheLens: [1, 3],
    H: 1,
    Hkv: 1,
    D: 4,
    pageSize: 2,
  });
  for (
    const [rows, pattern] of [
      [[{ request: 0, row: 2 }], /row 2 of request 0 is outside \[0, 2\)/],
      [[{ request: 1, row: 0 }], /row 0 of request 1 is outside \[0, 0\)/],
      [[{ request: 2, row: 0 }], /request 2 is outside \[0, 2\)/],
      [[{ request: 0, row: 0.5 }], /row 0.5/],
    ] as const
  ) {
    assert.throws(
      () => referenceAttention(inputs, problem, { rows }),
      (e: unknown) => e instanceof RangeError && pattern.test(e.message),
    );
  }
});

Deno.test("referenceAttention() ignores unreferenced block table entries and rejects a referenced bad one", () => {
  const { inputs, problem } = buildCase({
    qDtype: "f16",
    qLens: [2],
    cacheLens: [3],
    H: 1,
    Hkv: 1,
    D: 4,
    pageSize: 2,
  });
  const table = inputs.blockTable.data as Int32Array;
  table[table.length - 1] = 123456; // beyond the request's pages
  referenceAttention(inputs, problem);
  table[1] = -1; // logical page 1 holds position 2 < old
  assert.throws(
    () => referenceAttention(inputs, problem),
    (e: unknown) => e instanceof RangeError && /block_table\[0\]\[1\] = -1/.test(e.message),
  );
});

Deno.test("referenceAppend() copies 16-bit rows bit for bit into the append slots and nothing else", () => {
  for (const qDtype of ["f16", "bf16"] as const) {
    const { inputs, problem } = buildCase({
      qDtype,
      qLens: [3, 0, 5],
      cacheLens: [2, 4, 7],
      H: 2,
      Hkv: 2,
      D: 4,
      pageSize: 4,
      order: "shared",
    });
    const kBefore = inputs.kPages.data.slice(), vBefore = inputs.vPages.data.slice();
    const { kPages, vPages } = referenceAppend(inputs, problem);
    assert.deepEqual(inputs.kPages.data, kBefore, "input pool untouched");
    assert.deepEqual(inputs.vPages.data, vBefore);
    assert.equal(kPages.dtype, qDtype);
    assert.deepEqual(kPages.shape, inputs.kPages.shape);
    const written = new Set<number>();
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < problem.qLens[b]!; i++) {
        const p = problem.cacheLens[b]! + i;
        const phys = inputs.blockTable.data[b * problem.maxPagesPerReq + (p >> 2)]! * 4 + (p & 3);
        for (let c = 0; c < 8; c++) {
          const t = problem.qStarts[b]! + i;
          assert.equal(kPages.data[phys * 8 + c], inputs.kNew.data[t * 8 + c]);
          assert.equal(vPages.data[phys * 8 + c], inputs.vNew.data[t * 8 + c]);
          written.add(phys * 8 + c);
        }
      }
    }
    assert.equal(written.size, 8 * 8);
    for (let i = 0; i < kBefore.length; i++) {
      if (written.has(i)) continue;
      assert.equal(kPages.data[i], kBefore[i], `k byte ${i} changed`);
      assert.equal(vPages.data[i], vBefore[i], `v byte ${i} changed`);
    }
  }
});

Deno.test("referenceAppend() encodes fp8 with the tensor scale and int8 with per-channel scales", () => {
  for (const cacheDtype of ["fp8_e4m3", "int8"] as const) {
    for (const qDtype of ["f16", "bf16"] as const) {
      const { inputs, problem } = buildCase({
        qDtype,
        cacheDtype,
        qLens: [4, 2],
        cacheLens: [3, 0],
        H: 4,
        Hkv: 2,
        D: 8,
        pageSize: 2,
      });
      const { kPages, vPages } = referenceAppend(inputs, problem);
      assert.equal(kPages.dtype, CACHE_TENSOR_DTYPE[cacheDtype]);
      const half = qDtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
      let changed = 0;
      for (let i = 0; i < kPages.data.length; i++) {
        if (kPages.data[i] !== inputs.kPages.data[i]) changed++;
        if (vPages.data[i] !== inputs.vPages.data[i]) changed++;
      }
      assert.ok(changed <= 2 * 6 * 16);
      for (let b = 0; b < 2; b++) {
        for (let i = 0; i < problem.qLens[b]!; i++) {
          const p = problem.cacheLens[b]! + i;
          const phys = inputs.blockTable.data[b * problem.maxPagesPerReq + (p >> 1)]! * 2 + (p & 1);
          const t = problem.qStarts[b]! + i;
          for (let c = 0; c < 16; c++) {
            for (
              const [pool, src, scale] of [[kPages, inputs.kNew, inputs.kScale!], [
                vPages,
                inputs.vNew,
                inputs.vScale!,
              ]] as const
            ) {
              const s = scale.data[cacheDtype === "int8" ? c : 0]!;
              const want = encodeCacheElement(
                cacheDtype,
                half(src.data[t * 16 + c]!),
                inverseScale(s),
              );
              assert.equal(pool.data[phys * 16 + c], want, `${cacheDtype} b${b} i${i} c${c}`);
            }
          }
        }
      }
    }
  }
});

Deno.test("sampleReferenceRows() always includes the first and last row and is seeded", () => {
  const problem = { batch: 4, qLens: [100, 3, 0, 9], qStarts: [0, 100, 103, 103] };
  const a = sampleReferenceRows(problem, { rowsPerRequest: 5, seed: SEED });
  const b = sampleReferenceRows(problem, { rowsPerRequest: 5, seed: SEED });
  assert.deepEqual(a, b);
  const of = (r: number) => a.filter((x) => x.request === r).map((x) => x.row);
  assert.equal(of(0).length, 5);
  assert.equal(of(0)[0], 0);
  assert.equal(of(0)[4], 99);
  assert.deepEqual(of(1), [0, 1, 2]);
  assert.deepEqual(of(2), []);
  assert.equal(of(3).length, 5);
  assert.ok(a.every((r) => r.token === problem.qStarts[r.request]! + r.row));
  for (let i = 1; i < a.length; i++) assert.ok(a[i]!.token > a[i - 1]!.token, "sorted, distinct");
  assert.throws(() => sampleReferenceRows(problem, { rowsPerRequest: 1 }), RangeError);
});
