/**
 * Uploading the op's inputs into the GPU layout every kernel reads (`DeviceProblem`, see
 * `variant.ts`) and reading the results back. Pools over the adapter's storage binding limit
 * are compacted to the pages the batch references; anything still over the limit is rejected
 * with a `RangeError` naming the buffer, its size and the limit (SPEC §3).
 * @module
 */
import type { GpuContext } from "./gpu.ts";
import type { DeviceProblem } from "./variant.ts";
import {
  CACHE_ELEMENT_BYTES,
  CACHE_TENSOR_DTYPE,
  type PagedPrefillInputs,
  type PagedPrefillOutputs,
  type Problem,
  type Tensor,
  type TensorData,
  type TensorDtype,
} from "../op/types.ts";
import { paddedSize, scaleCount, scaleSlots } from "./_shared.ts";

/** Options of `uploadInputs()`. */
export interface UploadOptions {
  /**
   * Largest buffer, in bytes, a single storage binding may hold. Lower it to force the pool
   * compaction path (tests); values above the adapter's limit are clamped to it.
   * @default min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize)
   */
  maxBindingSize?: number;
}

/** How the pools go to the device: whole, or only the referenced pages. */
export interface PoolLayout {
  /** Original physical page of each uploaded page; null when the whole pool is uploaded. */
  pageIds: Int32Array | null;
  /** Block table as it will be uploaded (unreferenced entries become -1 when compacted). */
  blockTable: Int32Array;
  /** Bytes of each uploaded pool. */
  poolBytes: number;
  /** The binding limit the layout was planned against. */
  limit: number;
}

/**
 * The storage binding limit of `gpu`: the smaller of `maxStorageBufferBindingSize` and
 * `maxBufferSize` (128 MiB on lavapipe).
 *
 * @example
 * ```ts ignore
 * const gpu = await acquireGpu();
 * console.log(storageBindingLimit(gpu)); // 134217728 on lavapipe
 * ```
 */
export function storageBindingLimit(gpu: GpuContext): number {
  const binding = gpu.limits.maxStorageBufferBindingSize ?? 134217728;
  const buffer = gpu.limits.maxBufferSize ?? 268435456;
  return Math.min(binding, buffer);
}

/**
 * Decides how the pools are uploaded, without touching the GPU: whole when they fit the
 * binding limit, else only the pages covering positions `< old + q_len` of some request
 * (sorted by physical id), with the block table remapped to the compacted ids. Throws a
 * `RangeError` when even the compacted pool, or q / k_new / v_new / o / block_table, is
 * over the limit.
 *
 * @example
 * ```ts ignore
 * const layout = planPoolLayout(inputs, problem, 1 << 20);
 * if (layout.pageIds) console.log(`uploading ${layout.pageIds.length} pages`);
 * ```
 */
export function planPoolLayout(
  inputs: PagedPrefillInputs,
  problem: Problem,
  limit: number,
): PoolLayout {
  const p = problem;
  const qBytes = p.totalQ * p.numHeads * p.headDim * 2;
  const kvNewBytes = p.totalQ * p.numKvHeads * p.headDim * 2;
  for (
    const [name, bytes] of [
      ["q", qBytes],
      ["o", qBytes],
      ["k_new", kvNewBytes],
      ["v_new", kvNewBytes],
      ["block_table", p.batch * p.maxPagesPerReq * 4],
      ["k_scale/v_scale", scaleSlots(scaleCount(p)).length * 4],
    ] as const
  ) {
    if (bytes > limit) {
      throw new RangeError(
        `Cannot upload ${name}: ${bytes} bytes is over the adapter's storage binding limit of ${limit} bytes`,
      );
    }
  }
  const table = inputs.blockTable.data as Int32Array;
  const pageBytes = _pageBytes(p);
  const wholeBytes = p.numPages * pageBytes;
  if (wholeBytes <= limit) {
    return { pageIds: null, blockTable: Int32Array.from(table), poolBytes: wholeBytes, limit };
  }
  const used = new Set<number>();
  for (let b = 0; b < p.batch; b++) {
    const pages = Math.ceil((p.cacheLens[b]! + p.qLens[b]!) / p.pageSize);
    for (let lp = 0; lp < pages; lp++) used.add(table[b * p.maxPagesPerReq + lp]!);
  }
  const pageIds = Int32Array.from([...used].sort((a, b) => a - b));
  const poolBytes = pageIds.length * pageBytes;
  if (poolBytes > limit) {
    throw new RangeError(
      `Cannot upload k_pages/v_pages: the ${pageIds.length} referenced pages take ${poolBytes} bytes, over the adapter's storage binding limit of ${limit} bytes (whole pool: ${wholeBytes} bytes)`,
    );
  }
  const newId = new Map<number, number>();
  pageIds.forEach((id, i) => newId.set(id, i));
  const blockTable = new Int32Array(table.length).fill(-1);
  for (let b = 0; b < p.batch; b++) {
    const pages = Math.ceil((p.cacheLens[b]! + p.qLens[b]!) / p.pageSize);
    for (let lp = 0; lp < pages; lp++) {
      const i = b * p.maxPagesPerReq + lp;
      blockTable[i] = newId.get(table[i]!)!;
    }
  }
  return { pageIds, blockTable, poolBytes, limit };
}

