// GPU test: the e4m3 unpack that the decode and flash kernels share (`fp8x4`) gives, for every one
// of the 256 codes in each of the four bytes of a word, exactly the reference codec's value divided
// by 256 (NaN for the e4m3 NaN codes, beside finite ones in the same word). Without an adapter the
// test fails.
import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { FP8X4_WGSL } from "./fp8x4.ts";
import { everyByteInEveryPosition, runWordToVec4 } from "./_elementwise.ts";
import { e4m3ToNumber } from "../../reference/codecs.ts";

async function decodeWords(words: Uint32Array<ArrayBuffer>): Promise<Float32Array> {
  return runWordToVec4(await acquireGpu(), FP8X4_WGSL, "fp8x4", words);
}

function assertDecodes(words: Uint32Array, values: Float32Array): void {
  for (let i = 0; i < words.length; i++) {
    for (let j = 0; j < 4; j++) {
      const c = (words[i]! >>> (8 * j)) & 255;
      const want = e4m3ToNumber(c) / 256;
      const got = values[4 * i + j]!;
      assert.ok(
        Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want),
        `word 0x${words[i]!.toString(16)} byte ${j} (code 0x${
          c.toString(16)
        }): ${got}, expected ${want}`,
      );
    }
  }
}

Deno.test("fp8x4 decodes every e4m3 code in every byte of a word exactly, NaN codes to NaN", async () => {
  const words = everyByteInEveryPosition();
  assertDecodes(words, await decodeWords(words));
});

Deno.test("fp8x4 decodes words of finite codes only, signs and subnormals included", async () => {
  // Codes 0x00-0x7e and 0x80-0xfe: every finite code, each in every byte, no NaN flag set.
  const finite = Array.from({ length: 256 }, (_, c) => c).filter((c) => (c & 0x7f) !== 0x7f);
  const words = Uint32Array.from(
    { length: finite.length },
    (_, i) =>
      (finite[i]! | (finite[(i + 61) % finite.length]! << 8) |
        (finite[(i + 127) % finite.length]! << 16) |
        (finite[(i + 191) % finite.length]! << 24)) >>> 0,
  );
  const values = await decodeWords(words);
  assertDecodes(words, values);
  assert.ok(values.some((x) => Object.is(x, -0)), "negative zero decoded");
  assert.ok(values.some((x) => x !== 0 && Math.abs(x) < 2 ** -14), "subnormals decoded");
});
