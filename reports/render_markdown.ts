/**
 * Markdown rendering of a bench report: environment, ceilings (measured and datasheet, with
 * their source), results table and failed checks.
 * @module
 */
import { ceilingLines } from "./ceilings.ts";
import type { BenchReport } from "./schema.ts";
import {
  _ceilingValue,
  _check,
  _checkDetail,
  _num,
  _pct,
  _percentColumns,
  _shape,
  _si,
  _timingMethods,
  _variantFlags,
} from "./_format.ts";

/**
 * Escapes text for a Markdown table cell: backslashes, pipes, newlines, and `<` `>` (which
 * GitHub would take for HTML tags and hide).
 *
 * @example
 * ```ts
 * import { escapeMarkdownCell } from "./render_markdown.ts";
 * escapeMarkdownCell("a|b <c>"); // "a\\|b &lt;c&gt;"
 * ```
 */
export function escapeMarkdownCell(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/\|/g, "\\|")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/\r?\n/g, " ");
}

/**
 * A GitHub-flavoured Markdown table; `align` per column ("right" for numbers).
 *
 * @example
 * ```ts
 * import { markdownTable } from "./render_markdown.ts";
 * markdownTable(["a", "b"], [["x", "1"]], ["left", "right"]);
 * // "| a | b |\n| :-- | --: |\n| x | 1 |\n"
 * ```
 */
export function markdownTable(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string>>,
  align: ReadonlyArray<"left" | "right"> = [],
): string {
  const row = (cells: ReadonlyArray<string>) =>
    `| ${headers.map((_, i) => escapeMarkdownCell(cells[i] ?? "")).join(" | ")} |`;
  const rule = `| ${headers.map((_, i) => (align[i] === "right" ? "--:" : ":--")).join(" | ")} |`;
  return [row(headers), rule, ...rows.map(row)].join("\n") + "\n";
}

/** Options of {@linkcode renderMarkdown}. */
export interface RenderMarkdownOptions {
  /** Top heading. @default "paged-prefill bench report" */
  title?: string;
}

/**
 * The report as Markdown.
 *
 * @example
 * ```ts ignore
 * import { readReport } from "./schema.ts";
 * import { renderMarkdown } from "./render_markdown.ts";
 * const md = renderMarkdown(await readReport("run.json"));
 * ```
 */
export function renderMarkdown(report: BenchReport, options: RenderMarkdownOptions = {}): string {
  const env = report.environment;
  const out: string[] = [];
  out.push(`# ${options.title ?? "paged-prefill bench report"}`, "");
  const api = env.apiBackend ? ` / ${env.apiBackend}` : "";
  out.push(
    `- **Adapter:** ${env.adapter.name} (${env.backend}${api})`,
    `- **Runtime:** ${env.runtime.name} ${env.runtime.version}, ${env.runtime.os}/${env.runtime.arch}`,
    `- **Features:** ${env.features.length > 0 ? env.features.join(", ") : "none"}`,
    `- **Created:** ${report.createdAt}`,
  );
  if (env.backendOptions) {
    out.push(`- **Backend options:** \`${env.backendOptions.join(" ")}\``);
  }
  if (report.command.length > 0) out.push(`- **Command:** \`${report.command.join(" ")}\``);
  if (report.results.length > 0) out.push(`- **Timing:** ${_timingMethods(report.results)}`);
  out.push("", "## Ceilings", "");
  const lines = ceilingLines(env.ceilings.measured, env.ceilings.datasheet);
  if (lines.length === 0) {
    out.push("No ceilings measured.");
  } else {
    out.push(
      markdownTable(
        ["ceiling", "source", "value", "from"],
        lines.map((l) => [l.id, l.source, _ceilingValue(l), l.detail]),
        ["left", "left", "right", "left"],
      ).trimEnd(),
    );
    const m = env.ceilings.measured;
    if (m) {
      out.push(
        "",
        `Measured ${m.measuredAt}${m.quick ? " (quick)" : ""} with ${
          m.timing === "timestamp" ? "GPU timestamps" : "wall clock"
        }; every form:`,
        "",
      );
      const forms = [
        ...m.bandwidth.forms.map((f) => ({ id: "bandwidth", f, unit: "B/s" })),
        ...m.f32.forms.map((f) => ({ id: "f32", f, unit: "FLOP/s" })),
        ...(m.f16?.forms ?? []).map((f) => ({ id: "f16", f, unit: "FLOP/s" })),
      ];
      out.push(
        markdownTable(
          ["ceiling", "form", "best", "median", "best ms"],
          forms.map(({ id, f, unit }) => [
            id,
            f.name,
            f.error ? `failed: ${f.error}` : _si(f.value, unit),
            f.error ? "-" : _si(f.medianValue, unit),
            f.error ? "-" : _num(f.bestMs),
          ]),
          ["left", "left", "right", "right", "right"],
        ).trimEnd(),
      );
    }
    if (env.ceilings.datasheet) {
      out.push("", `Datasheet: ${env.ceilings.datasheet.source}.`);
    }
  }
  out.push("", "## Results", "");
  if (report.results.length === 0) {
    out.push("No results.");
  } else {
    const pctIds = _percentColumns(report.results);
    const headers = [
      "workload",
      "kernel",
      "shape",
      "dtypes",
      "median ms",
      "p10 ms",
      "p90 ms",
      "TFLOP/s",
      "GB/s",
      "AI",
      ...pctIds.map((id) => `% ${id}`),
      "efficiency",
      "bound",
      "check",
    ];
    const rows = report.results.map((r) => [
      r.workload.label,
      `${r.kernel.name}`,
      _shape(r.case),
      _variantFlags(r.case),
      _num(r.timing.median),
      _num(r.timing.p10),
      _num(r.timing.p90),
      _num(r.tflops),
      _num(r.gbps),
      _num(r.arithmeticIntensity),
      ...pctIds.map((id) => _pct(r.pctOfCeiling[id])),
      r.efficiency === null ? "-" : _pct(100 * r.efficiency),
      r.bound ?? "-",
      _check(r.correctness),
    ]);
    const align = headers.map((h) =>
      ["workload", "kernel", "shape", "dtypes", "bound", "check"].includes(h) ? "left" : "right"
    ) as Array<"left" | "right">;
    out.push(markdownTable(headers, rows, align).trimEnd());
    const declined = report.results.flatMap((r) =>
      (r.kernel.declined ?? []).map((d) =>
        `- ${escapeMarkdownCell(r.workload.label)} [${r.kernel.name}]: **${d.name}** declined: ${
          escapeMarkdownCell(d.reason)
        }`
      )
    );
    if (declined.length > 0) out.push("", "## Kernels that declined a row", "", ...declined);
    out.push("", "## Correctness", "");
    for (const r of report.results) {
      const status = _check(r.correctness);
      const message = r.correctness && !r.correctness.ok ? ` — ${r.correctness.message}` : "";
      out.push(
        `- **${status}** ${escapeMarkdownCell(r.workload.label)} [${r.kernel.key}]: ${
          _checkDetail(r.correctness)
        }${message}`,
      );
    }
  }
  return out.join("\n") + "\n";
}
