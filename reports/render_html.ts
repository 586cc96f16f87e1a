/**
 * A self-contained HTML page of a bench report: environment header, an SVG log-log roofline
 * (x: arithmetic intensity in FLOP/byte, y: TFLOP/s; measured ceilings solid, datasheet ones
 * dashed; one labelled point per result, coloured by correctness) and the results table.
 * Inline CSS, no scripts, no external assets.
 * @module
 */
import { type CeilingLine, ceilingLines } from "./ceilings.ts";
import type { BenchReport, BenchResult } from "./schema.ts";
import {
  _ceilingValue,
  _check,
  _checkDetail,
  _num,
  _pct,
  _percentColumns,
  _shape,
  _timingMethods,
  _variantFlags,
} from "./_format.ts";

/**
 * Escapes text for HTML element content and attribute values.
 *
 * @example
 * ```ts
 * import { escapeHtml } from "./render_html.ts";
 * escapeHtml(`<a href="x">&</a>`); // "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
 * ```
 */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const COLORS = {
  ok: "#2e7d32",
  fail: "#c62828",
  unchecked: "#757575",
  bandwidth: "#1565c0",
  f32: "#6a1b9a",
  f16: "#ef6c00",
  matrix: "#00838f",
};

/** Options of {@linkcode renderRooflineSvg}. */
export interface RooflineSvgOptions {
  /** @default 820 */
  width?: number;
  /** @default 500 */
  height?: number;
}

interface _Point {
  x: number;
  y: number;
  result: BenchResult;
  index: number;
}

function _decadeFloor(x: number): number {
  return 10 ** Math.floor(Math.log10(x));
}

function _decadeCeil(x: number): number {
  return 10 ** Math.ceil(Math.log10(x));
}

