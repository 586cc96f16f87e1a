/**
 * Compares two bench reports workload by workload: results are matched by workload id and
 * kernel variant name; the ratio of median times and of TFLOP/s says whether a result got
 * slower (a regression past a threshold, 5% by default) or faster, and correctness changes
 * (ok -> failed, failed -> ok) are flagged.
 * @module
 */
import type { BenchReport, BenchResult } from "./schema.ts";
import { _check, _num } from "./_format.ts";
import { renderTextTable, type TableCell } from "./render_table.ts";
import { markdownTable } from "./render_markdown.ts";

/** Options of {@linkcode compareReports}. */
export interface CompareOptions {
  /** A result is a regression when its median time grew by more than this fraction. @default 0.05 */
  threshold?: number;
}

/** How a result moved from base to head. */
export type ComparisonStatus = "regression" | "improvement" | "unchanged" | "added" | "removed";

/** One matched (workload, kernel) of the comparison. */
export interface ComparisonRow {
  workloadId: string;
  label: string;
  /** Kernel variant name. */
  kernel: string;
  base: BenchResult | null;
  head: BenchResult | null;
  /** head median time / base median time (> 1: slower); null when unmatched. */
  timeRatio: number | null;
  /** head TFLOP/s / base TFLOP/s (< 1: slower); null when unmatched. */
  tflopsRatio: number | null;
  status: ComparisonStatus;
  /** "broken": was correct, now fails; "fixed": the other way; null otherwise. */
  correctnessChange: "broken" | "fixed" | null;
  /** Something else worth knowing: shape or kernel key changed, timing method differs. */
  notes: string[];
}

/** The comparison of two reports. */
export interface ReportComparison {
  threshold: number;
  base: { createdAt: string; adapter: string };
  head: { createdAt: string; adapter: string };
  /** True when the reports were made on different adapters (ratios then compare machines). */
  adapterChanged: boolean;
  rows: ComparisonRow[];
  regressions: number;
  improvements: number;
  /** Results that were correct in base and fail in head. */
  broken: number;
  fixed: number;
  /** No regression and nothing broken. */
  ok: boolean;
}

function _key(r: BenchResult): string {
  return `${r.workload.id}\u0000${r.kernel.name}`;
}

function _index(results: readonly BenchResult[]): Map<string, BenchResult> {
  const map = new Map<string, BenchResult>();
  for (const r of results) {
    let key = _key(r);
    // The same (workload, kernel) twice: keep both, matched in order.
    for (let n = 2; map.has(key); n++) key = `${_key(r)}\u0000${n}`;
    map.set(key, r);
  }
  return map;
}

function _sameShape(a: BenchResult, b: BenchResult): boolean {
  return JSON.stringify({ ...a.case, seed: undefined }) ===
    JSON.stringify({ ...b.case, seed: undefined });
}

/**
 * Compares `head` against `base`.
 *
 * @example
 * ```ts ignore
 * import { readReport } from "./schema.ts";
 * import { compareReports } from "./compare.ts";
 * const cmp = compareReports(await readReport("base.json"), await readReport("head.json"));
 * if (!cmp.ok) console.error(`${cmp.regressions} regression(s), ${cmp.broken} broken`);
 * ```
 */
export function compareReports(
  base: BenchReport,
  head: BenchReport,
  options: CompareOptions = {},
): ReportComparison {
  const threshold = options.threshold ?? 0.05;
  if (!(threshold >= 0) || !Number.isFinite(threshold)) {
    throw new RangeError(`Cannot compare reports as threshold must be >= 0, got ${threshold}`);
  }
  const baseIndex = _index(base.results);
  const headIndex = _index(head.results);
  const rows: ComparisonRow[] = [];
  const keys = [...baseIndex.keys(), ...[...headIndex.keys()].filter((k) => !baseIndex.has(k))];
  for (const key of keys) {
    const b = baseIndex.get(key) ?? null;
    const h = headIndex.get(key) ?? null;
    const any = (h ?? b)!;
    const notes: string[] = [];
    let timeRatio: number | null = null;
    let tflopsRatio: number | null = null;
    let status: ComparisonStatus;
    let correctnessChange: ComparisonRow["correctnessChange"] = null;
    if (b && h) {
      timeRatio = b.timing.median > 0 ? h.timing.median / b.timing.median : null;
      tflopsRatio = b.tflops > 0 ? h.tflops / b.tflops : null;
      if (timeRatio !== null && timeRatio > 1 + threshold) status = "regression";
      else if (timeRatio !== null && timeRatio < 1 / (1 + threshold)) status = "improvement";
      else status = "unchanged";
      if (b.correctness?.ok === true && h.correctness?.ok === false) correctnessChange = "broken";
      if (b.correctness?.ok === false && h.correctness?.ok === true) correctnessChange = "fixed";
      if (!_sameShape(b, h)) notes.push("shape changed");
      if (b.kernel.key !== h.kernel.key) notes.push(`key ${b.kernel.key} -> ${h.kernel.key}`);
      if (b.timing.method !== h.timing.method) {
        notes.push(`timing ${b.timing.method} -> ${h.timing.method}`);
      }
    } else {
      status = b ? "removed" : "added";
    }
    rows.push({
      workloadId: any.workload.id,
      label: any.workload.label,
      kernel: any.kernel.name,
      base: b,
      head: h,
      timeRatio,
      tflopsRatio,
      status,
      correctnessChange,
      notes,
    });
  }
  const regressions = rows.filter((r) => r.status === "regression").length;
  const broken = rows.filter((r) => r.correctnessChange === "broken").length;
  return {
    threshold,
    base: { createdAt: base.createdAt, adapter: base.environment.adapter.name },
    head: { createdAt: head.createdAt, adapter: head.environment.adapter.name },
    adapterChanged: base.environment.adapter.name !== head.environment.adapter.name,
    rows,
    regressions,
    improvements: rows.filter((r) => r.status === "improvement").length,
    broken,
    fixed: rows.filter((r) => r.correctnessChange === "fixed").length,
    ok: regressions === 0 && broken === 0,
  };
}

