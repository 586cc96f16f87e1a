/**
 * Acquiring a WebGPU device and describing it. The rest of the code takes a `GpuContext`
 * and never asks which implementation is behind it.
 *
 * Two implementations:
 * - `"deno"`: Deno's built-in WebGPU (wgpu), `navigator.gpu`.
 * - `"dawn"`: Google's Dawn through the npm package `webgpu` (dawn.node, a Node-API addon),
 *   loaded lazily so the deno backend never needs it. Under Bun (the standalone binary),
 *   the entry point hands the addon over with `provideDawnModule()` instead.
 *
 * Dawn's native API is chosen by platform (Linux: Vulkan, then OpenGL ES in compatibility
 * mode when Vulkan offers no adapter, as on Mesa's software drivers; macOS: Metal; Windows:
 * D3D12, then Vulkan), or forced with `PAGED_PREFILL_DAWN_BACKEND`.
 * @module
 */

/** Which WebGPU implementation runs the kernels (the `--backend` flag). */
export type GpuBackend = "deno" | "dawn";

/** Every value of `GpuBackend`, for flag parsers. */
export const GPU_BACKENDS: readonly GpuBackend[] = ["deno", "dawn"];

/** The WebGPU implementation behind a context, by name. */
export type GpuImplementation = "deno-wgpu" | "dawn";

/** The native graphics API under the WebGPU implementation. */
export type GpuApiBackend =
  | "vulkan"
  | "opengles"
  | "opengl"
  | "metal"
  | "d3d12"
  | "d3d11"
  | "unknown";

/** The JavaScript runtime the process runs on. */
export type JsRuntime = "deno" | "bun" | "node" | "unknown";

/** A device plus what the code needs to know about it. */
export interface GpuContext {
  device: GPUDevice;
  backend: GpuBackend;
  /** The WebGPU implementation: Deno's wgpu or Dawn. */
  implementation: GpuImplementation;
  /**
   * The native API under it. Dawn's is the one it was created with; for Deno's wgpu it is
   * inferred (`DENO_WEBGPU_BACKEND` when it names one, else the platform's first choice).
   */
  apiBackend: GpuApiBackend;
  /** True when `apiBackend` was reported/chosen rather than inferred. */
  apiBackendKnown: boolean;
  /**
   * WebGPU feature level of the adapter. "compatibility" (Dawn on OpenGL ES) has lower
   * default limits; the context requests the adapter's maxima, listed in `limits`.
   */
  featureLevel: "core" | "compatibility";
  /** The JavaScript runtime in use. */
  runtime: JsRuntime;
  /** Options passed to Dawn's `create()`; empty for Deno's wgpu. */
  implementationOptions: readonly string[];
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
  /**
   * True when Dawn's `chromium-experimental-subgroup-matrix` feature is enabled
   * (WGSL `enable chromium_experimental_subgroup_matrix;`).
   */
  hasSubgroupMatrix: boolean;
  /** Subgroup matrix shapes the adapter offers (Dawn only; empty otherwise). */
  subgroupMatrixConfigs: ReadonlyArray<Readonly<Record<string, string | number>>>;
  /** Releases the device. */
  destroy(): void;
}

/** Options of `acquireGpu()`. */
export interface AcquireGpuOptions {
  /** WebGPU implementation. @default defaultGpuBackend() */
  backend?: GpuBackend;
  /**
   * Dawn only: the native API, overriding `PAGED_PREFILL_DAWN_BACKEND` and the platform
   * default.
   */
  dawnBackend?: DawnApiBackend;
}

/** Thrown when no adapter can be found: says how to get a software one. */
export class GpuUnavailableError extends Error {
  override name = "GpuUnavailableError";
}

/** Native APIs Dawn can be asked for (`create(["backend=..."])`). */
export type DawnApiBackend = "vulkan" | "opengles" | "opengl" | "metal" | "d3d12" | "d3d11";

/** Every value of `DawnApiBackend`. */
export const DAWN_API_BACKENDS: readonly DawnApiBackend[] = [
  "vulkan",
  "opengles",
  "opengl",
  "metal",
  "d3d12",
  "d3d11",
];

/** What the npm package `webgpu` (or its dawn.node addon, loaded directly) exports. */
export interface DawnModule {
  create(options: string[]): GPU;
  globals: object;
}

/**
 * Dawn toggles set on every Dawn instance:
 * - `allow_unsafe_apis`: exposes experimental features (subgroup matrices, and on NVIDIA
 *   Vulkan the f16 paths gated below).
 * - `vulkan_enable_f16_on_nvidia`: Dawn blocks shader-f16 on NVIDIA's Vulkan driver by
 *   default; this unblocks it (and with it f16 subgroup matrices). Harmless elsewhere.
 * - disabling `timestamp_quantization`: timestamps at full resolution instead of rounded.
 */
