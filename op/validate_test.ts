import assert from "node:assert/strict";
import { isPowerOfTwo, isSupportedHeadDim, validateProblem } from "./validate.ts";
import type {
  CacheDtype,
  PagedPrefillInputs,
  PagedPrefillParams,
  QDtype,
  Tensor,
} from "./types.ts";

interface MakeOptions {
  qLens?: number[];
  cacheLens?: number[];
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  pageSize?: number;
  maxPages?: number;
  spare?: number;
  qDtype?: QDtype;
  cache?: CacheDtype;
}

/** Random nonzero 16-bit patterns of finite values (exponent field never all ones). */
function randomBits16(n: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (1 + Math.floor(Math.random() * 0x3bff)) | (i & 1) << 15;
  return out;
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 + Math.floor(Math.random() * 120);
  return out;
}

function randomScales(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 0.001 + Math.random() * 0.05);
}

/** A valid call: request b owns pages b*maxPages.. (contiguous), plus `spare` unused pages. */
function make(o: MakeOptions = {}): { inputs: PagedPrefillInputs; params: PagedPrefillParams } {
  const qLens = o.qLens ?? [5, 3];
  const cacheLens = o.cacheLens ?? [7, 10];
  const H = o.heads ?? 4, Hkv = o.kvHeads ?? 2, D = o.headDim ?? 8, ps = o.pageSize ?? 4;
  const qDtype = o.qDtype ?? "f16";
  const cache = o.cache ?? qDtype;
  const B = qLens.length;
  const maxPages = o.maxPages ??
    Math.max(1, ...qLens.map((q, b) => Math.ceil((q + cacheLens[b]!) / ps)));
  const numPages = B * maxPages + (o.spare ?? 2);
  const T = qLens.reduce((a, b) => a + b, 0);
  const P = numPages * ps;
  const pool = (): Tensor => {
    const n = P * Hkv * D;
    if (cache === "fp8_e4m3") return { dtype: "f8_e4m3", shape: [P, Hkv, D], data: randomBytes(n) };
    if (cache === "int8") {
      return { dtype: "i8", shape: [P, Hkv, D], data: new Int8Array(randomBytes(n).buffer) };
    }
    return { dtype: cache, shape: [P, Hkv, D], data: randomBits16(n) };
  };
  const cu = new Int32Array(B + 1);
  for (let b = 0; b < B; b++) cu[b + 1] = cu[b]! + qLens[b]!;
  const table = new Int32Array(B * maxPages);
  for (let i = 0; i < table.length; i++) table[i] = i;
  const inputs: PagedPrefillInputs = {
    q: { dtype: qDtype, shape: [T, H, D], data: randomBits16(T * H * D) },
    kNew: { dtype: qDtype, shape: [T, Hkv, D], data: randomBits16(T * Hkv * D) },
    vNew: { dtype: qDtype, shape: [T, Hkv, D], data: randomBits16(T * Hkv * D) },
    kPages: pool(),
    vPages: pool(),
    cuSeqlensQ: { dtype: "i32", shape: [B + 1], data: cu },
    cacheSeqlens: { dtype: "i32", shape: [B], data: Int32Array.from(cacheLens) },
    blockTable: { dtype: "i32", shape: [B, maxPages], data: table },
  };
  if (cache === "fp8_e4m3") {
    inputs.kScale = { dtype: "f32", shape: [1], data: randomScales(1) };
    inputs.vScale = { dtype: "f32", shape: [1], data: randomScales(1) };
  } else if (cache === "int8") {
    inputs.kScale = { dtype: "f32", shape: [Hkv, D], data: randomScales(Hkv * D) };
    inputs.vScale = { dtype: "f32", shape: [Hkv, D], data: randomScales(Hkv * D) };
  }
  return { inputs, params: { pageSize: ps } };
}

