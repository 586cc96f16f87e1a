/**
 * Verifying one call of the op on the GPU (SPEC §4): o against the float64 reference (all
 * rows, or a seeded sample per request when the reference would be too slow), both pools
 * bit-exact against the reference append (every other byte, canaries included, unchanged),
 * and, for case files, against the expected tensors they carry.
 * @module
 */
import type { GpuContext } from "../kernels/gpu.ts";
import { planPagedPrefill, runPlanned } from "../kernels/op.ts";
import type {
  PagedPrefillInputs,
  PagedPrefillOutputs,
  PagedPrefillParams,
  Problem,
  Tensor,
} from "../op/types.ts";
import {
  referenceAppend,
  referenceAttention,
  type ReferenceRow,
  sampleReferenceRows,
} from "../reference/attention.ts";
import {
  compareOutput,
  comparePools,
  describeOutputCheck,
  describePoolCheck,
  type OutputCheck,
  type PoolCheck,
} from "../reference/check.ts";
import { decodeHalfArray } from "../reference/codecs.ts";

/** Tensors a case file may carry to check against (SPEC §7). */
export interface ExpectedTensors {
  o?: Tensor;
  kPages?: Tensor;
  vPages?: Tensor;
}

/** Options of `checkOutputs()` and `verifyOnGpu()`. */
export interface CheckOptions {
  /** Query rows checked per request (first and last always); all rows when absent and cheap. */
  rowsPerRequest?: number;
  /**
   * Multiply-adds the reference may spend before rows are sampled per request.
   * @default 4e8 (about a second or two of float64 work)
   */
  referenceBudget?: number;
  /** Seed of the row sample. @default 0 */
  sampleSeed?: number;
  /** Expected tensors from a case file, checked as well when present. */
  expected?: ExpectedTensors;
}

/** Everything verification found for one call. */
export interface CaseVerification {
  ok: boolean;
  problem: Problem;
  /** Query rows in the call. */
  totalRows: number;
  /** Query rows compared with the reference. */
  checkedRows: number;
  output: OutputCheck;
  pools: PoolCheck;
  /** o against the case file's `o_expected`, when given. */
  expectedOutput?: OutputCheck;
  /** Pools against the case file's `k_pages_expected`/`v_pages_expected`, when given. */
  expectedPools?: PoolCheck;
  /** One line: what passed or the first failure. */
  message: string;
}

/** The rows the reference computes: all, or a seeded sample when all would cost too much. */
export function referenceRows(
  problem: Problem,
  options: CheckOptions = {},
): ReferenceRow[] | undefined {
  const perKeyCost = 2 * problem.numHeads * problem.headDim;
  const rowCost = (b: number) => (problem.cacheLens[b]! + problem.qLens[b]!) * perKeyCost;
  if (options.rowsPerRequest !== undefined) {
    return sampleReferenceRows(problem, {
      rowsPerRequest: Math.max(2, options.rowsPerRequest),
      seed: options.sampleSeed ?? 0,
    });
  }
  const budget = options.referenceBudget ?? 4e8;
  let all = 0;
  for (let b = 0; b < problem.batch; b++) all += problem.qLens[b]! * rowCost(b);
  if (all <= budget) return undefined;
  // The largest per-request row count whose sampled cost stays within the budget (at least 2).
  let k = 2;
  for (let next = 3; next <= 512; next++) {
    let cost = 0;
    for (let b = 0; b < problem.batch; b++) cost += Math.min(next, problem.qLens[b]!) * rowCost(b);
    if (cost > budget) break;
    k = next;
  }
  return sampleReferenceRows(problem, { rowsPerRequest: k, seed: options.sampleSeed ?? 0 });
}

function _checkAgainstExpected(
  outputs: PagedPrefillOutputs,
  problem: Problem,
  expected: ExpectedTensors,
): { output?: OutputCheck; pools?: PoolCheck } {
  const found: { output?: OutputCheck; pools?: PoolCheck } = {};
  if (expected.o) {
    const e = expected.o;
    if (e.dtype !== problem.qDtype) {
      throw new TypeError(
        `Cannot check o_expected: expected dtype ${problem.qDtype}, got ${e.dtype}`,
      );
    }
    const rows: ReferenceRow[] = [];
    for (let b = 0; b < problem.batch; b++) {
      for (let i = 0; i < problem.qLens[b]!; i++) {
        rows.push({ request: b, row: i, token: problem.qStarts[b]! + i });
      }
    }
    const values = decodeHalfArray(problem.qDtype, e.data as Uint16Array);
    if (values.length !== rows.length * problem.numHeads * problem.headDim) {
      throw new TypeError(
        `Cannot check o_expected: expected shape [${problem.totalQ}, ${problem.numHeads}, ${problem.headDim}], got [${
          e.shape.join(", ")
        }]`,
      );
    }
    found.output = compareOutput(outputs.o, { rows, o: values }, problem);
  }
  if (expected.kPages || expected.vPages) {
    found.pools = comparePools(
      outputs.kPages,
      outputs.vPages,
      expected.kPages ?? outputs.kPages,
      expected.vPages ?? outputs.vPages,
      problem,
    );
  }
  return found;
}