export const DAWN_TOGGLE_OPTIONS: readonly string[] = [
  "enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia",
  "disable-dawn-features=timestamp_quantization",
];

const OPTIONAL_FEATURES = [
  "shader-f16",
  "timestamp-query",
  "subgroups",
  // Dawn: lifts a compatibility-mode device to core where the adapter can.
  "core-features-and-limits",
  // Dawn (with allow_unsafe_apis): cooperative matrices in WGSL.
  "chromium-experimental-subgroup-matrix",
] as const;

/** Limits raised to the adapter's maxima on every device. */
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxUniformBuffersPerShaderStage",
  "maxBindGroups",
  "maxBindingsPerBindGroup",
] as const;

let _dawnModule: DawnModule | undefined;

/**
 * Hands Dawn over to `acquireGpu()` instead of importing the npm package `webgpu`: used by
 * the Bun standalone entry, which loads dawn.node by a static path so it can be embedded.
 */
export function provideDawnModule(mod: DawnModule): void {
  _dawnModule = mod;
}

/** The JavaScript runtime this process runs on. */
export function detectRuntime(): JsRuntime {
  const g = globalThis as Record<string, unknown>;
  // Bun first: the standalone binary may install a `Deno` compatibility object.
  if (g.Bun !== undefined) return "bun";
  if (g.Deno !== undefined) return "deno";
  const proc = g.process as { versions?: { node?: string } } | undefined;
  if (proc?.versions?.node) return "node";
  return "unknown";
}

function _platform(): string {
  const g = globalThis as Record<string, unknown>;
  const proc = g.process as { platform?: string } | undefined;
  if (detectRuntime() !== "deno" && proc?.platform) return proc.platform;
  const deno = g.Deno as { build?: { os?: string } } | undefined;
  const os = deno?.build?.os ?? proc?.platform ?? "linux";
  return os === "windows" ? "win32" : os;
}

/** An environment variable under Deno, Bun or Node (undefined without --allow-env). */
export function readEnv(name: string): string | undefined {
  const g = globalThis as Record<string, unknown>;
  if (detectRuntime() === "deno") {
    try {
      return (g.Deno as { env: { get(k: string): string | undefined } }).env.get(name);
    } catch {
      return undefined; // no --allow-env
    }
  }
  const proc = g.process as { env?: Record<string, string | undefined> } | undefined;
  return proc?.env?.[name];
}

function _setEnv(name: string, value: string): void {
  const g = globalThis as Record<string, unknown>;
  if (detectRuntime() === "deno") {
    try {
      (g.Deno as { env: { set(k: string, v: string): void } }).env.set(name, value);
    } catch {
      // no --allow-env: the adapter search reports what is missing
    }
    return;
  }
  const proc = g.process as { env?: Record<string, string | undefined> } | undefined;
  if (proc?.env) proc.env[name] = value;
}

function _limitsOf(source: { limits: GPUSupportedLimits }): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes its fields as prototype getters.
  for (const key in source.limits) {
    const value = (source.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") out[key] = value;
  }
  return out;
}

