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
import type { WorkList } from "../flash/work_list.ts";

/** Options of `buildDecodeWorkList()`. */
export interface DecodeWorkListOptions {
  /**
   * Aim for at least this many workgroups by splitting key ranges (split-KV). 0 disables it.
   * @default 4096
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
  const target = options.targetItems ?? 4096;
  const minSplit = Math.max(1, options.minSplitSteps ?? 8);
  const G = problem.numHeads / problem.numKvHeads;
  const H = problem.numKvHeads;
  interface RowTile {
    b: number;
    f0: number;
    kend: number;
    steps: number;
  }
  // Row tiles by request; a request's tiles are consecutive.
  const byRequest: RowTile[][] = [];
  for (let b = 0; b < problem.batch; b++) {
    const qlen = problem.qLens[b]!;
    const old = problem.cacheLens[b]!;
    const nrows = qlen * G;
    const tiles: RowTile[] = [];
    for (let f0 = 0; f0 < nrows; f0 += rows) {
      const last = Math.min(f0 + rows, nrows) - 1;
      const kend = problem.isCausal ? old + Math.floor(last / G) + 1 : old + qlen;
      tiles.push({ b, f0, kend, steps: Math.ceil(kend / stepKeys) });
    }
    byRequest.push(tiles);
  }
  const all = byRequest.flat();
  const base = all.length * H;
  const work = all.reduce((s, t) => s + t.steps, 0) * H;
  let perItem = Infinity;
  if (target > 0 && base < target) perItem = Math.max(minSplit, Math.ceil(work / target));
  const splitsOf = (t: RowTile) => Math.max(1, Math.ceil(t.steps / perItem));
  const split = all.some((t) => splitsOf(t) > 1);

  // Slots: contiguous per (request, row tile, kv head), as the combine pass reads them.
  const slotOf = new Map<string, number>();
  const comb: number[] = [];
  let slot = 0;
  for (const t of all) {
    const ns = splitsOf(t);
    for (let g = 0; g < H; g++) {
      if (split) comb.push(t.b, g, t.f0, slot, ns, 0, 0, 0);
      slotOf.set(`${t.b}/${t.f0}/${g}`, slot);
      slot += ns;
    }
  }

  interface Item {
    b: number;
    g: number;
    f0: number;
    slot: number;
    s0: number;
    s1: number;
    kend: number;
  }
  const out: Item[] = [];
  for (const tiles of byRequest) {
    const maxSplits = Math.max(0, ...tiles.map(splitsOf));
    for (let s = 0; s < maxSplits; s++) {
      for (let g = 0; g < H; g++) {
        for (const t of tiles) {
          const ns = splitsOf(t);
          if (s >= ns) continue;
          const s0 = Math.floor((s * t.steps) / ns);
          const s1 = Math.floor(((s + 1) * t.steps) / ns);
          const first = slotOf.get(`${t.b}/${t.f0}/${g}`)!;
          out.push({ b: t.b, g, f0: t.f0, slot: split ? first + s : 0, s0, s1, kend: t.kend });
        }
      }
    }
  }
  // Longest first (stable: equal lengths keep the order above).
  out.sort((a, b) => (b.s1 - b.s0) - (a.s1 - a.s0));
  const items = new Uint32Array(out.length * 8);
  out.forEach((it, i) => {
    items.set([it.b, it.g, it.f0, it.slot, it.s0, it.s1, it.kend, 0], i * 8);
  });
  return {
    items,
    count: out.length,
    split,
    slots: split ? slot : 0,
    combine: new Uint32Array(comb),
    combineCount: comb.length / 8,
    tiles: out.reduce((s, it) => s + it.s1 - it.s0, 0),
  };
}
