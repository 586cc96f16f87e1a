/**
 * Spawning the CLI in tests: `deno run -A cli/main.ts ...` with NO_COLOR, capturing output.
 * @module
 */

/** What a CLI run printed and returned. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;

/** Runs `paged-prefill ...args` as a child process. */
export async function runCli(...args: string[]): Promise<CliRun> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

/** The stderr lines that start with `error:`. */
export function errorLines(run: CliRun): string[] {
  return run.stderr.split("\n").filter((l) => l.startsWith("error:"));
}
