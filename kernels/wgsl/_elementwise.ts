/**
 * Test-only GPU harness: runs a WGSL statement once per element of a u32 array and reads the
 * u32 words it writes back. The WGSL codec tests and the kernels' decode tests share it.
 * @module
 */
import assert from "node:assert/strict";
import type { GpuContext } from "../gpu.ts";

/**
 * Runs `body` once per element i of `a` (and `b`) after `prelude` (the functions under test, and
 * an `enable` line first if they need one), and returns `out` (`stride` u32 words per element).
 * Fails on any shader compilation or validation error.
 */
export async function runElementwise(
  gpu: GpuContext,
  prelude: string,
  body: string,
  a: Uint32Array<ArrayBuffer>,
  b: Uint32Array<ArrayBuffer>,
  stride: number,
): Promise<Uint32Array<ArrayBuffer>> {
  const { device } = gpu;
  const code = `${prelude}
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= arrayLength(&a)) { return; }
  _ = b[0]; // keep binding 1 in the auto layout
  ${body}
}
`;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label: "elementwise_test" });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  assert.equal(errors.length, 0, `WGSL compile errors: ${errors.map((m) => m.message).join("; ")}`);
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const make = (data: Uint32Array<ArrayBuffer>, usage: number) => {
    const buf = device.createBuffer({ size: Math.max(16, data.byteLength), usage });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const aBuf = make(a, storage);
  const bBuf = make(b.length ? b : new Uint32Array(4), storage);
  const outBytes = a.length * stride * 4;
  const outBuf = device.createBuffer({
    size: outBytes,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const readBuf = device.createBuffer({
    size: outBytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [aBuf, bBuf, outBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(a.length / 64));
  pass.end();
  encoder.copyBufferToBuffer(outBuf, 0, readBuf, 0, outBytes);
  device.queue.submit([encoder.finish()]);
  const err = await device.popErrorScope();
  assert.equal(err, null, `WebGPU validation error: ${err?.message}`);
  await readBuf.mapAsync(GPUMapMode.READ);
  const out = new Uint32Array(readBuf.getMappedRange().slice(0));
  readBuf.unmap();
  for (const buf of [aBuf, bBuf, outBuf, readBuf]) buf.destroy();
  return out;
}

/**
 * 256 words in which every byte value sits once in each of the four byte positions (bytes 0 and 2
 * ascending from different offsets, bytes 1 and 3 descending), for the byte-unpack tests.
 */
export function everyByteInEveryPosition(): Uint32Array<ArrayBuffer> {
  const byteOf = (i: number, j: number) => (j % 2 === 0 ? i + 85 * j : 255 - i + 85 * j) & 255;
  return Uint32Array.from(
    { length: 256 },
    (_, i) =>
      (byteOf(i, 0) | (byteOf(i, 1) << 8) | (byteOf(i, 2) << 16) | (byteOf(i, 3) << 24)) >>> 0,
  );
}

/**
 * Runs the WGSL function `fn` (u32 -> vec4<f32>, defined in `prelude`) on every word and returns
 * its four f32 results per word, in order.
 */
export async function runWordToVec4(
  gpu: GpuContext,
  prelude: string,
  fn: string,
  words: Uint32Array<ArrayBuffer>,
): Promise<Float32Array> {
  const out = await runElementwise(
    gpu,
    prelude,
    `let v = ${fn}(a[i]);
  out[4u * i] = bitcast<u32>(v.x);
  out[4u * i + 1u] = bitcast<u32>(v.y);
  out[4u * i + 2u] = bitcast<u32>(v.z);
  out[4u * i + 3u] = bitcast<u32>(v.w);`,
    words,
    new Uint32Array(0),
    4,
  );
  return new Float32Array(out.buffer);
}