function rejects(
  call: { inputs: PagedPrefillInputs; params: PagedPrefillParams },
  errorClass: typeof TypeError | typeof RangeError,
  message: string,
): void {
  assert.throws(
    () => validateProblem(call.inputs, call.params),
    (e: unknown) => {
      assert.ok(e instanceof errorClass, `expected ${errorClass.name}, got ${String(e)}`);
      assert.equal((e as Error).constructor, errorClass);
      assert.equal((e as Error).message, `Cannot run paged prefill: ${message}`);
      return true;
    },
  );
}

function table(call: { inputs: PagedPrefillInputs }): Int32Array {
  return call.inputs.blockTable.data as Int32Array;
}

// --- accepted calls ---

Deno.test("validateProblem() resolves sizes, per-request lengths and defaults of a valid call", () => {
  const call = make({ qLens: [5, 3], cacheLens: [7, 10], heads: 4, kvHeads: 2, headDim: 8 });
  const p = validateProblem(call.inputs, call.params);
  assert.deepEqual(p, {
    qDtype: "f16",
    cacheDtype: "f16",
    batch: 2,
    totalQ: 8,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    pageSize: 4,
    numPages: 2 * 4 + 2,
    poolTokens: 40,
    maxPagesPerReq: 4,
    isCausal: true,
    smScale: 1 / Math.sqrt(8),
    softcap: 0,
    qLens: [5, 3],
    qStarts: [0, 5],
    cacheLens: [7, 10],
  });
});

Deno.test("validateProblem() keeps explicit is_causal, sm_scale and softcap and maps null to the defaults", () => {
  const call = make();
  const smScale = 0.05 + Math.random(), softcap = 1 + 49 * Math.random();
  const p = validateProblem(call.inputs, { pageSize: 4, isCausal: false, smScale, softcap });
  assert.equal(p.isCausal, false);
  assert.equal(p.smScale, smScale);
  assert.equal(p.softcap, softcap);
  const d = validateProblem(call.inputs, { pageSize: 4, smScale: null, softcap: null });
  assert.equal(d.smScale, 1 / Math.sqrt(8));
  assert.equal(d.softcap, 0);
  assert.equal(validateProblem(call.inputs, { pageSize: 4, softcap: 0 }).softcap, 0);
});

Deno.test("validateProblem() accepts fp8 and int8 caches with their scales under either q dtype", () => {
  for (const qDtype of ["f16", "bf16"] as const) {
    const fp8 = make({ qDtype, cache: "fp8_e4m3" });
    assert.equal(validateProblem(fp8.inputs, fp8.params).cacheDtype, "fp8_e4m3");
    const call = make({ qDtype, cache: "int8" });
    const p = validateProblem(call.inputs, call.params);
    assert.equal(p.cacheDtype, "int8");
    assert.equal(p.qDtype, qDtype);
  }
});

Deno.test("validateProblem() accepts bf16 q with a bf16 cache", () => {
  const call = make({ qDtype: "bf16" });
  assert.equal(validateProblem(call.inputs, call.params).cacheDtype, "bf16");
});

Deno.test("validateProblem() ignores unreferenced block_table entries holding -1 and stale ids", () => {
  const call = make({ qLens: [3, 2], cacheLens: [1, 1], pageSize: 4, maxPages: 6 });
  const t = table(call);
  // Each request references only its logical page 0 (4 and 3 positions of page size 4).
  t.set([-1, 999999, 6, -7, 2147483647], 1);
  t.set([-1, -1, 12, 5000, -2147483648], 7);
  const p = validateProblem(call.inputs, call.params);
  assert.equal(p.batch, 2);
});

Deno.test("validateProblem() accepts prefix pages shared read-only between requests", () => {
  const call = make({ qLens: [3, 5, 2], cacheLens: [9, 8, 12], pageSize: 4, maxPages: 4 });
  const t = table(call);
  // All three requests read the first two physical pages of request 0.
  for (const b of [1, 2]) t.set([0, 1], b * 4);
  const p = validateProblem(call.inputs, call.params);
  assert.deepEqual(p.cacheLens, [9, 8, 12]);
});

Deno.test("validateProblem() accepts a page read twice within one request", () => {
  const call = make({ qLens: [2], cacheLens: [8], pageSize: 4, maxPages: 3 });
  table(call).set([1, 1, 2]);
  assert.equal(validateProblem(call.inputs, call.params).batch, 1);
});