/**
 * Uploads validated inputs into the layout of `DeviceProblem` (see `variant.ts`): 16-bit
 * tensors and pools as u32 words, the scales buffer `[kScale, vScale, kInv, vInv]` with
 * `inv = Math.fround(1 / scale)`, and an output buffer for o. Pools over the binding limit
 * are compacted (`pageIds` set, block table remapped). All sizes are checked before the
 * first buffer is created, so a rejected upload allocates nothing.
 *
 * @example
 * ```ts ignore
 * const problem = validateProblem(inputs, params);
 * const dev = uploadInputs(gpu, inputs, problem);
 * // ... plan and encode a kernel ...
 * const out = await readOutputs(gpu, dev, inputs);
 * dev.destroy();
 * ```
 */
export function uploadInputs(
  gpu: GpuContext,
  inputs: PagedPrefillInputs,
  problem: Problem,
  options: UploadOptions = {},
): DeviceProblem {
  const limit = Math.min(options.maxBindingSize ?? Infinity, storageBindingLimit(gpu));
  const layout = planPoolLayout(inputs, problem, limit);
  const device = gpu.device;
  const created: GPUBuffer[] = [];
  const STORAGE = GPUBufferUsage.STORAGE;
  const upload = (label: string, bytes: Uint8Array, usage: number): GPUBuffer => {
    const buffer = device.createBuffer({
      label: `paged_prefill.${label}`,
      size: paddedSize(bytes.byteLength),
      usage: usage | GPUBufferUsage.COPY_DST,
    });
    created.push(buffer);
    if (bytes.byteLength > 0) {
      // writeBuffer needs a multiple of 4 bytes; every tensor here is (D % 4 == 0).
      device.queue.writeBuffer(
        buffer,
        0,
        bytes.buffer as ArrayBuffer,
        bytes.byteOffset,
        bytes.byteLength,
      );
    }
    return buffer;
  };
  const poolBytes = (pool: Tensor): Uint8Array => {
    const whole = _bytesOf(pool.data);
    if (!layout.pageIds) return whole;
    const pageBytes = _pageBytes(problem);
    const out = new Uint8Array(layout.poolBytes);
    layout.pageIds.forEach((id, i) =>
      out.set(whole.subarray(id * pageBytes, (id + 1) * pageBytes), i * pageBytes)
    );
    return out;
  };
  try {
    const pool = STORAGE | GPUBufferUsage.COPY_SRC;
    const q = upload("q", _bytesOf(inputs.q.data), STORAGE);
    const kNew = upload("k_new", _bytesOf(inputs.kNew.data), STORAGE);
    const vNew = upload("v_new", _bytesOf(inputs.vNew.data), STORAGE);
    const kPages = upload("k_pages", poolBytes(inputs.kPages), pool);
    const vPages = upload("v_pages", poolBytes(inputs.vPages), pool);
    // COPY_SRC: tests read back the words the GPU writes (scaleSlots: kNew, vNew).
    const scales = upload(
      "scales",
      _bytesOf(scalesHost(inputs, problem)),
      STORAGE | GPUBufferUsage.COPY_SRC,
    );
    const cuSeqlensQ = upload("cu_seqlens_q", _bytesOf(inputs.cuSeqlensQ.data), STORAGE);
    const cacheSeqlens = upload("cache_seqlens", _bytesOf(inputs.cacheSeqlens.data), STORAGE);
    const blockTable = upload("block_table", _bytesOf(layout.blockTable), STORAGE);
    const o = device.createBuffer({
      label: "paged_prefill.o",
      size: paddedSize(problem.totalQ * problem.numHeads * problem.headDim * 2),
      usage: STORAGE | GPUBufferUsage.COPY_SRC,
    });
    created.push(o);
    return {
      problem,
      q,
      kNew,
      vNew,
      kPages,
      vPages,
      scales,
      cuSeqlensQ,
      cacheSeqlens,
      blockTable,
      o,
      pageIds: layout.pageIds,
      blockTableHost: layout.blockTable,
      destroy: () => created.forEach((b) => b.destroy()),
    };
  } catch (e) {
    created.forEach((b) => b.destroy());
    throw e;
  }
}

/**
 * The host copy of the scales buffer (layout: `scaleSlots`): f32 `[kScale(n), vScale(n),
 * kInv(n), vInv(n), kMax, vMax, kNew, vNew, fold]`, n = 1 for fp8 and for f16/bf16 caches (scale 1),
 * n = H_kv * D for int8; kMax / vMax are the largest k / v scale (flash's f16 arithmetic bounds
 * the decoded values with them); kNew, vNew and fold start at 0 (the bound passes before flash's bounded kernels set them).
 *
 * @example
 * ```ts ignore
 * const s = scalesHost(inputs, problem); // fp8, k_scale 0.5: [0.5, vs, 2, 1/vs, 0.5, vs]
 * ```
 */
