/**
 * `paged-prefill report A.json [B.json]`: renders a bench report (validated on read) as a
 * table, Markdown or HTML; with two reports, compares them workload by workload and exits 1 on
 * a regression or a result that went from correct to wrong.
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import {
  type BenchReport,
  type BenchResult,
  readReport,
  writeReport,
} from "../../reports/schema.ts";
import { renderTable } from "../../reports/render_table.ts";
import { renderMarkdown } from "../../reports/render_markdown.ts";
import { renderHtml } from "../../reports/render_html.ts";
import {
  compareReports,
  renderComparisonMarkdown,
  renderComparisonTable,
} from "../../reports/compare.ts";
import { ExitCode, UsageError } from "../errors.ts";
import { out } from "../output.ts";
import { useColor } from "../output.ts";
import { writeTextFile } from "../runtime.ts";
import { choiceFlag, numberFlag } from "../parse.ts";

/** Flags of `report`. */
export interface ReportFlags {
  format?: "table" | "md" | "html";
  md?: string;
  html?: string;
  threshold?: number;
  merge?: string;
}

/**
 * One report holding the results of several runs on the same adapter (a long `bench --all`
 * split over several calls): the environment of the first, results in order, the commands
 * joined. A workload timed again with the same kernel in a later report replaces the earlier
 * result, in the earlier one's place. Each result keeps its percentages of the ceilings measured
 * in its own run.
 */
export function mergeReports(
  reports: readonly BenchReport[],
  names: readonly string[],
): BenchReport {
  const first = reports[0]!;
  reports.forEach((r, i) => {
    if (
      r.environment.adapter.name !== first.environment.adapter.name ||
      r.environment.backend !== first.environment.backend
    ) {
      throw new UsageError(
        `Cannot merge ${
          names[i]
        }: adapter ${r.environment.adapter.name} (${r.environment.backend}) differs from ${first.environment.adapter.name} (${first.environment.backend}) of ${
          names[0]
        }`,
      );
    }
  });
  const results = new Map<string, BenchResult>();
  for (const r of reports) {
    for (const result of r.results) {
      results.set(`${result.workload.id}\u0000${result.kernel.name}`, result);
    }
  }
  return {
    ...first,
    command: reports.flatMap((r, i) => (i === 0 ? r.command : [";", ...r.command])),
    results: [...results.values()],
  };
}

/** Builds the `report` command. */
export function reportCommand(setExit: (code: number) => void) {
  return new Command("report")
    .description("render a bench report, or compare two (base, head)")
    .argument(
      "<reports...>",
      "bench report JSON; two: base and head to compare; with --merge: any number",
    )
    .addOption(
      new Option("--format <format>", "stdout format: table, md or html")
        .argParser(choiceFlag("--format", ["table", "md", "html"] as const)),
    )
    .option("--md <file>", "also write Markdown")
    .option("--html <file>", "also write HTML (single report)")
    .option("--merge <file>", "merge the reports' results (same adapter) into one report file")
    .option(
      "--threshold <fraction>",
      "regression threshold on median time (default 0.05)",
      numberFlag("--threshold"),
    )
    .action(async (paths, flags) => {
      const f = flags as unknown as ReportFlags;
      const format = f.format ?? "table";
      if (f.merge) {
        const merged = mergeReports(await Promise.all(paths.map((p) => readReport(p))), paths);
        await writeReport(f.merge, merged);
        out(renderTable(merged, { color: useColor() }));
        if (f.md) await writeTextFile(f.md, renderMarkdown(merged));
        if (f.html) await writeTextFile(f.html, renderHtml(merged));
        setExit(ExitCode.ok);
        return;
      }
      if (paths.length > 2) {
        throw new UsageError(
          `Cannot read ${paths.length} reports: give one to render, two to compare, or --merge`,
        );
      }
      const [basePath, headPath] = paths as [string, string | undefined];
      const base = await readReport(basePath);
      if (headPath === undefined) {
        const text = format === "md"
          ? renderMarkdown(base)
          : format === "html"
          ? renderHtml(base)
          : renderTable(base, { color: useColor() });
        out(text);
        if (f.md) await writeTextFile(f.md, renderMarkdown(base));
        if (f.html) await writeTextFile(f.html, renderHtml(base));
        setExit(ExitCode.ok);
        return;
      }
      const head = await readReport(headPath);
      const cmp = compareReports(
        base,
        head,
        f.threshold !== undefined ? { threshold: f.threshold } : {},
      );
      out(
        format === "md"
          ? renderComparisonMarkdown(cmp)
          : renderComparisonTable(cmp, { color: useColor() }),
      );
      if (f.md) await writeTextFile(f.md, renderComparisonMarkdown(cmp));
      setExit(cmp.ok ? ExitCode.ok : ExitCode.checkFailed);
    }) as unknown as Command<[], Record<string, unknown>>;
}
