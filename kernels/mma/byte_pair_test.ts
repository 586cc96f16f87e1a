// GPU test: the mma kernel's fp8/int8 staging decode (`byte_pair`) gives, for every one of the
// 256 codes in either half of the word, exactly the value of the reference codec (NaN for the
// e4m3 NaN codes). Without an adapter the test fails (not skips).
import assert from "node:assert/strict";
import { acquireGpu } from "../gpu.ts";
import { mmaBytePairWgsl } from "./template.ts";
import { e4m3ToNumber } from "../../reference/codecs.ts";

const int8ToNumber = (code: number) => (code << 24) >> 24;

/** Decodes word i = code i | code (255 - i) << 16 on the GPU; returns [low, high] per word. */
async function decodeAllCodes(dtype: "fp8_e4m3" | "int8"): Promise<Float32Array> {
  const gpu = await acquireGpu();
  assert.ok(gpu.features.has("shader-f16"), `adapter ${gpu.adapterName} lacks shader-f16`);
  const { device } = gpu;
  const code = `enable f16;
fn h2(w: u32) -> vec2<f16> {
  return vec2<f16>(unpack2x16float(w));
}
${mmaBytePairWgsl(dtype)}
@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<vec2<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  out[gid.x] = vec2<f32>(byte_pair(words[gid.x]));
}
`;
  const module = device.createShaderModule({ code, label: `byte_pair_${dtype}` });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
  assert.equal(errors.length, 0, errors.map((m) => m.message).join("; "));
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const words = Uint32Array.from({ length: 256 }, (_, i) => i | ((255 - i) << 16));
  const input = device.createBuffer({
    size: words.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(input, 0, words);
  const out = device.createBuffer({
    size: 256 * 8,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({
    size: 256 * 8,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: input } }, {
        binding: 1,
        resource: { buffer: out },
      }],
    }),
  );
  pass.dispatchWorkgroups(4);
  pass.end();
  enc.copyBufferToBuffer(out, 0, read, 0, 256 * 8);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [input, out, read]) b.destroy();
  return values;
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
