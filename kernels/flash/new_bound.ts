/**
 * The passes that run before flash's int8Fold, byteNewBound and poolBound kernels: a scan of the
 * new tokens for their largest |k_new * k_inv| and |v_new * v_inv| (the values the folded tile
 * holds before its power-of-two factor; for a bf16 cache also of every pool value the call reads,
 * its inverse scale being 1), and a one-invocation pass that publishes the two bounds in the
 * scales buffer (`scaleSlots`: kNew, vNew) with the word that picks the kernel (`fold`): the
 * bounded one, or, when a bound is out of range, the fallback dispatched after it
 * (`FlashSpec.boundFallback`).
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem } from "../variant.ts";
import {
  bindAll,
  type BindingKind,
  cachedPipeline,
  createUniform,
  scaleCount,
  scaleSlots,
  wgslQUnpack,
} from "../_shared.ts";
import type { QDtype } from "../../op/types.ts";
import { BF16_MAG_WGSL } from "../wgsl/bf16_mag.ts";

/**
 * The largest bound (|x / scale| of a new token, K or V) the folded kernel takes: 2^20. Above it
 * the fold's factors would push the codes' tile values towards f16's subnormals, so the unfolded
 * kernel runs (its tile factors come from the scales alone).
 */
export const INT8_FOLD_MAX_BOUND = 2 ** 20;

/** Invocations per workgroup of the scan. */
const SCAN_THREADS = 256;
/** Workgroups of the scan at most (a grid-stride loop covers the rest). */
const SCAN_MAX_GROUPS = 512;

/** Bindings of the scan: params, k_new, v_new, scales, the two running maxima. */
export const NEW_BOUND_SCAN_BINDINGS: readonly BindingKind[] = [
  "uniform",
  "read",
  "read",
  "read",
  "read_write",
];
/** Bindings of the scan with the pools (bf16 caches): those, then the pools and the tables. */
export const POOL_BOUND_SCAN_BINDINGS: readonly BindingKind[] = [
  ...NEW_BOUND_SCAN_BINDINGS,
  "read",
  "read",
  "read",
  "read",
];
/** Bindings of the publishing pass: params, running maxima, scales. */
export const NEW_BOUND_PUBLISH_BINDINGS: readonly BindingKind[] = [
  "uniform",
  "read_write",
  "read_write",
];

/** Pipeline key of the scan for `qDtype`, with or without the pools. */
function scanKey(qDtype: QDtype, pools: boolean): string {
  return `${pools ? "pool" : "new"}_bound_scan_${qDtype}`;
}

/**
 * WGSL of the pool part of the scan: workgroup row `wid.y` < batch takes request wid.y's pool
 * values of its tokens [0, cache_seqlens) through the block table, 8 bf16 per vec4 (a token's
 * H_kv * D values are contiguous in its page). A bf16's magnitude bits are the high half of its
 * f32's, so they merge with the new tokens' f32 bits.
 */
function poolLoop(): string {
  return `  if (wid.y < params.batch) {
    let b = wid.y;
    let row = params.row_words >> 2u;
    let mask = (1u << params.page_shift) - 1u;
    let n = u32(cache_seqlens[b]) * row;
    for (var i = wid.x * ${SCAN_THREADS}u + lid; i < n; i = i + nwg.x * ${SCAN_THREADS}u) {
      let t = i / row;
      let page = u32(block_table[b * params.max_pages + (t >> params.page_shift)]);
      let at = ((page << params.page_shift) | (t & mask)) * row + (i - t * row);
      // bf16_mag's high halves, as f32 bits.
      let km = bf16_mag(k_pages[at]) & vec4<u32>(0xffff0000u);
      let vm = bf16_mag(v_pages[at]) & vec4<u32>(0xffff0000u);
      mk = max(mk, max(max(km.x, km.y), max(km.z, km.w)));
      mv = max(mv, max(max(vm.x, vm.y), max(vm.z, vm.w)));
    }
  }
`;
}

