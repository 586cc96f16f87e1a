/**
 * Builds `dist/paged-prefill-standalone`: the CLI as one executable made by
 * `bun build --compile` (npm package `bun`, pinned below), with Dawn's addon (dawn.node from the
 * npm package `webgpu`) embedded. Bun has no WebGPU of its own: the entry `cli/standalone.ts`
 * loads dawn.node by a static path, so the binary runs the `dawn` backend and needs neither
 * Deno, Bun, node_modules nor the source tree. Offline once `bun` is in npm's cache: Bun
 * compiles for the machine it runs on from its own executable and downloads nothing.
 *
 *   deno run -A tools/build_standalone.ts [--entry FILE] [--output FILE] [--smoke]
 *
 * `--smoke` copies the binary alone into a fresh temporary directory and runs `info` there.
 * `BUN=/path/to/bun` uses that Bun instead of `npx -y bun@BUN_VERSION`.
 * @module
 */

/** The Bun release the binary is built with (npm package `bun`). */
export const BUN_VERSION = "1.4.5";

const ROOT = new URL("../", import.meta.url);
const DEFAULT_ENTRY = "cli/standalone.ts";
const DEFAULT_OUTPUT = "dist/paged-prefill-standalone";

/** The webgpu package's addon folder for this machine. */
const DAWN_DIST: Record<string, string> = {
  "linux-x86_64": "linux-x64",
  "linux-aarch64": "linux-arm64",
  "darwin-x86_64": "darwin-universal",
  "darwin-aarch64": "darwin-universal",
};

class BuildError extends Error {
  override name = "BuildError";
}

interface Options {
  entry: string;
  output: string;
  smoke: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { entry: DEFAULT_ENTRY, output: DEFAULT_OUTPUT, smoke: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new BuildError(`Cannot read ${flag}: expected a value`);
      return next;
    };
    if (flag === "--entry") options.entry = value();
    else if (flag === "--output") options.output = value();
    else if (flag === "--smoke") options.smoke = true;
    else {
      throw new BuildError(
        `Cannot read "${flag}": expected --entry FILE, --output FILE or --smoke`,
      );
    }
  }
  return options;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** npx takes bun from npm's cache when there, without asking the registry (no network wait). */
const NPX_ENV = { npm_config_prefer_offline: "true" };

async function capture(
  cmd: string,
  args: string[],
  env: Record<string, string> = NPX_ENV,
): Promise<{ ok: boolean; out: string }> {
  try {
    const result = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { ok: result.success, out: decode(result.stdout) + decode(result.stderr) };
  } catch (error) {
    return { ok: false, out: error instanceof Error ? error.message : String(error) };
  }
}

/** The bun command: `$BUN`, or `npx -y bun@BUN_VERSION` (from npm's cache when offline). */
async function findBun(): Promise<{ cmd: string; pre: string[]; version: string }> {
  const given = Deno.env.get("BUN");
  const bun = given ? { cmd: given, pre: [] } : { cmd: "npx", pre: ["-y", `bun@${BUN_VERSION}`] };
  const probe = await capture(bun.cmd, [...bun.pre, "--version"]);
  const version = probe.out.split("\n").map((l) => l.trim()).find((l) => /^\d+\.\d+/.test(l));
  if (!probe.ok || !version) {
    throw new BuildError(
      `Cannot build the standalone binary: ${
        given ? `BUN=${given}` : `npx -y bun@${BUN_VERSION}`
      } does not run (${probe.out.trim().split("\n").at(-1) ?? "no output"})`,
    );
  }
  if (version !== BUN_VERSION) {
    console.error(`Warning: building with bun ${version}, not the pinned ${BUN_VERSION}`);
  }
  return { ...bun, version };
}

function firstError(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? "bun build failed";
}

async function smokeTest(output: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "paged-prefill-standalone-" });
  try {
    const copy = `${dir}/paged-prefill-standalone`;
    await Deno.copyFile(output, copy);
    await Deno.chmod(copy, 0o755);
    const env: Record<string, string> = {};
    if (!Deno.env.get("XDG_RUNTIME_DIR")) env.XDG_RUNTIME_DIR = "/tmp";
    const result = await new Deno.Command(copy, { args: ["info"], cwd: dir, env }).output();
    const out = new TextDecoder().decode(result.stdout);
    console.log(`Smoke test: ${copy} info (cwd ${dir}) exited ${result.code}`);
    console.log(out.trimEnd());
    if (!result.success) {
      const err = new TextDecoder().decode(result.stderr).trim().split("\n").at(-1);
      throw new BuildError(`Smoke test failed: info exited ${result.code}: ${err}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(argv: string[]): Promise<number> {
  Deno.chdir(ROOT);
  const options = parseOptions(argv);
  if (!exists(options.entry)) {
    throw new BuildError(`Cannot build the standalone binary: ${options.entry} does not exist`);
  }
  const dist = DAWN_DIST[`${Deno.build.os}-${Deno.build.arch}`];
  if (!dist) {
    throw new BuildError(
      `Cannot build the standalone binary on ${Deno.build.target}: no dawn.node to embed`,
    );
  }
  const addon = `node_modules/webgpu/dist/${dist}/dawn.node`;
  if (!exists(addon)) {
    const install = await capture(Deno.execPath(), ["install"]);
    if (!install.ok || !exists(addon)) {
      throw new BuildError(
        `Cannot build the standalone binary: ${addon} is missing and deno install failed`,
      );
    }
  }
  const bun = await findBun();
  await Deno.mkdir(options.output.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  const args = [
    ...bun.pre,
    "build",
    "--compile",
    // Hermetic: the binary reads no .env or bunfig.toml from where it is started.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    // gpu.ts imports the package lazily for Deno; the binary gets dawn.node from the entry.
    "--external",
    "webgpu",
    "--outfile",
    options.output,
    `./${options.entry}`,
  ];
  const build = await capture(bun.cmd, args);
  if (!build.ok || !exists(options.output)) {
    throw new BuildError(`Cannot build the standalone binary: ${firstError(build.out)}`);
  }
  const size = Deno.statSync(options.output).size;
  console.log(
    `Built ${options.output} (${
      (size / 2 ** 20).toFixed(1)
    } MiB) from ${options.entry} with bun ${bun.version}, embedding ${addon}`,
  );
  if (options.smoke) await smokeTest(options.output);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await run(Deno.args));
  } catch (error) {
    console.error(error instanceof BuildError ? error.message : String(error));
    Deno.exit(1);
  }
}
