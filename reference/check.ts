/**
 * The checks of SPEC §4: the op's output against the float64 reference within the per-dtype
 * tolerance, with error statistics, and the pools after the op against the expected pools,
 * bit-exact over every byte. Each check returns everything at once (counts, worst errors,
 * the first bad element) and has a one-line `describe…()` for logs and reports.
 * @module
 */
import type { Problem, QDtype, Tensor, TensorDtype } from "../op/types.ts";
import { CACHE_TENSOR_DTYPE } from "../op/types.ts";
import { bf16BitsToNumber, f16BitsToNumber } from "./codecs.ts";
import type { ReferenceAttention } from "./attention.ts";

/** Per-element tolerance: `|o - ref| <= atol + rtol * |ref|`. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * Output tolerances of SPEC §4 by output dtype.
 *
 * @example
 * ```ts
 * import { OUTPUT_TOLERANCES } from "./check.ts";
 * if (OUTPUT_TOLERANCES.f16.atol !== 2e-3 || OUTPUT_TOLERANCES.bf16.rtol !== 1.6e-2) throw new Error();
 * ```
 */
export const OUTPUT_TOLERANCES: Readonly<Record<QDtype, Readonly<Tolerance>>> = {
  f16: { atol: 2e-3, rtol: 2e-3 },
  bf16: { atol: 1.6e-2, rtol: 1.6e-2 },
};

/** One output element that failed, located in the problem. */
export interface OutputMismatch {
  request: number;
  /** Row within the request's chunk. */
  row: number;
  /** Global token index (row of o). */
  token: number;
  head: number;
  dim: number;
  /** Decoded value of o (NaN/±Infinity when non-finite). */
  actual: number;
  /** Float64 reference value. */
  expected: number;
}

/** Result of `compareOutput()`. */
export interface OutputCheck {
  /** True when every checked element is finite and within tolerance. */
  ok: boolean;
  atol: number;
  rtol: number;
  /** Query rows compared (all rows, or the reference's sample). */
  checkedRows: number;
  /** Elements compared: checkedRows * H * D. */
  checkedElements: number;
  /** Elements outside tolerance, non-finite ones included. */
  mismatches: number;
  /** Elements of o that are NaN or ±Infinity (always failures). */
  nonFinite: number;
  /** max |o - ref| over finite elements. */
  maxAbsErr: number;
  /** max |o - ref| / max(|ref|, atol) over finite elements (atol keeps ref ≈ 0 meaningful). */
  maxRelErr: number;
  /** ||o - ref||₂ / ||ref||₂ over finite elements (the absolute L2 error when ref is all zero). */
  relL2Err: number;
  /**
   * max |o - ref| / (atol + rtol |ref|) over finite elements: the share of the tolerance the
   * worst element uses (every finite element is within tolerance when this is <= 1).
   */
  toleranceUsed: number;
  /** Requests with at least one mismatch, ascending. */
  failingRequests: number[];
  /** The first mismatch in row order, when any. */
  firstBad?: OutputMismatch;
}

/** Options of `compareOutput()`. */
export interface CompareOutputOptions {
  /** Absolute tolerance. @default OUTPUT_TOLERANCES[problem.qDtype].atol */
  atol?: number;
  /** Relative tolerance. @default OUTPUT_TOLERANCES[problem.qDtype].rtol */
  rtol?: number;
}

function _checkTensor(name: string, t: Tensor, dtype: string, shape: readonly number[]): void {
  if (t.dtype !== dtype) {
    throw new TypeError(`Cannot compare ${name}: expected dtype ${dtype}, got ${t.dtype}`);
  }
  if (t.shape.length !== shape.length || t.shape.some((n, i) => n !== shape[i])) {
    throw new TypeError(
      `Cannot compare ${name}: expected shape [${shape.join(", ")}], got [${t.shape.join(", ")}]`,
    );
  }
  const size = shape.reduce((a, n) => a * n, 1);
  if (t.data.length !== size) {
    throw new TypeError(
      `Cannot compare ${name}: expected ${size} elements for shape [${
        shape.join(", ")
      }], got ${t.data.length}`,
    );
  }
}

