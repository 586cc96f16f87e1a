/**
 * The `dequant` kernel variant for fp8/int8 caches (dequantize-then-reuse): a dequant pass
 * converts only the pages the batch reads (positions < old) into an f32 scratch pool, the
 * flash kernel (or simple) then runs over that scratch pool through a remapped block table,
 * and the append encodes the new tokens into the real quantized pool.
 *
 * Numerics: each cached element is decoded and multiplied by its scale in f32, and that f32
 * product is stored as is: attention reads exactly the values the fused paths compute in
 * registers (no rounding to q's dtype, which with bf16 q and a sharp softmax, sm_scale 40, put
 * an element past SPEC §4's tolerance: PP_TEST_SEED=1783308440 in simple_test.ts), and any
 * finite decoded value stays finite. The price is 4 bytes per scratch element.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { Problem } from "../../op/types.ts";
import { storageBindingLimit } from "../device_inputs.ts";
import { wgslCodecs } from "../wgsl/codecs.ts";
import {
  bindAll,
  cachedPipeline,
  combinePasses,
  createUniform,
  dispatchGrid,
  DTYPE_KEY,
  paddedSize,
  type PassPlan,
  scaleCount,
  scaleSlots,
  wgslByteDecode,
  wgslByteDecodeCodec,
} from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import { commonSupport, planSimpleAttention } from "./simple.ts";
import { flashSupport, planFlashAttention } from "../flash/flash.ts";
import { specForProblem, specKey } from "./spec.ts";
import { SIMPLE_BINDINGS } from "./template.ts";

/** What the dequant kernel's WGSL depends on. */
export interface DequantSpec {
  /** dtype of the quantized pool read (the scratch pool is f32). */
  cacheDtype: "fp8_e4m3" | "int8";
  /** Invocations per workgroup, one per source word (four elements). */
  workgroupSize: number;
}

/**
 * Default invocations per workgroup of the dequant kernel.
 *
 * @example
 * ```ts ignore
 * dequantKey({ cacheDtype: "int8", workgroupSize: DEQUANT_WORKGROUP_SIZE });
 * ```
 */
export const DEQUANT_WORKGROUP_SIZE = 64;

/**
 * Bindings of the dequant kernel, in binding order (all in group 0): params, k_pages,
 * v_pages, scales, page_list, k_scratch, v_scratch.
 *
 * @example
 * ```ts ignore
 * const { pipeline, layout } = await cachedPipeline(gpu, key, dequantWgsl(spec), DEQUANT_BINDINGS);
 * ```
 */
export const DEQUANT_BINDINGS = [
  "uniform", // params
  "read", // k_pages (quantized)
  "read", // v_pages (quantized)
  "read", // scales
  "read", // page_list: source page of each scratch page
  "read_write", // k_scratch
  "read_write", // v_scratch
] as const;

/**
 * The key of the dequant kernel (head_dim does not change its code).
 *
 * @example
 * ```ts ignore
 * dequantKey({ cacheDtype: "fp8_e4m3", workgroupSize: 64 }); // "paged_dequant_kv-fp8_f32_wg64"
 * ```
 */
export function dequantKey(spec: DequantSpec): string {
  return `paged_dequant_kv-${DTYPE_KEY[spec.cacheDtype]}_f32_wg${spec.workgroupSize}`;
}

/**
 * Generates the dequant kernel's WGSL: one invocation per word (four elements) of the
 * scratch pool's source, decoding and scaling in f32 into one vec4<f32> of the scratch pool.
 *
 * @example
 * ```ts ignore
 * const code = dequantWgsl({ cacheDtype: "int8", workgroupSize: 64 });
 * ```
 */
export function dequantWgsl(spec: DequantSpec): string {
  const scale = (base: string) =>
    spec.cacheDtype === "fp8_e4m3"
      ? `scales[${base}]`
      : `vec4<f32>(scales[${base} + c], scales[${base} + c + 1u], scales[${base} + c + 2u], scales[${base} + c + 3u])`;
  return `// ${dequantKey(spec)}
// One invocation per word of 4 ${spec.cacheDtype} elements of a referenced page: decode, times the
// scale (f32), stored as f32 (no rounding), one vec4 of the scratch pool.

${wgslCodecs(wgslByteDecodeCodec(spec.cacheDtype)).trim()}

struct Params {
  num_words: u32, // source words to convert: scratch pages * page_size * row_words
  row_words: u32, // source words per token: H_kv * D / 4
  page_shift: u32,
  scale_n: u32,
}

const WG: u32 = ${spec.workgroupSize}u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_pages: array<u32>;
@group(0) @binding(2) var<storage, read> v_pages: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>; // [k, v, k_inv, v_inv] x scale_n
@group(0) @binding(4) var<storage, read> page_list: array<i32>;
@group(0) @binding(5) var<storage, read_write> k_scratch: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> v_scratch: array<vec4<f32>>;

${wgslByteDecode(spec.cacheDtype).trim()}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = (wid.y * nwg.x + wid.x) * WG + lid;
  if (idx >= params.num_words) {
    return;
  }
  let token = idx / params.row_words; // scratch token
  let r = idx % params.row_words; // word within the token's H_kv * D elements
  let page = u32(page_list[token >> params.page_shift]);
  let src_token = (page << params.page_shift) + (token & ((1u << params.page_shift) - 1u));
  let src = src_token * params.row_words + r;
  let c = 4u * r; // channel g * D + d of the word's first element
  k_scratch[idx] = decode_byte4(k_pages[src]) * ${scale("0u")};
  v_scratch[idx] = decode_byte4(v_pages[src]) * ${scale("params.scale_n")};
}
`;
}

