/**
 * The host-built work list of the mma kernel: one item per (request, KV head, tile of query
 * rows, range of K/V tiles). A row tile's tiles are its old (paged) key tiles, then the tiles
 * of its own chunk up to the last key any of its rows sees (causal tiles past it are never
 * visited); a tile never mixes paged and fresh keys. Row tiles are split over their key tiles
 * (split-KV, merged by flash's combine pass) when they alone give too few workgroups.
 * @module
 */
import type { Problem } from "../../op/types.ts";

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
}

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
  const G = problem.numHeads / problem.numKvHeads;
  interface RowTile {
    b: number;
    f0: number;
    kend: number;
    nOld: number;
    tiles: number;
  }
  const rowTiles: RowTile[] = [];
  for (let b = 0; b < problem.batch; b++) {
    const qlen = problem.qLens[b]!;
    const old = problem.cacheLens[b]!;
    const nrows = qlen * G;
    const nOld = Math.ceil(old / keys);
    for (let f0 = 0; f0 < nrows; f0 += rows) {
      const last = Math.min(f0 + rows, nrows) - 1;
      const kend = problem.isCausal ? old + Math.floor(last / G) + 1 : old + qlen;
      rowTiles.push({ b, f0, kend, nOld, tiles: nOld + Math.ceil((kend - old) / keys) });
    }
  }
  const H = problem.numKvHeads;
  const base = rowTiles.length * H;
  const work = rowTiles.reduce((s, t) => s + t.tiles, 0) * H;
  let perItem = Infinity;
  if (target > 0 && base < target) perItem = Math.max(minSplit, Math.ceil(work / target));
  const splits = rowTiles.map((t) => Math.max(1, Math.ceil(t.tiles / perItem)));
  const split = splits.some((n) => n > 1);
  const out: number[][] = [];
  const comb: number[] = [];
  let slot = 0;
  rowTiles.forEach((t, i) => {
    const ns = splits[i]!;
    for (let g = 0; g < H; g++) {
      if (split) comb.push(t.b, g, t.f0, slot, ns, 0, 0, 0);
      for (let s = 0; s < ns; s++) {
        const t0 = Math.floor((s * t.tiles) / ns);
        const t1 = Math.floor(((s + 1) * t.tiles) / ns);
        out.push([t.b, g, t.f0, split ? slot : 0, t0, t1, t.kend, t.nOld]);
        if (split) slot++;
      }
    }
  });
  // Longest first: the tail of the launch is made of short items.
  out.sort((a, b) => (b[5]! - b[4]!) - (a[5]! - a[4]!));
  const items = new Uint32Array(out.length * 8);
  out.forEach((it, i) => items.set(it, i * 8));
  return {
    items,
    count: out.length,
    split,
    slots: slot,
    combine: new Uint32Array(comb),
    combineCount: comb.length / 8,
    tiles: out.reduce((s, it) => s + it[5]! - it[4]!, 0),
  };
}
