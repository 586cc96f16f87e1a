/**
 * The few process and file-system calls the CLI needs, working the same under Deno (`deno run`,
 * `deno compile`) and Bun (the standalone binary, `bun build --compile`). Code on the CLI's
 * paths calls these instead of `Deno.*`, so the standalone binary can run it.
 *
 * Under Deno it uses `Deno.*`; under Bun (and Node) it uses `node:fs` and `node:process`.
 * Errors keep the runtime's own types: test them with `isNotFound()` / `isAlreadyExists()`,
 * not with `instanceof Deno.errors.NotFound`.
 * @module
 */
import * as nodeFs from "node:fs/promises";
import * as nodeFsSync from "node:fs";
import nodeProcess from "node:process";

/** The JavaScript runtime this process runs on. */
export type RuntimeName = "deno" | "bun" | "node";

interface _DenoLike {
  args: string[];
  env: { get(name: string): string | undefined; set(name: string, value: string): void };
  exit(code?: number): never;
  readFile(path: string | URL): Promise<Uint8Array>;
  readTextFile(path: string | URL): Promise<string>;
  readFileSync(path: string | URL): Uint8Array;
  readTextFileSync(path: string | URL): string;
  writeTextFileSync(path: string | URL, data: string): void;
  writeFile(path: string | URL, data: Uint8Array, options?: { createNew?: boolean }): Promise<void>;
  writeTextFile(path: string | URL, data: string): Promise<void>;
  rename(from: string | URL, to: string | URL): Promise<void>;
  remove(path: string | URL, options?: { recursive?: boolean }): Promise<void>;
  mkdir(path: string | URL, options?: { recursive?: boolean }): Promise<void>;
  stat(path: string | URL): Promise<{ isFile: boolean; isDirectory: boolean; size: number }>;
  errors: { NotFound: ErrorConstructor; AlreadyExists: ErrorConstructor };
  stdout: { isTerminal(): boolean; write(data: Uint8Array): Promise<number> };
  stderr: { isTerminal(): boolean; write(data: Uint8Array): Promise<number> };
  build: { os: string; arch: string };
  version: { deno: string; v8: string };
  execPath(): string;
  cwd(): string;
}

function _detect(): RuntimeName {
  const g = globalThis as Record<string, unknown>;
  // Bun first: the standalone entry may put a Deno compatibility object on globalThis.
  if (g.Bun !== undefined) return "bun";
  const deno = g.Deno as { version?: { deno?: string } } | undefined;
  if (deno?.version?.deno && !("__pagedPrefillCompat" in (deno as object))) return "deno";
  return "node";
}

/** The runtime this process runs on, detected once at load. */
export const runtimeName: RuntimeName = _detect();

function _deno(): _DenoLike {
  return (globalThis as unknown as { Deno: _DenoLike }).Deno;
}

/** "deno 2.9.6", "bun 1.4.5" or "node 20.20.2". */
export function runtimeVersion(): string {
  if (runtimeName === "deno") return `deno ${_deno().version.deno}`;
  if (runtimeName === "bun") {
    return `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`;
  }
  return `node ${nodeProcess.versions.node}`;
}

/** True inside a single-file executable (`deno compile` or `bun build --compile`). */
export function isStandaloneBinary(): boolean {
  if (runtimeName === "bun") {
    // Bun's compiled executables run their code from the embedded /$bunfs file system.
    return nodeProcess.argv[1]?.startsWith("/$bunfs/") ?? false;
  }
  if (runtimeName === "deno") {
    const main = (globalThis as unknown as { Deno: { mainModule?: string } }).Deno.mainModule;
    return /deno-compile-/.test(main ?? "");
  }
  return false;
}

/** Command-line arguments after the program (and script) name. */
export function args(): string[] {
  if (runtimeName === "deno") return [..._deno().args];
  return nodeProcess.argv.slice(2);
}

/** An environment variable, or undefined when unset (or not readable under Deno's permissions). */
export function getEnv(name: string): string | undefined {
  if (runtimeName === "deno") {
    try {
      return _deno().env.get(name);
    } catch {
      return undefined;
    }
  }
  return nodeProcess.env[name];
}

/**
 * Sets an environment variable for this process. Under Deno native code (Mesa, Dawn) sees
 * it; under Bun only JavaScript does (the standalone entry sets native ones through libc).
 */
export function setEnv(name: string, value: string): void {
  if (runtimeName === "deno") _deno().env.set(name, value);
  else nodeProcess.env[name] = value;
}

/** Ends the process with `code`. Only `cli/main.ts` and `cli/standalone.ts` call it. */
export function exit(code: number): never {
  if (runtimeName === "deno") return _deno().exit(code);
  return nodeProcess.exit(code);
}

/** "linux", "darwin", "win32", ... (Node's names). */
export function platform(): string {
  if (runtimeName === "deno") {
    const os = _deno().build.os;
    return os === "windows" ? "win32" : os;
  }
  return nodeProcess.platform;
}

/** "x64" or "arm64" (Node's names). */
export function arch(): string {
  if (runtimeName === "deno") {
    const a = _deno().build.arch;
    return a === "x86_64" ? "x64" : a === "aarch64" ? "arm64" : a;
  }
  return nodeProcess.arch;
}

