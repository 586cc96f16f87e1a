/**
 * Terminal rendering of a bench report: aligned columns, colour only when asked (the CLI asks
 * unless `NO_COLOR` is set or stdout is not a terminal).
 * @module
 */
import { ceilingLines } from "./ceilings.ts";
import type { BenchReport } from "./schema.ts";
import {
  _ceilingValue,
  _check,
  _num,
  _pct,
  _percentColumns,
  _shape,
  _timingMethods,
  _variantFlags,
} from "./_format.ts";

/** Colours a cell may ask for. */
export type CellColor = "red" | "green" | "yellow" | "dim" | "bold";

/** A table cell: plain text, or text with a colour used only when colour is on. */
export type TableCell = string | { text: string; color?: CellColor };

/** Options of {@linkcode renderTextTable}. */
export interface TextTableOptions {
  /** Alignment per column. @default numbers right, text left (guessed from the first row) */
  align?: ReadonlyArray<"left" | "right">;
  /** Emit ANSI colours. @default false */
  color?: boolean;
}

const ANSI: Record<CellColor, string> = {
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  dim: "\x1b[2m",
  bold: "\x1b[1m",
};

function _text(cell: TableCell): string {
  return typeof cell === "string" ? cell : cell.text;
}

function _looksNumeric(s: string): boolean {
  return /^[-+]?[\d.]+(e[-+]?\d+)?\s*(%|x|ms|[kMGTP]?(B\/s|FLOP\/s))?$/.test(s.trim());
}

/**
 * Lays out rows under headers with every column as wide as its widest cell, two spaces between
 * columns, a rule under the header. Colour codes never count toward widths.
 *
 * @example
 * ```ts
 * import { renderTextTable } from "./render_table.ts";
 * renderTextTable(["name", "ms"], [["a", "1.5"], ["bb", "12.25"]]);
 * // "name     ms\n----  -----\na      1.5\nbb   12.25\n"
 * ```
 */
export function renderTextTable(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<TableCell>>,
  options: TextTableOptions = {},
): string {
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => _text(r[i] ?? "").length))
  );
  const align = headers.map((_, i) =>
    options.align?.[i] ??
      (rows.length > 0 && rows.every((r) => {
          const t = _text(r[i] ?? "");
          return t === "-" || t === "" || _looksNumeric(t);
        })
        ? "right"
        : "left")
  );
  const pad = (s: string, i: number) =>
    align[i] === "right" ? s.padStart(widths[i]!) : s.padEnd(widths[i]!);
  const line = (cells: ReadonlyArray<TableCell>) =>
    headers
      .map((_, i) => {
        const cell = cells[i] ?? "";
        const padded = pad(_text(cell), i);
        const color = typeof cell === "string" ? undefined : cell.color;
        return options.color && color ? `${ANSI[color]}${padded}\x1b[0m` : padded;
      })
      .join("  ")
      .trimEnd();
  const out = [line(headers), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of rows) out.push(line(r));
  return out.join("\n") + "\n";
}

/** Options of {@linkcode renderTable}. */
export interface RenderTableOptions {
  /** Emit ANSI colours (check column, bound). @default false */
  color?: boolean;
  /** Print the adapter and ceilings above the table. @default true */
  header?: boolean;
}

/**
 * The report as a terminal table: one row per result with shape, dtypes, median time, rates,
 * arithmetic intensity, % of each measured ceiling, efficiency, bound and correctness.
 *
 * @example
 * ```ts ignore
 * import { readReport } from "./schema.ts";
 * import { renderTable } from "./render_table.ts";
 * console.log(renderTable(await readReport("run.json"), { color: !Deno.env.get("NO_COLOR") }));
 * ```
 */
export function renderTable(report: BenchReport, options: RenderTableOptions = {}): string {
  const env = report.environment;
  const lines: string[] = [];
  if (options.header ?? true) {
    const api = env.apiBackend ? `/${env.apiBackend}` : "";
    lines.push(
      `adapter: ${env.adapter.name} (${env.backend}${api}), ${env.runtime.name} ${env.runtime.version} ${env.runtime.os}/${env.runtime.arch}`,
    );
    const ceilings = ceilingLines(env.ceilings.measured, env.ceilings.datasheet);
    if (ceilings.length > 0) {
      lines.push(
        `ceilings: ${ceilings.map((c) => `${c.label} ${_ceilingValue(c)}`).join(", ")}`,
      );
    } else {
      lines.push("ceilings: none measured");
    }
    if (report.results.length > 0) lines.push(`timing: ${_timingMethods(report.results)}`);
    lines.push("");
  }
  const pctIds = _percentColumns(report.results);
  const headers = [
    "workload",
    "kernel",
    "shape",
    "dtypes",
    "median ms",
    "p10-p90 ms",
    "TFLOP/s",
    "GB/s",
    "AI",
    ...pctIds.map((id) => `%${id === "bandwidth" ? "bw" : id}`),
    "eff",
    "bound",
    "check",
  ];
  const rows = report.results.map((r) => {
    const check = _check(r.correctness);
    return [
      r.workload.label,
      r.kernel.name,
      _shape(r.case),
      _variantFlags(r.case),
      _num(r.timing.median),
      `${_num(r.timing.p10)}-${_num(r.timing.p90)}`,
      _num(r.tflops),
      _num(r.gbps),
      _num(r.arithmeticIntensity),
      ...pctIds.map((id) => _pct(r.pctOfCeiling[id])),
      r.efficiency === null ? "-" : _pct(100 * r.efficiency),
      r.bound ?? "-",
      { text: check, color: check === "ok" ? "green" : check === "FAIL" ? "red" : "dim" } as const,
    ];
  });
  const align = headers.map((h) =>
    ["workload", "kernel", "shape", "dtypes", "bound", "check"].includes(h) ? "left" : "right"
  ) as Array<"left" | "right">;
  lines.push(renderTextTable(headers, rows, { align, color: options.color ?? false }).trimEnd());
  const failed = report.results.filter((r) => r.correctness && !r.correctness.ok);
  if (failed.length > 0) {
    lines.push("");
    for (const r of failed) {
      lines.push(`FAIL ${r.workload.label} [${r.kernel.name}]: ${r.correctness!.message}`);
    }
  }
  return lines.join("\n") + "\n";
}
