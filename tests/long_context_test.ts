import assert from "node:assert/strict";
import { acquireGpu } from "../kernels/gpu.ts";
import { KERNEL_VARIANTS } from "../kernels/registry.ts";
import { verifyOnGpu } from "../bench/verify_case.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase } from "../workloads/loader.ts";
import { validateProblem } from "../op/validate.ts";

// Mesa's llvmpipe caps the loop iterations of one invocation; a kernel with a rolled loop over
// D inside its key loop silently stopped after ~1000 keys at D = 128. Every variant must stay
// right over a 4k prefix.
Deno.test("every kernel variant matches the reference over a 4096-token prefix at D = 128", async () => {
  const gpu = await acquireGpu();
  try {
    for (const cacheDtype of ["f16", "fp8"] as const) {
      const c = adHocCase({
        batch: 1,
        heads: 4,
        headsKv: 1,
        headDim: 128,
        qLen: 16,
        cacheLen: 4096,
        pageSize: 64,
        cacheDtype,
      });
      const seed = Math.floor(Math.random() * 2 ** 31);
      const { inputs, params } = generateCase(c, seed);
      const problem = validateProblem(inputs, params);
      const variants = KERNEL_VARIANTS.filter((v) => v.supports(problem, gpu) === null);
      assert.ok(variants.length > 0);
      for (const variant of variants) {
        const { verification } = await verifyOnGpu(gpu, inputs, params, {
          kernel: variant.name,
          rowsPerRequest: 4,
        });
        assert.ok(
          verification.ok,
          `${variant.name} ${cacheDtype} seed ${seed}: ${verification.message}`,
        );
      }
    }
  } finally {
    gpu.destroy();
  }
});
