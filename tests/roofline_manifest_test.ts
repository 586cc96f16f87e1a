import assert from "node:assert/strict";
import { expandCases, loadManifest, type WorkloadCase } from "../workloads/loader.ts";
import { rooflineCosts } from "../reports/roofline.ts";
import { readReport } from "../reports/schema.ts";

/** SPEC §6 written out as closed forms, independently of reports/roofline.ts. */
function spec6(
  c: Pick<
    WorkloadCase,
    | "qLens"
    | "cacheLens"
    | "numHeads"
    | "numKvHeads"
    | "headDim"
    | "qDtype"
    | "cacheDtype"
    | "isCausal"
    | "maxPagesPerReq"
  >,
) {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = c;
  const B = c.qLens.length;
  const Tq = c.qLens.reduce((a, b) => a + b, 0);
  const sumOld = c.cacheLens.reduce((a, b) => a + b, 0);
  const vis = c.qLens.reduce((acc, q, b) => {
    const old = c.cacheLens[b]!;
    return acc + (c.isCausal ? q * old + (q * (q + 1)) / 2 : q * (old + q));
  }, 0);
  const sq = 2;
  const sc = c.cacheDtype === "fp8_e4m3" || c.cacheDtype === "int8" ? 1 : 2;
  const scales = c.cacheDtype === "fp8_e4m3"
    ? 2 * 4
    : c.cacheDtype === "int8"
    ? 2 * Hkv * D * 4
    : 0;
  return {
    flops: 4 * H * D * vis,
    bytes: sq * (2 * Tq * H * D + 2 * Tq * Hkv * D) +
      sc * (2 * sumOld * Hkv * D + 2 * Tq * Hkv * D) +
      scales + 4 * ((B + 1) + B + B * c.maxPagesPerReq),
  };
}

Deno.test("rooflineCosts() matches SPEC §6's closed forms on every manifest row", () => {
  const cases = expandCases(loadManifest());
  assert.ok(cases.length > 50);
  for (const c of cases) {
    const got = rooflineCosts(c);
    const want = spec6(c);
    assert.equal(got.flops, want.flops, `${c.id} flops`);
    assert.equal(got.bytes, want.bytes, `${c.id} bytes`);
  }
  const seed = cases.find((c) => c.id === "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16")!;
  assert.ok(Math.abs(rooflineCosts(seed).flops / 1e9 - 36.5) < 0.05); // the 36.5 GFLOP
});

Deno.test("every committed GPU report carries SPEC §6 FLOPs and bytes for its shapes", async () => {
  const dir = new URL("../reports/results/", import.meta.url);
  let checked = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.endsWith(".json")) continue;
    const report = await readReport(new URL(entry.name, dir).pathname);
    for (const r of report.results) {
      const want = spec6(r.case);
      assert.equal(r.flops, want.flops, `${entry.name} ${r.workload.id} flops`);
      assert.equal(r.bytes, want.bytes, `${entry.name} ${r.workload.id} bytes`);
      assert.ok(
        r.correctness?.ok,
        `${entry.name} ${r.workload.id} [${r.kernel.name}] not verified ok`,
      );
      checked++;
    }
  }
  assert.ok(checked > 50, `only ${checked} results in reports/results`);
});
