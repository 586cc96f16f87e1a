// GPU test: the int8 unpack of flash's `int8Alu` tiles (`int8x4`) gives, for every one of the
// 256 byte values in each of the four bytes of a word, exactly its two's-complement value (-128
// included, which the codec never writes but a pool may hold). Without an adapter the test fails.
import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { INT8X4_WGSL } from "./int8x4.ts";
import { runElementwise } from "./_elementwise.ts";

/** Byte j of word i: every value appears once in each byte position over the 256 words. */
const byteOf = (i: number, j: number) => (j % 2 === 0 ? i + 85 * j : 255 - i + 85 * j) & 255;

Deno.test("int8x4 decodes every int8 byte in every byte of a word exactly", async () => {
  const words = Uint32Array.from(
    { length: 256 },
    (_, i) =>
      (byteOf(i, 0) | (byteOf(i, 1) << 8) | (byteOf(i, 2) << 16) | (byteOf(i, 3) << 24)) >>> 0,
  );
  const out = await runElementwise(
    await acquireGpu(),
    INT8X4_WGSL,
    `let v = int8x4(a[i]);
  out[4u * i] = bitcast<u32>(v.x);
  out[4u * i + 1u] = bitcast<u32>(v.y);
  out[4u * i + 2u] = bitcast<u32>(v.z);
  out[4u * i + 3u] = bitcast<u32>(v.w);`,
    words,
    new Uint32Array(0),
    4,
  );
  const values = new Float32Array(out.buffer);
  for (let i = 0; i < words.length; i++) {
    for (let j = 0; j < 4; j++) {
      const b = (words[i]! >>> (8 * j)) & 255;
      const want = (b << 24) >> 24;
      assert.ok(
        Object.is(values[4 * i + j], want),
        `word 0x${words[i]!.toString(16)} byte ${j} (0x${b.toString(16)}): ${
          values[4 * i + j]
        }, expected ${want}`,
      );
    }
  }
});
