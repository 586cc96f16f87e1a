/**
 * The matrix (tensor core) ceiling: a loop of `subgroupMatrixMultiplyAccumulate` on 16x16x16
 * f16 x f16 -> f32 subgroup matrices (Dawn's chromium-experimental-subgroup-matrix), for
 * `Ceilings.matrix`. Adapters without f16 subgroup matrices get null.
 * @module
 */
import type { GpuContext } from "../kernels/gpu.ts";
import { timeGpu } from "../bench/timing.ts";
import type { CeilingForm, ComputeCeiling } from "./ceilings.ts";
import { timedPassDescriptor } from "../kernels/variant.ts";

/** Options of `measureMatrixCeiling()`. */
export interface MatrixCeilingOptions {
  /** Fewer samples and shorter runs. @default false */
  quick?: boolean;
}

interface _MatrixForm {
  /** Left fragments x right fragments: accumulators = lefts * rights. */
  lefts: number;
  rights: number;
  /** Warps per workgroup. */
  warps: number;
}

function _name(f: _MatrixForm): string {
  return `smma-f16f32-16x16x16-acc${f.lefts}x${f.rights}-w${f.warps}`;
}

/** WGSL of a form: each warp loads its fragments once, then `iters` rounds of MMAs. */
export function matrixCeilingWgsl(f: _MatrixForm, sg: number): string {
  const L = "subgroup_matrix_left<f16, 16, 16>";
  const R = "subgroup_matrix_right<f16, 16, 16>";
  const A = "subgroup_matrix_result<f32, 16, 16>";
  const ls = Array.from({ length: f.lefts }, (_, i) => i);
  const rs = Array.from({ length: f.rights }, (_, j) => j);
  const accs = ls.flatMap((i) => rs.map((j) => [i, j] as const));
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

struct Params { iters: u32, pad0: u32, pad1: u32, pad2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> tile: array<f16, ${(f.lefts + f.rights) * 256}>;

@compute @workgroup_size(${sg * f.warps})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  for (var i = lid; i < ${(f.lefts + f.rights) * 256}u; i = i + ${sg * f.warps}u) {
    tile[i] = f16(f32(i % 7u) * 0.0625 - 0.1875);
  }
  workgroupBarrier();
${
    ls.map((i) => `  let l${i} = subgroupMatrixLoad<${L}>(&tile, ${i * 256}u, false, 16u);`).join(
      "\n",
    )
  }
${
    rs.map((j) =>
      `  let r${j} = subgroupMatrixLoad<${R}>(&tile, ${(f.lefts + j) * 256}u, false, 16u);`
    )
      .join("\n")
  }
${accs.map(([i, j]) => `  var a${i}_${j} = ${A}();`).join("\n")}
  for (var it = 0u; it < params.iters; it = it + 1u) {
${
    accs.map(([i, j]) =>
      `    a${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, a${i}_${j});`
    )
      .join("\n")
  }
  }
  let warp = lid / ${sg}u;
  let base = (wid.x * ${f.warps}u + warp) * 256u;
  subgroupMatrixStore(&out, base, a0_0, false, 16u);
${
    accs.slice(1).map(([i, j]) =>
      `  if (params.pad0 == 12345u) { subgroupMatrixStore(&out, base, a${i}_${j}, false, 16u); }`
    ).join("\n")
  }
}
`;
}

/**
 * Measures the f16 x f16 -> f32 subgroup matrix rate (FLOP/s, an MMA of 16x16x16 counting
 * 8192) of `gpu`; null when the adapter has no such subgroup matrix.
 *
 * @example
 * ```ts ignore
 * const matrix = await measureMatrixCeiling(gpu); // { flopsPerSecond, form, forms } | null
 * ```
 */
export async function measureMatrixCeiling(
  gpu: GpuContext,
  options: MatrixCeilingOptions = {},
): Promise<ComputeCeiling | null> {
  const hasConfig = gpu.subgroupMatrixConfigs.some((c) =>
    c.componentType === "f16" && c.resultComponentType === "f32" && Number(c.M) === 16 &&
    Number(c.N) === 16 && Number(c.K) === 16
  );
  if (!gpu.hasSubgroupMatrix || !gpu.hasF16 || !gpu.hasSubgroups || !hasConfig) return null;
  const sg = Number(gpu.adapterInfo.subgroupMaxSize ?? 32) || 32;
  const forms: _MatrixForm[] = [
    { lefts: 2, rights: 2, warps: 4 },
    { lefts: 2, rights: 4, warps: 4 },
    { lefts: 4, rights: 4, warps: 2 },
  ];
  const maxInv = gpu.limits.maxComputeInvocationsPerWorkgroup ?? 256;
  const results: CeilingForm[] = [];
  const groups = 132 * 16;
  for (const f of forms.filter((f) => f.warps * sg <= maxInv)) {
    const name = _name(f);
    const description = `subgroupMatrixMultiplyAccumulate loop, ${f.lefts}x${f.rights} ` +
      `independent 16x16 f32 accumulators per warp, ${f.warps} warps per workgroup, ${groups} workgroups`;
    const timing = gpu.hasTimestamps ? "timestamp" as const : "wall" as const;
    try {
      const device = gpu.device;
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: name, code: matrixCeilingWgsl(f, sg) });
      const pipeline = await device.createComputePipelineAsync({
        label: name,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      const err = await device.popErrorScope();
      if (err) throw new Error(err.message);
      const iters = options.quick ? 2048 : 8192;
      const uniform = device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(uniform, 0, new Uint32Array([iters, 0, 0, 0]));
      const out = device.createBuffer({
        size: groups * f.warps * 256 * 4,
        usage: GPUBufferUsage.STORAGE,
      });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer: uniform } }, {
          binding: 1,
          resource: { buffer: out },
        }],
      });
      const stats = await timeGpu(gpu, (enc, ts) => {
        const pass = enc.beginComputePass(timedPassDescriptor(ts));
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(groups);
        pass.end();
      }, { warmup: 2, iters: options.quick ? 5 : 15 });
      uniform.destroy();
      out.destroy();
      const work = 8192 * f.lefts * f.rights * iters * f.warps * groups;
      results.push({
        name,
        description,
        value: work / (stats.min / 1e3),
        medianValue: work / (stats.median / 1e3),
        work,
        bestMs: stats.min,
        medianMs: stats.median,
        samples: stats.count,
        timing: stats.method === "timestamp" ? "timestamp" : "wall",
        workgroupSize: f.warps * sg,
      });
    } catch (e) {
      results.push({
        name,
        description,
        value: 0,
        medianValue: 0,
        work: 0,
        bestMs: 0,
        medianMs: 0,
        samples: 0,
        timing,
        workgroupSize: f.warps * sg,
        error: e instanceof Error ? e.message.split("\n")[0]! : String(e),
      });
    }
  }
  const best = results.reduce<CeilingForm | undefined>(
    (a, b) => (a === undefined || b.value > a.value ? b : a),
    undefined,
  );
  if (!best || best.value === 0) return { flopsPerSecond: 0, form: "none", forms: results };
  return { flopsPerSecond: best.value, form: best.name, forms: results };
}
