import assert from "node:assert/strict";
import { compareReports, renderComparisonMarkdown, renderComparisonTable } from "./compare.ts";
import { _syntheticReport } from "./_test_fixtures.ts";

Deno.test("compareReports() flags results more than 5% slower as regressions", () => {
  const cmp = compareReports(_syntheticReport(), _syntheticReport(1.1));
  assert.equal(cmp.rows.length, 3);
  assert.equal(cmp.regressions, 3);
  assert.equal(cmp.ok, false);
  for (const row of cmp.rows) {
    assert.equal(row.status, "regression");
    assert.ok(Math.abs(row.timeRatio! - 1.1) < 1e-12);
    assert.ok(Math.abs(row.tflopsRatio! - 1 / 1.1) < 1e-12);
  }
  const table = renderComparisonTable(cmp);
  assert.match(
    table,
    /llama-3\.1-8b <pg64> +flash +2400 +2640 +1\.100x +0\.0152 +0\.0138 +0\.909x +regression/,
  );
  assert.match(
    table,
    /3 regression\(s\) \(> 5\.00% slower\), 0 improvement\(s\), 0 broken, 0 fixed/,
  );
  assert.ok(renderComparisonTable(cmp, { color: true }).includes("\x1b[31mregression"));
});

Deno.test("compareReports() leaves small changes alone unless the threshold is tighter", () => {
  const cmp = compareReports(_syntheticReport(), _syntheticReport(1.03));
  assert.equal(cmp.regressions, 0);
  assert.ok(cmp.rows.every((r) => r.status === "unchanged"));
  assert.equal(cmp.ok, true);
  assert.equal(
    compareReports(_syntheticReport(), _syntheticReport(1.03), { threshold: 0.01 }).regressions,
    3,
  );
  const faster = compareReports(_syntheticReport(), _syntheticReport(0.5));
  assert.equal(faster.improvements, 3);
  assert.throws(
    () => compareReports(_syntheticReport(), _syntheticReport(), { threshold: -1 }),
    RangeError,
  );
});

Deno.test("compareReports() flags correctness changes and unmatched results", () => {
  const base = _syntheticReport();
  const head = _syntheticReport();
  head.results[0]!.correctness = { ...head.results[0]!.correctness!, ok: false, message: "bad" };
  head.results[1]!.correctness = { ...head.results[1]!.correctness!, ok: true, message: "ok" };
  head.results.pop();
  head.results.push({ ...base.results[0]!, kernel: { name: "simple", key: "simple_x" } });
  const cmp = compareReports(base, head);
  assert.equal(cmp.broken, 1);
  assert.equal(cmp.fixed, 1);
  assert.equal(cmp.ok, false);
  assert.equal(cmp.rows[0]!.correctnessChange, "broken");
  assert.equal(cmp.rows[1]!.correctnessChange, "fixed");
  assert.equal(cmp.rows.find((r) => r.label === "qwen35-9b-mixed")!.status, "removed");
  const added = cmp.rows.find((r) => r.kernel === "simple" && r.status === "added");
  assert.ok(added);
  const table = renderComparisonTable(cmp);
  assert.match(table, /BROKEN +ok -> FAIL/);
  assert.match(table, /FAIL -> ok/);
  const md = renderComparisonMarkdown(cmp);
  assert.match(md, /\| workload \| kernel \| base ms \| head ms \| time ratio \|/);
  assert.match(md, /\*\*Summary:\*\* 0 regression\(s\) .* 1 broken, 1 fixed/);
});

Deno.test("compareReports() notes a changed shape and a different adapter", () => {
  const base = _syntheticReport();
  const head = _syntheticReport();
  head.results[0]!.case = { ...head.results[0]!.case, pageSize: 16 };
  head.environment.adapter.name = "NVIDIA H200";
  const cmp = compareReports(base, head);
  assert.deepEqual(cmp.rows[0]!.notes, ["shape changed"]);
  assert.equal(cmp.adapterChanged, true);
  assert.match(renderComparisonTable(cmp), /adapters differ: llvmpipe .* -> NVIDIA H200/);
});