/**
 * Compares the op's output `o` [T_q, H, D] with the float64 reference on the reference's rows
 * (SPEC §4): an element passes when `|o - ref| <= atol + rtol * |ref|`; NaN or Inf in `o`
 * always fails. Reports mismatch count, failing requests, max abs/rel error, relative L2
 * error and the first bad (request, row, token, head, dim).
 *
 * @throws {TypeError} `actual` does not have q's dtype and shape [T_q, H, D], or `ref.o` does
 *   not have `ref.rows.length * H * D` elements.
 *
 * @example
 * ```ts
 * import { compareOutput, describeOutputCheck } from "./check.ts";
 * import type { Problem } from "../op/types.ts";
 * const problem = { qDtype: "f16", totalQ: 1, numHeads: 1, headDim: 2 } as Problem;
 * const o = { dtype: "f16" as const, shape: [1, 1, 2], data: Uint16Array.of(0x3C00, 0xC000) };
 * const ref = { rows: [{ request: 0, row: 0, token: 0 }], o: Float64Array.of(1.001, -2) };
 * const check = compareOutput(o, ref, problem);
 * if (!check.ok || check.maxAbsErr > 0.0011) throw new Error(describeOutputCheck(check));
 * ```
 */
export function compareOutput(
  actual: Tensor,
  ref: ReferenceAttention,
  problem: Problem,
  options: CompareOutputOptions = {},
): OutputCheck {
  const H = problem.numHeads, D = problem.headDim;
  _checkTensor("o", actual, problem.qDtype, [problem.totalQ, H, D]);
  if (ref.o.length !== ref.rows.length * H * D) {
    throw new TypeError(
      `Cannot compare o: the reference has ${ref.o.length} values for ${ref.rows.length} rows, expected ${
        ref.rows.length * H * D
      }`,
    );
  }
  const tol = OUTPUT_TOLERANCES[problem.qDtype];
  const atol = options.atol ?? tol.atol;
  const rtol = options.rtol ?? tol.rtol;
  const decode = problem.qDtype === "f16" ? f16BitsToNumber : bf16BitsToNumber;
  const data = actual.data as Uint16Array;

  let mismatches = 0, nonFinite = 0, maxAbsErr = 0, maxRelErr = 0, errSq = 0, refSq = 0;
  let toleranceUsed = 0;
  const failing = new Set<number>();
  let firstBad: OutputMismatch | undefined;
  for (const [n, { request, row, token }] of ref.rows.entries()) {
    if (token < 0 || token >= problem.totalQ) {
      throw new RangeError(
        `Cannot compare o: reference row ${n} has token ${token} outside [0, ${problem.totalQ})`,
      );
    }
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < D; d++) {
        const a = decode(data[(token * H + h) * D + d]!);
        const r = ref.o[(n * H + h) * D + d]!;
        const err = Math.abs(a - r);
        if (Number.isFinite(a)) {
          if (err > maxAbsErr) maxAbsErr = err;
          const rel = err / Math.max(Math.abs(r), atol);
          if (rel > maxRelErr) maxRelErr = rel;
          const used = err / (atol + rtol * Math.abs(r));
          if (used > toleranceUsed) toleranceUsed = used;
          errSq += err * err;
          refSq += r * r;
        } else {
          nonFinite++;
        }
        // Written so that NaN (in o or in ref) fails.
        if (!(Number.isFinite(a) && err <= atol + rtol * Math.abs(r))) {
          mismatches++;
          failing.add(request);
          firstBad ??= { request, row, token, head: h, dim: d, actual: a, expected: r };
        }
      }
    }
  }
  const check: OutputCheck = {
    ok: mismatches === 0,
    atol,
    rtol,
    checkedRows: ref.rows.length,
    checkedElements: ref.rows.length * H * D,
    mismatches,
    nonFinite,
    maxAbsErr,
    maxRelErr,
    relL2Err: refSq > 0 ? Math.sqrt(errSq / refSq) : Math.sqrt(errSq),
    toleranceUsed,
    failingRequests: [...failing].sort((x, y) => x - y),
  };
  if (firstBad) check.firstBad = firstBad;
  return check;
}

