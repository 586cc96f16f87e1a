/**
 * Shapes the mma tests share: the H200's limits (NVIDIA Vulkan through Dawn) and the spec its
 * D 128 rows run, so the tests that reason about that adapter agree on what it is.
 * @module
 */
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