function _f(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function _tick(v: number): string {
  const k = Math.round(Math.log10(v));
  if (k < -3 || k > 4) return `1e${k}`;
  return k < 0 ? v.toFixed(-k) : String(Math.round(v));
}

/**
 * The roofline plot alone, as an `<svg>` element (for embedding).
 *
 * @example
 * ```ts ignore
 * import { renderRooflineSvg } from "./render_html.ts";
 * const svg = renderRooflineSvg(report);
 * ```
 */
export function renderRooflineSvg(report: BenchReport, options: RooflineSvgOptions = {}): string {
  const width = options.width ?? 820;
  const height = options.height ?? 500;
  const margin = { left: 72, right: 24, top: 24, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const env = report.environment;
  const lines = ceilingLines(env.ceilings.measured, env.ceilings.datasheet);
  const points: _Point[] = report.results
    .map((result, index) => ({ x: result.arithmeticIntensity, y: result.tflops, result, index }))
    .filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.x) && Number.isFinite(p.y));

  const bandwidthOf = (source: CeilingLine["source"]) =>
    lines.find((l) => l.kind === "bandwidth" && l.source === source)?.value;
  const computeLines = lines.filter((l) => l.kind === "compute");
  const bandwidthLines = lines.filter((l) => l.kind === "bandwidth");

  // Ranges: every point, every roof and every ridge point, with a margin of a factor of 2.
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  for (const c of computeLines) {
    ys.push(c.value / 1e12);
    const bw = bandwidthOf(c.source);
    if (bw) xs.push(c.value / bw);
  }
  if (xs.length === 0) xs.push(1);
  if (ys.length === 0) ys.push(1);
  const xMin = _decadeFloor(Math.min(...xs) / 2);
  const xMax = _decadeCeil(Math.max(...xs) * 2);
  const yMin = _decadeFloor(Math.min(...ys) / 4);
  const yMax = _decadeCeil(Math.max(...ys) * 2);
  const sx = (x: number) => margin.left + (plotW * Math.log10(x / xMin)) / Math.log10(xMax / xMin);
  const sy = (y: number) =>
    margin.top + plotH - (plotH * Math.log10(y / yMin)) / Math.log10(yMax / yMin);

  const svg: string[] = [];
  svg.push(
    `<svg class="roofline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Roofline plot">`,
  );
  svg.push(`<style>${SVG_CSS}</style>`);
  svg.push(
    `<defs><clipPath id="plot-area"><rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}"/></clipPath></defs>`,
  );
  svg.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="#fff" stroke="#999"/>`,
  );
  // Decade grid and tick labels.
  for (let v = xMin; v <= xMax * 1.0001; v *= 10) {
    const x = _f(sx(v));
    svg.push(
      `<line class="grid" x1="${x}" y1="${margin.top}" x2="${x}" y2="${margin.top + plotH}"/>`,
      `<text class="tick" x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${
        _tick(v)
      }</text>`,
    );
  }
  for (let v = yMin; v <= yMax * 1.0001; v *= 10) {
    const y = _f(sy(v));
    svg.push(
      `<line class="grid" x1="${margin.left}" y1="${y}" x2="${margin.left + plotW}" y2="${y}"/>`,
      `<text class="tick" x="${
        margin.left - 6
      }" y="${y}" text-anchor="end" dominant-baseline="middle">${_tick(v)}</text>`,
    );
  }
  svg.push(
    `<text class="axis" x="${margin.left + plotW / 2}" y="${
      height - 12
    }" text-anchor="middle">arithmetic intensity (FLOP/byte)</text>`,
    `<text class="axis" x="16" y="${
      margin.top + plotH / 2
    }" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotH / 2})">TFLOP/s</text>`,
  );

  // Ceilings: bandwidth slopes up to the highest roof of the same source, flat roofs from their
  // ridge point on. Datasheet lines dashed.
  svg.push(`<g clip-path="url(#plot-area)">`);
  for (const b of bandwidthLines) {
    const roofs = computeLines.filter((c) => c.source === b.source).map((c) => c.value);
    const top = roofs.length > 0 ? Math.max(...roofs) / 1e12 : yMax;
    const x0 = xMin;
    const x1 = Math.min(xMax, (top * 1e12) / b.value);
    const y0 = (b.value * x0) / 1e12;
    const dash = b.source === "datasheet" ? ` stroke-dasharray="6 4"` : "";
    svg.push(
      `<path class="ceiling" data-ceiling="${b.id}-${b.source}" d="M${_f(sx(x0))},${_f(sy(y0))} L${
        _f(sx(x1))
      },${_f(sy(top))}" stroke="${COLORS.bandwidth}"${dash}><title>${
        escapeHtml(`${b.label}: ${_ceilingValue(b)} (${b.detail})`)
      }</title></path>`,
    );
    // Label along the slope, a little below its upper end: measured under the line,
    // datasheet over it, so two nearby slopes keep their labels apart.
    const lx = Math.max(x0, x1 / 8);
    const ly = sy((b.value * lx) / 1e12) + (b.source === "measured" ? 13 : -6);
    const angle = (Math.atan2(sy(top) - sy(y0), sx(x1) - sx(x0)) * 180) / Math.PI;
    svg.push(
      `<text class="ceiling-label" x="${_f(sx(lx))}" y="${_f(ly)}" transform="rotate(${
        angle.toFixed(1)
      } ${_f(sx(lx))} ${_f(ly)})" fill="${COLORS.bandwidth}">${
        escapeHtml(`${b.label} ${_ceilingValue(b)}`)
      }</text>`,
    );
  }
  // Roof labels at the right end, highest first, pushed down where they would overlap.
  const roofLabels: string[] = [];
  let lastLabelY = -Infinity;
  for (const c of [...computeLines].sort((a, b) => b.value - a.value)) {
    const labelY = Math.max(sy(c.value / 1e12) - 5, lastLabelY + 13);
    lastLabelY = labelY;
    roofLabels.push(
      `<text class="ceiling-label" x="${_f(sx(xMax) - 4)}" y="${
        _f(labelY)
      }" text-anchor="end" fill="${COLORS[c.id]}">${
        escapeHtml(`${c.label} ${_ceilingValue(c)}`)
      }</text>`,
    );
  }
  for (const c of computeLines) {
    const bw = bandwidthOf(c.source);
    const y = c.value / 1e12;
    const x0 = bw ? Math.max(xMin, c.value / bw) : xMin;
    const color = COLORS[c.id];
    const dash = c.source === "datasheet" ? ` stroke-dasharray="6 4"` : "";
    svg.push(
      `<path class="ceiling" data-ceiling="${c.id}-${c.source}" d="M${_f(sx(x0))},${_f(sy(y))} L${
        _f(sx(xMax))
      },${_f(sy(y))}" stroke="${color}"${dash}><title>${
        escapeHtml(`${c.label}: ${_ceilingValue(c)} (${c.detail})`)
      }</title></path>`,
    );
  }
  svg.push(...roofLabels, `</g>`);

  // Points, labels staggered where they would collide.
  const placed: Array<{ x: number; y: number }> = [];
  const multiKernel = new Set(report.results.map((r) => r.kernel.name)).size > 1;
  // Past a dozen points full labels pile up: label each with its number in the table below
  // (the full name stays in the point's tooltip).
  const shortLabels = points.length > 12;
  for (const p of points) {
    const check = _check(p.result.correctness);
    const color = check === "ok" ? COLORS.ok : check === "FAIL" ? COLORS.fail : COLORS.unchecked;
    const cx = sx(p.x);
    const cy = sy(p.y);
    let ly = cy - 8;
    const reach = shortLabels ? 18 : 120;
    while (placed.some((q) => Math.abs(q.x - cx) < reach && Math.abs(q.y - ly) < 12)) ly += 13;
    placed.push({ x: cx, y: ly });
    const fullLabel = `${p.index + 1}. ${p.result.workload.label}${
      multiKernel ? ` [${p.result.kernel.name}]` : ""
    }`;
    const label = shortLabels ? String(p.index + 1) : fullLabel;
    const tip = `${fullLabel}: ${_num(p.result.tflops)} TFLOP/s at AI ${
      _num(p.result.arithmeticIntensity)
    }, median ${_num(p.result.timing.median)} ms, ${check}`;
    // Labels that would run past the right edge go to the left of their point (11px text is
    // about 6.2px per character).
    const leftward = cx + 8 + label.length * 6.2 > margin.left + plotW;
    const anchor = leftward ? ` text-anchor="end"` : "";
    svg.push(
      `<circle class="point" cx="${_f(cx)}" cy="${
        _f(cy)
      }" r="5" fill="${color}" data-check="${check}"><title>${escapeHtml(tip)}</title></circle>`,
      `<text class="point-label" x="${_f(leftward ? cx - 8 : cx + 8)}" y="${_f(ly)}"${anchor}>${
        escapeHtml(label)
      }</text>`,
    );
  }
  svg.push(`</svg>`);
  return svg.join("\n");
}