export function scalesHost(inputs: PagedPrefillInputs, problem: Problem): Float32Array {
  const n = scaleCount(problem);
  const slots = scaleSlots(n);
  const out = new Float32Array(slots.length).fill(1);
  if (problem.cacheDtype === "fp8_e4m3" || problem.cacheDtype === "int8") {
    const k = inputs.kScale!.data as Float32Array;
    const v = inputs.vScale!.data as Float32Array;
    let kMax = 0, vMax = 0;
    for (let i = 0; i < n; i++) {
      out[i] = k[i]!;
      out[n + i] = v[i]!;
      out[2 * n + i] = Math.fround(1 / k[i]!);
      out[3 * n + i] = Math.fround(1 / v[i]!);
      kMax = Math.max(kMax, k[i]!);
      vMax = Math.max(vMax, v[i]!);
    }
    out[slots.kMax] = kMax;
    out[slots.vMax] = vMax;
    out[slots.kNew] = 0;
    out[slots.vNew] = 0;
    out[slots.fold] = 0;
  }
  return out;
}

/**
 * Reads o and both pools back. Pools come back as fresh tensors; when the upload was
 * compacted they are copies of the caller's pools with the uploaded pages scattered back.
 * The caller's inputs are never modified.
 *
 * @example
 * ```ts ignore
 * const { o, kPages, vPages } = await readOutputs(gpu, dev, inputs);
 * ```
 */
export async function readOutputs(
  gpu: GpuContext,
  dev: DeviceProblem,
  inputs: PagedPrefillInputs,
): Promise<PagedPrefillOutputs> {
  const p = dev.problem;
  const oBytes = p.totalQ * p.numHeads * p.headDim * 2;
  const pageBytes = _pageBytes(p);
  const poolBytes = (dev.pageIds ? dev.pageIds.length : p.numPages) * pageBytes;
  const [oRaw, kRaw, vRaw] = await readBuffers(gpu, [
    [dev.o, oBytes],
    [dev.kPages, poolBytes],
    [dev.vPages, poolBytes],
  ]);
  const cacheDtype = CACHE_TENSOR_DTYPE[p.cacheDtype];
  const pool = (raw: Uint8Array, original: Tensor): Tensor => {
    let bytes = raw;
    if (dev.pageIds) {
      bytes = _bytesOf(original.data).slice();
      dev.pageIds.forEach((id, i) =>
        bytes.set(raw.subarray(i * pageBytes, (i + 1) * pageBytes), id * pageBytes)
      );
    }
    return { dtype: cacheDtype, shape: [...original.shape], data: _typedFrom(cacheDtype, bytes) };
  };
  return {
    o: {
      dtype: p.qDtype,
      shape: [p.totalQ, p.numHeads, p.headDim],
      data: _typedFrom(p.qDtype, oRaw!),
    },
    kPages: pool(kRaw!, inputs.kPages),
    vPages: pool(vRaw!, inputs.vPages),
  };
}

/**
 * Copies the first `bytes` of each buffer (which needs COPY_SRC) into fresh host memory,
 * in one submission.
 *
 * @example
 * ```ts ignore
 * const [o] = await readBuffers(gpu, [[dev.o, 1024]]);
 * ```
 */
export async function readBuffers(
  gpu: GpuContext,
  buffers: ReadonlyArray<readonly [GPUBuffer, number]>,
): Promise<Uint8Array[]> {
  const device = gpu.device;
  const encoder = device.createCommandEncoder({ label: "paged_prefill.readback" });
  const staging = buffers.map(([src, bytes]) => {
    const size = paddedSize(bytes);
    const dst = device.createBuffer({
      label: `${src.label}.readback`,
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (bytes > 0) encoder.copyBufferToBuffer(src, 0, dst, 0, size);
    return dst;
  });
  device.queue.submit([encoder.finish()]);
  try {
    return await Promise.all(staging.map(async (dst, i) => {
      await dst.mapAsync(GPUMapMode.READ);
      const out = new Uint8Array(dst.getMappedRange().slice(0, buffers[i]![1]));
      dst.unmap();
      return out;
    }));
  } finally {
    staging.forEach((b) => b.destroy());
  }
}

function _pageBytes(p: Problem): number {
  return p.pageSize * p.numKvHeads * p.headDim * CACHE_ELEMENT_BYTES[p.cacheDtype];
}

function _bytesOf(data: TensorData[TensorDtype]): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function _typedFrom(dtype: TensorDtype, bytes: Uint8Array): TensorData[TensorDtype] {
  const buf = bytes.buffer as ArrayBuffer;
  const off = bytes.byteOffset;
  switch (dtype) {
    case "f16":
    case "bf16":
      return new Uint16Array(buf, off, bytes.byteLength / 2);
    case "f8_e4m3":
      return new Uint8Array(buf, off, bytes.byteLength);
    case "i8":
      return new Int8Array(buf, off, bytes.byteLength);
    case "i32":
      return new Int32Array(buf, off, bytes.byteLength / 4);
    case "f32":
      return new Float32Array(buf, off, bytes.byteLength / 4);
  }
}
