import assert from "node:assert/strict";
import { datasheetFor } from "./ceilings.ts";
import { renderHtml, renderRooflineSvg } from "./render_html.ts";
import { markdownTable, renderMarkdown } from "./render_markdown.ts";
import { renderTable, renderTextTable } from "./render_table.ts";
import { _syntheticReport } from "./_test_fixtures.ts";

const ESC = "\x1b[";

Deno.test("renderTextTable() pads columns to the widest cell and right-aligns numbers", () => {
  const out = renderTextTable(["name", "ms"], [["a", "1.5"], ["bb", "12.25"]]);
  assert.equal(out, "name     ms\n----  -----\na       1.5\nbb    12.25\n");
  const colored = renderTextTable(["x"], [[{ text: "ok", color: "green" }]], { color: true });
  assert.ok(colored.includes(`${ESC}32mok`));
  assert.ok(!renderTextTable(["x"], [[{ text: "ok", color: "green" }]]).includes(ESC));
});

Deno.test("renderTable() shows every column, one aligned row per result", () => {
  const report = _syntheticReport();
  const out = renderTable(report);
  const lines = out.split("\n");
  assert.match(lines[0]!, /^adapter: llvmpipe .*\(deno\/vulkan\), deno 2\.9\.6 linux\/x86_64$/);
  assert.match(lines[1]!, /bandwidth \(measured\) 20\.0 GB\/s, f32 \(measured\) 32\.0 GFLOP\/s/);
  assert.match(lines[2]!, /timing: GPU timestamps/);
  const headerIndex = lines.findIndex((l) => l.startsWith("workload"));
  const header = lines[headerIndex]!;
  const columns = header.split(/ {2,}/);
  assert.deepEqual(columns, [
    "workload",
    "kernel",
    "shape",
    "dtypes",
    "median ms",
    "p10-p90 ms",
    "TFLOP/s",
    "GB/s",
    "AI",
    "%bw",
    "%f32",
    "%f16",
    "eff",
    "bound",
    "check",
  ]);
  const rule = lines[headerIndex + 1]!;
  assert.match(rule, /^-+( {2}-+)+$/);
  const rows = lines.slice(headerIndex + 2, headerIndex + 5);
  assert.equal(rows.length, 3);
  // Every column starts where its rule starts.
  const starts = [...rule.matchAll(/-+/g)].map((m) => m.index!);
  assert.equal(starts.length, columns.length);
  for (const row of rows) {
    assert.equal(row.split(/ {2,}/).length, columns.length, row);
    assert.match(row.slice(starts[14]!), /^(ok|FAIL|-)$/);
    assert.match(row.slice(starts[1]!, starts[2]!).trim(), /^(flash|simple)$/);
  }
  assert.match(
    rows[0]!,
    /^llama-3\.1-8b <pg64> +flash +B1 q512 old4096 H32\/8 D128 p64 +f16\/f16 causal/,
  );
  assert.match(
    rows[0]!,
    /2400 +2362-2491 +0\.0152 +0\.0122 +1244 +0\.0612% +47\.5% +127% +47\.5% +compute +ok$/,
  );
  assert.match(rows[1]!, /f16\/fp8_e4m3 causal permuted softcap50/);
  assert.match(rows[2]!, /B3 q128-512 old2048-8192 .* non-causal .* -$/);
  // The failed check is spelled out under the table; no colour unless asked.
  assert.match(out, /FAIL gqa-softcap50-b4 & fp8 \[flash\]: request 2 head 3 token 17/);
  assert.ok(!out.includes(ESC));
  const colored = renderTable(report, { color: true });
  assert.ok(colored.includes(`${ESC}32mok`));
  assert.ok(colored.includes(`${ESC}31mFAIL`));
});

