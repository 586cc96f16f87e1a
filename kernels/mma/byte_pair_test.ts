// GPU test: the mma kernel's fp8/int8 staging decode (`byte_pair`) gives, for every one of the
// 256 codes in either half of the word, exactly the value of the reference codec (NaN for the
// e4m3 NaN codes). Without an adapter the test fails (not skips).
import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { mmaBytePairWgsl } from "./template.ts";
import { runElementwise } from "../wgsl/_elementwise.ts";
import { e4m3ToNumber } from "../../reference/codecs.ts";

const int8ToNumber = (code: number) => (code << 24) >> 24;

/** Decodes word i = code i | code (255 - i) << 16 on the GPU; returns [low, high] per word. */
async function decodeAllCodes(dtype: "fp8_e4m3" | "int8"): Promise<Float32Array> {
  const gpu = await acquireGpu();
  assert.ok(gpu.features.has("shader-f16"), `adapter ${gpu.adapterName} lacks shader-f16`);
  const prelude = `enable f16;
fn h2(w: u32) -> vec2<f16> {
  return vec2<f16>(unpack2x16float(w));
}
${mmaBytePairWgsl(dtype)}`;
  const words = Uint32Array.from({ length: 256 }, (_, i) => i | ((255 - i) << 16));
  const out = await runElementwise(
    gpu,
    prelude,
    `let v = vec2<f32>(byte_pair(a[i]));
  out[2u * i] = bitcast<u32>(v.x);
  out[2u * i + 1u] = bitcast<u32>(v.y);`,
    words,
    new Uint32Array(0),
    2,
  );
  return new Float32Array(out.buffer);
}

function assertAllCodes(dtype: "fp8_e4m3" | "int8", toNumber: (code: number) => number) {
  return async () => {
    const values = await decodeAllCodes(dtype);
    for (let i = 0; i < 256; i++) {
      for (const [half, code] of [[0, i], [1, 255 - i]] as const) {
        const want = toNumber(code);
        const got = values[2 * i + half]!;
        assert.ok(
          Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)),
          `${dtype} code 0x${code.toString(16)} in half ${half}: expected ${want}, got ${got}`,
        );
      }
    }
  };
}

Deno.test(
  "mma byte_pair decodes every fp8 e4m3 code exactly, NaN codes to NaN, in both halves",
  assertAllCodes("fp8_e4m3", e4m3ToNumber),
);

Deno.test(
  "mma byte_pair decodes every int8 code exactly in both halves",
  assertAllCodes("int8", int8ToNumber),
);
