import assert from "node:assert/strict";
import { createRng, randomSeed, Rng } from "./random.ts";

Deno.test("createRng() repeats its sequence for the same seed and stream", () => {
  const seed = randomSeed();
  const a = createRng(seed), b = createRng(seed);
  for (let i = 0; i < 1000; i++) assert.equal(a.nextU32(), b.nextU32(), `seed ${seed}`);
  const c = createRng(seed, 3), d = new Rng(seed, 3);
  assert.equal(c.normal(), d.normal());
});

Deno.test("different seeds, streams and forks give different sequences", () => {
  const seed = randomSeed();
  const first = (r: Rng) => Array.from({ length: 8 }, () => r.nextU32());
  const base = first(createRng(seed));
  assert.notDeepEqual(first(createRng(seed + 1)), base);
  assert.notDeepEqual(first(createRng(seed, 1)), base);
  assert.notDeepEqual(first(createRng(seed + 2 ** 32)), base, "high bits of the seed count");
  const parent = createRng(seed);
  assert.notDeepEqual(first(parent.fork(1)), first(parent.fork(2)));
  assert.deepEqual(first(createRng(seed).fork(5)), first(createRng(seed).fork(5)));
});

Deno.test("fillNormal() continues the same sequence as normal()", () => {
  const seed = randomSeed();
  const a = createRng(seed), b = createRng(seed);
  const out = new Float64Array(5000);
  a.fillNormal(out, 0, 2500);
  a.fillNormal(out, 2500);
  for (let i = 0; i < out.length; i++) assert.equal(out[i], b.normal(), `seed ${seed} index ${i}`);
  assert.equal(a.nextU32(), b.nextU32());
});

Deno.test("normal() draws a standard normal distribution", () => {
  const rng = createRng(randomSeed());
  const n = 400000;
  const xs = new Float64Array(n);
  rng.fillNormal(xs);
  let s = 0, s2 = 0, s4 = 0, beyond2 = 0, beyond3 = 0, positive = 0;
  for (const x of xs) {
    s += x;
    s2 += x * x;
    s4 += x ** 4;
    if (Math.abs(x) > 2) beyond2++;
    if (Math.abs(x) > 3) beyond3++;
    if (x > 0) positive++;
  }
  assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.015, `variance ${s2 / n}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.1, `kurtosis ${s4 / n}`);
  assert.ok(Math.abs(beyond2 / n - 0.0455) < 0.002, `P(|x| > 2) = ${beyond2 / n}`);
  assert.ok(Math.abs(beyond3 / n - 0.0027) < 0.0005, `P(|x| > 3) = ${beyond3 / n}`);
  assert.ok(Math.abs(positive / n - 0.5) < 0.005);
});

Deno.test("fillNormal() scales by std and fills only the requested range", () => {
  const rng = createRng(randomSeed());
  const out = new Float32Array(20000).fill(7);
  rng.fillNormal(out, 100, 19800, 0.5);
  assert.ok(out.subarray(0, 100).every((x) => x === 7));
  assert.ok(out.subarray(19900).every((x) => x === 7));
  let s2 = 0;
  for (const x of out.subarray(100, 19900)) s2 += x * x;
  assert.ok(Math.abs(Math.sqrt(s2 / 19800) - 0.5) < 0.02);
});

Deno.test("next(), int() and uniform() stay in their ranges and cover them", () => {
  const rng = createRng(randomSeed());
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 20000; i++) {
    const u = rng.next();
    assert.ok(u >= 0 && u < 1);
    const k = rng.int(10);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 10);
    counts[k]++;
    const v = rng.uniform(0.5, 2);
    assert.ok(v >= 0.5 && v < 2);
  }
  assert.ok(counts.every((c) => c > 1700 && c < 2300), String(counts));
});

Deno.test("fillBytes() fills aligned and unaligned views with varied bytes", () => {
  const rng = createRng(randomSeed());
  const buffer = new Uint8Array(4099);
  const view = buffer.subarray(1, 4098);
  rng.fillBytes(view);
  assert.equal(buffer[0], 0);
  assert.equal(buffer[4098], 0);
  assert.ok(new Set(view).size > 240);
  assert.ok(view.filter((x) => x === 0).length < 60);
});

Deno.test("shuffle() returns a permutation that moves elements", () => {
  const rng = createRng(randomSeed());
  const a = Int32Array.from({ length: 1000 }, (_, i) => i);
  rng.shuffle(a);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  assert.ok(a.filter((x, i) => x === i).length < 20);
});

Deno.test("randomSeed() returns distinct non-negative safe integers", () => {
  const seeds = new Set(Array.from({ length: 100 }, () => randomSeed()));
  assert.ok(seeds.size > 95);
  for (const s of seeds) assert.ok(Number.isSafeInteger(s) && s >= 0);
});