/**
 * WGSL of the scan: every new token's 16-bit K and V values times their channel's f32 inverse
 * scale (the product the append encodes and the folded tile stores), the largest magnitudes
 * folded into `maxima` (f32 bits of non-negative values order as u32; a NaN orders above +inf).
 *
 * @example
 * ```ts
 * import { newBoundScanWgsl } from "./new_bound.ts";
 * newBoundScanWgsl("bf16").includes("fn main"); // true
 * ```
 */
export function newBoundScanWgsl(qDtype: QDtype, pools = false): string {
  return `// ${
    scanKey(qDtype, pools)
  }: max |k_new * k_inv| and |v_new * v_inv| over the call's new tokens${
    pools
      ? ",\n// and max |k|, |v| over the bf16 pool values each request reads (tokens < cache_seqlens)"
      : ""
  }.
struct Params {
  words: u32,
  row_words: u32,
  scale_n: u32,
  batch: u32,
  max_pages: u32,
  page_shift: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_new: array<u32>;
@group(0) @binding(2) var<storage, read> v_new: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> maxima: array<atomic<u32>, 2>;
${
    pools
      ? `@group(0) @binding(5) var<storage, read> k_pages: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> v_pages: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read> cache_seqlens: array<i32>;
@group(0) @binding(8) var<storage, read> block_table: array<i32>;
`
      : ""
  }var<workgroup> wmax: array<atomic<u32>, 2>;

${wgslQUnpack(qDtype)}
${pools ? BF16_MAG_WGSL : ""}@compute @workgroup_size(${SCAN_THREADS})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  var mk = 0u;
  var mv = 0u;
${pools ? poolLoop() : ""}  let stride = nwg.x * ${SCAN_THREADS}u;
  for (var w = wid.x * ${SCAN_THREADS}u + lid; w < ${
    pools ? "select(0u, params.words, wid.y == params.batch)" : "params.words"
  }; w = w + stride) {
    // Word w holds channels c, c + 1 of one (token, KV head): channel = KV head * D + d, whose
    // inverse scale is word c of the inverses (int8, scale_n = H_kv * D) or word 0 (fp8).
    let c = (w % params.row_words) * 2u;
    let c0 = c % params.scale_n;
    let c1 = (c + 1u) % params.scale_n;
    let k_inv = vec2<f32>(scales[2u * params.scale_n + c0], scales[2u * params.scale_n + c1]);
    let v_inv = vec2<f32>(scales[3u * params.scale_n + c0], scales[3u * params.scale_n + c1]);
    let k = abs(unpack_q2(k_new[w]) * k_inv);
    let v = abs(unpack_q2(v_new[w]) * v_inv);
    mk = max(mk, max(bitcast<u32>(k.x), bitcast<u32>(k.y)));
    mv = max(mv, max(bitcast<u32>(v.x), bitcast<u32>(v.y)));
  }
  atomicMax(&wmax[0], mk);
  atomicMax(&wmax[1], mv);
  workgroupBarrier();
  if (lid == 0u) {
    atomicMax(&maxima[0], atomicLoad(&wmax[0]));
    atomicMax(&maxima[1], atomicLoad(&wmax[1]));
  }
}
`;
}

/**
 * WGSL of the publishing pass (one invocation): the scan's maxima into the scales buffer's kNew
 * and vNew words, the maxima reset to 0 for the next call, and the fold word: 1.0 when both
 * bounds and the largest k scale are within the fold's range, else 0.0.
 *
 * @example
 * ```ts
 * import { newBoundPublishWgsl } from "./new_bound.ts";
 * newBoundPublishWgsl().includes("fn main"); // true
 * ```
 */
export function newBoundPublishWgsl(): string {
  const bits = (x: number) => `${new Uint32Array(new Float32Array([x]).buffer)[0]}u`;
  return `// new_bound_publish: the new tokens' bounds into the scales; which flash kernel runs.
struct Params {
  slot: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> maxima: array<u32, 2>;
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;

@compute @workgroup_size(1)
fn main() {
  let mk = maxima[0];
  let mv = maxima[1];
  maxima[0] = 0u;
  maxima[1] = 0u;
  scales[params.slot + 2u] = mk;
  scales[params.slot + 3u] = mv;
  // Compared as bits: a NaN bound (bits above +inf) does not fold. The scale bounds keep the
  // factors (int8: 1 / kMax, which Q takes; fp8: 65472 / (bound * scale)) normal f32s with room
  // for the score scale.
  let k_max = scales[params.slot];
  let v_max = scales[params.slot + 1u];
  let fold = mk <= ${bits(INT8_FOLD_MAX_BOUND)} && mv <= ${bits(INT8_FOLD_MAX_BOUND)} &&
    k_max >= ${bits(2 ** -40)} && k_max <= ${bits(2 ** 40)} &&
    v_max >= ${bits(2 ** -40)} && v_max <= ${bits(2 ** 40)};
  scales[params.slot + 4u] = select(0u, ${bits(1)}, fold);
}
`;
}

