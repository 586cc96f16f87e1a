import {
  acquireGpu,
  dawnBackendOrder,
  dawnCreateOptions,
  type GpuContext,
  isSoftwareAdapter,
} from "./gpu.ts";

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&b)) { b[id.x] = a[id.x] * 3u + id.x; }
}`;

/** Runs `b[i] = 3 a[i] + i` over 1000 elements and returns `b`. */
async function runTrivialKernel(gpu: GpuContext): Promise<Uint32Array> {
  const { device } = gpu;
  const n = 1000;
  const input = new Uint32Array(n).map((_, i) => (i * 2654435761) >>> 8);
  const a = device.createBuffer({
    size: n * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  const b = device.createBuffer({
    size: n * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({
    size: n * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(a, 0, input);
  const module = device.createShaderModule({ code: SHADER });
  const pipeline = await device.createComputePipelineAsync({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: a } }, { binding: 1, resource: { buffer: b } }],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  encoder.copyBufferToBuffer(b, 0, read, 0, n * 4);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Uint32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const buffer of [a, b, read]) buffer.destroy();
  for (let i = 0; i < n; i++) {
    const want = (Math.imul(input[i]!, 3) + i) >>> 0;
    assert(out[i] === want, `b[${i}] = ${out[i]}, expected ${want}`);
  }
  return out;
}

function describe(gpu: GpuContext): string {
  return `${gpu.implementation}/${gpu.apiBackend} ${gpu.featureLevel} on "${gpu.adapterName}"`;
}

// Sanitizers off: dawn.node keeps native threads and handles of its own.
const options = { sanitizeOps: false, sanitizeResources: false };

Deno.test("the deno backend runs a trivial compute shader on Deno's WebGPU", options, async () => {
  const gpu = await acquireGpu({ backend: "deno" });
  try {
    assert(gpu.backend === "deno" && gpu.implementation === "deno-wgpu", describe(gpu));
    assert(gpu.implementationOptions.length === 0, "wgpu takes no Dawn options");
    await runTrivialKernel(gpu);
  } finally {
    gpu.destroy();
  }
});

Deno.test("the dawn backend runs a trivial compute shader through dawn.node", options, async () => {
  const gpu = await acquireGpu({ backend: "dawn" });
  try {
    assert(gpu.backend === "dawn" && gpu.implementation === "dawn", describe(gpu));
    assert(gpu.apiBackendKnown, "Dawn's native API is the one it was created with");
    assert(
      gpu.implementationOptions.includes(`backend=${gpu.apiBackend}`),
      `create() options ${gpu.implementationOptions.join(" ")} name the backend`,
    );
    assert(
      (gpu.limits.maxStorageBuffersPerShaderStage ?? 0) >= 8,
      `maxStorageBuffersPerShaderStage ${gpu.limits.maxStorageBuffersPerShaderStage} raised to the adapter's maximum`,
    );
    assert(
      gpu.hasSubgroups === gpu.features.has("subgroups"),
      "hasSubgroups follows the enabled features",
    );
    await runTrivialKernel(gpu);
  } finally {
    gpu.destroy();
  }
});

Deno.test("Dawn options: Vulkan first on Linux, toggles always set, env override checked", () => {
  assert(dawnBackendOrder("linux", "").join() === "vulkan,opengles", "linux order");
  assert(dawnBackendOrder("darwin", "").join() === "metal", "macOS order");
  assert(dawnBackendOrder("linux", "opengles").join() === "opengles", "forced order");
  let threw = false;
  try {
    dawnBackendOrder("linux", "directx9");
  } catch (error) {
    threw = error instanceof RangeError && /PAGED_PREFILL_DAWN_BACKEND/.test(error.message);
  }
  assert(threw, "an unknown PAGED_PREFILL_DAWN_BACKEND is rejected by name");
  const vulkan = dawnCreateOptions("vulkan");
  assert(vulkan[0] === "backend=vulkan", vulkan.join(" "));
  assert(
    vulkan.includes("enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia"),
    vulkan.join(" "),
  );
  assert(vulkan.includes("disable-dawn-features=timestamp_quantization"), vulkan.join(" "));
});

Deno.test("isSoftwareAdapter() tells Mesa's CPU drivers from a hardware GPU", () => {
  assert(
    isSoftwareAdapter({ adapterName: "llvmpipe (LLVM 15.0.6, 256 bits)", adapterInfo: {} }),
    "llvmpipe is software",
  );
  assert(
    isSoftwareAdapter({ adapterName: "x", adapterInfo: { isFallbackAdapter: true } }),
    "a fallback adapter is software",
  );
  assert(
    !isSoftwareAdapter({ adapterName: "NVIDIA H200", adapterInfo: { vendor: "nvidia" } }),
    "an H200 is hardware",
  );
});
