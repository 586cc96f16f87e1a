/**
 * The host-built work list of the decode kernel: one item per (request, KV head, tile of query
 * rows, range of key steps), in the layout of the flash kernel's list (`WorkList`), so the
 * split-KV partials go through the same combine pass. Key ranges are split until the launch has
 * about `targetItems` workgroups.
 *
 * Dispatch order: longest items first; among equal lengths, by request, then split, then KV
 * head, then row tile. Items next to each other read neighbouring bytes (the KV heads of one
 * token row are adjacent in the pool) or the very same K/V (row tiles of one KV head), so they
 * share DRAM pages and L2 lines while they run at the same time.
 * @module
 */
import type { Problem } from "../../op/types.ts";
import {
  packLongestFirst,
  rowTilesOf,
  splitRange,
  splitsOf,
  unitsPerItem,
  unitsVisited,
} from "../work_split.ts";
import type { WorkList } from "../flash/work_list.ts";

/**
 * Default of `DecodeWorkListOptions.targetItems`: 2048 (was 4096; with 4 key groups per
 * workgroup 2048 was faster than 4096 and 1024 on every decode row of the H200, see
 * `DECODE_TARGET_THREADS`).
 */
export const DECODE_TARGET_ITEMS = 2048;

/** Options of `buildDecodeWorkList()`. */
export interface DecodeWorkListOptions {
  /**
   * Aim for at least this many workgroups by splitting key ranges (split-KV). 0 disables it.
   * @default DECODE_TARGET_ITEMS
   */
  targetItems?: number;
  /**
   * Fewest key steps one split processes.
   * @default 8
   */
  minSplitSteps?: number;
}

/**
 * Builds the decode work list of `problem` for row tiles of `rows` and steps of `stepKeys` keys.
 * Items are 8 u32: (request, kv head, first flat row, slot), (step begin, step end, key end, 0);
 * the item covers keys [begin * stepKeys, min(end * stepKeys, key end)). Combine items are
 * (request, kv head, first flat row, first slot), (splits, 0, 0, 0). `tiles` counts steps.
 *
 * @example
 * ```ts
 * import { buildDecodeWorkList } from "./work_list.ts";
 * const problem = {
 *   qDtype: "f16", cacheDtype: "f16", batch: 1, totalQ: 1, numHeads: 4, numKvHeads: 1,
 *   headDim: 128, pageSize: 64, numPages: 40, poolTokens: 2560, maxPagesPerReq: 40,
 *   isCausal: true, smScale: 0.088, softcap: 0, qLens: [1], qStarts: [0], cacheLens: [2000],
 * } as const;
 * const list = buildDecodeWorkList(problem, 4, 32, { targetItems: 8, minSplitSteps: 8 });
 * // 63 steps of 32 keys split 8 ways: list.count === 8, list.combineCount === 1
 * ```
 */
export function buildDecodeWorkList(
  problem: Problem,
  rows: number,
  stepKeys: number,
  options: DecodeWorkListOptions = {},
): WorkList {
  const target = options.targetItems ?? DECODE_TARGET_ITEMS;
  const minSplit = Math.max(1, options.minSplitSteps ?? 8);
  const H = problem.numKvHeads;
  // Row tiles by request; a request's tiles are consecutive.
  const all = rowTilesOf(problem, rows).map((t) => ({
    ...t,
    steps: Math.ceil(t.kend / stepKeys),
  }));
  const byRequest = Array.from({ length: problem.batch }, (_, b) => all.filter((t) => t.b === b));
  const perItem = unitsPerItem(all.map((t) => t.steps), H, target, minSplit);
  const nsOf = (t: { steps: number }) => splitsOf(t.steps, perItem);
  const split = all.some((t) => nsOf(t) > 1);

  // Slots: contiguous per (request, row tile, kv head), as the combine pass reads them.
  const slotOf = new Map<string, number>();
  const comb: number[] = [];
  let slot = 0;
  for (const t of all) {
    const ns = nsOf(t);
    for (let g = 0; g < H; g++) {
      if (split) comb.push(t.b, g, t.f0, slot, ns, 0, 0, 0);
      slotOf.set(`${t.b}/${t.f0}/${g}`, slot);
      slot += ns;
    }
  }

  // A request's row tiles side by side in the dispatch for each (split, kv head): the tiles of
  // 16 rows read the same K/V back to back, the second from L2.
  const out: number[][] = [];
  for (const tiles of byRequest) {
    const maxSplits = Math.max(0, ...tiles.map(nsOf));
    for (let s = 0; s < maxSplits; s++) {
      for (let g = 0; g < H; g++) {
        for (const t of tiles) {
          const ns = nsOf(t);
          if (s >= ns) continue;
          const [s0, s1] = splitRange(t.steps, ns, s);
          const first = slotOf.get(`${t.b}/${t.f0}/${g}`)!;
          out.push([t.b, g, t.f0, split ? first + s : 0, s0, s1, t.kend, 0]);
        }
      }
    }
  }
  const items = packLongestFirst(out);
  return {
    items,
    count: out.length,
    split,
    slots: split ? slot : 0,
    combine: new Uint32Array(comb),
    combineCount: comb.length / 8,
    tiles: unitsVisited(out),
    preciseCount: 0,
  };
}
