/**
 * The `paged-prefill` command: dispatches to `cli/commands/<name>.ts`. Each command returns an
 * exit code (0 ok, 1 check failed, 2 bad usage or input); only this file exits.
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { ExitCode, UsageError } from "./errors.ts";
import { args as runtimeArgs, exit, isNotFound } from "./runtime.ts";
import { verifyCommand } from "./commands/verify.ts";
import { benchCommand } from "./commands/bench.ts";
import { runCommand } from "./commands/run.ts";
import { listCommand } from "./commands/list.ts";
import { infoCommand } from "./commands/info.ts";
import { ceilingsCommand } from "./commands/ceilings.ts";
import { reportCommand } from "./commands/report.ts";
import { err, flushOutput, formatError, out } from "./output.ts";

/** A command module: builds its commander command; its action sets the exit code. */
export type CommandFactory = (
  setExit: (code: number) => void,
) => Command<[], Record<string, unknown>>;

const COMMANDS: CommandFactory[] = [
  verifyCommand as CommandFactory,
  benchCommand as CommandFactory,
  runCommand as CommandFactory,
  listCommand as CommandFactory,
  infoCommand as CommandFactory,
  ceilingsCommand as CommandFactory,
  reportCommand as CommandFactory,
];

/** Runs the CLI on `argv` (arguments after the program name) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let code: number = ExitCode.ok;
  const setExit = (c: number) => {
    code = Math.max(code, c);
  };
  const program = new Command("paged-prefill")
    .description(
      "Paged KV-cache GQA prefill attention in WGSL through WebGPU: verify against a float64 reference, benchmark against a measured roofline.",
    )
    .version("0.1.0")
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: out,
      writeErr: err,
    });
  for (const factory of COMMANDS) {
    program.addCommand(factory(setExit).exitOverride());
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version requests end here with code 0; parse errors were already printed.
      if (e.exitCode === 0) return ExitCode.ok;
      return ExitCode.badInput;
    }
    err(formatError(e) + "\n");
    return e instanceof UsageError || e instanceof TypeError || e instanceof RangeError ||
        e instanceof SyntaxError || isNotFound(e)
      ? ExitCode.badInput
      : ExitCode.checkFailed;
  }
}

if (import.meta.main) {
  const code = await main(runtimeArgs());
  await flushOutput();
  exit(code);
}
