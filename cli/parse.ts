/**
 * Strict parsers for flag values: each rejects what it cannot read with a one-line
 * `UsageError` naming the flag, what was expected and what was given.
 * @module
 */
import { UsageError } from "./errors.ts";

/** Returns a commander argument parser for a whole number >= `min`. */
export function intFlag(flag: string, min = 0): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^[+-]?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new UsageError(
        `Cannot read ${flag}: expected a whole number >= ${min}, got "${value}"`,
      );
    }
    return n;
  };
}

/** Returns a commander argument parser for a finite number. */
export function numberFlag(flag: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(`Cannot read ${flag}: expected a finite number, got "${value}"`);
    }
    return n;
  };
}

/** Returns a parser for a comma-separated list of whole numbers (e.g. `--q-len 64,0,128`). */
export function intListFlag(flag: string, min = 0): (value: string) => number[] {
  const one = intFlag(flag, min);
  return (value: string) => value.split(",").map((part) => one(part.trim()));
}

/** Returns a parser accepting one of `choices`. */
export function choiceFlag<T extends string>(
  flag: string,
  choices: readonly T[],
): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new UsageError(
        `Cannot read ${flag}: expected one of ${choices.join(", ")}, got "${value}"`,
      );
    }
    return value as T;
  };
}
