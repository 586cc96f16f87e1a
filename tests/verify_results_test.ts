import assert from "node:assert/strict";
import { expandCases, loadManifest } from "../workloads/loader.ts";
import { GPU_BACKENDS } from "../kernels/gpu.ts";

/**
 * The committed `verify --json` outputs (reports/verify/) back the correctness claims of the perf
 * logs: each names its adapter and backend, every result in it passed, and every result is a
 * manifest case, so a claim cannot rest on a failing or stale file.
 */
Deno.test("every committed verify result passed, on a named adapter, for a manifest case", () => {
  const ids = new Set(expandCases(loadManifest()).map((c) => c.id));
  const dir = new URL("../reports/verify/", import.meta.url);
  let checked = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.endsWith(".json")) continue;
    const file = JSON.parse(Deno.readTextFileSync(new URL(entry.name, dir)));
    assert.equal(typeof file.adapter, "string", `${entry.name}: adapter`);
    // The file's name says which WebGPU implementation ran it (h200-dawn-..., h200-deno-...).
    assert.ok(GPU_BACKENDS.includes(file.backend), `${entry.name}: backend ${file.backend}`);
    assert.ok(entry.name.includes(`-${file.backend}-`), `${entry.name}: backend ${file.backend}`);
    assert.ok(Array.isArray(file.results) && file.results.length > 0, `${entry.name}: results`);
    for (const r of file.results) {
      assert.equal(r.ok, true, `${entry.name}: ${r.id} (${r.kernel}) failed: ${r.message}`);
      assert.ok(ids.has(r.id), `${entry.name}: ${r.id} is not a manifest case`);
      assert.ok(r.checkedRows > 0 && r.poolBadBytes === 0, `${entry.name}: ${r.id} checked`);
      checked++;
    }
  }
  assert.ok(checked >= 200, `only ${checked} verify results in reports/verify`);
});
