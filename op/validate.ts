/**
 * Validation of one call of the op (SPEC §3): every input's dtype, shape and values are checked
 * on the host before any GPU work, so a rejected call writes nothing. The result is the resolved
 * {@linkcode Problem} that kernels, the reference and reports trust.
 *
 * Errors: `TypeError` for a wrong dtype, shape or JS type, `RangeError` for a value out of range,
 * each with a one-line message naming the input, the expected and the actual value.
 * @module
 */
import { bf16OutsideF16 } from "./bf16_range.ts";
import type {
  CacheDtype,
  PagedPrefillInputs,
  PagedPrefillParams,
  Problem,
  QDtype,
  Tensor,
  TensorDtype,
} from "./types.ts";
import { opRangeError, opTypeError } from "./errors.ts";

/**
 * Head dims the kernels support: a multiple of 4 in [4, 256].
 *
 * @example
 * ```ts
 * import { SUPPORTED_HEAD_DIMS } from "./validate.ts";
 * const d = 128;
 * const ok = d % SUPPORTED_HEAD_DIMS.multipleOf === 0 && d >= SUPPORTED_HEAD_DIMS.min &&
 *   d <= SUPPORTED_HEAD_DIMS.max;
 * if (!ok) throw new Error(SUPPORTED_HEAD_DIMS.description);
 * ```
 */
export const SUPPORTED_HEAD_DIMS = {
  multipleOf: 4,
  min: 4,
  max: 256,
  description: "a multiple of 4 in [4, 256]",
} as const;

/**
 * Alias of {@linkcode SUPPORTED_HEAD_DIMS}.
 *
 * @example
 * ```ts
 * import { SUPPORTED_HEAD_DIM } from "./validate.ts";
 * console.log(`D must be ${SUPPORTED_HEAD_DIM.description}`);
 * ```
 */
export const SUPPORTED_HEAD_DIM = SUPPORTED_HEAD_DIMS;

/**
 * True when `d` is a head dim the kernels support ({@linkcode SUPPORTED_HEAD_DIMS}).
 *
 * @example
 * ```ts
 * import { isSupportedHeadDim } from "./validate.ts";
 * if (!isSupportedHeadDim(128) || isSupportedHeadDim(130)) throw new Error("unexpected");
 * ```
 */
export function isSupportedHeadDim(d: number): boolean {
  return Number.isInteger(d) && d % SUPPORTED_HEAD_DIMS.multipleOf === 0 &&
    d >= SUPPORTED_HEAD_DIMS.min && d <= SUPPORTED_HEAD_DIMS.max;
}

/**
 * True when `n` is an integer power of two >= 1 (1, 2, 4, ...).
 *
 * @example
 * ```ts
 * import { isPowerOfTwo } from "./validate.ts";
 * if (!isPowerOfTwo(64) || isPowerOfTwo(48) || isPowerOfTwo(0)) throw new Error("unexpected");
 * ```
 */
export function isPowerOfTwo(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 1) return false;
  // Exact in doubles for every safe integer: halve down to the odd part.
  let m = n;
  while (m % 2 === 0) m /= 2;
  return m === 1;
}

const _ARRAY_TYPE: Readonly<Record<TensorDtype, { name: string; check(x: unknown): boolean }>> = {
  f16: { name: "Uint16Array", check: (x) => x instanceof Uint16Array },
  bf16: { name: "Uint16Array", check: (x) => x instanceof Uint16Array },
  f8_e4m3: { name: "Uint8Array", check: (x) => x instanceof Uint8Array },
  i8: { name: "Int8Array", check: (x) => x instanceof Int8Array },
  i32: { name: "Int32Array", check: (x) => x instanceof Int32Array },
  f32: { name: "Float32Array", check: (x) => x instanceof Float32Array },
};

const _CACHE_DTYPE_OF: Readonly<Partial<Record<TensorDtype, CacheDtype>>> = {
  f16: "f16",
  bf16: "bf16",
  f8_e4m3: "fp8_e4m3",
  i8: "int8",
};

function _fmtShape(shape: readonly unknown[]): string {
  return `[${shape.map((x) => String(x)).join(", ")}]`;
}

function _typeName(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "object";
  return typeof x;
}

