import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import { formatShard, mergeVerifyShards, parseShard, shardOf } from "./verify_shard.ts";

Deno.test("parseShard() reads I/N and refuses anything else in one line naming the text", () => {
  assert.deepEqual(parseShard("2/8"), { index: 2, count: 8 });
  assert.deepEqual(parseShard(" 8/8 "), { index: 8, count: 8 });
  assert.equal(formatShard(parseShard("3/5")), "3/5");
  for (const bad of ["0/4", "5/4", "1/0", "2", "a/b", "1/2/3", "-1/2", ""]) {
    assert.throws(
      () => parseShard(bad),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message === `Cannot read --shard: expected I/N with 1 <= I <= N, got "${bad}"`,
      bad,
    );
  }
});

Deno.test("shardOf() deals the cases round robin: the parts are disjoint and cover them all", () => {
  const cases = Array.from({ length: 11 }, (_, i) => `case${i * 7 % 11}`);
  const parts = [1, 2, 3, 4].map((index) => shardOf(cases, { index, count: 4 }));
  assert.deepEqual(parts[0], [cases[0], cases[4], cases[8]]);
  assert.deepEqual(parts[3], [cases[3], cases[7]]);
  assert.deepEqual(parts.flat().sort(), [...cases].sort());
  assert.deepEqual(shardOf(cases, { index: 1, count: 1 }), cases);
  // More parts than cases: the extra parts are empty, not an error.
  assert.deepEqual(shardOf(cases.slice(0, 2), { index: 3, count: 3 }), []);
});

// Four selected cases dealt into two shards: 1/2 holds a and c, 2/2 holds b and d.
const SELECTED = ["a/f16", "b/f16", "c/f16", "d/f16"];
const part = (shard: string | undefined, ids: string[], over: object = {}) => ({
  adapter: "NVIDIA H200",
  backend: "deno",
  complete: true,
  ...(shard ? { shard, selected: SELECTED } : {}),
  results: ids.map((id) => ({ id, kernel: "flash", ok: true })),
  skipped: [],
  ...over,
});

Deno.test("mergeVerifyShards() joins the parts in shard order, complete only if each part is", () => {
  const merged = mergeVerifyShards(
    [part("2/2", ["b/f16", "d/f16"]), part("1/2", ["a/f16"], { complete: false })],
    ["two.json", "one.json"],
  );
  assert.deepEqual(merged.results.map((r) => r.id), ["a/f16", "b/f16", "d/f16"]);
  assert.equal(merged.complete, false);
  assert.equal("shard" in merged || "selected" in merged, false);
  const whole = mergeVerifyShards(
    [
      part("1/2", ["a/f16", "c/f16"]),
      part("2/2", ["b/f16"], { skipped: [{ id: "d/f16", reason: "too big" }] }),
    ],
    ["one.json", "two.json"],
  );
  assert.equal(whole.complete, true);
  assert.deepEqual(whole.results.map((r) => r.id), ["a/f16", "c/f16", "b/f16"]);
  assert.deepEqual(whole.skipped, [{ id: "d/f16", reason: "too big" }]);
});

Deno.test("mergeVerifyShards() refuses parts that do not fit together, naming the file", () => {
  const cases: [object[], string][] = [
    [[], "Cannot merge: expected shard files, got none"],
    [
      [part(undefined, ["a/f16"])],
      "Cannot merge p1.json: expected verify --shard output (shard, selected), got no shard",
    ],
    [
      [part("1/2", ["a/f16"], { selected: undefined })],
      "Cannot merge p1.json: expected verify --shard output (shard, selected), got no selected cases",
    ],
    [
      [part("0/2", ["a/f16"])],
      'Cannot merge p1.json: expected shard I/N with 1 <= I <= N, got "0/2"',
    ],
    [
      [part("1/2", ["a/f16", "c/f16"]), part("2/3", ["b/f16"])],
      "Cannot merge p2.json: expected a shard of 2, got 2/3",
    ],
    [
      [part("1/2", ["a/f16", "c/f16"]), part("2/2", ["b/f16", "d/f16"], { backend: "dawn" })],
      "Cannot merge p2.json: expected a run on NVIDIA H200 (deno), got one on NVIDIA H200 (dawn)",
    ],
    [
      [
        part("1/2", ["a/f16", "c/f16"]),
        part("2/2", ["b/f16"], { selected: ["a/f16", "b/f16", "c/f16"] }),
      ],
      "Cannot merge p2.json: expected the 4 cases p1.json selected, got a selection of 3 others (another selection or manifest)",
    ],
    [
      [part("1/2", ["a/f16", "c/f16"]), part("1/2", ["a/f16", "c/f16"])],
      "Cannot merge p2.json: expected each shard once, got 1/2 again (also p1.json)",
    ],
    [
      [part("1/2", ["a/f16", "b/f16"]), part("2/2", ["d/f16"], { complete: false })],
      "Cannot merge p1.json: expected only the cases shard 1/2 deals, got b/f16",
    ],
    [
      [part("1/2", ["a/f16"]), part("2/2", ["b/f16", "d/f16"])],
      "Cannot merge p1.json: expected all 2 cases of complete shard 1/2, got 1",
    ],
    [
      [part("1/3", ["a/f16", "d/f16"]), part("3/3", ["c/f16"])],
      "Cannot merge: expected shards 1..3, got none for 2/3",
    ],
  ];
  for (const [files, message] of cases) {
    assert.throws(
      () =>
        mergeVerifyShards(
          files as Parameters<typeof mergeVerifyShards>[0],
          files.map((_, i) => `p${i + 1}.json`),
        ),
      (e: unknown) => e instanceof UsageError && e.message === message,
      message,
    );
  }
});