Deno.test("validateProblem() accepts a page where one request reads slots and another appends to other slots", () => {
  // Both requests read offsets 0..1 of physical page 5; request 1 appends offsets 2..3 of it.
  const call = make({ qLens: [0, 2], cacheLens: [2, 2], pageSize: 4, maxPages: 1, spare: 6 });
  table(call).set([5, 5]);
  assert.equal(validateProblem(call.inputs, call.params).totalQ, 2);
});

Deno.test("validateProblem() accepts empty requests, an empty batch chunk and old = 0", () => {
  const call = make({ qLens: [0, 4, 0], cacheLens: [5, 0, 0] });
  const p = validateProblem(call.inputs, call.params);
  assert.deepEqual(p.qLens, [0, 4, 0]);
  assert.deepEqual(p.qStarts, [0, 0, 4]);
  const none = make({ qLens: [0], cacheLens: [3] });
  assert.equal(validateProblem(none.inputs, none.params).totalQ, 0);
});

Deno.test("validateProblem() accepts page_size 1 and head dims 4 and 256", () => {
  for (const [pageSize, headDim] of [[1, 4], [2, 256], [256, 12]]) {
    const call = make({ pageSize, headDim, qLens: [3], cacheLens: [5] });
    const p = validateProblem(call.inputs, call.params);
    assert.equal(p.pageSize, pageSize);
    assert.equal(p.headDim, headDim);
  }
});

Deno.test("validateProblem() checks a 10k-token, 10k-entry problem within a few milliseconds", () => {
  const B = 8, maxPages = 1250, ps = 16;
  const qLens = [1250, 1250, 1250, 1250, 1250, 1250, 1250, 1250];
  const cacheLens = [18750, 18000, 17000, 16000, 15000, 14000, 13000, 12000];
  const call = make({ qLens, cacheLens, heads: 1, kvHeads: 1, headDim: 4, pageSize: ps, maxPages });
  // Share the first 700 pages of request 0 with every other request.
  const t = table(call);
  for (let b = 1; b < B; b++) for (let j = 0; j < 700; j++) t[b * maxPages + j] = j;
  validateProblem(call.inputs, call.params); // warm up
  const start = performance.now();
  for (let i = 0; i < 5; i++) validateProblem(call.inputs, call.params);
  const ms = (performance.now() - start) / 5;
  assert.ok(ms < 100, `validateProblem took ${ms.toFixed(1)} ms`);
});

Deno.test("isPowerOfTwo() and isSupportedHeadDim() accept exactly the documented values", () => {
  assert.deepEqual([1, 2, 64, 2 ** 40].map(isPowerOfTwo), [true, true, true, true]);
  assert.deepEqual([0, -4, 3, 48, 1.5, NaN].map(isPowerOfTwo), [
    false,
    false,
    false,
    false,
    false,
    false,
  ]);
  assert.deepEqual([4, 64, 100, 256].map(isSupportedHeadDim), [true, true, true, true]);
  assert.deepEqual([0, 2, 6, 130, 260, 4.5].map(isSupportedHeadDim), [
    false,
    false,
    false,
    false,
    false,
    false,
  ]);
});

// --- rejections: dtypes and shapes (TypeError) ---

Deno.test("validateProblem() rejects a missing q", () => {
  const call = make();
  delete (call.inputs as Partial<PagedPrefillInputs>).q;
  rejects(call, TypeError, "q is missing (expected a tensor of dtype f16 or bf16)");
});

Deno.test("validateProblem() rejects a non-object inputs or params", () => {
  const call = make();
  assert.throws(
    () => validateProblem(null as unknown as PagedPrefillInputs, call.params),
    new TypeError("Cannot run paged prefill: inputs must be an object of tensors, got null"),
  );
  assert.throws(
    () => validateProblem(call.inputs, 16 as unknown as PagedPrefillParams),
    new TypeError("Cannot run paged prefill: params must be an object, got number"),
  );
});