/** Checks that `t` is a well-formed tensor of one of `dtypes` and rank `dims.length`. */
function _tensor(
  name: string,
  t: unknown,
  dtypes: readonly TensorDtype[],
  dims: readonly string[],
): Tensor {
  if (t === undefined || t === null) {
    throw opTypeError(`${name} is missing (expected a tensor of dtype ${dtypes.join(" or ")})`);
  }
  if (typeof t !== "object") throw opTypeError(`${name} must be a tensor, got ${_typeName(t)}`);
  const { dtype, shape, data } = t as Partial<Tensor>;
  if (typeof dtype !== "string" || !(dtypes as readonly string[]).includes(dtype)) {
    throw opTypeError(`${name} must have dtype ${dtypes.join(" or ")}, got ${String(dtype)}`);
  }
  if (!Array.isArray(shape) || shape.length !== dims.length) {
    const actual = Array.isArray(shape) ? _fmtShape(shape) : _typeName(shape);
    throw opTypeError(
      `${name} must have rank ${dims.length} shape [${dims.join(", ")}], got ${actual}`,
    );
  }
  let count = 1;
  for (const [i, n] of shape.entries()) {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw opTypeError(
        `${name}.shape[${i}] (${dims[i]}) must be a non-negative integer, got ${String(n)}`,
      );
    }
    count *= n;
  }
  const array = _ARRAY_TYPE[dtype];
  if (!array.check(data)) {
    throw opTypeError(
      `${name} data must be a ${array.name} for dtype ${dtype}, got ${_typeName(data)}`,
    );
  }
  const length = (data as ArrayLike<number>).length;
  if (length !== count) {
    throw opTypeError(
      `${name} data must hold ${count} elements (product of shape ${
        _fmtShape(shape)
      }), got ${length}`,
    );
  }
  return t as Tensor;
}

function _expectShape(name: string, t: Tensor, expected: readonly number[], dims: string): void {
  if (t.shape.length !== expected.length || t.shape.some((n, i) => n !== expected[i])) {
    throw opTypeError(
      `${name} must have shape ${_fmtShape(expected)} (${dims}), got ${_fmtShape(t.shape)}`,
    );
  }
}

function _optionalNumber(name: string, x: unknown): number | null {
  if (x === undefined || x === null) return null;
  if (typeof x !== "number") {
    throw opTypeError(`${name} must be a number or null, got ${_typeName(x)}`);
  }
  return x;
}

function _checkScale(name: string, t: Tensor, kvHeads: number, headDim: number, cache: CacheDtype) {
  const expected = cache === "fp8_e4m3" ? [1] : [kvHeads, headDim];
  _expectShape(name, t, expected, cache === "fp8_e4m3" ? "per tensor" : "H_kv, D: per channel");
  const data = t.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    const s = data[i]!;
    if (!(Number.isFinite(s) && s > 0)) {
      const index = cache === "fp8_e4m3"
        ? `[${i}]`
        : `[${Math.floor(i / headDim)}][${i % headDim}]`;
      throw opRangeError(`${name}${index} = ${s} must be finite and > 0`);
    }
  }
}

/**
 * Validates one call of the op against SPEC §3 and resolves its {@linkcode Problem}.
 * Everything is checked before any GPU work: dtypes and shapes of every input (tensor data
 * length = product of shape), head counts and head dim, page size and pool size, scales,
 * sequence lengths, capacity, the referenced block-table entries and append-slot aliasing.
 *
 * Aliasing (decided at slot granularity, as SPEC §1 states it): a physical slot written by the
 * append must not be read (position < old) or written by any other (request, logical position)
 * of the call. This includes one request whose block table maps two logical pages to the same
 * physical page when an appended slot of one is read or appended through the other. Pages
 * shared only for reading (prefix caching, even twice within one request) are allowed, and so
 * is a page where one request reads some slots and another appends into different slots.
 * The check is O(T_q + referenced pages).
 *
 * @throws {TypeError} an input is missing or has the wrong dtype, shape, data type or length,
 *   or a param has the wrong JS type.
 * @throws {RangeError} a value is out of range (head counts, head dim, page size, pool size,
 *   scales, cu_seqlens_q, cache_seqlens, capacity, block_table entries, aliasing, softcap,
 *   sm_scale).
 *
 * @example
 * ```ts
 * import { validateProblem } from "./validate.ts";
 * const T = 3, H = 4, Hkv = 2, D = 8, P = 16;
 * const bits = (n: number) => new Uint16Array(n).fill(0x3c00); // f16 1.0
 * const problem = validateProblem({
 *   q: { dtype: "f16", shape: [T, H, D], data: bits(T * H * D) },
 *   kNew: { dtype: "f16", shape: [T, Hkv, D], data: bits(T * Hkv * D) },
 *   vNew: { dtype: "f16", shape: [T, Hkv, D], data: bits(T * Hkv * D) },
 *   kPages: { dtype: "f16", shape: [P, Hkv, D], data: bits(P * Hkv * D) },
 *   vPages: { dtype: "f16", shape: [P, Hkv, D], data: bits(P * Hkv * D) },
 *   cuSeqlensQ: { dtype: "i32", shape: [2], data: new Int32Array([0, T]) },
 *   cacheSeqlens: { dtype: "i32", shape: [1], data: new Int32Array([5]) },
 *   blockTable: { dtype: "i32", shape: [1, 2], data: new Int32Array([3, 1]) },
 * }, { pageSize: 4 });
 * if (problem.numPages !== 4 || problem.smScale !== 1 / Math.sqrt(D)) throw new Error("bad");
 * ```
 */