/** The path of the running executable (deno, the compiled binary, bun). */
export function executablePath(): string {
  return runtimeName === "deno" ? _deno().execPath() : nodeProcess.execPath;
}

/** The current working directory. */
export function cwd(): string {
  return runtimeName === "deno" ? _deno().cwd() : nodeProcess.cwd();
}

/** Reads a whole file. */
export async function readFile(path: string | URL): Promise<Uint8Array> {
  if (runtimeName === "deno") return await _deno().readFile(path);
  const buffer = await nodeFs.readFile(path);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Reads a whole file as UTF-8. */
export async function readTextFile(path: string | URL): Promise<string> {
  if (runtimeName === "deno") return await _deno().readTextFile(path);
  return await nodeFs.readFile(path, "utf8");
}

/** Reads a whole file, synchronously. */
export function readFileSync(path: string | URL): Uint8Array {
  if (runtimeName === "deno") return _deno().readFileSync(path);
  const buffer = nodeFsSync.readFileSync(path);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Reads a whole file as UTF-8, synchronously. */
export function readTextFileSync(path: string | URL): string {
  if (runtimeName === "deno") return _deno().readTextFileSync(path);
  return nodeFsSync.readFileSync(path, "utf8");
}

/** Writes a whole file as UTF-8, synchronously, replacing it. */
export function writeTextFileSync(path: string | URL, text: string): void {
  if (runtimeName === "deno") return _deno().writeTextFileSync(path, text);
  nodeFsSync.writeFileSync(path, text, "utf8");
}

/** Options of `writeFile()`. */
export interface WriteFileOptions {
  /** Fail (see `isAlreadyExists()`) when the file exists. @default false */
  createNew?: boolean;
}

/** Writes a whole file, replacing it unless `createNew`. */
export async function writeFile(
  path: string | URL,
  data: Uint8Array,
  options: WriteFileOptions = {},
): Promise<void> {
  if (runtimeName === "deno") {
    return await _deno().writeFile(path, data, { createNew: options.createNew ?? false });
  }
  await nodeFs.writeFile(path, data, { flag: options.createNew ? "wx" : "w" });
}

/** Writes a whole file as UTF-8, replacing it. */
export async function writeTextFile(path: string | URL, text: string): Promise<void> {
  if (runtimeName === "deno") return await _deno().writeTextFile(path, text);
  await nodeFs.writeFile(path, text, "utf8");
}

/** Renames (moves) a file, replacing the target. */
export async function rename(from: string | URL, to: string | URL): Promise<void> {
  if (runtimeName === "deno") return await _deno().rename(from, to);
  await nodeFs.rename(from, to);
}

/** Removes a file, or a directory (with `recursive` for a non-empty one). */
export async function remove(
  path: string | URL,
  options: { recursive?: boolean } = {},
): Promise<void> {
  if (runtimeName === "deno") return await _deno().remove(path, options);
  await nodeFs.rm(path, { recursive: options.recursive ?? false });
}

/** Creates a directory (and its parents with `recursive`, which also accepts an existing one). */
export async function mkdir(
  path: string | URL,
  options: { recursive?: boolean } = {},
): Promise<void> {
  if (runtimeName === "deno") return await _deno().mkdir(path, options);
  await nodeFs.mkdir(path, { recursive: options.recursive ?? false });
}

/** What `stat()` tells. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  size: number;
}

/** Facts about a path, or null when it does not exist. */
export async function stat(path: string | URL): Promise<FileInfo | null> {
  try {
    if (runtimeName === "deno") {
      const info = await _deno().stat(path);
      return { isFile: info.isFile, isDirectory: info.isDirectory, size: info.size };
    }
    const info = await nodeFs.stat(path);
    return { isFile: info.isFile(), isDirectory: info.isDirectory(), size: info.size };
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

function _code(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** True for "no such file or directory" from any of the functions above. */
export function isNotFound(error: unknown): boolean {
  if (runtimeName === "deno" && error instanceof _deno().errors.NotFound) return true;
  return _code(error) === "ENOENT";
}

/** True for "file exists" (e.g. `writeFile(..., { createNew: true })`). */
export function isAlreadyExists(error: unknown): boolean {
  if (runtimeName === "deno" && error instanceof _deno().errors.AlreadyExists) return true;
  return _code(error) === "EEXIST";
}

/** True when the stream is a terminal (for colour and progress output). */
export function isTerminal(stream: "stdout" | "stderr"): boolean {
  if (runtimeName === "deno") return _deno()[stream].isTerminal();
  return nodeProcess[stream].isTTY === true;
}

const _encoder = new TextEncoder();

async function _write(stream: "stdout" | "stderr", text: string): Promise<void> {
  const bytes = _encoder.encode(text);
  if (runtimeName === "deno") {
    let done = 0;
    while (done < bytes.length) done += await _deno()[stream].write(bytes.subarray(done));
    return;
  }
  await new Promise<void>((resolve, reject) => {
    nodeProcess[stream].write(bytes, (error) => (error ? reject(error) : resolve()));
  });
}

/** Writes text to stdout as is (no newline added), waiting until it is written. */
export function writeStdout(text: string): Promise<void> {
  return _write("stdout", text);
}

/** Writes text to stderr as is (no newline added), waiting until it is written. */
export function writeStderr(text: string): Promise<void> {
  return _write("stderr", text);
}
