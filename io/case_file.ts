/**
 * Case files (SPEC §7): one safetensors file holding the op's inputs under the names of
 * SPEC §1 (`q`, `k_new`, `v_new`, `k_pages`, `v_pages`, `k_scale`, `v_scale`, `cu_seqlens_q`,
 * `cache_seqlens`, `block_table`), optionally the expected results (`o_expected`,
 * `k_pages_expected`, `v_pages_expected`), and the params as `__metadata__` strings
 * (`page_size`, `is_causal`, `sm_scale`, `softcap`). This lets a user dump tensors from PyTorch
 * and check the kernels on them.
 *
 * This module maps names and parses params; it does not check the op's semantics (dtypes,
 * shapes, lengths): that is `validateProblem()`'s job.
 * @module
 */
import { fileURLToPath } from "node:url";
import type {
  PagedPrefillInputs,
  PagedPrefillOutputs,
  PagedPrefillParams,
  Tensor,
} from "../op/types.ts";
import {
  type ParsedSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeFileAtomic,
} from "./safetensors.ts";

/** Case-file tensor name of each op input. */
export const CASE_INPUT_TENSORS: Readonly<Record<keyof PagedPrefillInputs, string>> = {
  q: "q",
  kNew: "k_new",
  vNew: "v_new",
  kPages: "k_pages",
  vPages: "v_pages",
  kScale: "k_scale",
  vScale: "v_scale",
  cuSeqlensQ: "cu_seqlens_q",
  cacheSeqlens: "cache_seqlens",
  blockTable: "block_table",
};

/** Case-file tensor name of each expected result. */
export const CASE_EXPECTED_TENSORS: Readonly<Record<keyof CaseExpected, string>> = {
  o: "o_expected",
  kPages: "k_pages_expected",
  vPages: "v_pages_expected",
};

/** Tensor names of an output file written by {@linkcode outputsToSafetensors}. */
export const CASE_OUTPUT_TENSORS: Readonly<Record<keyof PagedPrefillOutputs, string>> = {
  o: "o",
  kPages: "k_pages",
  vPages: "v_pages",
};

/** `__metadata__` key of each param. */
export const CASE_PARAM_KEYS: Readonly<Record<keyof PagedPrefillParams, string>> = {
  pageSize: "page_size",
  isCausal: "is_causal",
  smScale: "sm_scale",
  softcap: "softcap",
};

const _OPTIONAL_INPUTS: ReadonlySet<keyof PagedPrefillInputs> = new Set(["kScale", "vScale"]);

const _ALL_TENSOR_NAMES: readonly string[] = [
  ...Object.values(CASE_INPUT_TENSORS),
  ...Object.values(CASE_EXPECTED_TENSORS),
];

/** Expected results stored in a case file; each is checked when present. */
export interface CaseExpected {
  /** `o_expected`: [T_q, H, D] in q's dtype. */
  o?: Tensor;
  /** `k_pages_expected`: the K pool after the append. */
  kPages?: Tensor;
  /** `v_pages_expected`: the V pool after the append. */
  vPages?: Tensor;
}

