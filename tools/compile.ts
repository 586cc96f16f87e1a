/**
 * `deno task compile`: builds `dist/paged-prefill` with `deno compile`.
 *
 * `deno compile` writes the program into a copy of *denort*, the Deno runtime without the
 * CLI, of the same version as the deno that compiles. It normally downloads denort; where
 * that is impossible (no network), give it one:
 *
 *   DENORT_BIN=/path/to/denort deno task compile
 *
 * (denort comes in `denort-<target>.zip` of each Deno release; a copy already in Deno's
 * cache, `$DENO_DIR/dl/release/v<version>/denort-<target>.zip`, is used as well.)
 * Without one this fails with one line and exit code 1.
 *
 * Options: `--entry FILE` (default `cli/main.ts`), `--output FILE` (default
 * `dist/paged-prefill`), `--target TRIPLE` (default this machine's), `--dry-run` (print the
 * deno command and stop).
 * @module
 */
const ROOT = new URL("../", import.meta.url);
const DEFAULT_ENTRY = "cli/main.ts";
const DEFAULT_OUTPUT = "dist/paged-prefill";

/** Dawn addon folders of the npm package `webgpu`, by deno target triple. */
const DAWN_DIST: Record<string, string> = {
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
  "x86_64-apple-darwin": "darwin-universal",
  "aarch64-apple-darwin": "darwin-universal",
  "x86_64-pc-windows-msvc": "win32-x64",
};

/** Files embedded beside the module graph when present (read at run time, not imported). */
const DATA_FILES = ["workloads/manifest.yaml", "workloads/manifest.json"];

class CompileError extends Error {
  override name = "CompileError";
}

interface Options {
  entry: string;
  output: string;
  target: string;
  dryRun: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    entry: DEFAULT_ENTRY,
    output: DEFAULT_OUTPUT,
    target: Deno.build.target,
    dryRun: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new CompileError(`Cannot read ${flag}: expected a value`);
      return next;
    };
    if (flag === "--entry") options.entry = value();
    else if (flag === "--output") options.output = value();
    else if (flag === "--target") options.target = value();
    else if (flag === "--dry-run") options.dryRun = true;
    else {
      throw new CompileError(
        `Cannot read "${flag}": expected --entry FILE, --output FILE, --target TRIPLE or --dry-run`,
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

function denoDir(): string {
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) return fromEnv;
  const out = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" })
    .outputSync();
  try {
    return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir as string;
  } catch {
    return "";
  }
}

/** Where `deno compile` would find denort; throws one line when nowhere. */
function findDenort(target: string): { how: string; env: Record<string, string> } {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(bin);
    } catch {
      throw new CompileError(`Cannot compile: DENORT_BIN=${bin} does not exist`);
    }
    if (!info.isFile) throw new CompileError(`Cannot compile: DENORT_BIN=${bin} is not a file`);
    if (Deno.realPathSync(bin) === Deno.realPathSync(Deno.execPath())) {
      throw new CompileError(
        `Cannot compile: DENORT_BIN=${bin} is the deno CLI itself, not denort (its binaries would run as deno)`,
      );
    }
    return { how: `DENORT_BIN=${bin}`, env: { DENORT_BIN: bin } };
  }
  const dir = denoDir();
  const cached = `${dir}/dl/release/v${Deno.version.deno}/denort-${target}.zip`;
  if (dir && exists(cached)) return { how: `cached ${cached}`, env: {} };
  throw new CompileError(
    `Cannot compile: deno compile needs denort ${Deno.version.deno} for ${target}, which cannot be downloaded here; set DENORT_BIN to a denort binary of that version (from denort-${target}.zip)`,
  );
}

function compileArgs(options: Options): string[] {
  const args = ["compile", "-A", "--target", options.target, "--output", options.output];
  for (const file of DATA_FILES) if (exists(file)) args.push("--include", file);
  // Keep only the Dawn addon of the target: the package ships five (~130 MB).
  // --exclude matches real paths, so resolve the node_modules symlink first.
  if (exists("node_modules/webgpu")) {
    const pkg = Deno.realPathSync("node_modules/webgpu");
    const keep = DAWN_DIST[options.target];
    for (const entry of Deno.readDirSync(`${pkg}/dist`)) {
      if (entry.name !== keep) args.push("--exclude", `${pkg}/dist/${entry.name}`);
    }
    if (exists(`${pkg}/build`)) args.push("--exclude", `${pkg}/build`);
  }
  args.push(options.entry);
  return args;
}

/** deno's error and its innermost cause, on one line. */
function _oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  const lines = text.split("\n").map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").trim());
  const error = lines.find((l) => l.startsWith("error:"))?.replace(/^error:\s*/, "");
  const causes = lines.filter((l) => /^\d+: /.test(l)).map((l) => l.replace(/^\d+: /, ""));
  const cause = causes.at(-1);
  if (!error) return "deno compile failed";
  return cause ? `${error}: ${cause}` : error;
}

async function run(argv: string[]): Promise<number> {
  Deno.chdir(ROOT);
  const options = parseOptions(argv);
  if (!exists(options.entry)) {
    throw new CompileError(`Cannot compile: entry ${options.entry} does not exist`);
  }
  const args = compileArgs(options);
  if (options.dryRun) {
    console.log(`deno ${args.join(" ")}`);
    return 0;
  }
  const denort = findDenort(options.target);
  if (!exists("node_modules/webgpu")) {
    // The dawn backend's addon must be on disk to be embedded.
    const install = await new Deno.Command(Deno.execPath(), { args: ["install"] }).output();
    if (!install.success) throw new CompileError("Cannot compile: deno install failed");
  }
  await Deno.mkdir(options.output.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  const child = await new Deno.Command(Deno.execPath(), {
    args,
    env: denort.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(child.stderr) + new TextDecoder().decode(child.stdout);
  if (!child.success) {
    throw new CompileError(`Cannot compile ${options.entry}: ${_oneLine(text)}`);
  }
  const size = Deno.statSync(options.output).size;
  console.log(
    `Built ${options.output} (${
      (size / 2 ** 20).toFixed(1)
    } MiB) from ${options.entry} with ${denort.how}`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await run(Deno.args));
  } catch (error) {
    console.error(error instanceof CompileError ? error.message : String(error));
    Deno.exit(1);
  }
}
