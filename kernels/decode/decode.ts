/**
 * The `decode` kernel variant: few query rows per KV head over long paged prefixes, designed for
 * DRAM bandwidth (SPEC §6 roofline: AI = 4 FLOP/B at q_len 1, group 4, f16).
 *
 * ## Design
 * - Work item = (request, KV head, tile of up to 8 (query, head) rows, key range). All rows of
 *   the tile share every K/V load (16 rows: two tiles; more than 16 are left to flash); the keys
 *   are split (split-KV) until the launch has ~2048 workgroups (at least 8 steps each), and the
 *   partials (m, l, unnormalised O) go through the flash kernel's combine pass
 *   (`planSplitAttention`, same partials layout). The chunk's own keys (k_new/v_new) go through a
 *   second, plain loop of the item whose range reaches them, with the causal mask.
 * - Lanes own dims, not keys: `D / 8` lanes read one key row (D = 128, f16: 16 lanes x 16 B =
 *   one coalesced 256-byte row), each with the matching 8 dims of every q row in registers.
 *   64 invocations = 4 key groups (`DECODE_TARGET_THREADS`; the design and the cost model
 *   below had 8); a group takes 4 keys per step (16 keys per workgroup step), so each
 *   invocation has 4 K and 4 V loads (64 B) in flight; K of step s + 1 is issued after
 *   the dots of step s, V of step s + 1 after its PV, the page id one step ahead (one
 *   block_table lookup per step when the page holds all the step's keys, else one per key).
 * - Partial dots go through workgroup memory as one vec4 (4 keys) per lane and row; the lane
 *   owning row r sums the `D / 8` partials, runs the online softmax (exp2, f32) and publishes
 *   P and alpha; two barriers per step. Each key group keeps its own softmax stream; the
 *   streams are merged once per item in workgroup memory.
 * - Numerics as flash: scores in the log2 domain, softcap as `cap * tanh(s / cap)`, fp8/int8
 *   scales outside the loop (fp8 K scale in the score scale, int8 K scale in q, V scales on O),
 *   bf16 by bit shifts, f16 by `unpack2x16float`; no shader-f16. fp8 bytes are decoded by
 *   moving their bits into an f16 (exact, subnormals included; NaN codes via the exact codec).
 *
 * ## Cost on the manifest's decode rows (B8, H 32/8, D 128, page 64, old 20000-32768)
 * - q1 (f16): 951.6 MB (SPEC §6 bytes), 3.81 GFLOP (4 FLOP/B); floor 0.228 ms at 4.17 TB/s, 60%
 *   is 0.38 ms. 3904 items of ~15 steps (480 keys), ~61 splits per (request, KV head); extra
 *   traffic: partials 8.2 MB written and read again, q 4 MB from L2. Per 512-byte key row (K+V
 *   of one KV head) ~65 warp instructions (dots 8 FMA per row per lane, PV likewise, 16-bit
 *   unpacks, the row owners' 16-lane sums): ~16 cycles of issue per SM at 4 per clock, against
 *   the 53 cycles per key row that 60% of copy bandwidth leaves on 132 SMs at 1.98 GHz. ~150
 *   registers per invocation give ~3 workgroups (384 invocations, 48 KB of loads) per SM;
 *   9.4 KB of workgroup memory each. Prediction (not measured): 0.30-0.38 ms with the combine
 *   and the append, i.e. 60-75% of copy bandwidth (flash: 3.44 ms).
 * - q4 (f16): rows 16 = two tiles of 8 reading the same K/V (neighbours in the dispatch, so the
 *   second read should hit L2); 15.2 GFLOP, 16 FLOP/B, on the f32 ridge (0.237 ms at 64.3
 *   TFLOP/s). ~200 warp instructions per key row: issue-bound near 50 of the 53 cycles, ~210
 *   registers. Prediction: 0.45-0.55 ms, 40-50% of copy bandwidth and of f32 FMA.
 * - fp8/int8 q4: 476.5 MB, 32 FLOP/B (compute-bound by the roofline); the same instructions
 *   plus the byte decode: ~0.5 ms, ~45% of f32 FMA.
 * - Risk: the shared combine pass runs one workgroup per (request, KV head, row tile) (64 or
 *   128) and each loops over its ~32-61 splits; if it shows above ~20 us, give it more
 *   workgroups or fewer splits (`targetItems`).
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { Problem } from "../../op/types.ts";
import { combinePasses, type PassPlan } from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import { planSplitAttention } from "../flash/flash.ts";
import type { WorkList } from "../flash/work_list.ts";
import {
  chooseDecodeSpec,
  decodeGeometry,
  decodeKey,
  type DecodeLimits,
  type DecodeShape,
  type DecodeSpec,
  maxRowsPerKvHead,
} from "./spec.ts";
import { DECODE_BINDINGS, decodeWgsl } from "./template.ts";
import { buildDecodeWorkList, type DecodeWorkListOptions } from "./work_list.ts";

/** Most (query, head) rows per KV head and request the variant claims (q_len * group). */
export const DECODE_MAX_ROWS = 16;

