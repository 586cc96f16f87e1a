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
