/**
 * Acquiring a WebGPU device and describing it. The rest of the code takes a `GpuContext`
 * and never asks which implementation is behind it.
 * @module
 */

/** Which WebGPU implementation runs the kernels. */
export type GpuBackend = "deno" | "dawn";

/** A device plus what the code needs to know about it. */
export interface GpuContext {
  device: GPUDevice;
  backend: GpuBackend;
  /** Adapter description, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapterName: string;
  /** Vendor/architecture/driver strings as the adapter reports them. */
  adapterInfo: Record<string, string | number | boolean>;
  /** Features enabled on the device. */
  features: ReadonlySet<string>;
  /** Limits of the device (as requested: the adapter's maxima). */
  limits: Readonly<Record<string, number>>;
  /** True when shader-f16 is enabled on the device. */
  hasF16: boolean;
  /** True when timestamp-query is enabled on the device. */
  hasTimestamps: boolean;
  /** True when subgroup operations may be used in WGSL. */
  hasSubgroups: boolean;
  /** Releases the device. */
  destroy(): void;
}

/** Options of `acquireGpu()`. */
export interface AcquireGpuOptions {
  /** WebGPU implementation. @default "deno" */
  backend?: GpuBackend;
}

/** Thrown when no adapter can be found: says how to get a software one. */
export class GpuUnavailableError extends Error {
  override name = "GpuUnavailableError";
}

const OPTIONAL_FEATURES = ["shader-f16", "timestamp-query", "subgroups"] as const;

function limitsOf(adapter: GPUAdapter): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes its fields as prototype getters.
  for (const key in adapter.limits) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") out[key] = value;
  }
  return out;
}

function infoOf(adapter: GPUAdapter): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  const info = adapter.info as unknown as Record<string, unknown>;
  for (const key in info) {
    const value = info[key];
    if (["string", "number", "boolean"].includes(typeof value)) {
      out[key] = value as string | number | boolean;
    }
  }
  return out;
}

/** Requests an adapter and a device with every optional feature the adapter offers. */
export async function acquireGpu(options: AcquireGpuOptions = {}): Promise<GpuContext> {
  const backend = options.backend ?? "deno";
  if (backend !== "deno") {
    throw new RangeError(`Cannot use backend "${backend}": only "deno" is built in`);
  }
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new GpuUnavailableError(
      "Cannot find a WebGPU adapter: install Mesa's Vulkan driver (apt-get install -y mesa-vulkan-drivers) and set XDG_RUNTIME_DIR, or run on a machine with a GPU",
    );
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const limits = limitsOf(adapter);
  const requiredLimits: Record<string, number> = {};
  for (
    const key of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupsPerDimension",
      "maxStorageBuffersPerShaderStage",
    ]
  ) {
    if (limits[key] !== undefined) requiredLimits[key] = limits[key]!;
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const info = infoOf(adapter);
  const name = String(info.description || info.device || info.vendor || "unknown adapter");
  const enabled = new Set<string>(features);
  return {
    device,
    backend,
    adapterName: name,
    adapterInfo: info,
    features: enabled,
    limits: limitsOf(adapter),
    hasF16: enabled.has("shader-f16"),
    hasTimestamps: enabled.has("timestamp-query"),
    hasSubgroups: enabled.has("subgroups"),
    destroy: () => device.destroy(),
  };
}
