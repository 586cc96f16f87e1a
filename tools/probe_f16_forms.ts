/**
 * Probe: which WGSL form of an f16 multiply-add runs at the packed (HFMA2) rate on the adapter.
 * `reports/ceilings.ts` measures only `fma(vec4<f16>)`, which ran at the f32 rate on the H200
 * (65.8 TFLOP/s); this times vec2/vec4/scalar, fma and `a * b + c`, and chain counts.
 *
 * Usage: deno run -A tools/probe_f16_forms.ts [--json FILE]
 * @module
 */
import { acquireGpu } from "../kernels/gpu.ts";
import { timeGpu } from "../bench/timing.ts";
import { isSoftwareAdapter } from "../kernels/gpu.ts";
import { writeFileAtomic } from "../io/atomic_write.ts";
import { timedPassDescriptor } from "../kernels/variant.ts";

interface Form {
  type: "f16" | "f32";
  lanes: 1 | 2 | 4;
  op: "fma" | "muladd";
  chains: number;
}

function wgsl(f: Form, unroll: number): string {
  const T = f.lanes === 1 ? f.type : `vec${f.lanes}<${f.type}>`;
  const chains = Array.from({ length: f.chains }, (_, j) => j);
  const step = (j: number) =>
    f.op === "fma" ? `a${j} = fma(a${j}, m, c);` : `a${j} = a${j} * m + c;`;
  const body: string[] = [];
  for (let u = 0; u < unroll; u++) for (const j of chains) body.push(`    ${step(j)}`);
  return `${f.type === "f16" ? "enable f16;\n" : ""}
struct Params { iters: u32, mul: f32, add: f32, pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<${T}>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m = ${T}(${f.type}(params.mul));
  let c = ${T}(${f.type}(params.add));
  let x = ${f.type}(f32(gid.x & 1023u) * (1.0 / 1024.0));
${chains.map((j) => `  var a${j} = ${T}(x + ${f.type}(${j}) * ${f.type}(0.125));`).join("\n")}
  for (var i = 0u; i < params.iters; i++) {
${body.join("\n")}
  }
  out[gid.x] = ${chains.map((j) => `a${j}`).join(" + ")};
}
`;
}

const args = Deno.args;
const jsonAt = args.indexOf("--json");
const jsonPath = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
if (jsonAt >= 0 && !jsonPath) {
  console.error("--json: expected a file path after it, got nothing");
  Deno.exit(2);
}
const gpu = await acquireGpu();
const software = isSoftwareAdapter(gpu);
const threads = software ? 1 << 12 : 1 << 21;
const iters = software ? 8 : 256;
const unroll = 16;
const forms: Form[] = [];
for (const type of ["f32", "f16"] as const) {
  if (type === "f16" && !gpu.hasF16) continue;
  for (const lanes of [4, 2, 1] as const) {
    for (const op of ["fma", "muladd"] as const) {
      for (const chains of [8, 16]) forms.push({ type, lanes, op, chains });
    }
  }
}
const rows: Record<string, unknown>[] = [];
for (const f of forms) {
  const name = `${f.op}-${f.type}x${f.lanes}-c${f.chains}`;
  const module = gpu.device.createShaderModule({ code: wgsl(f, unroll) });
  const pipeline = await gpu.device.createComputePipelineAsync({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const out = gpu.device.createBuffer({
    size: threads * 4 * f.lanes,
    usage: GPUBufferUsage.STORAGE,
  });
  const uniform = gpu.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const p = new DataView(new ArrayBuffer(16));
  p.setUint32(0, iters, true);
  p.setFloat32(4, 0.999, true);
  p.setFloat32(8, 0.001, true);
  gpu.device.queue.writeBuffer(uniform, 0, p.buffer);
  const bind = gpu.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: uniform } }, {
      binding: 1,
      resource: { buffer: out },
    }],
  });
  const stats = await timeGpu(gpu, (enc, ts) => {
    const pass = enc.beginComputePass(timedPassDescriptor(ts));
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(threads / 256);
    pass.end();
  }, { warmup: 5, iters: 10, minTimeMs: software ? 0 : 200 });
  const flops = 2 * f.lanes * f.chains * unroll * iters * threads;
  const tflops = flops / (stats.median / 1e3) / 1e12;
  console.log(`${name.padEnd(24)} ${stats.median.toFixed(3)} ms  ${tflops.toFixed(1)} TFLOP/s`);
  rows.push({ name, ...f, ms: stats.median, tflops });
  out.destroy();
  uniform.destroy();
}
if (jsonPath) {
  await writeFileAtomic(
    jsonPath,
    JSON.stringify({ adapter: gpu.adapterInfo, rows }, null, 2) + "\n",
  );
}