export function validateProblem(inputs: PagedPrefillInputs, params: PagedPrefillParams): Problem {
  if (typeof inputs !== "object" || inputs === null) {
    throw opTypeError(`inputs must be an object of tensors, got ${_typeName(inputs)}`);
  }
  if (typeof params !== "object" || params === null) {
    throw opTypeError(`params must be an object, got ${_typeName(params)}`);
  }

  // --- dtypes and shapes (TypeError) ---
  const q = _tensor("q", inputs.q, ["f16", "bf16"], ["T_q", "H", "D"]);
  const [totalQ, numHeads, headDim] = q.shape as [number, number, number];
  const qDtype = q.dtype as QDtype;
  const kNew = _tensor("k_new", inputs.kNew, [qDtype], ["T_q", "H_kv", "D"]);
  const numKvHeads = kNew.shape[1]!;
  _expectShape("k_new", kNew, [totalQ, numKvHeads, headDim], "T_q, H_kv, D");
  const vNew = _tensor("v_new", inputs.vNew, [qDtype], ["T_q", "H_kv", "D"]);
  _expectShape("v_new", vNew, [totalQ, numKvHeads, headDim], "T_q, H_kv, D");

  const cacheTensorDtypes: TensorDtype[] = ["f16", "bf16", "f8_e4m3", "i8"];
  const kPages = _tensor("k_pages", inputs.kPages, cacheTensorDtypes, ["P_tokens", "H_kv", "D"]);
  if (
    (kPages.dtype === "f16" || kPages.dtype === "bf16") && kPages.dtype !== qDtype
  ) {
    throw opTypeError(
      `k_pages must have dtype ${qDtype} (a 16-bit cache must equal q's dtype) or f8_e4m3 or i8, got ${kPages.dtype}`,
    );
  }
  const poolTokens = kPages.shape[0]!;
  _expectShape("k_pages", kPages, [poolTokens, numKvHeads, headDim], "P_tokens, H_kv, D");
  const vPages = _tensor("v_pages", inputs.vPages, [kPages.dtype], ["P_tokens", "H_kv", "D"]);
  _expectShape("v_pages", vPages, [poolTokens, numKvHeads, headDim], "P_tokens, H_kv, D");
  const cacheDtype = _CACHE_DTYPE_OF[kPages.dtype]!;
  const quantized = cacheDtype === "fp8_e4m3" || cacheDtype === "int8";

  const scales: Array<[string, Tensor]> = [];
  for (const [name, value] of [["k_scale", inputs.kScale], ["v_scale", inputs.vScale]] as const) {
    if (quantized) {
      scales.push([
        name,
        _tensor(name, value, ["f32"], cacheDtype === "int8" ? ["H_kv", "D"] : ["1"]),
      ]);
    } else if (value !== undefined && value !== null) {
      throw opTypeError(`${name} must be absent for a ${cacheDtype} cache, got a tensor`);
    }
  }

  const cu = _tensor("cu_seqlens_q", inputs.cuSeqlensQ, ["i32"], ["B + 1"]);
  const batch = cu.shape[0]! - 1;
  if (batch < 0) throw opTypeError(`cu_seqlens_q must have shape [B + 1] with B >= 0, got [0]`);
  const seqlens = _tensor("cache_seqlens", inputs.cacheSeqlens, ["i32"], ["B"]);
  _expectShape("cache_seqlens", seqlens, [batch], "B, from cu_seqlens_q");
  const table = _tensor("block_table", inputs.blockTable, ["i32"], ["B", "max_pages_per_req"]);
  const maxPagesPerReq = table.shape[1]!;
  _expectShape("block_table", table, [batch, maxPagesPerReq], "B, max_pages_per_req");

  // --- params (TypeError for JS types) ---
  const pageSize = params.pageSize as unknown;
  if (typeof pageSize !== "number") {
    throw opTypeError(`page_size must be a number, got ${_typeName(pageSize)}`);
  }
  const isCausal = params.isCausal ?? true;
  if (typeof isCausal !== "boolean") {
    throw opTypeError(`is_causal must be a boolean, got ${_typeName(isCausal)}`);
  }
  const smScaleIn = _optionalNumber("sm_scale", params.smScale);
  const softcapIn = _optionalNumber("softcap", params.softcap);

  // --- values (RangeError) ---
  if (numHeads < 1) throw opRangeError(`q.shape[1] (H) must be >= 1, got ${numHeads}`);
  if (numKvHeads < 1) throw opRangeError(`k_new.shape[1] (H_kv) must be >= 1, got ${numKvHeads}`);
  if (numHeads % numKvHeads !== 0) {
    throw opRangeError(
      `H = ${numHeads} (q.shape[1]) must be a multiple of H_kv = ${numKvHeads} (k_new.shape[1])`,
    );
  }
  if (!isSupportedHeadDim(headDim)) {
    throw opRangeError(
      `head dim D = ${headDim} (q.shape[2]) is not supported: expected ${SUPPORTED_HEAD_DIMS.description}`,
    );
  }
  if (!isPowerOfTwo(pageSize)) {
    throw opRangeError(`page_size must be a power of two >= 1, got ${pageSize}`);
  }
  if (poolTokens % pageSize !== 0) {
    throw opRangeError(
      `k_pages.shape[0] (P_tokens) = ${poolTokens} must be a multiple of page_size ${pageSize}`,
    );
  }
  const numPages = poolTokens / pageSize;
  for (const [name, t] of scales) _checkScale(name, t, numKvHeads, headDim, cacheDtype);
  if (softcapIn !== null && !(Number.isFinite(softcapIn) && softcapIn >= 0)) {
    throw opRangeError(`softcap must be finite and >= 0 (0 or null = off), got ${softcapIn}`);
  }
  if (smScaleIn !== null && !(Number.isFinite(smScaleIn) && smScaleIn > 0)) {
    throw opRangeError(`sm_scale must be finite and > 0 (null = 1/sqrt(D)), got ${smScaleIn}`);
  }

  const cuData = cu.data as Int32Array;
  if (cuData[0] !== 0) throw opRangeError(`cu_seqlens_q[0] must be 0, got ${cuData[0]}`);
  const qLens: number[] = new Array(batch);
  const qStarts: number[] = new Array(batch);
  for (let b = 0; b < batch; b++) {
    const start = cuData[b]!, end = cuData[b + 1]!;
    if (end < start) {
      throw opRangeError(
        `cu_seqlens_q must be non-decreasing, got cu_seqlens_q[${
          b + 1
        }] = ${end} < cu_seqlens_q[${b}] = ${start}`,
      );
    }
    qStarts[b] = start;
    qLens[b] = end - start;
  }
  if (cuData[batch] !== totalQ) {
    throw opRangeError(
      `cu_seqlens_q[${batch}] (the last) must equal T_q = ${totalQ} (q.shape[0]), got ${
        cuData[batch]
      }`,
    );
  }

  const oldData = seqlens.data as Int32Array;
  const cacheLens: number[] = Array.from(oldData);
  const capacity = maxPagesPerReq * pageSize;
  for (let b = 0; b < batch; b++) {
    const old = cacheLens[b]!;
    if (old < 0) throw opRangeError(`cache_seqlens[${b}] = ${old} must be >= 0`);
    const need = old + qLens[b]!;
    if (need > capacity) {
      throw opRangeError(
        `request ${b} needs ${need} slots (cache_seqlens[${b}] = ${old} + q_len ${
          qLens[b]
        }) but block_table holds ${maxPagesPerReq} pages * page_size ${pageSize} = ${capacity}`,
      );
    }
  }

  const bt = table.data as Int32Array;
  for (let b = 0; b < batch; b++) {
    const referenced = Math.ceil((cacheLens[b]! + qLens[b]!) / pageSize);
    const row = b * maxPagesPerReq;
    for (let j = 0; j < referenced; j++) {
      const page = bt[row + j]!;
      if (page < 0 || page >= numPages) {
        throw opRangeError(`block_table[${b}][${j}] = ${page} is outside [0, ${numPages})`);
      }
    }
  }

  _checkAliasing(bt, maxPagesPerReq, pageSize, cacheLens, qLens);

  const bf16Range = qDtype !== "bf16" ? {} : {
    bf16OutsideF16: bf16OutsideF16({
      q: q.data as Uint16Array,
      kNew: kNew.data as Uint16Array,
      vNew: vNew.data as Uint16Array,
      kPages: cacheDtype === "bf16" ? kPages.data as Uint16Array : null,
      vPages: cacheDtype === "bf16" ? vPages.data as Uint16Array : null,
    }, {
      qWidth: numHeads * headDim,
      kvWidth: numKvHeads * headDim,
      pageSize,
      maxPagesPerReq,
      cacheLens,
      blockTable: bt,
    }),
  };

  return {
    qDtype,
    cacheDtype,
    batch,
    totalQ,
    numHeads,
    numKvHeads,
    headDim,
    pageSize,
    numPages,
    poolTokens,
    maxPagesPerReq,
    isCausal,
    smScale: smScaleIn ?? 1 / Math.sqrt(headDim),
    softcap: softcapIn ?? 0,
    qLens,
    qStarts,
    cacheLens,
    ...bf16Range,
  };
}

