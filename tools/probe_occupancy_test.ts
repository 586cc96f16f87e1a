import assert from "node:assert/strict";
import { acquireGpu } from "../kernels/gpu.ts";
import { occupancyWgsl, probeOccupancy } from "./probe_occupancy.ts";

Deno.test("occupancyWgsl() declares the asked workgroup memory and keeps every value live", () => {
  const code = occupancyWgsl({ threads: 64, workgroupBytes: 8192, liveVec4: 3 });
  assert.match(code, /var<workgroup> pad: array<vec4<f32>, 512>;/);
  assert.match(code, /@workgroup_size\(64\)/);
  // Each value feeds the next, the last the first.
  for (const step of ["a0 = fma(a0, vec4<f32>(0.999), a1)", "a2 = fma(a2, vec4<f32>(0.999), a0)"]) {
    assert.ok(code.includes(step), step);
  }
  assert.doesNotMatch(
    occupancyWgsl({ threads: 32, workgroupBytes: 0, liveVec4: 2 }),
    /var<workgroup> pad/,
  );
});

Deno.test("probeOccupancy() counts between 1 and the launched workgroups, and none left running", async () => {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  const gpu = await acquireGpu();
  try {
    for (const workgroupBytes of [0, 4096]) {
      const most = await probeOccupancy(
        gpu,
        { threads: 32, workgroupBytes, liveVec4: 2 },
        16,
        200,
      );
      assert.ok(most >= 1 && most <= 16, `resident ${most} not in [1, 16]`);
    }
  } finally {
    gpu.destroy();
  }
});
