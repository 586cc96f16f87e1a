// The global `process` on purpose: Bun folds the global's platform/arch at build time (not an
// imported one's), which drops the other platforms' branches and addons from the executable.
// deno-lint-ignore-file no-process-global

/**
 * Entry of the standalone binary `dist/paged-prefill-standalone`, built by
 * `tools/build_standalone.ts` with `bun build --compile`. Bun has no WebGPU of its own, so this
 * entry loads Dawn's Node-API addon (dawn.node from the npm package `webgpu`) by a static
 * path, which makes Bun embed it in the executable, hands it to `kernels/gpu.ts`, makes
 * "dawn" the default backend, and runs the same `main()` as `cli/main.ts`.
 *
 * Bun only: under Deno run `cli/main.ts`.
 * @module
 */
import { type DawnModule, provideDawnModule } from "../kernels/gpu.ts";
import * as rt from "./runtime.ts";
import { main } from "./main.ts";

// Bun provides `require` in ES modules; the literal paths below are what it embeds.
declare const require: (path: string) => unknown;

/**
 * Loads dawn.node. `bun build --compile` replaces the global process.platform/arch by the
 * target's, so only the addon of the platform being built for is embedded.
 */
export function loadDawnAddon(): DawnModule {
  if (process.platform === "linux" && process.arch === "x64") {
    return require("../node_modules/webgpu/dist/linux-x64/dawn.node") as DawnModule;
  }
  if (process.platform === "linux" && process.arch === "arm64") {
    return require("../node_modules/webgpu/dist/linux-arm64/dawn.node") as DawnModule;
  }
  if (process.platform === "darwin") {
    return require("../node_modules/webgpu/dist/darwin-universal/dawn.node") as DawnModule;
  }
  throw new Error(
    `Cannot load Dawn: the standalone binary has no dawn.node for ${process.platform}-${process.arch}`,
  );
}

/**
 * Sets an environment variable where native code (Mesa's EGL) reads it: Bun's `process.env`
 * does not reach libc's environment, so call libc's setenv through bun:ffi.
 */
export async function setNativeEnv(name: string, value: string): Promise<boolean> {
  process.env[name] = value;
  try {
    const specifier = "bun:ffi"; // kept out of Deno's module graph
    const ffi = await import(specifier);
    const library = process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6";
    const libc = ffi.dlopen(library, {
      setenv: { args: ["cstring", "cstring", "i32"], returns: "i32" },
    });
    const cString = (text: string) => new TextEncoder().encode(`${text}\0`);
    const rc = libc.symbols.setenv(cString(name), cString(value), 1);
    libc.close();
    return rc === 0;
  } catch {
    return false;
  }
}

/**
 * Makes the Deno calls that shared modules still make (see `DENO_COMPAT_MEMBERS`) work under
 * Bun, on top of `runtime.ts`. A safety net: code on the CLI's paths should call `runtime.ts`.
 */
export function installDenoCompat(): void {
  const g = globalThis as Record<string, unknown>;
  if (g.Deno !== undefined) return;
  class NotFound extends Error {
    override name = "NotFound";
  }
  class AlreadyExists extends Error {
    override name = "AlreadyExists";
  }
  const translate = (error: unknown): unknown => {
    const message = error instanceof Error ? error.message : String(error);
    if (rt.isNotFound(error)) return new NotFound(message, { cause: error });
    if (rt.isAlreadyExists(error)) return new AlreadyExists(message, { cause: error });
    return error;
  };
  const wrap = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => async (...a: A) => {
    try {
      return await fn(...a);
    } catch (error) {
      throw translate(error);
    }
  };
  const wrapSync = <A extends unknown[], R>(fn: (...a: A) => R) => (...a: A) => {
    try {
      return fn(...a);
    } catch (error) {
      throw translate(error);
    }
  };
  const stream = (name: "stdout" | "stderr") => ({
    isTerminal: () => rt.isTerminal(name),
    writeSync: (bytes: Uint8Array) => {
      process[name].write(bytes);
      return bytes.length;
    },
    write: async (bytes: Uint8Array) => {
      await (name === "stdout" ? rt.writeStdout : rt.writeStderr)(new TextDecoder().decode(bytes));
      return bytes.length;
    },
  });
  g.Deno = {
    __pagedPrefillCompat: "bun",
    args: rt.args(),
    env: {
      get: rt.getEnv,
      set: rt.setEnv,
      has: (name: string) => rt.getEnv(name) !== undefined,
      delete: (name: string) => void delete process.env[name],
      toObject: () => ({ ...process.env }),
    },
    exit: rt.exit,
    cwd: rt.cwd,
    execPath: rt.executablePath,
    build: { os: rt.platform() === "win32" ? "windows" : rt.platform(), arch: process.arch },
    version: { deno: "0.0.0-bun-compat", v8: "", typescript: "" },
    noColor: rt.getEnv("NO_COLOR") !== undefined,
    errors: { NotFound, AlreadyExists },
    readFile: wrap(rt.readFile),
    readTextFile: wrap(rt.readTextFile),
    readFileSync: wrapSync(rt.readFileSync),
    readTextFileSync: wrapSync(rt.readTextFileSync),
    writeTextFileSync: wrapSync(rt.writeTextFileSync),
    writeFile: wrap(rt.writeFile),
    writeTextFile: wrap(rt.writeTextFile),
    rename: wrap(rt.rename),
    remove: wrap(rt.remove),
    mkdir: wrap(rt.mkdir),
    stat: wrap(async (path: string | URL) => {
      const info = await rt.stat(path);
      if (!info) throw new NotFound(`No such file or directory: ${path}`);
      return info;
    }),
    stdout: stream("stdout"),
    stderr: stream("stderr"),
  };
}

/** The members `installDenoCompat()` provides. */
export const DENO_COMPAT_MEMBERS = [
  "args",
  "env",
  "exit",
  "cwd",
  "execPath",
  "build",
  "version",
  "noColor",
  "errors.NotFound",
  "errors.AlreadyExists",
  "readFile",
  "readTextFile",
  "readFileSync",
  "readTextFileSync",
  "writeTextFileSync",
  "writeFile",
  "writeTextFile",
  "rename",
  "remove",
  "mkdir",
  "stat",
  "stdout",
  "stderr",
] as const;

/** Everything the standalone binary sets up before `main()`. */
export async function setupStandalone(): Promise<void> {
  if (rt.platform() === "linux" && !rt.getEnv("EGL_PLATFORM")) {
    // Dawn falls back to OpenGL ES on software-only Linux; headless EGL needs this. Vulkan
    // ignores it.
    await setNativeEnv("EGL_PLATFORM", "surfaceless");
  }
  provideDawnModule(loadDawnAddon());
  installDenoCompat();
}

if (import.meta.main) {
  if (rt.runtimeName !== "bun") {
    console.error("cli/standalone.ts is the Bun standalone entry: under Deno run cli/main.ts");
    rt.exit(2);
  }
  await setupStandalone();
  rt.exit(await main(rt.args()));
}
