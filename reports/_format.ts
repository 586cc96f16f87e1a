/**
 * Number and cell formatting shared by the renderers (private to reports/).
 * @module
 */
import type { CeilingLine } from "./ceilings.ts";
import type { BenchResult, CaseShape, Correctness } from "./schema.ts";

const SI = [
  { p: 1e15, s: "P" },
  { p: 1e12, s: "T" },
  { p: 1e9, s: "G" },
  { p: 1e6, s: "M" },
  { p: 1e3, s: "k" },
  { p: 1, s: "" },
];

/** Three significant digits, no exponent for everyday magnitudes: 1234 -> "1234", 0.01234 -> "0.0123". */
export function _num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const abs = Math.abs(x);
  if (abs >= 10 ** digits) return Math.round(x).toString();
  if (abs < 1e-4) return x.toExponential(digits - 1);
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
  return x.toFixed(decimals);
}

/** A rate with an SI prefix: 2.09e10 B/s -> "20.9 GB/s". */
export function _si(x: number | null | undefined, unit: string): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  const abs = Math.abs(x);
  const prefix = SI.find((p) => abs >= p.p) ?? SI[SI.length - 1]!;
  return `${_num(x / prefix.p)} ${prefix.s}${unit}`;
}

/** A percentage: 37.21 -> "37.2%". */
export function _pct(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "-" : `${_num(x)}%`;
}

function _range(values: readonly number[]): string {
  if (values.length === 0) return "0";
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** Shape in one cell: "B1 q512 old4096 H32/8 D128 p64" (ranges for varlen batches). */
export function _shape(c: CaseShape): string {
  return `B${c.batch} q${_range(c.qLens)} old${
    _range(c.cacheLens)
  } H${c.numHeads}/${c.numKvHeads} D${c.headDim} p${c.pageSize}`;
}

/** Dtypes and flags in one cell: "f16/fp8_e4m3 causal permuted softcap50". */
export function _variantFlags(c: CaseShape): string {
  const parts = [`${c.qDtype}/${c.cacheDtype}`, c.isCausal ? "causal" : "non-causal"];
  if (c.pageOrder !== "contiguous") parts.push(c.pageOrder);
  if (c.softcap > 0) parts.push(`softcap${Number(c.softcap.toPrecision(6))}`);
  return parts.join(" ");
}

/** "ok", "FAIL" or "-" (not checked). */
export function _check(c: Correctness | null): string {
  if (!c) return "-";
  return c.ok ? "ok" : "FAIL";
}

/** An error metric: 4.9e-4 -> "4.90e-4", 0 -> "0". */
export function _err(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  return x === 0 ? "0" : x.toExponential(2).replace("e+", "e");
}

/** Correctness detail: rows checked and the largest errors. */
export function _checkDetail(c: Correctness | null): string {
  if (!c) return "not checked";
  return `${c.checkedRows}/${c.totalRows} rows, max abs ${_err(c.maxAbsErr)}, max rel ${
    _err(c.maxRelErr)
  }, rel L2 ${_err(c.relL2Err)}, append ${c.appendExact ? "exact" : "WRONG"}, pools ${
    c.poolUnchanged ? "unchanged" : "CHANGED"
  }`;
}

/** Value of a ceiling line with its unit. */
export function _ceilingValue(line: CeilingLine): string {
  return line.kind === "bandwidth" ? _si(line.value, "B/s") : _si(line.value, "FLOP/s");
}

/** Which ceiling percentages any result has, in a fixed order. */
export function _percentColumns(
  results: readonly BenchResult[],
): Array<"bandwidth" | "f32" | "f16" | "matrix"> {
  const ids = ["bandwidth", "f32", "f16", "matrix"] as const;
  return ids.filter((id) => results.some((r) => r.pctOfCeiling[id] !== undefined));
}

/** Timing methods of the results, for a header line. */
export function _timingMethods(results: readonly BenchResult[]): string {
  const methods = [...new Set(results.map((r) => r.timing.method))];
  return methods
    .map((m) => (m === "timestamp" ? "GPU timestamps" : "wall clock (submit to completion)"))
    .join(" and ");
}