function _ratio(x: number | null): string {
  return x === null ? "-" : `${x.toFixed(3)}x`;
}

function _checks(row: ComparisonRow): string {
  const b = row.base ? _check(row.base.correctness) : "";
  const h = row.head ? _check(row.head.correctness) : "";
  if (!row.base) return h;
  if (!row.head) return b;
  return b === h ? h : `${b} -> ${h}`;
}

const HEADERS = [
  "workload",
  "kernel",
  "base ms",
  "head ms",
  "time ratio",
  "base TFLOP/s",
  "head TFLOP/s",
  "TFLOP/s ratio",
  "status",
  "check",
  "notes",
];

function _cells(row: ComparisonRow): string[] {
  return [
    row.label,
    row.kernel,
    row.base ? _num(row.base.timing.median) : "-",
    row.head ? _num(row.head.timing.median) : "-",
    _ratio(row.timeRatio),
    row.base ? _num(row.base.tflops) : "-",
    row.head ? _num(row.head.tflops) : "-",
    _ratio(row.tflopsRatio),
    row.correctnessChange === "broken" ? "BROKEN" : row.status,
    _checks(row),
    row.notes.join("; "),
  ];
}

function _summary(cmp: ReportComparison): string {
  const parts = [
    `${cmp.regressions} regression(s) (> ${_num(cmp.threshold * 100)}% slower)`,
    `${cmp.improvements} improvement(s)`,
    `${cmp.broken} broken`,
    `${cmp.fixed} fixed`,
  ];
  const adapters = cmp.adapterChanged
    ? `; adapters differ: ${cmp.base.adapter} -> ${cmp.head.adapter}`
    : "";
  return `${parts.join(", ")}${adapters}`;
}

/** Options of {@linkcode renderComparisonTable}. */
export interface RenderComparisonOptions {
  /** Emit ANSI colours. @default false */
  color?: boolean;
}

/**
 * The comparison as a terminal table with a summary line.
 *
 * @example
 * ```ts ignore
 * import { compareReports, renderComparisonTable } from "./compare.ts";
 * console.log(renderComparisonTable(compareReports(base, head), { color: true }));
 * ```
 */
export function renderComparisonTable(
  cmp: ReportComparison,
  options: RenderComparisonOptions = {},
): string {
  const rows: TableCell[][] = cmp.rows.map((row) => {
    const cells: TableCell[] = _cells(row);
    const bad = row.status === "regression" || row.correctnessChange === "broken";
    const good = row.status === "improvement" || row.correctnessChange === "fixed";
    cells[8] = { text: cells[8] as string, color: bad ? "red" : good ? "green" : "dim" };
    return cells;
  });
  const align = HEADERS.map((h) =>
    ["workload", "kernel", "status", "check", "notes"].includes(h) ? "left" : "right"
  ) as Array<"left" | "right">;
  return `base ${cmp.base.createdAt} (${cmp.base.adapter}) vs head ${cmp.head.createdAt} (${cmp.head.adapter})\n` +
    renderTextTable(HEADERS, rows, { align, color: options.color ?? false }) +
    `\n${_summary(cmp)}\n`;
}

/**
 * The comparison as Markdown.
 *
 * @example
 * ```ts ignore
 * import { compareReports, renderComparisonMarkdown } from "./compare.ts";
 * const md = renderComparisonMarkdown(compareReports(base, head));
 * ```
 */
export function renderComparisonMarkdown(cmp: ReportComparison): string {
  const align = HEADERS.map((h) =>
    ["workload", "kernel", "status", "check", "notes"].includes(h) ? "left" : "right"
  ) as Array<"left" | "right">;
  return [
    "# paged-prefill comparison",
    "",
    `- **Base:** ${cmp.base.createdAt} (${cmp.base.adapter})`,
    `- **Head:** ${cmp.head.createdAt} (${cmp.head.adapter})`,
    `- **Summary:** ${_summary(cmp)}`,
    "",
    markdownTable(HEADERS, cmp.rows.map(_cells), align),
  ].join("\n");
}
