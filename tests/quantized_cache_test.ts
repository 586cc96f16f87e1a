import assert from "node:assert/strict";
import { acquireGpu } from "../kernels/gpu.ts";
import { KERNEL_VARIANTS } from "../kernels/registry.ts";
import { verifyOnGpu } from "../bench/verify_case.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase } from "../workloads/loader.ts";
import { validateProblem } from "../op/validate.ts";

// Issue 3: fp8 and int8 caches at page sizes 16..128, f16 and bf16 q, softcap, non-causal,
// old lengths that end mid-page and appends that cross pages, through both strategies: fused
// dequant in the attention loop and dequantize-then-reuse.
Deno.test("fp8 and int8 caches match the reference at page sizes 16 to 128 with both strategies", async () => {
  const gpu = await acquireGpu();
  const base = Math.floor(Math.random() * 2 ** 31);
  try {
    let n = 0;
    for (const pageSize of [16, 32, 64, 128]) {
      for (const cacheDtype of ["fp8", "int8"] as const) {
        n++;
        const c = adHocCase({
          batch: 2,
          heads: 4,
          headsKv: 2,
          headDim: 64,
          qLen: [pageSize + 3, 5],
          cacheLen: [2 * pageSize + 7, pageSize - 1],
          pageSize,
          dtype: n % 2 ? "f16" : "bf16",
          cacheDtype,
          causal: n % 3 !== 0,
          softcap: n % 4 === 0 ? 20 : null,
          pageOrder: "permuted",
        });
        const seed = base + n;
        const { inputs, params } = generateCase(c, seed);
        const problem = validateProblem(inputs, params);
        const variants = KERNEL_VARIANTS.filter((v) => v.supports(problem, gpu) === null);
        assert.ok(variants.some((v) => v.name === "dequant"), `${c.id}: dequant must run it`);
        assert.ok(
          variants.some((v) => v.name !== "dequant"),
          `${c.id}: a fused kernel must run it`,
        );
        for (const variant of variants) {
          const { verification } = await verifyOnGpu(gpu, inputs, params, { kernel: variant.name });
          assert.ok(
            verification.ok,
            `${c.id} [${variant.name}] seed ${seed}: ${verification.message}`,
          );
        }
      }
    }
  } finally {
    gpu.destroy();
  }
});

Deno.test("every variant runs a quantized batch with no old tokens at all", async () => {
  const gpu = await acquireGpu();
  try {
    for (const cacheDtype of ["fp8", "int8"] as const) {
      const c = adHocCase({ batch: 2, qLen: [4, 6], cacheLen: [0, 0], pageSize: 1, cacheDtype });
      const { inputs, params } = generateCase(c, 5);
      const problem = validateProblem(inputs, params);
      const variants = KERNEL_VARIANTS.filter((v) => v.supports(problem, gpu) === null);
      assert.ok(variants.length >= 2);
      for (const variant of variants) {
        const { verification } = await verifyOnGpu(gpu, inputs, params, { kernel: variant.name });
        assert.ok(verification.ok, `${c.id} [${variant.name}]: ${verification.message}`);
      }
    }
  } finally {
    gpu.destroy();
  }
});
