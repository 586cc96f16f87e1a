/**
 * Bank arithmetic of the softmax's reads of the key-major S tile at the H200's shape (D 128,
 * 8x2x32, 32 banks of 4 bytes): how many distinct words of one bank a single warp load
 * touches (1 = no conflict). The address formula is checked against the generated WGSL, so a
 * change of layout in the template fails here before it changes these numbers unnoticed.
 */
import { mmaWgsl } from "./template.ts";
import { mmaGeometry, type MmaSpec } from "./spec.ts";
import { H200_D128_MMA_SPEC } from "./_testing.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const B8_TILE = H200_D128_MMA_SPEC;

/** The worst number of distinct 4-byte words that share a bank within one access. */
function worstWays(accesses: number[][]): number {
  let worst = 0;
  for (const byteAddrs of accesses) {
    const words = new Map<number, Set<number>>();
    for (const a of byteAddrs) {
      const w = Math.floor(a / 4);
      const set = words.get(w % 32) ?? new Set<number>();
      set.add(w);
      words.set(w % 32, set);
    }
    for (const s of words.values()) worst = Math.max(worst, s.size);
  }
  return worst;
}

/** Byte addresses of one warp's S^T reads: score j of a thread is key j * tpr + rpart, row srow. */
function softmaxReads(spec: MmaSpec, warp: number): number[][] {
  const g = mmaGeometry(spec);
  const out: number[][] = [];
  for (let j = 0; j < spec.keys / g.tpr; j++) {
    const lanes: number[] = [];
    for (let lane = 0; lane < spec.sg; lane++) {
      const lid = warp * spec.sg + lane;
      lanes.push(4 * ((j * g.tpr + (lid % g.tpr)) * g.st + Math.floor(lid / g.tpr)));
    }
    out.push(lanes);
  }
  return out;
}

Deno.test("the softmax reads S^T at (key * stride + row) with the stride this test models", () => {
  const g = mmaGeometry(B8_TILE);
  assert(g.tpr === 4 && g.st === 132, `tpr ${g.tpr}, stride ${g.st}`);
  assert(mmaWgsl(B8_TILE).includes("s_s[(4u + rpart) * 132u + srow]"), "rows + 4 read changed");
  const wide = { ...B8_TILE, widePaddedScores: true };
  assert(mmaGeometry(wide).st === 136, `wide stride ${mmaGeometry(wide).st}`);
  assert(mmaWgsl(wide).includes("s_s[(4u + rpart) * 136u + srow]"), "rows + 8 read missing");
});

Deno.test("wide-padded S^T rows make the softmax's reads conflict-free (rows + 4: 2-way)", () => {
  for (let warp = 0; warp < 16; warp++) {
    assert(worstWays(softmaxReads(B8_TILE, warp)) === 2, `rows + 4, warp ${warp}`);
    const wide = worstWays(softmaxReads({ ...B8_TILE, widePaddedScores: true }, warp));
    assert(wide === 1, `rows + 8, warp ${warp}: ${wide}-way`);
  }
});