/** The passes before a bounded (int8Fold, byteNewBound, poolBound) dispatch. */
export interface NewBoundPlan {
  /** Records the scan and the publishing pass into `pass`. */
  encodeInto(pass: GPUComputePassEncoder): void;
}

/**
 * Plans the scan and the publishing pass for `dev`; the buffers it makes are pushed onto
 * `buffers` for the caller to destroy. A bf16 cache's scan also reads the pools (poolBound: the
 * tile's factors must bound every value, and bf16 values have no scale to bound them).
 */
export async function planNewBound(
  gpu: GpuContext,
  dev: DeviceProblem,
  buffers: GPUBuffer[],
): Promise<NewBoundPlan> {
  const p = dev.problem;
  const device = gpu.device;
  const pools = p.cacheDtype === "bf16";
  const key = scanKey(p.qDtype, pools);
  const scan = await cachedPipeline(
    gpu,
    key,
    newBoundScanWgsl(p.qDtype, pools),
    pools ? POOL_BOUND_SCAN_BINDINGS : NEW_BOUND_SCAN_BINDINGS,
  );
  const publish = await cachedPipeline(
    gpu,
    "new_bound_publish",
    newBoundPublishWgsl(),
    NEW_BOUND_PUBLISH_BINDINGS,
  );
  const rowWords = (p.numKvHeads * p.headDim) / 2;
  const words = p.totalQ * rowWords;
  // The pools' longest request, in vec4s: its row of workgroups covers it in one or a few steps.
  const poolVec4s = pools ? Math.max(0, ...p.cacheLens) * (rowWords / 4) : 0;
  const groups = Math.max(
    1,
    Math.min(SCAN_MAX_GROUPS, Math.ceil(Math.max(words, poolVec4s) / SCAN_THREADS)),
  );
  // New buffers are zero-filled: the maxima start at 0, and the publishing pass resets them.
  const maxima = device.createBuffer({
    label: `${key}.maxima`,
    size: 8,
    usage: GPUBufferUsage.STORAGE,
  });
  const scanParams = createUniform(device, `${key}.params`, [
    ["u32", words],
    ["u32", rowWords],
    ["u32", scaleCount(p)],
    ["u32", p.batch],
    ["u32", p.maxPagesPerReq],
    ["u32", Math.log2(p.pageSize)],
  ]);
  const publishParams = createUniform(device, "new_bound_publish.params", [
    ["u32", scaleSlots(scaleCount(p)).kMax],
  ]);
  buffers.push(maxima, scanParams, publishParams);
  const scanGroup = bindAll(device, key, scan.layout, [
    scanParams,
    dev.kNew,
    dev.vNew,
    dev.scales,
    maxima,
    ...(pools ? [dev.kPages, dev.vPages, dev.cacheSeqlens, dev.blockTable] : []),
  ]);
  const publishGroup = bindAll(device, "new_bound_publish", publish.layout, [
    publishParams,
    maxima,
    dev.scales,
  ]);
  // Rows 0 .. batch - 1 scan the requests' pool values, row batch (the only one without pools)
  // the new tokens.
  const rows = pools ? p.batch + 1 : 1;
  return {
    encodeInto(pass) {
      pass.setPipeline(scan.pipeline);
      pass.setBindGroup(0, scanGroup);
      pass.dispatchWorkgroups(groups, rows);
      pass.setPipeline(publish.pipeline);
      pass.setBindGroup(0, publishGroup);
      pass.dispatchWorkgroups(1, 1);
    },
  };
}
