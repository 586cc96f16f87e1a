import assert from "node:assert/strict";
import type { Problem } from "../op/types.ts";
import {
  packKvGrouped,
  packLongestFirst,
  rowTilesOf,
  splitRange,
  splitsOf,
  unitsPerItem,
  unitsVisited,
} from "./work_split.ts";

const problem = (over: Partial<Problem>): Problem => ({
  qDtype: "f16",
  cacheDtype: "f16",
  batch: 2,
  totalQ: 7,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  pageSize: 16,
  numPages: 8,
  poolTokens: 128,
  maxPagesPerReq: 4,
  isCausal: true,
  smScale: 0.25,
  softcap: 0,
  qLens: [5, 2],
  qStarts: [0, 5],
  cacheLens: [30, 0],
  ...over,
});

Deno.test("rowTilesOf() tiles each request's (query, head) rows and gives the keys its first and last rows see", () => {
  // group 2: request 0 has 10 rows (tiles of 4: 0-3, 4-7, 8-9), request 1 has 4.
  assert.deepEqual(rowTilesOf(problem({}), 4), [
    { b: 0, f0: 0, kbegin: 31, kend: 32 }, // row 0 = query 0 sees keys 0..30, row 3 = query 1 0..31
    { b: 0, f0: 4, kbegin: 33, kend: 34 },
    { b: 0, f0: 8, kbegin: 35, kend: 35 },
    { b: 1, f0: 0, kbegin: 1, kend: 2 },
  ]);
  const full = rowTilesOf(problem({ isCausal: false }), 4);
  assert.deepEqual(full.map((t) => [t.kbegin, t.kend]), [[35, 35], [35, 35], [35, 35], [2, 2]]);
  assert.deepEqual(rowTilesOf(problem({ qLens: [0, 0], totalQ: 0 }), 4), []);
});

Deno.test("unitsPerItem() splits only when the row tiles give too few workgroups", () => {
  assert.equal(unitsPerItem([10, 10], 2, 4, 1), Infinity); // 4 row tiles x heads already
  assert.equal(unitsPerItem([10, 10], 2, 0, 1), Infinity); // splitting off
  assert.equal(unitsPerItem([10, 10], 2, 8, 1), 5); // 40 units over 8 items
  assert.equal(unitsPerItem([10, 10], 2, 8, 7), 7); // but never under minSplit
  assert.equal(unitsPerItem([10, 10], 2, 8, 1, 4), Infinity); // 4 items, not below splitBelow 4
  assert.equal(unitsPerItem([10, 10], 2, 8, 1, 5), 5); // below 5: split towards target 8
  assert.equal(splitsOf(10, Infinity), 1);
  assert.equal(splitsOf(10, 4), 3);
  assert.equal(splitsOf(0, 4), 1);
  assert.deepEqual([0, 1, 2].map((s) => splitRange(10, 3, s)), [[0, 3], [3, 6], [6, 10]]);
});

Deno.test("packLongestFirst() orders items by key units, stably, 8 u32 each", () => {
  const items = [
    [0, 0, 0, 0, 0, 2, 9, 0],
    [1, 0, 0, 1, 0, 5, 9, 0],
    [2, 0, 0, 2, 3, 5, 9, 0],
  ];
  assert.deepEqual(
    Array.from(packLongestFirst(items)),
    [...items[1]!, ...items[0]!, ...items[2]!],
  );
  assert.equal(unitsVisited(items), 9);
});

Deno.test("packKvGrouped() keeps each (request, KV head) group together, largest group first", () => {
  // Two requests x two KV heads; random lengths, and the groups' items interleaved on input.
  const item = (
    b: number,
    g: number,
    f0: number,
    t0: number,
    t1: number,
  ) => [b, g, f0, 0, t0, t1, 99, 7];
  const items = [
    item(0, 0, 0, 0, 5),
    item(0, 1, 0, 0, 5),
    item(1, 0, 0, 0, 9),
    item(0, 0, 64, 0, 8),
    item(1, 1, 0, 0, 2),
    item(0, 1, 64, 0, 3),
    item(1, 0, 64, 4, 6),
    item(0, 0, 128, 1, 7),
  ];
  const packed = Array.from(packKvGrouped(items));
  const rows = Array.from({ length: items.length }, (_, i) => packed.slice(i * 8, i * 8 + 8));
  // Group (0, 0) has 5 + 8 + 6 = 19 units, (1, 0) 9 + 2 = 11, (0, 1) 5 + 3 = 8, (1, 1) 2.
  assert.deepEqual(rows, [
    items[3],
    items[7],
    items[0],
    items[2],
    items[6],
    items[1],
    items[5],
    items[4],
  ]);
  // The same items as longest-first, only reordered.
  assert.deepEqual(
    [...rows].map((r) => r.join()).sort(),
    items.map((r) => r.join()).sort(),
  );
  assert.notDeepEqual(packed, Array.from(packLongestFirst(items)));
});