/** The contents of a case file. */
export interface CaseFile {
  /** The op's inputs, as stored (not validated: call `validateProblem()`). */
  inputs: PagedPrefillInputs;
  /** `pageSize` and `isCausal` always set; `smScale`, `softcap` only when given. */
  params: PagedPrefillParams;
  /** Expected results present in the file (an empty object when there are none). */
  expected: CaseExpected;
  /** The whole `__metadata__`, params included (copied into output files). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode caseToSafetensors}. */
export interface CaseToSafetensorsOptions {
  /** Extra `__metadata__` strings (provenance: seed, generator, ...); must not name a param. @default {} */
  metadata?: Record<string, string>;
}

/**
 * Reads a case file.
 *
 * @param path the `.safetensors` file
 * @returns inputs, params, expected results and metadata
 * @throws {SafetensorsError} when the file is not valid safetensors
 * @throws {TypeError | RangeError | SyntaxError} as {@linkcode caseFromSafetensors}
 *
 * @example
 * ```ts ignore
 * import { readCase } from "./case_file.ts";
 * const { inputs, params, expected } = await readCase("dump.safetensors");
 * console.log(inputs.q.shape, params.pageSize, expected.o !== undefined);
 * ```
 */
export async function readCase(path: string | URL): Promise<CaseFile> {
  const parsed = await readSafetensors(path);
  return caseFromSafetensors(parsed, path instanceof URL ? fileURLToPath(path) : path);
}

/**
 * Maps parsed safetensors onto the op's inputs, params and expected results. Every tensor
 * must be one of the case names (a typo such as `kpages` is an error, not ignored); metadata
 * keys that look like a misspelt param (`is_casual`, `pageSize`) are errors too, other keys are
 * kept as information.
 *
 * Params: `page_size` (required, decimal integer); `is_causal` (`true`/`false`/`1`/`0`, any
 * case; default true); `sm_scale` and `softcap` (decimal floats, `inf`/`nan` accepted and left
 * to validation; `none`, `null` or empty = absent).
 *
 * @param parsed the output of `parseSafetensors()` / `readSafetensors()`
 * @param name file name for error messages @default "<case>"
 * @returns the case; tensors are shared with `parsed`, not copied
 * @throws {TypeError} naming a missing required tensor or param, or an unknown tensor or key
 * @throws {SyntaxError} when a param's string does not parse
 * @throws {RangeError} when `page_size` is not a safe integer
 *
 * @example
 * ```ts
 * import { caseFromSafetensors } from "./case_file.ts";
 * const i32 = (...v: number[]) => ({ dtype: "i32" as const, shape: [v.length], data: new Int32Array(v) });
 * const f16 = (...shape: number[]) => ({
 *   dtype: "f16" as const, shape, data: new Uint16Array(shape.reduce((a, b) => a * b, 1)),
 * });
 * const tensors = new Map(Object.entries({
 *   q: f16(1, 1, 4), k_new: f16(1, 1, 4), v_new: f16(1, 1, 4),
 *   k_pages: f16(2, 1, 4), v_pages: f16(2, 1, 4),
 *   cu_seqlens_q: i32(0, 1), cache_seqlens: i32(1),
 *   block_table: { ...i32(0), shape: [1, 1] },
 * }));
 * const c = caseFromSafetensors({ tensors, metadata: { page_size: "2", is_causal: "False" } });
 * console.log(c.params); // { pageSize: 2, isCausal: false }
 * ```
 */
export function caseFromSafetensors(parsed: ParsedSafetensors, name: string = "<case>"): CaseFile {
  const prefix = `Cannot read case file ${name}:`;
  const unknown = [...parsed.tensors.keys()].filter((t) => !_ALL_TENSOR_NAMES.includes(t));
  if (unknown.length > 0) {
    const each = unknown.map((t) => {
      const guess = _closest(t, _ALL_TENSOR_NAMES);
      return guess === undefined ? `"${t}"` : `"${t}" (did you mean "${guess}"?)`;
    });
    throw new TypeError(
      `${prefix} unknown tensor${unknown.length > 1 ? "s" : ""} ${each.join(", ")}; ` +
        `a case file holds only ${_ALL_TENSOR_NAMES.join(", ")}`,
    );
  }
  const missing = (Object.keys(CASE_INPUT_TENSORS) as (keyof PagedPrefillInputs)[])
    .filter((k) => !_OPTIONAL_INPUTS.has(k) && !parsed.tensors.has(CASE_INPUT_TENSORS[k]))
    .map((k) => CASE_INPUT_TENSORS[k]);
  if (missing.length > 0) {
    throw new TypeError(
      `${prefix} missing required tensor${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`,
    );
  }

  const get = (n: string) => parsed.tensors.get(n);
  const inputs: PagedPrefillInputs = {
    q: get("q")!,
    kNew: get("k_new")!,
    vNew: get("v_new")!,
    kPages: get("k_pages")!,
    vPages: get("v_pages")!,
    cuSeqlensQ: get("cu_seqlens_q")!,
    cacheSeqlens: get("cache_seqlens")!,
    blockTable: get("block_table")!,
  };
  const kScale = get("k_scale");
  const vScale = get("v_scale");
  if (kScale !== undefined) inputs.kScale = kScale;
  if (vScale !== undefined) inputs.vScale = vScale;

  const expected: CaseExpected = {};
  for (const k of Object.keys(CASE_EXPECTED_TENSORS) as (keyof CaseExpected)[]) {
    const t = get(CASE_EXPECTED_TENSORS[k]);
    if (t !== undefined) expected[k] = t;
  }

  const metadata = { ...parsed.metadata };
  return { inputs, params: _parseParams(metadata, prefix), expected, metadata };
}

/**
 * Serializes a case: inputs, params (as `__metadata__` strings) and optional expected
 * results. Nothing about the op is validated, so a deliberately invalid case can be written.
 *
 * @param inputs the op's inputs
 * @param params the op's params; `sm_scale` / `softcap` are written only when numbers
 * @param expected results to store as `o_expected`, `k_pages_expected`, `v_pages_expected`
 * @param options extra metadata
 * @returns the safetensors bytes (write them with `writeFileAtomic()`)
 * @throws {TypeError | RangeError} when a tensor cannot be serialized, `page_size` is not an
 *   integer, or extra metadata names a param
 *
 * @example
 * ```ts
 * import { caseFromSafetensors, caseToSafetensors } from "./case_file.ts";
 * import { parseSafetensors } from "./safetensors.ts";
 * const i32 = (...v: number[]) => ({ dtype: "i32" as const, shape: [v.length], data: new Int32Array(v) });
 * const bf16 = (...shape: number[]) => ({
 *   dtype: "bf16" as const, shape, data: new Uint16Array(shape.reduce((a, b) => a * b, 1)),
 * });
 * const inputs = {
 *   q: bf16(2, 2, 4), kNew: bf16(2, 1, 4), vNew: bf16(2, 1, 4),
 *   kPages: bf16(4, 1, 4), vPages: bf16(4, 1, 4),
 *   cuSeqlensQ: i32(0, 2), cacheSeqlens: i32(1), blockTable: { ...i32(1, 0), shape: [1, 2] },
 * };
 * const bytes = caseToSafetensors(inputs, { pageSize: 2, softcap: 30 });
 * console.log(caseFromSafetensors(parseSafetensors(bytes)).params);
 * // { pageSize: 2, isCausal: true, softcap: 30 }
 * ```
 */
export function caseToSafetensors(
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  expected: CaseExpected = {},
  options: CaseToSafetensorsOptions = {},
): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  for (const k of Object.keys(CASE_INPUT_TENSORS) as (keyof PagedPrefillInputs)[]) {
    const t = inputs[k];
    if (t !== undefined) tensors[CASE_INPUT_TENSORS[k]] = t;
  }
  for (const k of Object.keys(CASE_EXPECTED_TENSORS) as (keyof CaseExpected)[]) {
    const t = expected[k];
    if (t !== undefined) tensors[CASE_EXPECTED_TENSORS[k]] = t;
  }
  const metadata: Record<string, string> = Object.fromEntries(
    Object.entries(options.metadata ?? {}),
  );
  for (const key of Object.keys(metadata)) {
    if (Object.values(CASE_PARAM_KEYS).includes(key)) {
      throw new TypeError(
        `Cannot write case file: extra metadata "${key}" names a param; pass it in params instead`,
      );
    }
  }
  if (!Number.isSafeInteger(params.pageSize)) {
    throw new RangeError(
      `Cannot write case file: page_size must be an integer, got ${params.pageSize}`,
    );
  }
  metadata.page_size = String(params.pageSize);
  metadata.is_causal = String(params.isCausal ?? true);
  if (typeof params.smScale === "number") metadata.sm_scale = String(params.smScale);
  if (typeof params.softcap === "number") metadata.softcap = String(params.softcap);
  return serializeSafetensors(tensors, metadata);
}

