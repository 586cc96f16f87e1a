/**
 * Printing helpers for commands: one-line errors, stderr progress, colour that honours
 * NO_COLOR. Renderers elsewhere return strings; only cli/ prints.
 * @module
 */
import { getEnv, isTerminal, writeStderr, writeStdout } from "./runtime.ts";

// Writes are asynchronous: chain them so output keeps its order, and let main() await the
// chain before the process exits.
let _pending: Promise<void> = Promise.resolve();

/** Prints `text` to stdout (no newline added), in order with every other print. */
export function out(text: string): void {
  _pending = _pending.then(() => writeStdout(text));
}

/** Prints `text` to stderr (no newline added), in order with every other print. */
export function err(text: string): void {
  _pending = _pending.then(() => writeStderr(text));
}

/** Resolves once everything printed so far is written. */
export function flushOutput(): Promise<void> {
  return _pending;
}

/** One line for an error: `error: <message>` (the message's first line only). */
export function formatError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return `error: ${message.split("\n")[0]}`;
}

/** True when stdout may carry ANSI colour. */
export function useColor(): boolean {
  return getEnv("NO_COLOR") === undefined && isTerminal("stdout");
}

/** Prints a progress line to stderr. */
export function progress(text: string): void {
  err(text + "\n");
}

/**
 * A progress bar on stderr, drawn only when stderr is a terminal. `tick(label)` advances it;
 * `done()` clears it.
 */
export function progressBar(total: number): { tick(label: string): void; done(): void } {
  const live = isTerminal("stderr") && total > 1;
  let n = 0;
  return {
    tick(label: string) {
      n++;
      if (!live) return;
      const width = 24;
      const filled = Math.round((n / total) * width);
      const bar = "#".repeat(filled) + "-".repeat(width - filled);
      err(`\r[${bar}] ${n}/${total} ${label.slice(0, 50).padEnd(50)}`);
    },
    done() {
      if (live) err("\r" + " ".repeat(90) + "\r");
    },
  };
}