const _TWO_32 = 4294967296;

/**
 * Rejects append-slot aliasing (see `validateProblem`). Written slots are keyed in a Map
 * (O(T_q)); each read page is then checked against the smallest appended offset of its
 * physical page: reads of a (request, logical page) cover offsets [0, r), and that entry's own
 * appends start at offset r, so a smaller appended offset always belongs to another entry.
 */
function _checkAliasing(
  bt: Int32Array,
  maxPagesPerReq: number,
  pageSize: number,
  cacheLens: readonly number[],
  qLens: readonly number[],
): void {
  const writer = new Map<number, number>(); // slot -> request * 2^32 + position
  const minOffset = new Map<number, number>(); // physical page -> smallest appended offset
  const describe = (code: number) => {
    const request = Math.floor(code / _TWO_32);
    return `request ${request} at position ${code - request * _TWO_32}`;
  };
  const where = (slot: number) =>
    `physical slot ${slot} (page ${Math.floor(slot / pageSize)}, offset ${slot % pageSize})`;
  for (let b = 0; b < qLens.length; b++) {
    const old = cacheLens[b]!, end = old + qLens[b]!, row = b * maxPagesPerReq;
    for (let p = old; p < end; p++) {
      const j = Math.floor(p / pageSize), offset = p - j * pageSize;
      const page = bt[row + j]!;
      const slot = page * pageSize + offset;
      const code = b * _TWO_32 + p;
      const previous = writer.get(slot);
      if (previous !== undefined) {
        throw opRangeError(
          `${where(slot)} is appended twice, by ${describe(previous)} and by ${
            describe(code)
          }: an appended slot must not be written through any other block_table entry`,
        );
      }
      writer.set(slot, code);
      const m = minOffset.get(page);
      if (m === undefined || offset < m) minOffset.set(page, offset);
    }
  }
  if (writer.size === 0) return;
  for (let c = 0; c < cacheLens.length; c++) {
    const old = cacheLens[c]!, row = c * maxPagesPerReq;
    const readPages = Math.ceil(old / pageSize);
    for (let j = 0; j < readPages; j++) {
      const page = bt[row + j]!;
      const m = minOffset.get(page);
      if (m === undefined) continue;
      const readable = Math.min(pageSize, old - j * pageSize);
      if (m < readable) {
        const slot = page * pageSize + m;
        throw opRangeError(
          `${where(slot)} is appended by ${describe(writer.get(slot)!)} and read by ${
            describe(c * _TWO_32 + j * pageSize + m)
          }: an appended slot must not be read through any other block_table entry`,
        );
      }
    }
  }
}