const _g = (x: number) => Number.isFinite(x) ? x.toPrecision(3) : String(x);

/**
 * One line describing an output check: `ok: …` or `FAILED: …` with counts, errors and the
 * first bad element.
 *
 * @example
 * ```ts
 * import { describeOutputCheck } from "./check.ts";
 * const line = describeOutputCheck({
 *   ok: true, atol: 2e-3, rtol: 2e-3, checkedRows: 4, checkedElements: 512, mismatches: 0,
 *   nonFinite: 0, maxAbsErr: 1e-4, maxRelErr: 3e-3, relL2Err: 2e-4, toleranceUsed: 0.05,
 *   failingRequests: [],
 * });
 * if (!line.startsWith("ok: 4 rows")) throw new Error(line);
 * ```
 */
export function describeOutputCheck(check: OutputCheck): string {
  const errors = `max abs ${_g(check.maxAbsErr)}, max rel ${_g(check.maxRelErr)}, rel L2 ${
    _g(check.relL2Err)
  }, tolerance used ${_g(check.toleranceUsed)}`;
  const tol = `atol ${check.atol} + rtol ${check.rtol}`;
  if (check.ok) {
    return `ok: ${check.checkedRows} rows (${check.checkedElements} elements) within ${tol}; ${errors}`;
  }
  const parts = [
    `FAILED: ${check.mismatches} of ${check.checkedElements} elements (${check.checkedRows} rows) outside ${tol}`,
  ];
  if (check.nonFinite > 0) parts.push(`${check.nonFinite} non-finite`);
  parts.push(`failing requests [${check.failingRequests.join(", ")}]`);
  let line = `${parts.join(", ")}; ${errors}`;
  const b = check.firstBad;
  if (b) {
    line +=
      `; first bad: request ${b.request} row ${b.row} (token ${b.token}) head ${b.head} dim ${b.dim}: got ${
        _g(b.actual)
      }, expected ${_g(b.expected)}`;
  }
  return line;
}

/** One pool element whose bytes differ from the expected pool. */
export interface PoolMismatch {
  pool: "k" | "v";
  /** Tensor dtype of the pool (says how to read `actual` and `expected`). */
  dtype: TensorDtype;
  /** Physical token (row of the pool). */
  token: number;
  /** Physical page and offset of the token: `token = page * page_size + offset`. */
  page: number;
  offset: number;
  head: number;
  dim: number;
  /** Raw element: 16-bit pattern, fp8 byte or signed int8. */
  actual: number;
  expected: number;
}

/** Result of `comparePools()`. */
export interface PoolCheck {
  /** True when both pools equal the expected pools in every byte. */
  ok: boolean;
  /** Bytes compared over both pools. */
  checkedBytes: number;
  /** Bytes that differ over both pools. */
  badBytes: number;
  /** Elements with at least one differing byte, over both pools. */
  badElements: number;
  /** The first bad element (k pool first), when any. */
  firstBad?: PoolMismatch;
}