Deno.test("renderMarkdown() writes environment, ceilings with every form, results and checks", () => {
  const md = renderMarkdown(_syntheticReport());
  assert.match(md, /^# paged-prefill bench report\n/);
  assert.match(md, /- \*\*Adapter:\*\* llvmpipe .* \(deno \/ vulkan\)/);
  assert.match(md, /\| bandwidth \| measured \| 20\.0 GB\/s \| copyBufferToBuffer \|/);
  assert.match(md, /\| f32 \| fma-vec4-rolled-wg256 \| 21\.0 GFLOP\/s \|/);
  const resultRows = md.split("\n").filter((l) =>
    l.startsWith("| ") && / \| (ok|FAIL|-) \|$/.test(l)
  );
  assert.equal(resultRows.length, 3);
  assert.match(md, /- \*\*FAIL\*\* gqa-softcap50-b4 & fp8 .* — request 2 head 3/);
  assert.doesNotMatch(md, /declined/);
  const report = _syntheticReport();
  report.results[0]!.kernel.declined = [{ name: "mma", reason: "q is bf16 and q[0][1] is 65536" }];
  assert.match(
    renderMarkdown(report),
    /## Kernels that declined a row\n\n- .* \[.*\]: \*\*mma\*\* declined: q is bf16 and q\[0\]\[1\] is 65536\n/,
  );
  assert.equal(
    markdownTable(["a|b"], [["x|y\nz"]]),
    "| a\\|b |\n| :-- |\n| x\\|y z |\n",
  );
});

/** Checks that every non-void element is closed in order. */
function assertBalanced(html: string): void {
  const voids = new Set(["meta", "br", "hr", "img", "input", "link"]);
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*?)(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    const tag = name!.toLowerCase();
    if (voids.has(tag) || selfClose) continue;
    if (close) {
      assert.equal(stack.pop(), tag, `</${tag}> closes <${stack.at(-1)}>`);
    } else stack.push(tag);
  }
  assert.deepEqual(stack, []);
}

Deno.test("renderHtml() is one self-contained page with an SVG roofline of every result", () => {
  const report = _syntheticReport();
  const html = renderHtml(report);
  assert.match(html, /^<!doctype html>\n<html lang="en">/);
  assert.equal(html.match(/<svg\b/g)?.length, 1);
  assertBalanced(html.replace(/<!doctype html>/, ""));
  // One point per result, coloured by its check, with its label.
  assert.equal(html.match(/<circle\b/g)?.length, 3);
  assert.equal(html.match(/data-check="ok"/g)?.length, 1);
  assert.equal(html.match(/data-check="FAIL"/g)?.length, 1);
  assert.equal(html.match(/data-check="-"/g)?.length, 1);
  assert.match(
    html,
    /<text class="point-label"[^>]*>1\. llama-3\.1-8b &lt;pg64&gt; \[flash\]<\/text>/,
  );
  assert.match(html, />2\. gqa-softcap50-b4 &amp; fp8 \[flash\]</);
  assert.match(html, />3\. qwen35-9b-mixed \[simple\]</);
  // Measured roofs solid: bandwidth slope and f32/f16 roofs.
  for (const id of ["bandwidth-measured", "f32-measured", "f16-measured"]) {
    assert.match(
      html,
      new RegExp(`<path class="ceiling" data-ceiling="${id}" d="M[\\d.]+,[\\d.]+ L`),
    );
  }
  assert.doesNotMatch(html, /stroke-dasharray="6 4"/);
  // Nothing external: no URLs, scripts, links or sources.
  assert.doesNotMatch(html, /https?:|\/\/[a-z]|<script|<link|\bsrc=|@import/i);
  assert.match(html, /<td class="fail">FAIL<\/td>/);
  assert.match(html, /<dt>Adapter<\/dt><dd>llvmpipe/);
});

Deno.test("renderRooflineSvg() draws datasheet ceilings dashed beside the measured ones", () => {
  const report = _syntheticReport();
  report.environment.ceilings.datasheet = datasheetFor("NVIDIA H200");
  const svg = renderRooflineSvg(report);
  assert.match(svg, /data-ceiling="bandwidth-datasheet"[^>]*stroke-dasharray="6 4"/);
  assert.match(svg, /data-ceiling="matrix-datasheet"[^>]*stroke-dasharray="6 4"/);
  assert.match(svg, /data-ceiling="f32-measured" d="[^"]*" stroke="#6a1b9a">/);
  assert.match(svg, /matrix f16\/bf16 dense \(tensor cores\) \(datasheet\) 989 TFLOP\/s/);
});

Deno.test("renderHtml() lists results it cannot place on log axes", () => {
  const report = _syntheticReport();
  report.results[2]!.tflops = 0;
  const html = renderHtml(report);
  assert.equal(html.match(/<circle\b/g)?.length, 2);
  assert.match(html, /Not plotted \(no rate\): qwen35-9b-mixed\./);
});