Deno.test("validateProblem() rejects q of dtype f32", () => {
  const call = make();
  call.inputs.q = { dtype: "f32", shape: [8, 4, 8], data: new Float32Array(256).fill(0.5) };
  rejects(call, TypeError, "q must have dtype f16 or bf16, got f32");
});

Deno.test("validateProblem() rejects q of the wrong rank", () => {
  const call = make();
  call.inputs.q = { ...call.inputs.q, shape: [8, 32] };
  rejects(call, TypeError, "q must have rank 3 shape [T_q, H, D], got [8, 32]");
});

Deno.test("validateProblem() rejects a shape entry that is not a non-negative integer", () => {
  const call = make();
  call.inputs.q = { ...call.inputs.q, shape: [8, 4, 7.5] };
  rejects(call, TypeError, "q.shape[2] (D) must be a non-negative integer, got 7.5");
});

Deno.test("validateProblem() rejects data of the wrong typed array", () => {
  const call = make();
  call.inputs.q = { ...call.inputs.q, data: new Float32Array(256).fill(1.5) as never };
  rejects(call, TypeError, "q data must be a Uint16Array for dtype f16, got Float32Array");
});

Deno.test("validateProblem() rejects data whose length is not the product of the shape", () => {
  const call = make();
  call.inputs.q = { ...call.inputs.q, data: randomBits16(255) };
  rejects(call, TypeError, "q data must hold 256 elements (product of shape [8, 4, 8]), got 255");
});

Deno.test("validateProblem() rejects k_new of another dtype than q", () => {
  const call = make();
  call.inputs.kNew = { ...call.inputs.kNew, dtype: "bf16" };
  rejects(call, TypeError, "k_new must have dtype f16, got bf16");
});

Deno.test("validateProblem() rejects k_new whose token count differs from q", () => {
  const call = make();
  call.inputs.kNew = { dtype: "f16", shape: [7, 2, 8], data: randomBits16(112) };
  rejects(call, TypeError, "k_new must have shape [8, 2, 8] (T_q, H_kv, D), got [7, 2, 8]");
});

Deno.test("validateProblem() rejects v_new of another shape than k_new", () => {
  const call = make();
  call.inputs.vNew = { dtype: "f16", shape: [8, 1, 8], data: randomBits16(64) };
  rejects(call, TypeError, "v_new must have shape [8, 2, 8] (T_q, H_kv, D), got [8, 1, 8]");
});

Deno.test("validateProblem() rejects k_pages of a non-cache dtype", () => {
  const call = make();
  const n = 40 * 2 * 8;
  call.inputs.kPages = { dtype: "f32", shape: [40, 2, 8], data: new Float32Array(n).fill(2) };
  rejects(call, TypeError, "k_pages must have dtype f16 or bf16 or f8_e4m3 or i8, got f32");
});

Deno.test("validateProblem() rejects a 16-bit cache of another dtype than q", () => {
  const call = make({ qDtype: "bf16", cache: "f16" });
  rejects(
    call,
    TypeError,
    "k_pages must have dtype bf16 (a 16-bit cache must equal q's dtype) or f8_e4m3 or i8, got f16",
  );
});

Deno.test("validateProblem() rejects v_pages of another dtype than k_pages", () => {
  const call = make({ cache: "fp8_e4m3" });
  const n = call.inputs.vPages.data.length;
  call.inputs.vPages = {
    dtype: "i8",
    shape: call.inputs.vPages.shape,
    data: new Int8Array(n).fill(3),
  };
  rejects(call, TypeError, "v_pages must have dtype f8_e4m3, got i8");
});

Deno.test("validateProblem() rejects k_pages whose head count or head dim differs", () => {
  const call = make();
  call.inputs.kPages = { dtype: "f16", shape: [40, 2, 4], data: randomBits16(320) };
  rejects(
    call,
    TypeError,
    "k_pages must have shape [40, 2, 8] (P_tokens, H_kv, D), got [40, 2, 4]",
  );
});