function _bytes(t: Tensor): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * Compares both pools after the op with the expected pools (`referenceAppend()`), bit-exact
 * over every byte (SPEC §4): the appended slots and every other byte, canaries included.
 *
 * @throws {TypeError} a pool does not have the cache dtype and shape [P_tokens, H_kv, D].
 *
 * @example
 * ```ts
 * import { comparePools, describePoolCheck } from "./check.ts";
 * import type { Problem } from "../op/types.ts";
 * const problem = { cacheDtype: "int8", poolTokens: 2, numKvHeads: 1, headDim: 2, pageSize: 1 } as Problem;
 * const pool = (...v: number[]) => ({ dtype: "i8" as const, shape: [2, 1, 2], data: Int8Array.from(v) });
 * const check = comparePools(pool(1, 2, 3, 4), pool(5, 6, 7, 8), pool(1, 2, 3, 4), pool(5, 6, 7, -8), problem);
 * if (check.ok || check.badBytes !== 1 || check.firstBad?.pool !== "v") throw new Error();
 * if (check.firstBad.token !== 1 || check.firstBad.dim !== 1 || check.firstBad.expected !== -8) throw new Error();
 * if (!describePoolCheck(check).includes("v_pages token 1 (page 1 offset 0) head 0 dim 1")) throw new Error();
 * ```
 */
export function comparePools(
  actualK: Tensor,
  actualV: Tensor,
  expectedK: Tensor,
  expectedV: Tensor,
  problem: Problem,
): PoolCheck {
  const dtype = CACHE_TENSOR_DTYPE[problem.cacheDtype];
  const shape = [problem.poolTokens, problem.numKvHeads, problem.headDim];
  const pairs = [["k", actualK, expectedK], ["v", actualV, expectedV]] as const;
  for (const [name, a, e] of pairs) {
    _checkTensor(`${name}_pages`, a, dtype, shape);
    _checkTensor(`expected ${name}_pages`, e, dtype, shape);
  }
  const elementBytes = actualK.data.BYTES_PER_ELEMENT;
  const channels = problem.numKvHeads * problem.headDim;
  let badBytes = 0, badElements = 0, checkedBytes = 0;
  let firstBad: PoolMismatch | undefined;
  for (const [pool, a, e] of pairs) {
    const ab = _bytes(a), eb = _bytes(e);
    checkedBytes += ab.length;
    let lastBadElement = -1;
    for (let i = 0; i < ab.length; i++) {
      if (ab[i] === eb[i]) continue;
      badBytes++;
      const element = Math.floor(i / elementBytes);
      if (element === lastBadElement) continue;
      lastBadElement = element;
      badElements++;
      if (!firstBad) {
        const token = Math.floor(element / channels);
        const c = element % channels;
        firstBad = {
          pool,
          dtype: a.dtype,
          token,
          page: Math.floor(token / problem.pageSize),
          offset: token % problem.pageSize,
          head: Math.floor(c / problem.headDim),
          dim: c % problem.headDim,
          actual: a.data[element]!,
          expected: e.data[element]!,
        };
      }
    }
  }
  const check: PoolCheck = { ok: badBytes === 0, checkedBytes, badBytes, badElements };
  if (firstBad) check.firstBad = firstBad;
  return check;
}

/**
 * One line describing a pool check.
 *
 * @example
 * ```ts
 * import { describePoolCheck } from "./check.ts";
 * const line = describePoolCheck({ ok: true, checkedBytes: 4096, badBytes: 0, badElements: 0 });
 * if (line !== "ok: k and v pools bit-exact (4096 bytes)") throw new Error(line);
 * ```
 */
export function describePoolCheck(check: PoolCheck): string {
  if (check.ok) return `ok: k and v pools bit-exact (${check.checkedBytes} bytes)`;
  let line =
    `FAILED: ${check.badBytes} of ${check.checkedBytes} pool bytes differ (${check.badElements} elements)`;
  const b = check.firstBad;
  if (b) {
    const width = b.dtype === "f16" || b.dtype === "bf16" ? 4 : 2;
    const raw = (x: number) =>
      b.dtype === "i8" ? String(x) : "0x" + x.toString(16).padStart(width, "0");
    line +=
      `; first bad: ${b.pool}_pages token ${b.token} (page ${b.page} offset ${b.offset}) head ${b.head} dim ${b.dim}: got ${
        raw(b.actual)
      }, expected ${raw(b.expected)}`;
  }
  return line;
}
