import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { _syntheticCeilings, _syntheticReport } from "./_test_fixtures.ts";
import {
  CeilingsSchema,
  formatIssuePath,
  parseReport,
  readReport,
  ReportSchemaError,
  serializeReport,
  writeReport,
} from "./schema.ts";

Deno.test("serializeReport() output reads back as the same report", () => {
  const report = _syntheticReport();
  const back = parseReport(JSON.parse(serializeReport(report)));
  assert.deepEqual(back, JSON.parse(JSON.stringify(report)));
});

Deno.test("writeReport() and readReport() round-trip through a file", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "pp-report-"));
  try {
    const file = path.join(dir, "nested", "run.json");
    await writeReport(file, _syntheticReport());
    const report = await readReport(file);
    assert.equal(report.schemaVersion, 1);
    assert.equal(report.results.length, 3);
    assert.equal(report.results[0]!.timing.method, "timestamp");
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("parseReport() rejects a broken field and names its path", () => {
  const broken = JSON.parse(serializeReport(_syntheticReport()));
  broken.results[1].timing.median = "fast";
  assert.throws(
    () => parseReport(broken, "head.json"),
    (e: unknown) =>
      e instanceof ReportSchemaError && e instanceof SyntaxError &&
      e.path === "results[1].timing.median" && e.file === "head.json" &&
      e.message.startsWith("Cannot read report head.json as results[1].timing.median is invalid"),
  );
  const missing = JSON.parse(serializeReport(_syntheticReport()));
  delete missing.environment.ceilings;
  assert.throws(() => parseReport(missing), { path: "environment.ceilings" });
  const badEnum = JSON.parse(serializeReport(_syntheticReport()));
  badEnum.results[0].case.cacheDtype = "fp4";
  assert.throws(() => parseReport(badEnum), { path: "results[0].case.cacheDtype" });
});

Deno.test("parseReport() rejects another schema version before anything else", () => {
  const report = JSON.parse(serializeReport(_syntheticReport()));
  report.schemaVersion = 2;
  assert.throws(
    () => parseReport(report),
    (e: unknown) =>
      e instanceof ReportSchemaError && e.path === "schemaVersion" &&
      /schemaVersion is 2: this build reads version 1/.test(e.message),
  );
  assert.throws(() => parseReport([]), /not a JSON object/);
});

Deno.test("readReport() names the file when it is not JSON", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "pp-report-"));
  try {
    const file = path.join(dir, "bad.json");
    await fs.writeFile(file, "{ not json");
    await assert.rejects(
      () => readReport(file),
      (e: unknown) =>
        e instanceof ReportSchemaError &&
        e.message.includes(`report ${file} as it is not valid JSON`),
    );
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("serializeReport() refuses a report whose numbers JSON cannot hold", () => {
  const report = _syntheticReport();
  report.results[0]!.tflops = NaN;
  assert.throws(() => serializeReport(report), { path: "results[0].tflops" });
});

Deno.test("CeilingsSchema accepts measured ceilings and formatIssuePath() spells paths", () => {
  assert.ok(CeilingsSchema.safeParse(_syntheticCeilings()).success);
  assert.equal(formatIssuePath(["results", 0, "timing", "p10"]), "results[0].timing.p10");
  assert.equal(formatIssuePath(["limits", "a-b"]), 'limits["a-b"]');
  assert.equal(formatIssuePath([]), "");
});