/** Fewest cached tokens the longest request must have for the variant to claim a problem. */
export const DECODE_MIN_CACHE = 1024;

/** Options of `planDecode()`: the spec's shape and the split policy. */
export interface DecodeOptions extends DecodeShape, DecodeWorkListOptions {}

/** The device limits the decode kernel must respect. */
export function decodeLimits(gpu: GpuContext): DecodeLimits {
  return {
    workgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize ?? 16384,
    invocations: gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256,
  };
}

/**
 * Why the decode kernel cannot run `problem` on `gpu` at all, or null (no policy: short caches
 * run too; `decodeSupport` adds the policy of the variant).
 */
export function decodeCapability(
  problem: Problem,
  gpu: GpuContext,
  shape: DecodeShape = {},
): string | null {
  const rows = maxRowsPerKvHead(problem);
  if (rows === 0) return "no query rows";
  if (rows > DECODE_MAX_ROWS) {
    return `it takes at most ${DECODE_MAX_ROWS} query rows per kv head and request (q_len x group), this problem has ${rows}`;
  }
  const max = gpu.limits.maxStorageBuffersPerShaderStage ?? 8;
  if (max < DECODE_BINDINGS.length - 1) {
    return `it binds ${DECODE_BINDINGS.length - 1} storage buffers, the adapter allows ${max}`;
  }
  const spec = chooseDecodeSpec(problem, decodeLimits(gpu), shape);
  return typeof spec === "string" ? spec : null;
}

/**
 * Why the `decode` variant does not claim `problem`, or null: it claims decode-like problems
 * only (at most `DECODE_MAX_ROWS` rows per KV head and request, and a longest cache of at least
 * `DECODE_MIN_CACHE` tokens), so prefill falls through to the tiled kernels.
 */
export function decodeSupport(problem: Problem, gpu: GpuContext): string | null {
  const why = decodeCapability(problem, gpu);
  if (why) return why;
  const longest = Math.max(0, ...problem.cacheLens);
  if (longest < DECODE_MIN_CACHE) {
    return `it is for long caches: the longest has ${longest} tokens, fewer than ${DECODE_MIN_CACHE}`;
  }
  return null;
}

/** Plans the attention pass (and the combine pass when split); no append. */
export async function planDecodeAttention(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: DecodeOptions = {},
): Promise<{ passes: PassPlan[]; key: string; spec: DecodeSpec; list: WorkList }> {
  const p = dev.problem;
  const why = decodeCapability(p, gpu, options);
  if (why) throw new RangeError(`Cannot plan decode attention: ${why}`);
  const chosen = chooseDecodeSpec(p, decodeLimits(gpu), options) as DecodeSpec;
  const geo0 = decodeGeometry(chosen);
  const list = buildDecodeWorkList(p, chosen.rows, geo0.stepKeys, options);
  const spec: DecodeSpec = { ...chosen, split: list.split };
  const key = decodeKey(spec);
  const passes = await planSplitAttention(gpu, dev, {
    key,
    code: decodeWgsl(spec),
    bindings: DECODE_BINDINGS,
    rows: spec.rows,
    list,
  });
  return { passes, key, spec, list };
}

/** Plans the whole op (attention, combine when split, append) with the decode kernel. */
export async function planDecode(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: DecodeOptions = {},
): Promise<KernelPlan> {
  const attention = await planDecodeAttention(gpu, dev, options);
  const append = await planAppend(gpu, dev);
  // Attention never reads the slots the append writes (SPEC §1); the append goes last.
  return combinePasses(attention.key, [...attention.passes, append]);
}

/**
 * The `decode` kernel variant: lanes own head dims, every row of a KV head's group shares each
 * coalesced K/V row load, split-KV over thousands of workgroups, combine pass, then the append.
 * Claims only decode-like problems (`decodeSupport`).
 *
 * @example
 * ```ts ignore
 * const dev = uploadInputs(gpu, inputs, problem);
 * const plan = await decodeVariant.plan(gpu, dev);
 * const encoder = gpu.device.createCommandEncoder();
 * plan.encode(encoder);
 * gpu.device.queue.submit([encoder.finish()]);
 * ```
 */
export const decodeVariant: KernelVariant = {
  name: "decode",
  description:
    "bandwidth-bound decode: lanes own head dims, all rows of a KV head's group share each coalesced K/V row, split-KV with combine",
  supports: decodeSupport,
  specialist: true,
  plan: (gpu, dev) => planDecode(gpu, dev),
};