/**
 * The pages attention reads (covering positions < old of some request) and the block table
 * that maps each request's logical pages onto them (entries for unread pages are -1).
 *
 * @example
 * ```ts ignore
 * const { pageList, table } = scratchPages(dev.problem, dev.blockTableHost);
 * ```
 */
export function scratchPages(
  problem: Problem,
  blockTable: Int32Array,
): { pageList: Int32Array<ArrayBuffer>; table: Int32Array<ArrayBuffer> } {
  const ids = new Map<number, number>();
  const table = new Int32Array(blockTable.length).fill(-1);
  for (let b = 0; b < problem.batch; b++) {
    const pages = Math.ceil(problem.cacheLens[b]! / problem.pageSize);
    for (let lp = 0; lp < pages; lp++) {
      const i = b * problem.maxPagesPerReq + lp;
      const page = blockTable[i]!;
      if (!ids.has(page)) ids.set(page, ids.size);
      table[i] = ids.get(page)!;
    }
  }
  return { pageList: Int32Array.from(ids.keys()), table };
}

/** Bytes of one f32 scratch pool of `pages` pages. */
function _scratchBytes(problem: Problem, pages: number): number {
  return pages * problem.pageSize * problem.numKvHeads * problem.headDim * 4;
}

/** What `planDequant()` plans: the dequant pass and the scratch pools it fills. */
export interface DequantPlan {
  /** The dequant pass; its `destroy()` frees every buffer below. */
  pass: PassPlan;
  /** f32 scratch pools, `[scratch page, page_size, H_kv, D]` (STORAGE | COPY_SRC). */
  kScratch: GPUBuffer;
  vScratch: GPUBuffer;
  /** The block table remapped onto the scratch pages (`scratchPages`). */
  blockTable: GPUBuffer;
  /** A scales buffer of scale 1, laid out for a cache with one scale. */
  scales: GPUBuffer;
}

/**
 * Plans the dequant pass of `dev`'s fp8/int8 pools into f32 scratch pools (the first pass of
 * the `dequant` variant).
 *
 * @example
 * ```ts ignore
 * const dequant = await planDequant(gpu, dev);
 * const pass = encoder.beginComputePass();
 * dequant.pass.encodeInto(pass);
 * pass.end();
 * ```
 */