// The float64 reference of one inputs object, per sampled-row set: `verify` checks every kernel
// variant of a case against the same inputs, and the reference (seconds on the big rows) is
// the same for all of them. Keyed by object identity: inputs are never mutated (the op appends
// into GPU copies of the pools).
const _referenceCache = new WeakMap<
  PagedPrefillInputs,
  Map<string, {
    ref: ReturnType<typeof referenceAttention>;
    expectedPools: ReturnType<typeof referenceAppend>;
  }>
>();

function _reference(
  inputs: PagedPrefillInputs,
  problem: Problem,
  rows: ReturnType<typeof referenceRows>,
) {
  let byRows = _referenceCache.get(inputs);
  if (!byRows) _referenceCache.set(inputs, byRows = new Map());
  const key = JSON.stringify([problem, rows ?? null]);
  let hit = byRows.get(key);
  if (!hit) {
    hit = {
      ref: referenceAttention(inputs, problem, rows ? { rows } : {}),
      expectedPools: referenceAppend(inputs, problem),
    };
    byRows.set(key, hit);
  }
  return hit;
}

/** Checks the op's outputs for `inputs` against the reference (CPU only). */
export function checkOutputs(
  inputs: PagedPrefillInputs,
  problem: Problem,
  outputs: PagedPrefillOutputs,
  options: CheckOptions = {},
): CaseVerification {
  const rows = referenceRows(problem, options);
  const { ref, expectedPools } = _reference(inputs, problem, rows);
  const output = compareOutput(outputs.o, ref, problem);
  const pools = comparePools(
    outputs.kPages,
    outputs.vPages,
    expectedPools.kPages,
    expectedPools.vPages,
    problem,
  );
  const extra = options.expected ? _checkAgainstExpected(outputs, problem, options.expected) : {};
  const ok = output.ok && pools.ok && (extra.output?.ok ?? true) && (extra.pools?.ok ?? true);
  const parts = [`o: ${describeOutputCheck(output)}`, `pools: ${describePoolCheck(pools)}`];
  if (extra.output) parts.push(`o_expected: ${describeOutputCheck(extra.output)}`);
  if (extra.pools) parts.push(`pools_expected: ${describePoolCheck(extra.pools)}`);
  const result: CaseVerification = {
    ok,
    problem,
    totalRows: problem.totalQ,
    checkedRows: ref.rows.length,
    output,
    pools,
    message: parts.join("; "),
  };
  if (extra.output) result.expectedOutput = extra.output;
  if (extra.pools) result.expectedPools = extra.pools;
  return result;
}

/** Runs the op once on the GPU and verifies it; returns the outputs too. */
export async function verifyOnGpu(
  gpu: GpuContext,
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  options: CheckOptions & { kernel?: string } = {},
): Promise<
  {
    verification: CaseVerification;
    outputs: PagedPrefillOutputs;
    kernelKey: string;
    variant: string;
  }
> {
  const planned = await planPagedPrefill(
    gpu,
    inputs,
    params,
    options.kernel ? { kernel: options.kernel } : {},
  );
  try {
    const outputs = await runPlanned(gpu, planned, inputs);
    const verification = checkOutputs(inputs, planned.problem, outputs, options);
    return { verification, outputs, kernelKey: planned.plan.key, variant: planned.variant.name };
  } finally {
    planned.destroy();
  }
}

/**
 * Splits pool mismatches into appended slots and everything else: `{ appendExact,
 * poolUnchanged }` (both true when `verification.pools.ok`).
 */
export function poolVerdicts(
  inputs: PagedPrefillInputs,
  problem: Problem,
  outputs: PagedPrefillOutputs,
  verification: CaseVerification,
): { appendExact: boolean; poolUnchanged: boolean } {
  if (verification.pools.ok) return { appendExact: true, poolUnchanged: true };
  const expected = referenceAppend(inputs, problem);
  const appended = new Set<number>();
  const table = inputs.blockTable.data as Int32Array;
  for (let b = 0; b < problem.batch; b++) {
    for (let i = 0; i < problem.qLens[b]!; i++) {
      const p = problem.cacheLens[b]! + i;
      const page = table[b * problem.maxPagesPerReq + Math.floor(p / problem.pageSize)]!;
      appended.add(page * problem.pageSize + (p % problem.pageSize));
    }
  }
  const perToken = problem.numKvHeads * problem.headDim;
  let appendExact = true, poolUnchanged = true;
  for (
    const [a, e] of [[outputs.kPages, expected.kPages], [outputs.vPages, expected.vPages]] as const
  ) {
    const x = a.data, y = e.data;
    for (let j = 0; j < x.length; j++) {
      if (x[j] !== y[j]) {
        if (appended.has(Math.floor(j / perToken))) appendExact = false;
        else poolUnchanged = false;
      }
    }
  }
  return { appendExact, poolUnchanged };
}
