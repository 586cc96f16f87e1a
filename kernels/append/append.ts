/**
 * Host side of the append kernel: uniforms, bind group and dispatch over a `DeviceProblem`.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { DeviceProblem } from "../variant.ts";
import {
  bindAll,
  cachedPipeline,
  createUniform,
  dispatchGrid,
  type PassPlan,
  scaleCount,
} from "../_shared.ts";
import {
  APPEND_BINDINGS,
  APPEND_WORKGROUP_SIZE,
  appendInvocations,
  appendKey,
  type AppendSpec,
  appendWgsl,
} from "./template.ts";

/**
 * Plans the append of every new token's k/v row into its cache slot of `dev.kPages` /
 * `dev.vPages` (through `dev.blockTable`). Encode it after any pass that reads the old pool
 * contents of the pages it writes.
 *
 * @example
 * ```ts ignore
 * const append = await planAppend(gpu, dev);
 * const encoder = gpu.device.createCommandEncoder();
 * const pass = encoder.beginComputePass();
 * append.encodeInto(pass);
 * pass.end();
 * gpu.device.queue.submit([encoder.finish()]);
 * append.destroy();
 * ```
 */
export async function planAppend(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: { workgroupSize?: number; unitWords?: 1 | 4 } = {},
): Promise<PassPlan> {
  const p = dev.problem;
  const spec: AppendSpec = {
    qDtype: p.qDtype,
    cacheDtype: p.cacheDtype,
    headDim: p.headDim,
    workgroupSize: options.workgroupSize ?? APPEND_WORKGROUP_SIZE,
    ...(options.unitWords ? { unitWords: options.unitWords } : {}),
  };
  const key = appendKey(spec);
  const code = appendWgsl(spec);
  const { pipeline, layout } = await cachedPipeline(gpu, key, code, APPEND_BINDINGS);
  const device = gpu.device;
  const uniform = createUniform(device, `${key}.params`, [
    ["u32", p.batch],
    ["u32", p.totalQ],
    ["u32", p.numKvHeads],
    ["u32", p.maxPagesPerReq],
    ["u32", Math.log2(p.pageSize)],
    ["u32", scaleCount(p)],
  ]);
  const bindGroup = bindAll(device, key, layout, [
    uniform,
    dev.kNew,
    dev.vNew,
    dev.kPages,
    dev.vPages,
    dev.scales,
    dev.cuSeqlensQ,
    dev.cacheSeqlens,
    dev.blockTable,
  ]);
  const [x, y] = dispatchGrid(
    gpu,
    appendInvocations(spec, p.totalQ, p.numKvHeads),
    spec.workgroupSize,
  );
  return {
    key,
    code,
    encodeInto(pass) {
      if (x === 0) return;
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y);
    },
    destroy: () => uniform.destroy(),
  };
}