Deno.test("validateProblem() rejects v_pages whose token count differs from k_pages", () => {
  const call = make();
  call.inputs.vPages = { dtype: "f16", shape: [36, 2, 8], data: randomBits16(576) };
  rejects(
    call,
    TypeError,
    "v_pages must have shape [40, 2, 8] (P_tokens, H_kv, D), got [36, 2, 8]",
  );
});

Deno.test("validateProblem() rejects a quantized cache without scales", () => {
  const call = make({ cache: "int8" });
  delete call.inputs.vScale;
  rejects(call, TypeError, "v_scale is missing (expected a tensor of dtype f32)");
});

Deno.test("validateProblem() rejects scales given for a 16-bit cache", () => {
  const call = make();
  call.inputs.kScale = { dtype: "f32", shape: [1], data: randomScales(1) };
  rejects(call, TypeError, "k_scale must be absent for a f16 cache, got a tensor");
});

Deno.test("validateProblem() rejects a scale that is not f32", () => {
  const call = make({ cache: "fp8_e4m3" });
  call.inputs.kScale = { dtype: "i32", shape: [1], data: new Int32Array([3]) };
  rejects(call, TypeError, "k_scale must have dtype f32, got i32");
});

Deno.test("validateProblem() rejects an fp8 scale that is not of shape [1]", () => {
  const call = make({ cache: "fp8_e4m3" });
  call.inputs.kScale = { dtype: "f32", shape: [2], data: randomScales(2) };
  rejects(call, TypeError, "k_scale must have shape [1] (per tensor), got [2]");
});

Deno.test("validateProblem() rejects an int8 scale that is not per channel", () => {
  const call = make({ cache: "int8" });
  call.inputs.vScale = { dtype: "f32", shape: [8], data: randomScales(8) };
  rejects(call, TypeError, "v_scale must have rank 2 shape [H_kv, D], got [8]");
  call.inputs.vScale = { dtype: "f32", shape: [1, 16], data: randomScales(16) };
  rejects(call, TypeError, "v_scale must have shape [2, 8] (H_kv, D: per channel), got [1, 16]");
});

Deno.test("validateProblem() rejects cu_seqlens_q that is not i32", () => {
  const call = make();
  call.inputs.cuSeqlensQ = { dtype: "f32", shape: [3], data: new Float32Array([0, 5, 8]) };
  rejects(call, TypeError, "cu_seqlens_q must have dtype i32, got f32");
});

Deno.test("validateProblem() rejects an empty cu_seqlens_q", () => {
  const call = make();
  call.inputs.cuSeqlensQ = { dtype: "i32", shape: [0], data: new Int32Array(0) };
  rejects(call, TypeError, "cu_seqlens_q must have shape [B + 1] with B >= 0, got [0]");
});

Deno.test("validateProblem() rejects cache_seqlens whose length is not B", () => {
  const call = make();
  call.inputs.cacheSeqlens = { dtype: "i32", shape: [3], data: new Int32Array([7, 10, 2]) };
  rejects(call, TypeError, "cache_seqlens must have shape [2] (B, from cu_seqlens_q), got [3]");
});

Deno.test("validateProblem() rejects a block_table with another batch size", () => {
  const call = make();
  call.inputs.blockTable = {
    dtype: "i32",
    shape: [1, 8],
    data: Int32Array.from({ length: 8 }, (_, i) => i),
  };
  rejects(call, TypeError, "block_table must have shape [2, 8] (B, max_pages_per_req), got [1, 8]");
});

Deno.test("validateProblem() rejects a non-number page_size", () => {
  const call = make();
  rejects(
    { inputs: call.inputs, params: { pageSize: "16" as unknown as number } },
    TypeError,
    "page_size must be a number, got string",
  );
});

Deno.test("validateProblem() rejects a non-boolean is_causal", () => {
  const call = make();
  rejects(
    { inputs: call.inputs, params: { pageSize: 4, isCausal: 1 as unknown as boolean } },
    TypeError,
    "is_causal must be a boolean, got number",
  );
});

