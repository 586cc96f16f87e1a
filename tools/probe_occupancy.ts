/**
 * Probe: how many workgroups the adapter keeps resident at once, by workgroup size, declared
 * workgroup memory and registers per invocation. Nothing in WebGPU reports a pipeline's register
 * count or occupancy, and the flash tiles' timings (PERF_LOG v7, v9) suggested one resident
 * workgroup per SM whatever its size.
 *
 * Each workgroup's first invocation increments a global "running" counter when it starts and
 * records the largest value seen (atomicMax), spins for a fixed number of iterations, then
 * decrements the counter. The largest value over a launch far larger than the GPU can hold is
 * the number of workgroups resident at once; divided by the SM count (given with --sms), the
 * workgroups per SM. No workgroup waits for another, so the probe cannot deadlock.
 *
 * Usage: deno run -A tools/probe_occupancy.ts [--sms 132] [--groups-per-sm 40] [--json FILE]
 * @module
 */
import { acquireGpu, type GpuContext } from "../kernels/gpu.ts";
import { bindAll, cachedPipeline, createUniform } from "../kernels/_shared.ts";
import { writeFileAtomic } from "../io/atomic_write.ts";

/** One probe kernel's shape. */
export interface OccupancyForm {
  /** Invocations per workgroup. */
  threads: number;
  /** Bytes of workgroup memory declared (and touched), a multiple of 16; 0 for none. */
  workgroupBytes: number;
  /** vec4<f32> values each invocation keeps live through the spin loop (4 registers each). */
  liveVec4: number;
}

/** The probe's WGSL for `form`. */
export function occupancyWgsl(form: OccupancyForm): string {
  const { threads: T, workgroupBytes: B, liveVec4: R } = form;
  const n = B / 16;
  const regs = Array.from({ length: R }, (_, j) => j);
  return `struct Params { spin: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> counters: array<atomic<u32>, 2>;
@group(0) @binding(2) var<storage, read_write> data: array<vec4<f32>>;
${n > 0 ? `var<workgroup> pad: array<vec4<f32>, ${n}>;` : ""}
var<workgroup> seen: u32;

@compute @workgroup_size(${T})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  if (lid == 0u) {
    let now = atomicAdd(&counters[0], 1u) + 1u;
    atomicMax(&counters[1], now);
    seen = now;
  }
${regs.map((j) => `  var a${j} = data[(lid * ${R}u + ${j}u) % arrayLength(&data)];`).join("\n")}
${
    n > 0
      ? `  for (var i = lid; i < ${n}u; i = i + ${T}u) {
    pad[i] = a0 + vec4<f32>(f32(i));
  }
  workgroupBarrier();
  a0 = a0 + pad[(lid * 7u + 1u) % ${n}u];`
      : "  workgroupBarrier();"
  }
  // Every value feeds the next, so all stay live through the loop.
  for (var i = 0u; i < params.spin; i = i + 1u) {
${regs.map((j) => `    a${j} = fma(a${j}, vec4<f32>(0.999), a${(j + 1) % R});`).join("\n")}
  }
  workgroupBarrier();
  if (lid == 0u) {
    atomicSub(&counters[0], 1u);
  }
  let s = ${regs.map((j) => `a${j}`).join(" + ")};
  data[(wid.x * ${T}u + lid) % arrayLength(&data)] = s + vec4<f32>(f32(seen));
}
`;
}

/** Runs `form` over `groups` workgroups and returns the most that ran at once. */
export async function probeOccupancy(
  gpu: GpuContext,
  form: OccupancyForm,
  groups: number,
  spin: number,
): Promise<number> {
  const { device } = gpu;
  const key = `probe_occupancy_t${form.threads}_b${form.workgroupBytes}_r${form.liveVec4}`;
  const { pipeline, layout } = await cachedPipeline(gpu, key, occupancyWgsl(form), [
    "uniform",
    "read_write",
    "read_write",
  ]);
  const params = createUniform(device, key, [["u32", spin]]);
  const counters = device.createBuffer({
    size: 8,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const init = Float32Array.from({ length: (1 << 20) / 4 }, (_, i) => 0.25 + (i % 97) / 1024);
  const data = device.createBuffer({
    size: init.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(data, 0, init);
  const read = device.createBuffer({
    size: 8,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindAll(device, key, layout, [params, counters, data]));
    pass.dispatchWorkgroups(groups);
    pass.end();
    enc.copyBufferToBuffer(counters, 0, read, 0, 8);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const [running, most] = Array.from(new Uint32Array(read.getMappedRange().slice(0)));
    read.unmap();
    if (running !== 0) throw new Error(`probe ended with ${running} workgroups still counted`);
    return most ?? 0;
  } finally {
    for (const b of [params, counters, data, read]) b.destroy();
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const value = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const sms = Number(value("--sms") ?? 132);
  const jsonPath = value("--json");
  // More than any GPU holds per SM (Hopper: 32 workgroups, 64 warps).
  const groupsPerSm = Number(value("--groups-per-sm") ?? 40);
  const gpu = await acquireGpu();
  const maxBytes = gpu.limits.maxComputeWorkgroupStorageSize ?? 16384;
  const rows: (OccupancyForm & { resident: number; perSm: number })[] = [];
  console.log(`occupancy probe: ${gpu.adapterName}; per SM over ${sms} SMs`);
  console.log("threads | workgroup bytes | live vec4 | resident | per SM");
  for (const threads of [32, 64, 128, 256]) {
    for (const kb of [0, 8, 16, 24, 32, 40, 47]) {
      const workgroupBytes = Math.min(kb * 1024, maxBytes - 16);
      for (const liveVec4 of [2, 16, 32, 48]) {
        const form = { threads, workgroupBytes, liveVec4 };
        // ~100k FMA instructions per warp: a lifetime far above the launch's start skew.
        const spin = Math.ceil(25000 / liveVec4);
        const resident = await probeOccupancy(gpu, form, sms * groupsPerSm, spin);
        rows.push({ ...form, resident, perSm: resident / sms });
        console.log(
          `${threads} | ${workgroupBytes} | ${liveVec4} | ${resident} | ${
            (resident / sms).toFixed(2)
          }`,
        );
      }
    }
  }
  if (jsonPath) {
    await writeFileAtomic(
      jsonPath,
      JSON.stringify({ adapter: gpu.adapterName, sms, rows }, null, 2),
    );
  }
  gpu.destroy();
}
