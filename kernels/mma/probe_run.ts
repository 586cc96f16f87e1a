/**
 * Runs one GPU-machine probe shader (kernels/mma/probe*.ts): uploads the inputs as read-only
 * storage buffers (bindings 0..n-1), adds a read-write output buffer (binding n), dispatches
 * one workgroup and reads the output back. Throws with the shader's compile/validation error.
 * @module
 */

/** Runs `code`'s `main` once over `inputs`; returns the `outBytes` the shader wrote. */
export async function runProbeShader(
  device: GPUDevice,
  label: string,
  code: string,
  inputs: readonly ArrayBufferView<ArrayBuffer>[],
  outBytes: number,
): Promise<ArrayBuffer> {
  const buffers: GPUBuffer[] = [];
  const make = (size: number, usage: number) => {
    const b = device.createBuffer({ size, usage });
    buffers.push(b);
    return b;
  };
  try {
    const bound = inputs.map((data) => {
      const b = make(data.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
      device.queue.writeBuffer(b, 0, data);
      return b;
    });
    const out = make(outBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const read = make(outBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    // The scope is popped on failure too: the validation message says more than the pipeline
    // error.
    device.pushErrorScope("validation");
    let pipeline: GPUComputePipeline | undefined;
    let failure: unknown;
    try {
      const module = device.createShaderModule({ label, code });
      pipeline = await device.createComputePipelineAsync({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      failure = e;
    }
    const err = await device.popErrorScope();
    if (err) throw new Error(`${label}: ${err.message}`);
    if (!pipeline) throw failure;
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [...bound, out].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(out, 0, read, 0, outBytes);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const bytes = read.getMappedRange().slice(0);
    read.unmap();
    return bytes;
  } finally {
    for (const b of buffers) b.destroy();
  }
}
