/**
 * Internal helpers shared by the simple, append and dequant kernels: buffer sizes, dispatch
 * grids, the pipeline cache keyed by variant key, uniform packing and small WGSL snippets.
 * Not part of the public API (not re-exported by `kernels/mod.ts`).
 * @module
 */
import type { GpuContext } from "./gpu.ts";
import { timedPassDescriptor, type TimestampSlots } from "./variant.ts";
import type { CacheDtype, Problem, QDtype } from "../op/types.ts";

/** Buffer size for `bytes`: a multiple of 4, at least 4 (empty bindings are invalid). */
export function paddedSize(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/** Scale elements per pool: H_kv * D for int8, else 1. */
export function scaleCount(problem: Problem): number {
  return problem.cacheDtype === "int8" ? problem.numKvHeads * problem.headDim : 1;
}

/**
 * Layout of the scales buffer (`scalesHost`), f32 words for `n = scaleCount(problem)`: k scales
 * [0, n), v scales [n, 2n), their f32 inverses [2n, 3n) and [3n, 4n), then the largest k and v
 * scale (`kMax`, `vMax`), then what the bound passes (`new_bound.ts`) write before flash's int8Fold, byteNewBound and
 * poolBound kernels (0 on upload): the largest |k_new * k_inv| and |v_new * v_inv| of the call,
 * for a bf16 cache also over the pool values read (`kNew`, `vNew`), and 1.0 where the bounded
 * kernel runs, 0.0 where its fallback does (`fold`).
 * Kernels address these words as `4u * params.scale_n + i`.
 */
export function scaleSlots(n: number): {
  kMax: number;
  vMax: number;
  kNew: number;
  vNew: number;
  fold: number;
  length: number;
} {
  const m = 4 * n;
  return { kMax: m, vMax: m + 1, kNew: m + 2, vNew: m + 3, fold: m + 4, length: m + 5 };
}

/**
 * dtype of a K/V pool an attention kernel reads: a cache dtype, or "f32" for the dequant
 * variant's scratch pool (values decoded and scaled in f32, stored as f32).
 */
export type PoolDtype = CacheDtype | "f32";

/** Short dtype names used in variant keys. */
export const DTYPE_KEY: Readonly<Record<PoolDtype, string>> = {
  f16: "f16",
  bf16: "bf16",
  fp8_e4m3: "fp8",
  int8: "int8",
  f32: "f32",
};

/**
 * A 2D grid of workgroups covering `invocations` (x filled first, each dimension within
 * `maxComputeWorkgroupsPerDimension`); kernels rebuild the linear index as
 * `(wid.y * nwg.x + wid.x) * WG + lid`. [0, 0] when there is nothing to do.
 */
export function dispatchGrid(
  gpu: GpuContext,
  invocations: number,
  workgroupSize: number,
): [number, number] {
  const groups = Math.ceil(invocations / workgroupSize);
  if (groups === 0) return [0, 0];
  const max = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  const x = Math.min(groups, max);
  const y = Math.ceil(groups / x);
  if (y > max) {
    throw new RangeError(
      `Cannot dispatch ${invocations} invocations: ${groups} workgroups exceed ${max} x ${max}`,
    );
  }
  return [x, y];
}

/** How a binding is declared; index = binding number in group 0. */
export type BindingKind = "uniform" | "read" | "read_write";

/** A compiled pipeline with the bind group layout its bind groups must use. */
export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const _pipelines = new WeakMap<GPUDevice, Map<string, Promise<CachedPipeline>>>();

/**
 * The pipeline for `key`, compiled from `code` on first use and cached per device. Throws
 * an Error naming the key and the compiler messages when the WGSL does not compile.
 */
export function cachedPipeline(
  gpu: GpuContext,
  key: string,
  code: string,
  bindings: readonly BindingKind[],
): Promise<CachedPipeline> {
  let cache = _pipelines.get(gpu.device);
  if (!cache) _pipelines.set(gpu.device, cache = new Map());
  const hit = cache.get(key);
  if (hit) return hit;
  const made = _compile(gpu.device, key, code, bindings);
  cache.set(key, made);
  made.catch(() => cache.delete(key));
  return made;
}

async function _compile(
  device: GPUDevice,
  key: string,
  code: string,
  bindings: readonly BindingKind[],
): Promise<CachedPipeline> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: key, code });
  const layout = device.createBindGroupLayout({
    label: key,
    entries: bindings.map((kind, binding) => ({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: {
        type: kind === "uniform" ? "uniform" : kind === "read" ? "read-only-storage" : "storage",
      },
    })),
  });
  const scopeError = await device.popErrorScope();
  const messages: string[] = [];
  if (typeof module.getCompilationInfo === "function") {
    const info = await module.getCompilationInfo();
    for (const m of info.messages) {
      if (m.type === "error") messages.push(`${m.lineNum}:${m.linePos} ${m.message}`);
    }
  }
  if (scopeError || messages.length > 0) {
    throw new Error(
      `Cannot compile ${key}: ${messages.join("; ") || scopeError?.message || "unknown error"}`,
    );
  }
  const pipeline = await device.createComputePipelineAsync({
    label: key,
    layout: device.createPipelineLayout({ label: key, bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  return { pipeline, layout };
}

/** One uniform field: its WGSL type and value. */
export type UniformField = readonly ["u32" | "f32", number];

/** Creates a uniform buffer holding `fields` as consecutive 4-byte scalars (16-byte padded). */
export function createUniform(
  device: GPUDevice,
  label: string,
  fields: readonly UniformField[],
): GPUBuffer {
  const size = Math.max(16, Math.ceil(fields.length / 4) * 16);
  const data = new ArrayBuffer(size);
  const view = new DataView(data);
  fields.forEach(([type, value], i) => {
    if (type === "u32") view.setUint32(4 * i, value, true);
    else view.setFloat32(4 * i, value, true);
  });
  const buffer = device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** A bind group over `buffers` in binding order. */
export function bindAll(
  device: GPUDevice,
  label: string,
  layout: GPUBindGroupLayout,
  buffers: readonly GPUBuffer[],
): GPUBindGroup {
  return device.createBindGroup({
    label,
    layout,
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}

/**
 * WGSL: the request holding packed query token `t`, by binary search over `cu_seqlens`
 * (needs module-scope `params.batch` and `cu_seqlens`).
 */
export const WGSL_FIND_REQUEST =
  `// The request b holding packed token t: the last b with cu_seqlens[b] <= t. Empty requests
// share their start with the next request, so they are never chosen.
fn find_request(t: u32) -> u32 {
  var lo = 0u;
  var hi = params.batch - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (u32(cu_seqlens[mid]) <= t) {
      lo = mid;
    } else {
      hi = mid - 1u;
    }
  }
  return lo;
}
`;

/** WGSL: `unpack_q2(w) -> vec2<f32>`, the two 16-bit elements of word `w` (low half first). */
export function wgslQUnpack(dtype: QDtype): string {
  if (dtype === "f16") {
    return `// Two f16 elements of a u32 word (low half first) as f32.
fn unpack_q2(w: u32) -> vec2<f32> {
  return unpack2x16float(w);
}
`;
  }
  return `// Two bf16 elements of a u32 word (low half first) as f32.
fn unpack_q2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
`;
}

/**
 * WGSL: `pack_q2(v) -> u32`, two f32 rounded to nearest even into the q dtype (needs the
 * codec `f32_to_f16_bits` or `f32_to_bf16_bits`, named by `wgslQPackCodec`).
 */
export function wgslQPack(dtype: QDtype): string {
  const f = wgslQPackCodec(dtype);
  return `// Two f32 rounded to nearest even into ${dtype}, packed in a u32 word (first in the low half).
fn pack_q2(v: vec2<f32>) -> u32 {
  return ${f}(v.x) | (${f}(v.y) << 16u);
}
`;
}

/** The WGSL codec `pack_q2` of `dtype` calls. */
export function wgslQPackCodec(dtype: QDtype): "f32_to_f16_bits" | "f32_to_bf16_bits" {
  return dtype === "f16" ? "f32_to_f16_bits" : "f32_to_bf16_bits";
}

/** The WGSL codec that decodes one byte of a 1-byte cache dtype. */
export function wgslByteDecodeCodec(dtype: "fp8_e4m3" | "int8"): "decode_e4m3" | "decode_int8" {
  return dtype === "fp8_e4m3" ? "decode_e4m3" : "decode_int8";
}

/** WGSL: `decode_byte4(w) -> vec4<f32>`, the four 1-byte cache elements of word `w`, unscaled. */
export function wgslByteDecode(dtype: "fp8_e4m3" | "int8"): string {
  const f = wgslByteDecodeCodec(dtype);
  return `// Four ${dtype} bytes of a u32 word (lowest byte first) as f32, before scaling.
fn decode_byte4(w: u32) -> vec4<f32> {
  return vec4<f32>(
    ${f}(w & 0xffu),
    ${f}((w >> 8u) & 0xffu),
    ${f}((w >> 16u) & 0xffu),
    ${f}(w >> 24u),
  );
}
`;
}

/** One planned dispatch (or a few) of a plan, recorded into a shared compute pass. */
export interface PassPlan {
  /** Variant key of the pipeline. */
  key: string;
  /** Its WGSL source. */
  code: string;
  /** Records the dispatch(es) into `pass`. */
  encodeInto(pass: GPUComputePassEncoder): void;
  /** Releases the buffers the pass plan created. */
  destroy(): void;
}

/**
 * A `KernelPlan` running `passes` in order inside one compute pass (WebGPU orders storage
 * accesses between dispatches), timestamps at its begin and end when asked.
 */
export function combinePasses(
  key: string,
  passes: readonly PassPlan[],
  extra: () => void = () => {},
): {
  key: string;
  encode(encoder: GPUCommandEncoder, timestamps?: TimestampSlots): void;
  wgsl(): Record<string, string>;
  destroy(): void;
} {
  return {
    key,
    encode(encoder, timestamps) {
      const pass = encoder.beginComputePass(timedPassDescriptor(timestamps, key));
      for (const p of passes) p.encodeInto(pass);
      pass.end();
    },
    wgsl() {
      return Object.fromEntries(passes.map((p) => [p.key, p.code]));
    },
    destroy() {
      passes.forEach((p) => p.destroy());
      extra();
    },
  };
}