/**
 * Writes a case file atomically (see `caseToSafetensors()` and `writeFileAtomic()`).
 *
 * @param path the file to write
 * @param c inputs, params, and optionally expected results and extra metadata
 *
 * @example
 * ```ts ignore
 * import { readCase, writeCase } from "./case_file.ts";
 * const c = await readCase("in.safetensors");
 * await writeCase("copy.safetensors", { inputs: c.inputs, params: c.params });
 * ```
 */
export async function writeCase(
  path: string | URL,
  c: {
    inputs: PagedPrefillInputs;
    params: PagedPrefillParams;
    expected?: CaseExpected;
    metadata?: Record<string, string>;
  },
): Promise<void> {
  await writeFileAtomic(
    path,
    caseToSafetensors(c.inputs, c.params, c.expected, { metadata: c.metadata }),
  );
}

/**
 * Serializes the op's outputs as tensors `o`, `k_pages`, `v_pages` in their own dtypes, with
 * metadata (typically the input case's, so the output records its params).
 *
 * @param outputs the op's outputs
 * @param metadata `__metadata__` strings to store @default {}
 * @returns the safetensors bytes
 *
 * @example
 * ```ts
 * import { outputsToSafetensors } from "./case_file.ts";
 * import { parseSafetensors } from "./safetensors.ts";
 * const t = { dtype: "f16" as const, shape: [1, 1, 4], data: new Uint16Array(4) };
 * const bytes = outputsToSafetensors({ o: t, kPages: t, vPages: t }, { page_size: "1" });
 * console.log([...parseSafetensors(bytes).tensors.keys()]); // ["k_pages", "o", "v_pages"]
 * ```
 */
