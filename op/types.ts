/**
 * Core types of the paged prefill op (SPEC §1, §2): tensors, inputs, params and the
 * validated problem description that every other module works from.
 * @module
 */

/** Element types a tensor can hold; names follow safetensors (F16, BF16, F8_E4M3, I8, I32, F32). */
export type TensorDtype = "f16" | "bf16" | "f8_e4m3" | "i8" | "i32" | "f32";

/** Storage of each tensor dtype: f16/bf16 as raw 16-bit patterns, f8 as raw bytes. */
export interface TensorData {
  f16: Uint16Array;
  bf16: Uint16Array;
  f8_e4m3: Uint8Array;
  i8: Int8Array;
  i32: Int32Array;
  f32: Float32Array;
}

/** A dense row-major tensor. `data.length` equals the product of `shape`. */
export interface Tensor<D extends TensorDtype = TensorDtype> {
  dtype: D;
  shape: readonly number[];
  data: TensorData[D];
}

/** dtype of q, k_new, v_new and o. */
export type QDtype = "f16" | "bf16";

/** dtype of the paged KV cache (SPEC §2). */
export type CacheDtype = "f16" | "bf16" | "fp8_e4m3" | "int8";

/** Tensor dtype that stores each cache dtype. */
export const CACHE_TENSOR_DTYPE: Readonly<Record<CacheDtype, TensorDtype>> = {
  f16: "f16",
  bf16: "bf16",
  fp8_e4m3: "f8_e4m3",
  int8: "i8",
};

/** Bytes per element of each cache dtype. */
export const CACHE_ELEMENT_BYTES: Readonly<Record<CacheDtype, number>> = {
  f16: 2,
  bf16: 2,
  fp8_e4m3: 1,
  int8: 1,
};

/** The op's tensor inputs, named as in SPEC §1 (camelCase here, snake_case in case files). */
export interface PagedPrefillInputs {
  /** [T_q, H, D], f16 or bf16. */
  q: Tensor;
  /** [T_q, H_kv, D], dtype of q. */
  kNew: Tensor;
  /** [T_q, H_kv, D], dtype of q. */
  vNew: Tensor;
  /** [P_tokens, H_kv, D], cache dtype; the pool the append mutates. */
  kPages: Tensor;
  /** [P_tokens, H_kv, D], cache dtype. */
  vPages: Tensor;
  /** f32 [1] for fp8, [H_kv, D] for int8, absent for f16/bf16 caches. */
  kScale?: Tensor;
  /** f32 [1] for fp8, [H_kv, D] for int8, absent for f16/bf16 caches. */
  vScale?: Tensor;
  /** i32 [B + 1]. */
  cuSeqlensQ: Tensor;
  /** i32 [B]: old lengths before the append. */
  cacheSeqlens: Tensor;
  /** i32 [B, max_pages_per_req]. */
  blockTable: Tensor;
}

/** Scalar params of the op (SPEC §1). */
export interface PagedPrefillParams {
  /** Tokens per page; a power of two >= 1. */
  pageSize: number;
  /** Causal masking. @default true */
  isCausal?: boolean;
  /** Score scale. @default 1 / sqrt(D) */
  smScale?: number | null;
  /** Score cap; null or 0 = off, > 0 on. @default null */
  softcap?: number | null;
}

/** The op's outputs: o and both pools after the append (fresh tensors; inputs untouched). */
export interface PagedPrefillOutputs {
  /** [T_q, H, D], dtype of q. */
  o: Tensor;
  kPages: Tensor;
  vPages: Tensor;
}

/**
 * A validated problem: every size and per-request length resolved, params defaulted.
 * Produced only by `validateProblem()`; kernels and reports trust it.
 */
export interface Problem {
  qDtype: QDtype;
  cacheDtype: CacheDtype;
  /** B */
  batch: number;
  /** T_q = sum of q lengths */
  totalQ: number;
  /** H */
  numHeads: number;
  /** H_kv */
  numKvHeads: number;
  /** D */
  headDim: number;
  pageSize: number;
  /** P_tokens / page_size */
  numPages: number;
  /** P_tokens */
  poolTokens: number;
  maxPagesPerReq: number;
  isCausal: boolean;
  /** Resolved scale (default 1/sqrt(D)). */
  smScale: number;
  /** 0 when off. */
  softcap: number;
  /** q_len[b] */
  qLens: readonly number[];
  /** cu_seqlens_q[b] */
  qStarts: readonly number[];
  /** old[b] = cache_seqlens[b] */
  cacheLens: readonly number[];
  /**
   * bf16 q only (set by `validateProblem`): where the first value a kernel reads lies outside
   * f16's range (see `bf16OutsideF16`), or null when all fit, so f16 operands may stand in.
   * Absent for f16 q and for problems built by hand (kernels that need it then decline).
   */
  bf16OutsideF16?: string | null;
}
