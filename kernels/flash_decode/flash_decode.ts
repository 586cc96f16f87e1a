/**
 * The `flash+decode` variant: a batch that mixes decode-like requests (a few query rows per KV
 * head over a long cache) with longer chunks runs the decode-like ones on the decode kernel and
 * the rest on flash, in one compute pass. On flash alone every request takes at least one row tile
 * (64 rows on the H200), so a request of one query (4 rows at group 4) pays for 64 rows over its
 * whole cache (PERF_LOG v12).
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem, KernelPlan, KernelVariant } from "../variant.ts";
import type { Problem } from "../../op/types.ts";
import { combinePasses } from "../_shared.ts";
import { planAppend } from "../append/append.ts";
import { defaultFlashTile, flashSupport, planFlashAttention } from "../flash/flash.ts";
import {
  DECODE_MAX_ROWS,
  DECODE_MIN_CACHE,
  decodeCapability,
  planDecodeAttention,
} from "../decode/decode.ts";

/**
 * Smallest share of flash's row-tile work (rows padded to its tile, times the keys they see) that
 * the decode-like requests must make for the batch to be split: below it the second dispatch
 * costs more than the padding it saves.
 */
export const DECODE_SPLIT_MIN_SHARE = 0.25;

/** A batch split in two: the same problem with the other part's requests left without rows. */
export interface BatchSplit {
  /** The requests flash runs. */
  flash: Problem;
  /** The decode-like requests the decode kernel runs. */
  decode: Problem;
  /** The decode-like requests' share of flash's row-tile work on the whole batch. */
  share: number;
}

/** `problem` with only the requests `keep` accepts holding query rows (buffers unchanged). */
export function requestsOf(problem: Problem, keep: (b: number) => boolean): Problem {
  return { ...problem, qLens: problem.qLens.map((q, b) => (keep(b) ? q : 0)) };
}

/**
 * How `problem` splits between flash and the decode kernel on `gpu`, or why it does not: the
 * decode-like requests (at most `DECODE_MAX_ROWS` rows per KV head over at least
 * `DECODE_MIN_CACHE` cached tokens) go to the decode kernel when they make at least
 * `DECODE_SPLIT_MIN_SHARE` of flash's row-tile work and other requests remain.
 */
export function batchSplitOf(problem: Problem, gpu: GpuContext): BatchSplit | string {
  const group = problem.numHeads / problem.numKvHeads;
  const decodeLike = (b: number) => {
    const q = problem.qLens[b]!;
    return q > 0 && q * group <= DECODE_MAX_ROWS && problem.cacheLens[b]! >= DECODE_MIN_CACHE;
  };
  const requests = problem.qLens.map((_, b) => b).filter((b) => problem.qLens[b]! > 0);
  const small = requests.filter(decodeLike);
  if (small.length === 0) {
    return `no decode-like request (at most ${DECODE_MAX_ROWS} rows per kv head over at least ${DECODE_MIN_CACHE} cached tokens)`;
  }
  if (small.length === requests.length) return "every request is decode-like";
  const tile = defaultFlashTile(problem, gpu);
  if (!tile) return flashSupport(problem, gpu) ?? "no flash tile fits";
  const work = (b: number) =>
    Math.ceil((problem.qLens[b]! * group) / tile.rows) * tile.rows *
    (problem.cacheLens[b]! + problem.qLens[b]!);
  const total = requests.reduce((s, b) => s + work(b), 0);
  const share = small.reduce((s, b) => s + work(b), 0) / total;
  if (share < DECODE_SPLIT_MIN_SHARE) {
    return `the decode-like requests are ${
      (100 * share).toFixed(1)
    }% of flash's row-tile work, under ${100 * DECODE_SPLIT_MIN_SHARE}%`;
  }
  const split = {
    flash: requestsOf(problem, (b) => !decodeLike(b)),
    decode: requestsOf(problem, decodeLike),
    share,
  };
  return flashSupport(split.flash, gpu) ?? decodeCapability(split.decode, gpu) ?? split;
}

/** Why `flash+decode` does not run `problem` on `gpu`, or null. */
export function flashDecodeSupport(problem: Problem, gpu: GpuContext): string | null {
  const split = batchSplitOf(problem, gpu);
  return typeof split === "string" ? split : null;
}

/** Plans flash over the longer requests, decode over the decode-like ones, then the append. */
export async function planFlashDecode(gpu: GpuContext, dev: DeviceProblem): Promise<KernelPlan> {
  const split = batchSplitOf(dev.problem, gpu);
  if (typeof split === "string") {
    throw new RangeError(`Cannot plan flash+decode on "${gpu.adapterName}": ${split}`);
  }
  const flash = await planFlashAttention(gpu, { ...dev, problem: split.flash });
  const decode = await planDecodeAttention(gpu, { ...dev, problem: split.decode });
  const append = await planAppend(gpu, dev);
  // The two attention passes write disjoint rows of o; the append goes last (SPEC §1).
  return combinePasses(`${flash.key}+${decode.key}`, [
    ...flash.passes,
    ...decode.passes,
    append,
  ]);
}

/**
 * The `flash+decode` variant: claims batches that mix decode-like requests with longer chunks
 * (`batchSplitOf`).
 *
 * @example
 * ```ts ignore
 * const plan = await flashDecodeVariant.plan(gpu, uploadInputs(gpu, inputs, problem));
 * ```
 */
export const flashDecodeVariant: KernelVariant = {
  name: "flash+decode",
  description:
    "mixed batches: decode-like requests (few rows, long caches) on the decode kernel, the rest on flash, one pass",
  specialist: true,
  supports: flashDecodeSupport,
  plan: planFlashDecode,
};
