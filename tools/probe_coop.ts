/**
 * Probe: can Deno's built-in WebGPU (wgpu) reach the tensor cores through WGSL cooperative
 * matrices (`enable wgpu_cooperative_matrix;`, wgpu's `EXPERIMENTAL_COOPERATIVE_MATRIX`)?
 * Prints the adapter's features, asks for a device with `wgpu-cooperative-matrix`, and, where
 * one is granted, compiles a 16x16x16 f16 -> f32 multiply-add. On the GPU machine:
 *
 *   source .gpu/boot.sh && deno run -A tools/probe_coop.ts
 *
 * H200 under Deno 2.9.6 (docs/perf/coop_matrix_probe_2026-11-22.log): the adapter has the
 * feature (the name is accepted, where lavapipe answers that it is not a subset of the
 * adapter's), but the device request fails: Deno asks wgpu for a device with its experimental
 * features disabled, and offers no way to enable them.
 * @module
 */

/** A one-subgroup C = A B + C on 16x16 tiles: f16 A and B, f32 C, row-major in storage. */
export const COOP_PROBE_WGSL = `enable f16;
enable wgpu_cooperative_matrix;
@group(0) @binding(0) var<storage, read> ab: array<f16>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(32)
fn main() {
  let a = coopLoadT<coop_mat16x16<f16, A>>(&ab[0], 16u);
  let b = coopLoadT<coop_mat16x16<f16, B>>(&ab[256], 16u);
  var acc = coopLoadT<coop_mat16x16<f32, C>>(&c[0], 16u);
  acc = coopMultiplyAdd(a, b, acc);
  coopStoreT(acc, &c[0], 16u);
}
`;

/** What the probe found: the device request's outcome and, if granted, the shader's. */
export interface CoopProbeResult {
  adapter: string;
  adapterFeatures: string[];
  /** "granted", or "refused: " and the error. */
  device: string;
  /** With a device: "compiled", or "failed: " and the validation error. */
  shader?: string;
}

/** Runs the probe on the first high-performance adapter. */
export async function probeCoop(): Promise<CoopProbeResult> {
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter: the probe needs a GPU (or Mesa's drivers)");
  const result: CoopProbeResult = {
    adapter: adapter.info.description,
    adapterFeatures: [...adapter.features].sort(),
    device: "granted",
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      // Deno's own name of wgpu's feature; not in the WebGPU IDL's list.
      requiredFeatures: ["shader-f16", "wgpu-cooperative-matrix" as GPUFeatureName],
    });
  } catch (e) {
    return { ...result, device: `refused: ${e instanceof Error ? e.message : String(e)}` };
  }
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: COOP_PROBE_WGSL });
  device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const error = await device.popErrorScope();
  device.destroy();
  return { ...result, shader: error ? `failed: ${error.message}` : "compiled" };
}

if (import.meta.main) {
  const r = await probeCoop();
  console.log(`adapter: ${r.adapter}`);
  console.log(`adapter features: ${r.adapterFeatures.join(", ")}`);
  console.log(`device with wgpu-cooperative-matrix: ${r.device}`);
  if (r.shader) console.log(`16x16x16 f16 -> f32 shader: ${r.shader}`);
}