function _infoOf(adapter: GPUAdapter): Record<string, string | number | boolean> {
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

function _subgroupMatrixConfigsOf(
  adapter: GPUAdapter,
): Array<Record<string, string | number>> {
  const info = adapter.info as unknown as Record<string, unknown>;
  const configs = info.subgroupMatrixConfigs;
  if (!Array.isArray(configs)) return [];
  return configs.map((config) => {
    const out: Record<string, string | number> = {};
    for (const key in config as Record<string, unknown>) {
      const value = (config as Record<string, unknown>)[key];
      if (typeof value === "string" || typeof value === "number") out[key] = value;
    }
    return out;
  });
}

async function _loadDawn(): Promise<DawnModule> {
  if (_dawnModule) return _dawnModule;
  try {
    const mod = await import("webgpu");
    _dawnModule = { create: mod.create, globals: mod.globals };
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new GpuUnavailableError(
      `Cannot load Dawn (npm package webgpu@0.6.2, dawn.node): ${why}; run "deno install" in the project (deno.json has nodeModulesDir "auto")`,
    );
  }
  return _dawnModule;
}

/** Puts Dawn's GPU* classes and constants on globalThis where the runtime has none (Bun). */
function _installDawnGlobals(mod: DawnModule): void {
  const g = globalThis as Record<string, unknown>;
  for (const [key, value] of Object.entries(mod.globals)) {
    if (g[key] === undefined) g[key] = value;
  }
}

/**
 * The native APIs to try with Dawn, in order: `forced` alone when given (default: the
 * environment variable `PAGED_PREFILL_DAWN_BACKEND`), else the platform's list.
 */
export function dawnBackendOrder(
  platform: string = _platform(),
  forced: string | undefined = readEnv("PAGED_PREFILL_DAWN_BACKEND"),
): DawnApiBackend[] {
  if (forced) {
    if (!(DAWN_API_BACKENDS as readonly string[]).includes(forced)) {
      throw new RangeError(
        `Cannot use PAGED_PREFILL_DAWN_BACKEND: expected one of ${
          DAWN_API_BACKENDS.join(", ")
        }, got "${forced}"`,
      );
    }
    return [forced as DawnApiBackend];
  }
  if (platform === "darwin") return ["metal"];
  if (platform === "win32") return ["d3d12", "vulkan"];
  return ["vulkan", "opengles"];
}

/** Dawn's `create()` options for one native API (toggles, backend, extra flags). */
export function dawnCreateOptions(api: DawnApiBackend): string[] {
  const extra = (readEnv("PAGED_PREFILL_DAWN_FLAGS") ?? "")
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return [`backend=${api}`, ...DAWN_TOGGLE_OPTIONS, ...extra];
}

function _featureLevelFor(api: DawnApiBackend): "core" | "compatibility" {
  return api === "opengles" || api === "opengl" || api === "d3d11" ? "compatibility" : "core";
}

interface _Found {
  adapter: GPUAdapter;
  implementation: GpuImplementation;
  apiBackend: GpuApiBackend;
  apiBackendKnown: boolean;
  featureLevel: "core" | "compatibility";
  options: string[];
  /** Keeps Dawn's instance alive while the device is in use; dropped by destroy(). */
  instance: GPU | undefined;
}

function _denoApiBackend(): { api: GpuApiBackend; known: boolean } {
  const wanted = (readEnv("DENO_WEBGPU_BACKEND") ?? "").trim().toLowerCase();
  const named: Record<string, GpuApiBackend> = {
    vulkan: "vulkan",
    gl: "opengles",
    metal: "metal",
    dx12: "d3d12",
  };
  if (named[wanted]) return { api: named[wanted]!, known: true };
  const platform = _platform();
  if (platform === "darwin") return { api: "metal", known: false };
  if (platform === "linux") return { api: "vulkan", known: false };
  return { api: "unknown", known: false };
}

async function _findDenoAdapter(): Promise<_Found> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new GpuUnavailableError(
      "Cannot find a WebGPU adapter: install Mesa's Vulkan driver (apt-get install -y mesa-vulkan-drivers) and set XDG_RUNTIME_DIR, or run on a machine with a GPU",
    );
  }
  const { api, known } = _denoApiBackend();
  return {
    adapter,
    implementation: "deno-wgpu",
    apiBackend: api,
    apiBackendKnown: known,
    featureLevel: "core",
    options: [],
    instance: undefined,
  };
}

async function _findDawnAdapter(override?: DawnApiBackend): Promise<_Found> {
  const order = dawnBackendOrder(_platform(), override ?? readEnv("PAGED_PREFILL_DAWN_BACKEND"));
  const dawn = await _loadDawn();
  _installDawnGlobals(dawn);
  const tried: string[] = [];
  for (const api of order) {
    if ((api === "opengles" || api === "opengl") && _platform() === "linux") {
      // Headless EGL: without it Mesa looks for an X11/Wayland display and finds none.
      if (!readEnv("EGL_PLATFORM")) _setEnv("EGL_PLATFORM", "surfaceless");
    }
    const options = dawnCreateOptions(api);
    const featureLevel = _featureLevelFor(api);
    let instance: GPU | undefined;
    let adapter: GPUAdapter | null = null;
    try {
      instance = dawn.create(options);
      adapter = await instance.requestAdapter({
        powerPreference: "high-performance",
        featureLevel,
      } as GPURequestAdapterOptions);
    } catch (error) {
      tried.push(`${api} (${error instanceof Error ? error.message.split("\n")[0] : error})`);
      continue;
    }
    if (adapter) {
      return {
        adapter,
        implementation: "dawn",
        apiBackend: api,
        apiBackendKnown: true,
        featureLevel,
        options,
        instance,
      };
    }
    tried.push(`${api} (no adapter)`);
  }
  throw new GpuUnavailableError(
    `Cannot find a Dawn WebGPU adapter: tried ${
      tried.join(", ")
    }; on Linux install Mesa (apt-get install -y mesa-vulkan-drivers libegl-mesa0 libgles2) or run on a machine with a GPU, or pick one with PAGED_PREFILL_DAWN_BACKEND`,
  );
}