export function outputsToSafetensors(
  outputs: PagedPrefillOutputs,
  metadata: Record<string, string> = {},
): Uint8Array {
  return serializeSafetensors({
    [CASE_OUTPUT_TENSORS.o]: outputs.o,
    [CASE_OUTPUT_TENSORS.kPages]: outputs.kPages,
    [CASE_OUTPUT_TENSORS.vPages]: outputs.vPages,
  }, metadata);
}

function _parseParams(metadata: Record<string, string>, prefix: string): PagedPrefillParams {
  const paramKeys = Object.values(CASE_PARAM_KEYS);
  for (const key of Object.keys(metadata)) {
    if (paramKeys.includes(key)) continue;
    const guess = _closest(key, paramKeys);
    if (guess !== undefined) {
      throw new TypeError(`${prefix} unknown metadata key "${key}" (did you mean "${guess}"?)`);
    }
  }
  const show = (key: string) => `__metadata__.${key} = ${JSON.stringify(metadata[key])}`;

  const pageText = metadata.page_size;
  if (pageText === undefined) {
    throw new TypeError(
      `${prefix} missing required metadata page_size (an integer string, e.g. "64")`,
    );
  }
  if (!/^[+-]?\d+$/.test(pageText.trim())) {
    throw new SyntaxError(`${prefix} ${show("page_size")} is not an integer`);
  }
  const pageSize = Number(pageText.trim());
  if (!Number.isSafeInteger(pageSize)) {
    throw new RangeError(`${prefix} ${show("page_size")} is too large`);
  }

  let isCausal = true;
  const causalText = metadata.is_causal;
  if (causalText !== undefined) {
    const t = causalText.trim().toLowerCase();
    if (t === "true" || t === "1") isCausal = true;
    else if (t === "false" || t === "0") isCausal = false;
    else {throw new SyntaxError(
        `${prefix} ${show("is_causal")} is not a boolean (expected true, false, 1 or 0)`,
      );}
  }

  const params: PagedPrefillParams = { pageSize, isCausal };
  for (const [field, key] of [["smScale", "sm_scale"], ["softcap", "softcap"]] as const) {
    const text = metadata[key];
    if (text === undefined) continue;
    const value = _parseFloat(text);
    if (value === undefined) {
      throw new SyntaxError(
        `${prefix} ${show(key)} is not a number (expected a decimal float or none)`,
      );
    }
    if (value !== null) params[field] = value;
  }
  return params;
}

/** A float string, null for an explicit "absent", undefined when it does not parse. */
function _parseFloat(text: string): number | null | undefined {
  const t = text.trim().toLowerCase();
  if (t === "" || t === "none" || t === "null") return null;
  if (/^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/.test(t)) return Number(t);
  const special = /^([+-]?)(inf|infinity|nan)$/.exec(t);
  if (special === null) return undefined;
  if (special[2] === "nan") return NaN;
  return special[1] === "-" ? -Infinity : Infinity;
}

/**
 * The candidate `name` most likely misspells, if any: equal ignoring case and `_`, `-`, `.`,
 * or within 1 edit (names of 4-5 characters) or 2 edits (longer names).
 */
function _closest(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ .]/g, "");
  const length = norm(name).length;
  let best: string | undefined;
  let bestDistance = (length <= 3 ? 0 : length <= 5 ? 1 : 2) + 1;
  for (const c of candidates) {
    const d = _editDistance(norm(name), norm(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
function _editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
