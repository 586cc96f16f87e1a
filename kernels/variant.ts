/**
 * The contract between the op's host code and each kernel family. Inputs are uploaded once
 * into a `DeviceProblem` (see `device_inputs.ts`); a `KernelVariant` plans pipelines and
 * dispatch sizes over it; the plan's `encode()` records the whole op (attention + append).
 * @module
 */
import type { GpuContext } from "./gpu.ts";
import type { Problem } from "../op/types.ts";

/**
 * GPU-resident inputs of one call, in the layout every kernel reads:
 * - q, kNew, vNew, o: 16-bit elements packed two per u32, little-endian (element 2i low half).
 * - kPages, vPages: the pool bytes as u32 words (4 one-byte elements or 2 16-bit elements each).
 *   When the pool is over the storage binding limit only the referenced pages are uploaded
 *   (`pageIds[i]` = original physical page of uploaded page i) and `blockTable` is remapped.
 * - scales: f32 [kScale(n), vScale(n), kInv(n), vInv(n), kMax, vMax, kNew, vNew, fold]
 *   (`scaleSlots`), n = 1 (fp8, and f16/bf16 with 1.0) or H_kv * D (int8); inv = fround(1 /
 *   scale), computed once on the host; kNew, vNew, fold are written on the GPU (flash's bound passes).
 * - cuSeqlensQ, cacheSeqlens, blockTable: i32 as given (blockTable possibly remapped).
 */
export interface DeviceProblem {
  problem: Problem;
  q: GPUBuffer;
  kNew: GPUBuffer;
  vNew: GPUBuffer;
  kPages: GPUBuffer;
  vPages: GPUBuffer;
  scales: GPUBuffer;
  cuSeqlensQ: GPUBuffer;
  cacheSeqlens: GPUBuffer;
  blockTable: GPUBuffer;
  o: GPUBuffer;
  /** Original physical page id of each uploaded page; null when the whole pool was uploaded. */
  pageIds: Int32Array | null;
  /** The block table as uploaded (remapped when `pageIds` is set). */
  blockTableHost: Int32Array;
  destroy(): void;
}

/** Where a plan writes its GPU timestamps: begin of its first pass, end of its last. */
export interface TimestampSlots {
  querySet: GPUQuerySet;
  beginIndex: number;
  endIndex: number;
}

/** A compute pass descriptor with `label`, writing `ts`'s begin and end timestamps when given. */
export function timedPassDescriptor(ts?: TimestampSlots, label?: string): GPUComputePassDescriptor {
  return {
    ...(label === undefined ? {} : { label }),
    ...(ts
      ? {
        timestampWrites: {
          querySet: ts.querySet,
          beginningOfPassWriteIndex: ts.beginIndex,
          endOfPassWriteIndex: ts.endIndex,
        },
      }
      : {}),
  };
}

/** A planned kernel: pipelines, bind groups, uniforms and dispatch sizes, built once. */
export interface KernelPlan {
  /** Variant key spelling every spec field, e.g. `paged_prefill_simple_q-f16_kv-f16_d128_p64_causal`. */
  key: string;
  /** Records the whole op (attention and append) into `encoder`; does not submit. */
  encode(encoder: GPUCommandEncoder, timestamps?: TimestampSlots): void;
  /** Generated WGSL sources by label, for `--dump-wgsl`. */
  wgsl(): Record<string, string>;
  destroy(): void;
}

/** A kernel family. */
export interface KernelVariant {
  /** Short name used by `--kernel` and reports, e.g. "simple", "flash", "dequant". */
  name: string;
  description: string;
  /** Null when the variant can run `problem` on `gpu`, else the reason it cannot. */
  supports(problem: Problem, gpu: GpuContext): string | null;
  /**
   * True for a variant built for one class of shapes (decode): its refusals of other shapes are
   * by design, so reports leave them out of `declinedVariants()`.
   */
  specialist?: boolean;
  /** Builds pipelines and dispatch state over uploaded inputs. May be async (pipeline creation). */
  plan(gpu: GpuContext, inputs: DeviceProblem): Promise<KernelPlan>;
}
