import assert from "node:assert/strict";
import { bf16OutsideF16 } from "./bf16_range.ts";
import { numberToBf16Bits } from "../reference/codecs.ts";
import { seededRandom } from "../kernels/_testing.ts";

/** Random normal bf16 bits (never zeros), scaled by `scale`. */
function randomBits(n: number, seed: number, scale = 1): Uint16Array {
  const rand = seededRandom(seed);
  return Uint16Array.from({ length: n }, () => {
    const u = Math.max(rand(), 1e-12);
    return numberToBf16Bits(scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand()));
  });
}

// Two requests over 4 pages of 4 slots, H_kv * D = 8: request 0 reads 6 slots (page 2, then
// the first 2 slots of page 0), request 1 reads 3 slots of page 3; page 1 and the rest of
// page 0 are never read.
const shape = {
  qWidth: 16,
  kvWidth: 8,
  pageSize: 4,
  maxPagesPerReq: 2,
  cacheLens: [6, 3],
  blockTable: new Int32Array([2, 0, 3, 1]),
};
function data(seed: number) {
  return {
    q: randomBits(5 * 16, seed),
    kNew: randomBits(5 * 8, seed + 1),
    vNew: randomBits(5 * 8, seed + 2),
    kPages: randomBits(16 * 8, seed + 3),
    vPages: randomBits(16 * 8, seed + 4),
  };
}

Deno.test("bf16OutsideF16 accepts random values, 65280 (the largest bf16 <= 65504), infinities and NaN", () => {
  const d = data(1);
  assert.equal(bf16OutsideF16(d, shape), null);
  d.q[3] = 0x477f;
  d.kNew[5] = 0xc77f;
  d.vNew[0] = 0x7f80; // +inf
  d.kPages[2 * 4 * 8] = 0xffc1; // NaN
  assert.equal(bf16OutsideF16(d, shape), null);
});

Deno.test("bf16OutsideF16 names the first value beyond f16's range in q, k_new, v_new and the read slots", () => {
  const cases: Array<[keyof ReturnType<typeof data>, number, string]> = [
    ["q", 2 * 16 + 5, "q[2][5] (token 2) is 65536"],
    ["kNew", 4 * 8 + 1, "k_new[4][1] (token 4) is -65536"],
    ["vNew", 7, "v_new[0][7] (token 0) is 65536"],
    // Request 0's 6th slot: page 0, offset 1 -> slot 1.
    ["kPages", 1 * 8 + 3, "k_pages[1][3] (slot 1) is 65536"],
    // Request 1's 3rd slot: page 3, offset 2 -> slot 14.
    ["vPages", 14 * 8, "v_pages[14][0] (slot 14) is -65536"],
  ];
  for (const [name, at, want] of cases) {
    const d = data(2);
    d[name][at] = want.endsWith("-65536") ? 0xc780 : 0x4780;
    assert.equal(bf16OutsideF16(d, shape), want);
  }
});

Deno.test("bf16OutsideF16 ignores cache slots attention never reads, and pools of a byte cache", () => {
  const d = data(3);
  d.kPages[2 * 8] = 0x7f00; // slot 2 of page 0: request 0 reads only slots 0 and 1 there
  d.vPages[1 * 4 * 8] = 0x7f00; // page 1: not in any request's first pages
  d.kPages[15 * 8] = 0x7f00; // slot 15: past request 1's 3 old slots (the append writes it)
  assert.equal(bf16OutsideF16(d, shape), null);
  assert.equal(
    bf16OutsideF16({ ...d, kPages: null, vPages: null, q: randomBits(80, 4, 1e6) }, shape)
      ?.startsWith("q["),
    true,
  );
});