export async function planDequant(gpu: GpuContext, dev: DeviceProblem): Promise<DequantPlan> {
  const p = dev.problem;
  const spec: DequantSpec = {
    cacheDtype: p.cacheDtype as "fp8_e4m3" | "int8",
    workgroupSize: DEQUANT_WORKGROUP_SIZE,
  };
  const key = dequantKey(spec);
  const code = dequantWgsl(spec);
  const { pageList, table } = scratchPages(p, dev.blockTableHost);
  const bytes = _scratchBytes(p, pageList.length);
  const limit = storageBindingLimit(gpu);
  if (bytes > limit) {
    throw new RangeError(
      `Cannot allocate the dequant scratch pool: ${pageList.length} pages take ${bytes} bytes, over the adapter's storage binding limit of ${limit} bytes`,
    );
  }
  const { pipeline, layout } = await cachedPipeline(gpu, key, code, DEQUANT_BINDINGS);
  const device = gpu.device;
  const made: GPUBuffer[] = [];
  const buffer = (
    label: string,
    size: number,
    usage: number,
    data?: Int32Array<ArrayBuffer>,
  ): GPUBuffer => {
    // At least 16 bytes: kernels that read vec4 words need that much bound, even for no pages.
    const b = device.createBuffer({
      label: `${key}.${label}`,
      size: Math.max(16, paddedSize(size)),
      usage,
    });
    made.push(b);
    if (data && data.byteLength > 0) device.queue.writeBuffer(b, 0, data);
    return b;
  };
  const STORAGE = GPUBufferUsage.STORAGE;
  const pageListBuf = buffer(
    "page_list",
    pageList.byteLength,
    STORAGE | GPUBufferUsage.COPY_DST,
    pageList,
  );
  const tableBuf = buffer(
    "block_table",
    table.byteLength,
    STORAGE | GPUBufferUsage.COPY_DST,
    table,
  );
  // The scratch pool needs no scales: its own scales buffer, laid out as scaleCount says for
  // one (scale 1), so a kernel over the scratch never reads the quantized pool's scales (the
  // append's) as if they were its own.
  const scales16 = new Float32Array(scaleSlots(1).length).fill(1);
  const scratchScales = buffer("scales", scales16.byteLength, STORAGE | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(scratchScales, 0, scales16);
  const kScratch = buffer("k_scratch", bytes, STORAGE | GPUBufferUsage.COPY_SRC);
  const vScratch = buffer("v_scratch", bytes, STORAGE | GPUBufferUsage.COPY_SRC);
  const rowWords = (p.numKvHeads * p.headDim) / 4;
  const numWords = pageList.length * p.pageSize * rowWords;
  const uniform = createUniform(device, `${key}.params`, [
    ["u32", numWords],
    ["u32", rowWords],
    ["u32", Math.log2(p.pageSize)],
    ["u32", scaleCount(p)],
  ]);
  made.push(uniform);
  const bindGroup = bindAll(device, key, layout, [
    uniform,
    dev.kPages,
    dev.vPages,
    dev.scales,
    pageListBuf,
    kScratch,
    vScratch,
  ]);
  const [x, y] = dispatchGrid(gpu, numWords, spec.workgroupSize);
  return {
    pass: {
      key,
      code,
      encodeInto(pass) {
        if (x === 0) return;
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(x, y);
      },
      destroy: () => made.forEach((b) => b.destroy()),
    },
    kScratch,
    vScratch,
    blockTable: tableBuf,
    scales: scratchScales,
  };
}

/**
 * The `dequant` kernel variant (fp8/int8 caches only): dequantize the referenced pages into an
 * f32 scratch pool, run the flash kernel (else simple) over it, append into the quantized
 * pool. Attention reads the same f32 K/V values as the fused variants (see the module doc).
 *
 * @example
 * ```ts ignore
 * const plan = await dequantVariant.plan(gpu, uploadInputs(gpu, inputs, problem));
 * ```
 */
export const dequantVariant: KernelVariant = {
  name: "dequant",
  description:
    "fp8/int8 caches: dequantize the referenced pages into an f32 scratch pool, then the flash kernel (simple where flash cannot run)",
  supports(problem, gpu) {
    if (problem.cacheDtype !== "fp8_e4m3" && problem.cacheDtype !== "int8") {
      return `the dequant variant is for fp8_e4m3 and int8 caches; a ${problem.cacheDtype} cache needs no dequantization (use simple)`;
    }
    const common = commonSupport(problem, gpu, SIMPLE_BINDINGS.length - 1);
    if (common) return common;
    let pages = 0;
    for (let b = 0; b < problem.batch; b++) {
      pages += Math.ceil(problem.cacheLens[b]! / problem.pageSize);
    }
    const bytes = _scratchBytes(problem, Math.min(pages, problem.numPages));
    const limit = storageBindingLimit(gpu);
    if (bytes > limit) {
      return `its scratch pool of up to ${bytes} bytes is over the adapter's storage binding limit of ${limit} bytes`;
    }
    return null;
  },
  async plan(gpu, dev): Promise<KernelPlan> {
    const p = dev.problem;
    const dequant = await planDequant(gpu, dev);
    try {
      // Reuse the fastest kernel over the scratch pool: flash where it runs the problem, else
      // simple. Flash chooses its tile for the problem with a 16-bit cache (an f32 pool stages
      // the same chunks of 8) and reads the pools as f32.
      const scratch: DeviceProblem = {
        ...dev,
        problem: { ...p, cacheDtype: p.qDtype },
        kPages: dequant.kScratch,
        vPages: dequant.vScratch,
        blockTable: dequant.blockTable,
        scales: dequant.scales,
      };
      const attention = flashSupport(scratch.problem, gpu) === null
        ? (await planFlashAttention(gpu, scratch, { pools: "f32" })).passes
        : [
          await planSimpleAttention(gpu, dev, {
            spec: specForProblem(p, { cacheDtype: "f32" }),
            kPages: dequant.kScratch,
            vPages: dequant.vScratch,
            blockTable: dequant.blockTable,
          }),
        ];
      const append = await planAppend(gpu, dev);
      return combinePasses(specKey("dequant", specForProblem(p)), [
        dequant.pass,
        ...attention,
        append,
      ]);
    } catch (e) {
      dequant.pass.destroy();
      throw e;
    }
  },
};