Deno.test("validateProblem() rejects a non-number softcap or sm_scale", () => {
  const call = make();
  rejects(
    { inputs: call.inputs, params: { pageSize: 4, softcap: "50" as unknown as number } },
    TypeError,
    "softcap must be a number or null, got string",
  );
  rejects(
    { inputs: call.inputs, params: { pageSize: 4, smScale: true as unknown as number } },
    TypeError,
    "sm_scale must be a number or null, got boolean",
  );
});

// --- rejections: values (RangeError) ---

Deno.test("validateProblem() rejects H that is not a multiple of H_kv", () => {
  const call = make({ heads: 6, kvHeads: 4 });
  rejects(call, RangeError, "H = 6 (q.shape[1]) must be a multiple of H_kv = 4 (k_new.shape[1])");
});

Deno.test("validateProblem() rejects zero heads or zero kv heads", () => {
  rejects(make({ heads: 0 }), RangeError, "q.shape[1] (H) must be >= 1, got 0");
  rejects(make({ kvHeads: 0 }), RangeError, "k_new.shape[1] (H_kv) must be >= 1, got 0");
});

Deno.test("validateProblem() rejects head dims no kernel supports", () => {
  for (const d of [2, 6, 260]) {
    rejects(
      make({ headDim: d }),
      RangeError,
      `head dim D = ${d} (q.shape[2]) is not supported: expected a multiple of 4 in [4, 256]`,
    );
  }
});

Deno.test("validateProblem() rejects a page_size that is not a power of two", () => {
  for (const pageSize of [0, 3, 48, 1.5, -4, NaN]) {
    const call = make();
    rejects(
      { inputs: call.inputs, params: { pageSize } },
      RangeError,
      `page_size must be a power of two >= 1, got ${pageSize}`,
    );
  }
});

Deno.test("validateProblem() rejects a pool whose token count is not a multiple of page_size", () => {
  const call = make({ pageSize: 4 });
  rejects(
    { inputs: call.inputs, params: { pageSize: 16 } },
    RangeError,
    "k_pages.shape[0] (P_tokens) = 40 must be a multiple of page_size 16",
  );
});

Deno.test("validateProblem() rejects non-finite and non-positive scales, naming the element", () => {
  const fp8 = make({ cache: "fp8_e4m3" });
  for (const bad of [0, -0.25, NaN, Infinity]) {
    fp8.inputs.vScale!.data[0] = bad;
    rejects(fp8, RangeError, `v_scale[0] = ${bad} must be finite and > 0`);
  }
  const int8 = make({ cache: "int8", kvHeads: 2, headDim: 8 });
  int8.inputs.kScale!.data[13] = -3;
  rejects(int8, RangeError, "k_scale[1][5] = -3 must be finite and > 0");
});

Deno.test("validateProblem() rejects a negative or non-finite softcap", () => {
  const call = make();
  for (const softcap of [-1, NaN, Infinity]) {
    rejects(
      { inputs: call.inputs, params: { pageSize: 4, softcap } },
      RangeError,
      `softcap must be finite and >= 0 (0 or null = off), got ${softcap}`,
    );
  }
});

Deno.test("validateProblem() rejects a non-positive or non-finite sm_scale", () => {
  const call = make();
  for (const smScale of [0, -0.125, NaN, -Infinity]) {
    rejects(
      { inputs: call.inputs, params: { pageSize: 4, smScale } },
      RangeError,
      `sm_scale must be finite and > 0 (null = 1/sqrt(D)), got ${smScale}`,
    );
  }
});

Deno.test("validateProblem() rejects cu_seqlens_q not starting at 0", () => {
  const call = make({ qLens: [5, 3] });
  (call.inputs.cuSeqlensQ.data as Int32Array).set([2, 5, 8]);
  rejects(call, RangeError, "cu_seqlens_q[0] must be 0, got 2");
});

Deno.test("validateProblem() rejects a decreasing cu_seqlens_q", () => {
  const call = make({ qLens: [5, 3] });
  (call.inputs.cuSeqlensQ.data as Int32Array).set([0, 9, 8]);
  rejects(
    call,
    RangeError,
    "cu_seqlens_q must be non-decreasing, got cu_seqlens_q[2] = 8 < cu_seqlens_q[1] = 9",
  );
});

