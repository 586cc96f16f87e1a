/**
 * What the flash, mma and decode work lists share: the row tiles of a problem (per request, a
 * tile of (query, head) rows of one KV head's group and the key end its last row sees), how
 * many key units one split-KV item takes, and the items' GPU packing.
 * @module
 */
import type { Problem } from "../op/types.ts";

/** A tile of `rows` flat (query, head) rows of request `b`, from flat row `f0`. */
export interface RowTile {
  b: number;
  f0: number;
  /** Keys the tile's first row sees (its fewest). */
  kbegin: number;
  /** Keys the tile's last row sees (old keys, then the chunk's own up to the causal limit). */
  kend: number;
}

/** The row tiles of every request, in request order; a request's tiles are consecutive. */
export function rowTilesOf(problem: Problem, rows: number): RowTile[] {
  const G = problem.numHeads / problem.numKvHeads;
  const tiles: RowTile[] = [];
  for (let b = 0; b < problem.batch; b++) {
    const qlen = problem.qLens[b]!;
    const old = problem.cacheLens[b]!;
    const nrows = qlen * G;
    // Keys flat row `row` (query row / G) sees.
    const keysOf = (row: number) => problem.isCausal ? old + Math.floor(row / G) + 1 : old + qlen;
    for (let f0 = 0; f0 < nrows; f0 += rows) {
      const last = Math.min(f0 + rows, nrows) - 1;
      tiles.push({ b, f0, kbegin: keysOf(f0), kend: keysOf(last) });
    }
  }
  return tiles;
}

/**
 * Key units (tiles or steps) per split-KV item: unbounded when the row tiles alone give at
 * least `splitBelow` workgroups (or `target` is 0), else enough to reach `target` items over
 * all `units` (one count per row tile, times `kvHeads`), but never fewer than `minSplit`.
 */
export function unitsPerItem(
  units: readonly number[],
  kvHeads: number,
  target: number,
  minSplit: number,
  splitBelow = target,
): number {
  if (target <= 0 || units.length * kvHeads >= splitBelow) return Infinity;
  const work = units.reduce((s, n) => s + n, 0) * kvHeads;
  return Math.max(minSplit, Math.ceil(work / target));
}

/** Splits of a row tile of `units` key units when an item takes at most `perItem`. */
export function splitsOf(units: number, perItem: number): number {
  return Math.max(1, Math.ceil(units / perItem));
}

/** Key units [begin, end) of split `s` of `ns` over `units`. */
export function splitRange(units: number, ns: number, s: number): [number, number] {
  return [Math.floor((s * units) / ns), Math.floor(((s + 1) * units) / ns)];
}

/**
 * Packs items of 8 u32 (request, kv head, first row, slot, unit begin, unit end, key end, x)
 * longest first, stably: the tail of the launch is made of short items. `cost` weighs an item
 * (default: its key units).
 */
export function packLongestFirst(
  items: number[][],
  cost: (item: readonly number[]) => number = itemUnits,
): Uint32Array<ArrayBuffer> {
  return _pack([...items].sort((a, b) => cost(b) - cost(a)));
}

/**
 * Packs items of 8 u32 like `packLongestFirst`, but keeps each (request, KV head) group's items
 * next to each other: groups by total key units, largest first, and each group's items longest
 * first, stably. Workgroups launched together then read the same K/V pages, so one of them
 * fetches a tile from memory and the others find it in L2; sorted by length alone, the row
 * tiles of one group sit a whole launch wave apart and each fetches the pages again once the
 * cache has turned over (any batch whose K/V outgrows L2).
 */
export function packKvGrouped(items: number[][]): Uint32Array<ArrayBuffer> {
  const groups = new Map<string, { work: number; items: number[][] }>();
  for (const it of items) {
    const key = `${it[0]}/${it[1]}`;
    const group = groups.get(key) ?? { work: 0, items: [] };
    group.work += itemUnits(it);
    group.items.push(it);
    groups.set(key, group);
  }
  const ordered = [...groups.values()].sort((a, b) => b.work - a.work);
  return _pack(ordered.flatMap((g) => [...g.items].sort((a, b) => itemUnits(b) - itemUnits(a))));
}

/** Items of 8 u32 each, in the given order, as one array. */
function _pack(items: readonly number[][]): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(items.length * 8);
  items.forEach((it, i) => out.set(it, i * 8));
  return out;
}

/** Key units visited by packed items (for the perf logs). */
export function unitsVisited(items: readonly number[][]): number {
  return items.reduce((s, it) => s + itemUnits(it), 0);
}

/** Key units of one packed item (unit end - unit begin). */
export function itemUnits(item: readonly number[]): number {
  return item[5]! - item[4]!;
}