const SVG_CSS = `
svg.roofline { background: #fff; border: 1px solid #ddd; }
svg.roofline .grid { stroke: #eee; }
svg.roofline .tick { font-size: 11px; fill: #555; }
svg.roofline .axis { font-size: 13px; fill: #222; }
svg.roofline .ceiling { fill: none; stroke-width: 2; }
svg.roofline .ceiling-label, svg.roofline .point-label {
  font-size: 11px; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round;
}
svg.roofline .point { stroke: #fff; stroke-width: 1; }
svg.roofline .point-label { fill: #333; }
`;

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
dl.env { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dl.env dt { font-weight: 600; }
dl.env dd { margin: 0; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; }
td.num { text-align: right; }
td.ok { color: ${COLORS.ok}; font-weight: 600; }
td.fail { color: ${COLORS.fail}; font-weight: 600; }
td.unchecked { color: ${COLORS.unchecked}; }
.legend span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
ul.checks li.fail { color: ${COLORS.fail}; }
`;

function _tableHtml(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<{ text: string; cls?: string }>>,
): string {
  const head = `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>`;
  const body = rows
    .map((r) =>
      `<tr>${
        r.map((c) => `<td${c.cls ? ` class="${c.cls}"` : ""}>${escapeHtml(c.text)}</td>`).join("")
      }</tr>`
    )
    .join("\n");
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** Options of {@linkcode renderHtml}. */
export interface RenderHtmlOptions {
  /** Page title. @default "paged-prefill bench report" */
  title?: string;
}

/**
 * The report as one self-contained HTML page.
 *
 * @example
 * ```ts ignore
 * import { readReport } from "./schema.ts";
 * import { renderHtml } from "./render_html.ts";
 * const html = renderHtml(await readReport("run.json"));
 * ```
 */
export function renderHtml(report: BenchReport, options: RenderHtmlOptions = {}): string {
  const title = options.title ?? "paged-prefill bench report";
  const env = report.environment;
  const api = env.apiBackend ? ` / ${env.apiBackend}` : "";
  const envRows: Array<[string, string]> = [
    ["Adapter", `${env.adapter.name} (${env.backend}${api})`],
    [
      "Runtime",
      `${env.runtime.name} ${env.runtime.version}, ${env.runtime.os}/${env.runtime.arch}`,
    ],
    ["Features", env.features.length > 0 ? env.features.join(", ") : "none"],
    ...(env.backendOptions
      ? [["Backend options", env.backendOptions.join(" ")] as [string, string]]
      : []),
    ["Created", report.createdAt],
  ];
  if (report.command.length > 0) envRows.push(["Command", report.command.join(" ")]);
  if (report.results.length > 0) envRows.push(["Timing", _timingMethods(report.results)]);

  const lines = ceilingLines(env.ceilings.measured, env.ceilings.datasheet);
  const ceilingTable = lines.length > 0
    ? _tableHtml(
      ["ceiling", "source", "value", "from"],
      lines.map((l) => [
        { text: l.id },
        { text: l.source },
        { text: _ceilingValue(l), cls: "num" },
        { text: l.detail },
      ]),
    )
    : "<p>No ceilings measured.</p>";
  const datasheet = env.ceilings.datasheet
    ? `<p>Datasheet: ${escapeHtml(env.ceilings.datasheet.source)}.</p>`
    : "";

  const pctIds = _percentColumns(report.results);
  const headers = [
    "#",
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
    "correctness",
  ];
  const rows = report.results.map((r, i) => {
    const check = _check(r.correctness);
    const num = (text: string) => ({ text, cls: "num" });
    return [
      num(String(i + 1)),
      { text: r.workload.label },
      { text: r.kernel.key },
      { text: _shape(r.case) },
      { text: _variantFlags(r.case) },
      num(_num(r.timing.median)),
      num(_num(r.timing.p10)),
      num(_num(r.timing.p90)),
      num(_num(r.tflops)),
      num(_num(r.gbps)),
      num(_num(r.arithmeticIntensity)),
      ...pctIds.map((id) => num(_pct(r.pctOfCeiling[id]))),
      num(r.efficiency === null ? "-" : _pct(100 * r.efficiency)),
      { text: r.bound ?? "-" },
      { text: check, cls: check === "ok" ? "ok" : check === "FAIL" ? "fail" : "unchecked" },
      {
        text: r.correctness && !r.correctness.ok
          ? `${r.correctness.message}`
          : _checkDetail(r.correctness),
      },
    ];
  });
  const unplotted = report.results.filter((r) => !(r.tflops > 0 && r.arithmeticIntensity > 0));
  const legend = `<p class="legend">` +
    `<span><i class="swatch" style="background:${COLORS.ok}"></i>correct</span>` +
    `<span><i class="swatch" style="background:${COLORS.fail}"></i>failed check</span>` +
    `<span><i class="swatch" style="background:${COLORS.unchecked}"></i>not checked</span>` +
    `<span>solid: measured ceilings; dashed: datasheet</span></p>`;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<dl class="env">
${envRows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("\n")}
</dl>
<h2>Ceilings</h2>
${ceilingTable}
${datasheet}
<h2>Roofline</h2>
${renderRooflineSvg(report)}
${legend}
${
    unplotted.length > 0
      ? `<p>Not plotted (no rate): ${
        escapeHtml(unplotted.map((r) => r.workload.label).join(", "))
      }.</p>`
      : ""
  }
<h2>Results</h2>
${report.results.length > 0 ? _tableHtml(headers, rows) : "<p>No results.</p>"}
</body>
</html>
`;
}
