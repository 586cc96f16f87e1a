/**
 * The host-built work list of the flash kernel: one item per (request, KV head, tile of
 * query rows, range of K/V tiles), so varlen batches launch no empty workgroups, causal tiles
 * past a row tile's last visible key are never visited, and few-row/long-prefix requests are
 * split over the keys (split-KV) with a combine pass.
 * @module
 */
import type { Problem } from "../../op/types.ts";
import {
  itemUnits,
  packLongestFirst,
  type RowTile,
  rowTilesOf,
  splitRange,
  splitsOf,
  unitsPerItem,
  unitsVisited,
} from "../work_split.ts";

/** Options of `buildWorkList()`. */
export interface WorkListOptions {
  /**
   * Aim for at least this many workgroups; when the row tiles alone give fewer, each row
   * tile's K/V range is split (split-KV). 0 disables splitting.
   * @default 1024
   */
  targetItems?: number;
  /**
   * Fewest K/V tiles one split processes.
   * @default 8
   */
  minSplitTiles?: number;
  /**
   * Split only when the row tiles alone give fewer workgroups than this.
   * @default targetItems
   */
  splitBelow?: number;
  /**
   * A precise item's key unit in the launch order (`itemCost`).
   * @default PRECISE_ITEM_COST
   */
  preciseCost?: number;
}

/** The split rules alone (what `flashSplitDefaults` and `balancedSplit` decide). */
export type SplitRules = Required<Omit<WorkListOptions, "preciseCost">>;

/**
 * Work items resident at once on the H200 under Vulkan (132 SMs; the 20 KB tiles of at most 32
 * rows run two per SM, larger ones alone: PERF_LOG v9), the slots `balancedSplit` spreads a
 * launch's work over.
 */
export function residentItems(rows: number): number {
  return rows <= 32 ? 264 : 132;
}

/**
 * The longest row tile's key units, over the work per resident slot, from which `balancedSplit`
 * splits the long row tiles: a varlen batch with one long request (1.93) ran 15-18% faster split
 * (16-bit), the MHA and MQA rows (1.34, 1.41) 6-13% slower (PERF_LOG v14).
 */
export const BALANCE_MIN_RATIO = 1.6;

/**
 * Split options for a launch of at least `splitBelow` items (which the default rules leave
 * unsplit: they look at the number of items, not their lengths) whose longest row tile would
 * outlast the rest: when its key units are at least `BALANCE_MIN_RATIO` times the launch's work
 * per resident slot, every row tile longer than that share is split (and only those), else null.
 * A batch of many short requests and one long one otherwise runs as long as its longest item.
 */
export function balancedSplit(
  problem: Problem,
  rows: number,
  keys: number,
  splitBelow: number,
): SplitRules | null {
  const units = rowTilesOf(problem, rows).map((t) => Math.ceil(t.kend / keys));
  if (units.length === 0 || units.length * problem.numKvHeads < splitBelow) return null;
  const slots = residentItems(rows);
  const perSlot = (units.reduce((a, b) => a + b, 0) * problem.numKvHeads) / slots;
  if (Math.max(...units) < BALANCE_MIN_RATIO * perSlot) return null;
  return { targetItems: slots, minSplitTiles: 4, splitBelow: Infinity };
}

/**
 * What a precise item's key unit costs in the launch order, against an f16 item's 1: its f32
 * products take longer per tile. Ordered by units alone, a varlen batch's many short precise items
 * (rows of requests without a prefix) launched last and made the tail: weighted 2, the balanced
 * varlen rows ran 7-8% faster, and 4 no faster than 2 (PERF_LOG v14).
 */
export const PRECISE_ITEM_COST = 2;

/** An item's weight in the launch order: its key units, times `PRECISE_ITEM_COST` if precise. */
export function itemCost(item: readonly number[], preciseCost = PRECISE_ITEM_COST): number {
  return itemUnits(item) * (item[7] === 1 ? preciseCost : 1);
}

/** The work list, in the GPU layout the kernels read. */
export interface WorkList {
  /**
   * 8 u32 per item: (request, kv head, first flat row, slot), (tile begin, tile end, key end,
   * 1 when precise else 0).
   */
  items: Uint32Array<ArrayBuffer>;
  /** Number of attention items. */
  count: number;
  /** True when items write partials for the combine pass. */
  split: boolean;
  /** Partial slots (one per attention item when split). */
  slots: number;
  /** 8 u32 per combine item: (request, kv head, first flat row, first slot), (splits, 0, 0, 0). */
  combine: Uint32Array<ArrayBuffer>;
  /** Number of combine items. */
  combineCount: number;
  /** Sum over items of K/V tiles visited (for the perf log). */
  tiles: number;
  /** Number of items marked precise. */
  preciseCount: number;
}

/**
 * Builds the work list of `problem` for row tiles of `rows` and key tiles of `keys`. The items
 * of the row tiles `precise` accepts carry 1 in their last word (`FlashSpec.preciseItems`).
 *
 * @example
 * ```ts
 * import { buildWorkList } from "./work_list.ts";
 * const problem = {
 *   qDtype: "f16", cacheDtype: "f16", batch: 1, totalQ: 4, numHeads: 2, numKvHeads: 1,
 *   headDim: 16, pageSize: 16, numPages: 2, poolTokens: 32, maxPagesPerReq: 2,
 *   isCausal: true, smScale: 0.25, softcap: 0, qLens: [4], qStarts: [0], cacheLens: [10],
 * } as const;
 * const list = buildWorkList(problem, 8, 16, { targetItems: 0 });
 * // list.count === 1: 8 rows (4 queries x 2 heads), keys 0..13 in one tile
 * ```
 */
export function buildWorkList(
  problem: Problem,
  rows: number,
  keys: number,
  options: WorkListOptions = {},
  precise: (tile: RowTile) => boolean = () => false,
): WorkList {
  const target = options.targetItems ?? 1024;
  const minSplit = options.minSplitTiles ?? 8;
  const H = problem.numKvHeads;
  const rowTiles = rowTilesOf(problem, rows).map((t) => ({
    ...t,
    tiles: Math.ceil(t.kend / keys),
  }));
  const perItem = unitsPerItem(
    rowTiles.map((t) => t.tiles),
    H,
    target,
    minSplit,
    options.splitBelow ?? target,
  );
  const splits = rowTiles.map((t) => splitsOf(t.tiles, perItem));
  const split = splits.some((n) => n > 1);
  const out: number[][] = [];
  const comb: number[] = [];
  let slot = 0;
  rowTiles.forEach((t, i) => {
    const ns = splits[i]!;
    for (let g = 0; g < H; g++) {
      if (split) comb.push(t.b, g, t.f0, slot, ns, 0, 0, 0);
      for (let s = 0; s < ns; s++) {
        const [t0, t1] = splitRange(t.tiles, ns, s);
        out.push([t.b, g, t.f0, split ? slot : 0, t0, t1, t.kend, precise(t) ? 1 : 0]);
        if (split) slot++;
      }
    }
  });
  const items = packLongestFirst(out, (item) => itemCost(item, options.preciseCost));
  return {
    items,
    count: out.length,
    split,
    slots: slot,
    combine: new Uint32Array(comb),
    combineCount: comb.length / 8,
    tiles: unitsVisited(out),
    preciseCount: out.filter((it) => it[7] === 1).length,
  };
}
