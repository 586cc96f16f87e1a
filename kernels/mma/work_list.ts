/**
 * The host-built work list of the mma kernel: one item per (request, KV head, tile of query
 * rows, range of K/V tiles). A row tile's tiles are its old (paged) key tiles, then the tiles
 * of its own chunk up to the last key any of its rows sees (causal tiles past it are never
 * visited); a tile never mixes paged and fresh keys. Row tiles are split over their key tiles
 * (split-KV, merged by flash's combine pass) when they alone give too few workgroups.
 * @module
 */
import type { Problem } from "../../op/types.ts";
import {
  packKvGrouped,
  packLongestFirst,
  rowTilesOf,
  splitRange,
  splitsOf,
  unitsPerItem,
  unitsVisited,
} from "../work_split.ts";

/** Options of `buildMmaWorkList()`. */
export interface MmaWorkListOptions {
  /**
   * Aim for at least this many workgroups; when the row tiles alone give fewer, each row
   * tile's key tiles are split (split-KV). 0 disables splitting.
   * @default 264
   */
  targetItems?: number;
  /**
   * Fewest K/V tiles one split processes.
   * @default 8
   */
  minSplitTiles?: number;
  /**
   * Launch order of the items: longest first, or each (request, KV head) group's items together
   * (`packKvGrouped`), so that workgroups running at once share K/V tiles through L2.
   * @default "longest-first"
   */
  order?: MmaItemOrder;
}

/** Launch orders of `buildMmaWorkList`'s items (see `MmaWorkListOptions.order`). */
export type MmaItemOrder = "longest-first" | "kv-grouped";

/** The work list, in the GPU layout the kernel reads (and flash's combine pass). */
export interface MmaWorkList {
  /** 8 u32 per item: (request, kv head, first flat row, slot), (tile begin, tile end, key end, old tiles). */
  items: Uint32Array<ArrayBuffer>;
  count: number;
  /** True when items write partials for the combine pass. */
  split: boolean;
  /** Partial slots (one per attention item when split). */
  slots: number;
  /** 8 u32 per combine item: (request, kv head, first flat row, first slot), (splits, 0, 0, 0). */
  combine: Uint32Array<ArrayBuffer>;
  combineCount: number;
  /** Sum over items of K/V tiles visited. */
  tiles: number;
}

/**
 * Builds the work list of `problem` for row tiles of `rows` and key tiles of `keys`.
 *
 * @example
 * ```ts
 * import { buildMmaWorkList } from "./work_list.ts";
 * const problem = {
 *   qDtype: "f16", cacheDtype: "f16", batch: 1, totalQ: 4, numHeads: 2, numKvHeads: 1,
 *   headDim: 16, pageSize: 16, numPages: 2, poolTokens: 32, maxPagesPerReq: 2,
 *   isCausal: true, smScale: 0.25, softcap: 0, qLens: [4], qStarts: [0], cacheLens: [10],
 * } as const;
 * const list = buildMmaWorkList(problem, 16, 16, { targetItems: 0 });
 * // one item: 8 rows, one old tile (keys 0..9), one new tile (keys 10..13)
 * if (list.count !== 1 || list.items[5] !== 2 || list.items[7] !== 1) throw new Error();
 * ```
 */
export function buildMmaWorkList(
  problem: Problem,
  rows: number,
  keys: number,
  options: MmaWorkListOptions = {},
): MmaWorkList {
  const target = options.targetItems ?? 264;
  const minSplit = options.minSplitTiles ?? 8;
  const H = problem.numKvHeads;
  // Old tiles first, then the chunk's own up to the tile's key end; a tile never mixes them.
  const rowTiles = rowTilesOf(problem, rows).map((t) => {
    const old = problem.cacheLens[t.b]!;
    const nOld = Math.ceil(old / keys);
    return { ...t, nOld, tiles: nOld + Math.ceil((t.kend - old) / keys) };
  });
  const perItem = unitsPerItem(rowTiles.map((t) => t.tiles), H, target, minSplit);
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
        out.push([t.b, g, t.f0, split ? slot : 0, t0, t1, t.kend, t.nOld]);
        if (split) slot++;
      }
    }
  });
  const items = (options.order ?? "longest-first") === "kv-grouped"
    ? packKvGrouped(out)
    : packLongestFirst(out);
  return {
    items,
    count: out.length,
    split,
    slots: slot,
    combine: new Uint32Array(comb),
    combineCount: comb.length / 8,
    tiles: unitsVisited(out),
  };
}