Deno.test("validateProblem() rejects cu_seqlens_q not ending at T_q", () => {
  const call = make({ qLens: [5, 3] });
  (call.inputs.cuSeqlensQ.data as Int32Array).set([0, 5, 7]);
  rejects(call, RangeError, "cu_seqlens_q[2] (the last) must equal T_q = 8 (q.shape[0]), got 7");
});

Deno.test("validateProblem() rejects a negative cache_seqlens", () => {
  const call = make({ cacheLens: [7, 10] });
  call.inputs.cacheSeqlens.data[1] = -1;
  rejects(call, RangeError, "cache_seqlens[1] = -1 must be >= 0");
});

Deno.test("validateProblem() rejects a request that overflows its block_table capacity", () => {
  const call = make({ qLens: [5, 3], cacheLens: [7, 10], maxPages: 4, pageSize: 4 });
  call.inputs.cacheSeqlens.data[1] = 14;
  rejects(
    call,
    RangeError,
    "request 1 needs 17 slots (cache_seqlens[1] = 14 + q_len 3) but block_table holds 4 pages * page_size 4 = 16",
  );
});

Deno.test("validateProblem() rejects a referenced block_table entry outside the pool", () => {
  const call = make({ qLens: [5, 3], cacheLens: [7, 10], maxPages: 4, pageSize: 4 });
  table(call)[4 + 3] = 10; // request 1, logical page 3 covers positions 12..12 (< 13)
  rejects(call, RangeError, "block_table[1][3] = 10 is outside [0, 10)");
  table(call)[4 + 3] = 7;
  table(call)[0] = -1;
  rejects(call, RangeError, "block_table[0][0] = -1 is outside [0, 10)");
});

Deno.test("validateProblem() rejects a slot appended by two requests", () => {
  const call = make({ qLens: [5, 3], cacheLens: [7, 10], maxPages: 4, pageSize: 4 });
  // Request 0 appends positions 7..11 (pages 1, 2); request 1 appends 10..12 (pages 2, 3).
  table(call)[4 + 2] = 2; // request 1 logical page 2 -> request 0's physical page 2
  rejects(
    call,
    RangeError,
    "physical slot 10 (page 2, offset 2) is appended twice, by request 0 at position 10 and by request 1 at position 10: an appended slot must not be written through any other block_table entry",
  );
});

Deno.test("validateProblem() rejects a slot appended by one request and read by another", () => {
  const call = make({ qLens: [5, 3], cacheLens: [7, 10], maxPages: 4, pageSize: 4 });
  // Request 1 reads positions 0..9; map its logical page 1 to request 0's page 1 (appended 7..7).
  table(call)[4 + 1] = 1;
  rejects(
    call,
    RangeError,
    "physical slot 7 (page 1, offset 3) is appended by request 0 at position 7 and read by request 1 at position 7: an appended slot must not be read through any other block_table entry",
  );
});

Deno.test("validateProblem() rejects one request mapping an appended page also as a read page", () => {
  const call = make({ qLens: [4], cacheLens: [6], maxPages: 3, pageSize: 4 });
  // Logical pages 0 (read 0..3) and 2 (append 8..9) share physical page 0.
  table(call).set([0, 1, 0]);
  rejects(
    call,
    RangeError,
    "physical slot 0 (page 0, offset 0) is appended by request 0 at position 8 and read by request 0 at position 0: an appended slot must not be read through any other block_table entry",
  );
});

Deno.test("validateProblem() rejects one request appending twice into the same slot", () => {
  const call = make({ qLens: [8], cacheLens: [0], maxPages: 2, pageSize: 4 });
  table(call).set([3, 3]);
  rejects(
    call,
    RangeError,
    "physical slot 12 (page 3, offset 0) is appended twice, by request 0 at position 0 and by request 0 at position 4: an appended slot must not be written through any other block_table entry",
  );
});
