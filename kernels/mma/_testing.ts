/**
 * What the mma tests share: the H200's limits (NVIDIA Vulkan through Dawn) and the spec its
 * D 128 rows run, so the tests that reason about that adapter agree on what it is; and the
 * check of an emulated plan against the float64 reference on the local adapter.
 * @module
 */
import { acquireGpu, type GpuContext } from "../gpu.ts";
import { makeTestCase, type TestCaseOptions, verifyOutputs } from "../_testing.ts";
import { runKernelPlan } from "../op.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { type MmaOptions, mmaSupport, planMma } from "./mma.ts";
import type { MmaLimits, MmaSpec, MmaTile } from "./spec.ts";

/** Workgroup memory, invocations and subgroup size of the H200 under Dawn. */
export const H200_MMA_LIMITS: MmaLimits = { workgroupBytes: 49152, invocations: 1024, sg: 32 };

/** The default tile for D 128 there: 8 row blocks x 2 column warps, 32-key tiles. */
export const TILE_8X2X32: MmaTile = { rowBlocks: 8, colWarps: 2, keys: 32 };

/** The classic f16 spec of the D 128 rows (causal, unsplit, S^T) on that tile. */
export const H200_D128_MMA_SPEC: MmaSpec = {
  cacheDtype: "f16",
  headDim: 128,
  ...TILE_8X2X32,
  sg: 32,
  causal: true,
  softcap: false,
  split: false,
  transposedScores: true,
};

/** The smallest two-row-block tile the emulated tests use: 32 rows x 16 keys. */
export const TILE_2X1X16: MmaTile = { rowBlocks: 2, colWarps: 1, keys: 16 };

/** Causal GQA varlen with an empty request, D 32, page 8 (cache dtype: f16 unless given). */
export const GQA_VARLEN_P8: Omit<TestCaseOptions, "seed"> = {
  qDtype: "f16",
  qLens: [13, 0, 9],
  cacheLens: [37, 5, 70],
  heads: 4,
  kvHeads: 2,
  headDim: 32,
  pageSize: 8,
};

let _gpu: Promise<GpuContext> | null = null;

/** The test adapter, acquired once per test file. */
export function mmaTestGpu(): Promise<GpuContext> {
  // No adapter: acquireGpu() throws and the test fails, saying how to get Mesa's driver.
  return _gpu ??= acquireGpu();
}

/**
 * Runs the emulated mma plan on a test case; checks o (SPEC §4) and both pools bit-exactly.
 * Returns the plan's key.
 */
export async function checkEmulated(
  o: TestCaseOptions,
  options: MmaOptions = {},
): Promise<string> {
  return (await runEmulated(o, options)).key;
}

/**
 * `checkEmulated`, also returning the labels of the plan's passes (its WGSL modules), so a
 * test can see which passes ran.
 */
export async function runEmulated(
  o: TestCaseOptions,
  options: MmaOptions = {},
): Promise<{ key: string; passes: string[] }> {
  const g = await mmaTestGpu();
  const { inputs, params } = makeTestCase(o);
  const problem = validateProblem(inputs, params);
  const why = mmaSupport(problem, g, true);
  if (why !== null) throw new Error(`emulated mma cannot run: ${why}`);
  const dev = uploadInputs(g, inputs, problem);
  try {
    const plan = await planMma(g, dev, { ...options, emulate: true });
    const passes = Object.keys(plan.wgsl());
    const out = await runKernelPlan(g, plan, dev, inputs);
    plan.destroy();
    verifyOutputs(out, inputs, problem, plan.key);
    return { key: plan.key, passes };
  } finally {
    dev.destroy();
  }
}
