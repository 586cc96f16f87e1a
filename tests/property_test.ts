import assert from "node:assert/strict";
import { acquireGpu } from "../kernels/gpu.ts";
import { KERNEL_VARIANTS } from "../kernels/registry.ts";
import { verifyOnGpu } from "../bench/verify_case.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase, type AdHocOptions } from "../workloads/loader.ts";
import { createRng } from "../workloads/random.ts";
import { PAGE_ORDERS } from "../workloads/schema.ts";
import { validateProblem } from "../op/validate.ts";

const CASES = 12;

/** A random valid problem: every knob of the op drawn from `seed`. */
function randomProblem(seed: number): AdHocOptions {
  const rng = createRng(seed, 99);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  const batch = 1 + rng.int(4);
  const numKvHeads = pick([1, 2, 3]);
  const group = pick([1, 2, 4]);
  const pageSize = pick([1, 2, 4, 8, 16, 32, 64, 128, 256]);
  const qLen: number[] = Array.from(
    { length: batch },
    () => (rng.int(5) === 0 ? 0 : 1 + rng.int(24)),
  );
  if (!qLen.some((n) => n > 0)) qLen[0] = 1 + rng.int(8);
  const cacheLen = Array.from({ length: batch }, () => (rng.int(4) === 0 ? 0 : rng.int(300)));
  const dtype = pick(["f16", "bf16"] as const);
  return {
    batch,
    heads: numKvHeads * group,
    headsKv: numKvHeads,
    headDim: pick([4, 16, 32, 40, 64, 128]),
    qLen,
    cacheLen,
    pageSize,
    causal: rng.int(4) !== 0,
    softcap: rng.int(3) === 0 ? 5 + rng.int(50) : null,
    smScale: rng.int(3) === 0 ? rng.uniform(0.05, 0.25) : null,
    dtype,
    cacheDtype: pick(["same", "fp8", "int8"] as const),
    pageOrder: pick(PAGE_ORDERS),
  };
}

Deno.test("every kernel variant matches the reference on seeded random valid problems", async () => {
  const base = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const gpu = await acquireGpu();
  try {
    for (let n = 0; n < CASES; n++) {
      const seed = base + n;
      const options = randomProblem(seed);
      const { inputs, params } = generateCase(adHocCase(options), seed);
      const problem = validateProblem(inputs, params);
      const variants = KERNEL_VARIANTS.filter((v) => v.supports(problem, gpu) === null);
      assert.ok(variants.length > 0, `no kernel for seed ${seed}`);
      for (const variant of variants) {
        const { verification } = await verifyOnGpu(gpu, inputs, params, { kernel: variant.name });
        assert.ok(
          verification.ok,
          `${variant.name}, PP_TEST_SEED=${seed} ${
            JSON.stringify(options)
          }: ${verification.message}`,
        );
      }
    }
  } finally {
    gpu.destroy();
  }
});