/**
 * The backend used when none is asked for: `PAGED_PREFILL_BACKEND` when set, else "deno" under
 * Deno and "dawn" elsewhere (the Bun standalone binary has no built-in WebGPU).
 */
export function defaultGpuBackend(): GpuBackend {
  const wanted = readEnv("PAGED_PREFILL_BACKEND");
  if (wanted) {
    if (!(GPU_BACKENDS as readonly string[]).includes(wanted)) {
      throw new RangeError(
        `Cannot use PAGED_PREFILL_BACKEND: expected one of ${
          GPU_BACKENDS.join(", ")
        }, got "${wanted}"`,
      );
    }
    return wanted as GpuBackend;
  }
  return detectRuntime() === "deno" ? "deno" : "dawn";
}

/**
 * Requests an adapter and a device with every optional feature the adapter offers, on
 * `options.backend` (default: `defaultGpuBackend()`).
 */
export async function acquireGpu(options: AcquireGpuOptions = {}): Promise<GpuContext> {
  const backend = options.backend ?? defaultGpuBackend();
  if (!(GPU_BACKENDS as readonly string[]).includes(backend)) {
    throw new RangeError(
      `Cannot use backend "${backend}": expected one of ${GPU_BACKENDS.join(", ")}`,
    );
  }
  if (backend === "deno" && detectRuntime() !== "deno") {
    throw new RangeError(
      `Cannot use backend "deno" under ${detectRuntime()}: it is Deno's built-in WebGPU; use --backend dawn`,
    );
  }
  const found = backend === "dawn"
    ? await _findDawnAdapter(options.dawnBackend)
    : await _findDenoAdapter();
  const { adapter } = found;
  const offered = adapter.features as unknown as ReadonlySet<string>;
  const features = OPTIONAL_FEATURES.filter((f) => offered.has(f)) as unknown as GPUFeatureName[];
  const adapterLimits = _limitsOf(adapter);
  const requiredLimits: Record<string, number> = {};
  for (const key of RAISED_LIMITS) {
    if (adapterLimits[key] !== undefined) requiredLimits[key] = adapterLimits[key]!;
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const info = _infoOf(adapter);
  // Dawn puts the device name in `device` ("description" is the driver's); wgpu in `description`.
  const name = String(
    (found.implementation === "dawn"
      ? info.device || info.description
      : info.description || info.device) || info.vendor || "unknown adapter",
  );
  const enabled = new Set<string>(device.features as unknown as Iterable<string>);
  for (const f of features) enabled.add(f);
  let instance = found.instance;
  return {
    device,
    backend,
    implementation: found.implementation,
    apiBackend: found.apiBackend,
    apiBackendKnown: found.apiBackendKnown,
    featureLevel: enabled.has("core-features-and-limits") ? "core" : found.featureLevel,
    runtime: detectRuntime(),
    implementationOptions: found.options,
    adapterName: name,
    adapterInfo: info,
    features: enabled,
    limits: _limitsOf(device),
    hasF16: enabled.has("shader-f16"),
    hasTimestamps: enabled.has("timestamp-query"),
    hasSubgroups: enabled.has("subgroups"),
    hasSubgroupMatrix: enabled.has("chromium-experimental-subgroup-matrix"),
    subgroupMatrixConfigs: _subgroupMatrixConfigsOf(adapter),
    destroy: () => {
      device.destroy();
      // Dropping Dawn's instance lets the process exit once nothing else holds it.
      instance = undefined;
      void instance;
    },
  };
}

/**
 * True for a CPU implementation of the GPU (Mesa's llvmpipe/lavapipe, SwiftShader, WARP): it
 * has no clocks to ramp up and its memory is the host's.
 *
 * @example
 * ```ts ignore
 * if (isSoftwareAdapter(gpu)) console.log("software GPU: small shapes only");
 * ```
 */
export function isSoftwareAdapter(gpu: Pick<GpuContext, "adapterName" | "adapterInfo">): boolean {
  if (gpu.adapterInfo.isFallbackAdapter === true) return true;
  const text = `${gpu.adapterName} ${Object.values(gpu.adapterInfo).join(" ")}`;
  return /llvmpipe|lavapipe|swiftshader|software|\bwarp\b/i.test(text);
}
