import assert from "node:assert/strict";
import { mergeReports } from "./report.ts";
import { _syntheticReport } from "../../reports/_test_fixtures.ts";
import { UsageError } from "../errors.ts";

Deno.test("mergeReports() joins the results of reports on one adapter, commands in order", () => {
  const a = _syntheticReport();
  const b = {
    ..._syntheticReport(),
    results: [],
    command: ["paged-prefill", "bench", "--tag", "x"],
  };
  const merged = mergeReports([a, b], ["a.json", "b.json"]);
  assert.deepEqual(merged.results, a.results);
  assert.deepEqual(merged.command, [...a.command, ";", ...b.command]);
  assert.deepEqual(merged.environment, a.environment);
});

Deno.test("mergeReports() takes a later report's result for a workload and kernel timed again, in the earlier place", () => {
  const first = _syntheticReport();
  const again = _syntheticReport(2);
  // The later report re-times the second workload only, and adds another kernel for it.
  const retimed = again.results[1]!;
  const other = { ...retimed, kernel: { ...retimed.kernel, name: "simple" } };
  const later = { ...again, results: [retimed, other] };
  const merged = mergeReports([first, later], ["first.json", "later.json"]);
  assert.deepEqual(merged.results, [first.results[0], retimed, first.results[2], other]);
  assert.equal(merged.results[1]!.timing.median, 2 * first.results[1]!.timing.median);
});

Deno.test("mergeReports() refuses a report from another adapter, naming both files", () => {
  const a = _syntheticReport();
  const b = _syntheticReport();
  const adapter = { ...b.environment.adapter, name: "Other GPU" };
  const other = { ...b, environment: { ...b.environment, adapter } };
  assert.throws(
    () => mergeReports([a, other], ["a.json", "b.json"]),
    (e: unknown) =>
      e instanceof UsageError &&
      /^Cannot merge b\.json: adapter Other GPU \(.*\) differs from .* of a\.json$/.test(e.message),
  );
});
