// GPU test: the int8 unpack of flash's `int8Alu` tiles (`int8x4`) gives, for every one of the
// 256 byte values in each of the four bytes of a word, exactly its two's-complement value (-128
// included, which the codec never writes but a pool may hold). Without an adapter the test fails.
import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { INT8X4_WGSL } from "./int8x4.ts";
import { everyByteInEveryPosition, runWordToVec4 } from "./_elementwise.ts";

Deno.test("int8x4 decodes every int8 byte in every byte of a word exactly", async () => {
  const words = everyByteInEveryPosition();
  const values = await runWordToVec4(await acquireGpu(), INT8X4_WGSL, "int8x4", words);
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
