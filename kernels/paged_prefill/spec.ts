/**
 * The spec of the simple paged prefill kernel: only what changes the generated WGSL.
 * Runtime sizes (batch, lengths, heads, page size, scales) travel in a uniform buffer.
 * @module
 */
import type { Problem, QDtype } from "../../op/types.ts";
import { DTYPE_KEY, type PoolDtype } from "../_shared.ts";

/** What the simple kernel's WGSL depends on. */
export interface PagedPrefillSpec {
  /** dtype of q, k_new, v_new and o. */
  qDtype: QDtype;
  /**
   * dtype of the pool the kernel reads old keys/values from: the cache's, or "f32" (the
   * dequant variant's scratch pool of decoded values).
   */
  cacheDtype: PoolDtype;
  /** D; a multiple of 4 in [4, 256]. */
  headDim: number;
  /** Causal masking: row i sees keys up to old + i. */
  causal: boolean;
  /** Softcap on (its value is a runtime uniform). */
  softcap: boolean;
  /** Invocations per workgroup, one per (query token, query head). */
  workgroupSize: number;
}

/**
 * Default invocations per workgroup of the simple kernel.
 *
 * @example
 * ```ts ignore
 * specForProblem(problem).workgroupSize === SIMPLE_WORKGROUP_SIZE; // true
 * ```
 */
export const SIMPLE_WORKGROUP_SIZE = 64;

/**
 * The spec that runs `problem`, optionally reading a pool of another dtype (the dequant
 * variant reads an f32 scratch pool).
 *
 * @example
 * ```ts ignore
 * const spec = specForProblem(problem); // { qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, ... }
 * ```
 */
export function specForProblem(
  problem: Problem,
  options: { cacheDtype?: PoolDtype; workgroupSize?: number } = {},
): PagedPrefillSpec {
  return {
    qDtype: problem.qDtype,
    cacheDtype: options.cacheDtype ?? problem.cacheDtype,
    headDim: problem.headDim,
    causal: problem.isCausal,
    softcap: problem.softcap > 0,
    workgroupSize: options.workgroupSize ?? SIMPLE_WORKGROUP_SIZE,
  };
}

/**
 * The key spelling every spec field, FlashInfer-style; it labels the module, the pipeline
 * and the plan's buffers, and keys the pipeline cache.
 *
 * @example
 * ```ts
 * import { specKey } from "./spec.ts";
 * const key = specKey("simple", {
 *   qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, causal: true, softcap: true, workgroupSize: 64,
 * });
 * console.assert(key === "paged_prefill_simple_q-f16_kv-fp8_d128_wg64_causal_softcap");
 * ```
 */
export function specKey(variant: string, spec: PagedPrefillSpec): string {
  return [
    `paged_prefill_${variant}`,
    `q-${spec.qDtype}`,
    `kv-${DTYPE_KEY[spec.cacheDtype]}`,
    `d${spec.headDim}`,
    `wg${spec.workgroupSize}`,
    spec.causal ? "causal" : "noncausal",
    ...(spec.softcap ? ["softcap"] : []),
  ].join("_");
}
