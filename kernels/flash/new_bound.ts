/**
 * The passes that run before flash's int8Fold and fp8NewBound kernels: a scan of the new
 * tokens for their largest |k_new * k_inv| and |v_new * v_inv| (the values the folded tile holds
 * before its power-of-two factor), and a one-invocation pass that publishes the two bounds in the
 * scales buffer (`scaleSlots`: kNew, vNew) with the word that picks the kernel (`fold`): the
 * folded one, or, when a bound is out of the fold's range, the unfolded fallback dispatched
 * after it (`FlashSpec.boundFallback`).
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
/** Bindings of the publishing pass: params, running maxima, scales. */
export const NEW_BOUND_PUBLISH_BINDINGS: readonly BindingKind[] = [
  "uniform",
  "read_write",
  "read_write",
];

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
export function newBoundScanWgsl(qDtype: QDtype): string {
  return `// new_bound_scan_${qDtype}: max |k_new * k_inv| and |v_new * v_inv| over the call's new tokens.
struct Params {
  words: u32,
  row_words: u32,
  scale_n: u32,
  grid_x: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k_new: array<u32>;
@group(0) @binding(2) var<storage, read> v_new: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> maxima: array<atomic<u32>, 2>;
var<workgroup> wmax: array<atomic<u32>, 2>;

${wgslQUnpack(qDtype)}
@compute @workgroup_size(${SCAN_THREADS})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  var mk = 0u;
  var mv = 0u;
  let stride = nwg.x * nwg.y * ${SCAN_THREADS}u;
  for (var w = (wid.y * params.grid_x + wid.x) * ${SCAN_THREADS}u + lid; w < params.words; w = w + stride) {
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

/** The two passes before an int8Fold dispatch. */
export interface NewBoundPlan {
  /** Records the scan and the publishing pass into `pass`. */
  encodeInto(pass: GPUComputePassEncoder): void;
}

/**
 * Plans the new-token scan and the publishing pass for `dev`; the buffers it makes are pushed
 * onto `buffers` for the caller to destroy.
 */
export async function planNewBound(
  gpu: GpuContext,
  dev: DeviceProblem,
  buffers: GPUBuffer[],
): Promise<NewBoundPlan> {
  const p = dev.problem;
  const device = gpu.device;
  const scanKey = `new_bound_scan_${p.qDtype}`;
  const scan = await cachedPipeline(
    gpu,
    scanKey,
    newBoundScanWgsl(p.qDtype),
    NEW_BOUND_SCAN_BINDINGS,
  );
  const publish = await cachedPipeline(
    gpu,
    "new_bound_publish",
    newBoundPublishWgsl(),
    NEW_BOUND_PUBLISH_BINDINGS,
  );
  const words = (p.totalQ * p.numKvHeads * p.headDim) / 2;
  const groups = Math.max(1, Math.min(SCAN_MAX_GROUPS, Math.ceil(words / SCAN_THREADS)));
  // New buffers are zero-filled: the maxima start at 0, and the publishing pass resets them.
  const maxima = device.createBuffer({
    label: `${scanKey}.maxima`,
    size: 8,
    usage: GPUBufferUsage.STORAGE,
  });
  const scanParams = createUniform(device, `${scanKey}.params`, [
    ["u32", words],
    ["u32", (p.numKvHeads * p.headDim) / 2],
    ["u32", scaleCount(p)],
    ["u32", groups],
  ]);
  const publishParams = createUniform(device, "new_bound_publish.params", [
    ["u32", scaleSlots(scaleCount(p)).kMax],
  ]);
  buffers.push(maxima, scanParams, publishParams);
  const scanGroup = bindAll(device, scanKey, scan.layout, [
    scanParams,
    dev.kNew,
    dev.vNew,
    dev.scales,
    maxima,
  ]);
  const publishGroup = bindAll(device, "new_bound_publish", publish.layout, [
    publishParams,
    maxima,
    dev.scales,
  ]);
  return {
    encodeInto(pass) {
      pass.setPipeline(scan.pipeline);
      pass.setBindGroup(0, scanGroup);
      pass.dispatchWorkgroups(groups, 1);
      pass.setPipeline(publish.pipeline);
      pass.setBindGroup(0, publishGroup);
      pass.dispatchWorkgroups(1, 1);
    },
  };
}
