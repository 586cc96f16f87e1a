/**
 * Exit codes and the error type for bad usage. Commands return an exit code; only
 * `main.ts` exits.
 * @module
 */

/** Exit codes of every command. */
export const ExitCode = {
  /** Everything ran and every check passed. */
  ok: 0,
  /** A check failed (wrong output, changed pool byte, regression). */
  checkFailed: 1,
  /** Bad usage or bad input (flags, files, rejected problems). */
  badInput: 2,
} as const;

/** A user error in flags or arguments: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
