/**
 * Reading and writing the safetensors format, written from its public description:
 *
 * ```text
 * [8 bytes]  N, the header length, unsigned 64-bit little-endian
 * [N bytes]  UTF-8 JSON header, possibly padded with trailing spaces:
 *            { "<name>": { "dtype": "F16", "shape": [2, 3], "data_offsets": [begin, end] },
 *              ..., "__metadata__": { "<key>": "<string value>" } }
 * [rest]     the byte buffer; offsets are relative to its start, data little-endian row-major
 * ```
 *
 * Only the dtypes the op uses are supported: F16, BF16, F8_E4M3, I8, I32 and F32. Anything
 * else (F64, I64, U8, BOOL, ...) is rejected by name. Parsed tensors are copied into fresh,
 * aligned typed arrays, so they never alias the file's bytes.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Tensor, TensorData, TensorDtype } from "../op/types.ts";
import { writeFileAtomic } from "./atomic_write.ts";

// Kept here too: case files have always been written through this module.
export { writeFileAtomic };

/** Safetensors dtype name of each tensor dtype. */
export const SAFETENSORS_DTYPES: Readonly<Record<TensorDtype, string>> = {
  f16: "F16",
  bf16: "BF16",
  f8_e4m3: "F8_E4M3",
  i8: "I8",
  i32: "I32",
  f32: "F32",
};

/** Bytes per element of each tensor dtype. */
export const TENSOR_ELEMENT_BYTES: Readonly<Record<TensorDtype, number>> = {
  f16: 2,
  bf16: 2,
  f8_e4m3: 1,
  i8: 1,
  i32: 4,
  f32: 4,
};

/** Largest header accepted (100 MiB), so a corrupt length cannot make us decode gigabytes. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Name used in error messages when bytes are parsed without a file name. */
const _DEFAULT_NAME = "<bytes>";

const _METADATA_KEY = "__metadata__";

const _DTYPE_BY_NAME: ReadonlyMap<string, TensorDtype> = new Map(
  (Object.entries(SAFETENSORS_DTYPES) as [TensorDtype, string][]).map(([d, n]) => [n, d]),
);

const _EXPECTED_DTYPES = Object.values(SAFETENSORS_DTYPES).join(", ");

const _LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A safetensors file (or byte array) that cannot be read: the message names the file and
 * the problem, e.g. `Cannot read safetensors file case.safetensors: tensor "q": dtype F64 is
 * not supported (expected one of F16, BF16, F8_E4M3, I8, I32, F32)`.
 *
 * @example
 * ```ts
 * import { parseSafetensors, SafetensorsError } from "./safetensors.ts";
 * try {
 *   parseSafetensors(new Uint8Array(3), "tiny.safetensors");
 * } catch (e) {
 *   if (!(e instanceof SafetensorsError)) throw e;
 *   console.log(e.file, e.problem);
 * }
 * ```
 */
export class SafetensorsError extends SyntaxError {
  /** The file (or label) that could not be read. */
  readonly file: string;
  /** What is wrong with it, without the file prefix. */
  readonly problem: string;

  /**
   * Creates the error; the message is `Cannot read safetensors file <file>: <problem>`.
   *
   * @param file the file name or label used in the message
   * @param problem what is wrong, e.g. `header is not valid JSON`
   * @param options standard error options (`cause`)
   */
  constructor(file: string, problem: string, options?: ErrorOptions) {
    super(`Cannot read safetensors file ${file}: ${problem}`, options);
    this.name = "SafetensorsError";
    this.file = file;
    this.problem = problem;
  }
}

/** The contents of a safetensors file. */
export interface ParsedSafetensors {
  /** Tensors by name, in header order. */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` strings (empty when the header has none). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** `__metadata__` strings to store. @default {} */
  metadata?: Record<string, string>;
}

/**
 * Parses a safetensors file held in memory. Every structural rule is checked: header length
 * within the file, valid UTF-8 JSON object, no duplicate names, supported dtype, shape of
 * non-negative integers, `data_offsets` inside the buffer and not overlapping, and a byte
 * size equal to `product(shape) * element size`.
 *
 * @param bytes the whole file
 * @param name the file name used in error messages @default "<bytes>"
 * @returns tensors (copied into aligned typed arrays) and metadata
 * @throws {SafetensorsError} when the bytes are not a valid safetensors file
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({
 *   x: { dtype: "f32", shape: [2], data: new Float32Array([1, 2]) },
 * }, { note: "hi" });
 * const { tensors, metadata } = parseSafetensors(bytes);
 * console.log(tensors.get("x")?.data, metadata.note); // Float32Array [1, 2] "hi"
 * ```
 */
export function parseSafetensors(
  bytes: Uint8Array,
  name: string = _DEFAULT_NAME,
): ParsedSafetensors {
  const fail = (problem: string, cause?: unknown): never => {
    throw new SafetensorsError(name, problem, cause === undefined ? undefined : { cause });
  };
  if (bytes.length < 8) {
    fail(
      `truncated header: the file is ${bytes.length} bytes, shorter than the 8-byte header length`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(
      `truncated header: the header length is ${headerLength} bytes but only ${
        bytes.length - 8
      } bytes follow it`,
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) {
    fail(`the header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  if (n < 2) fail(`the header length is ${n} bytes, too short for a JSON object`);

  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + n),
    );
  } catch (e) {
    fail("the header is not valid UTF-8", e);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`the header is not valid JSON (${e instanceof Error ? e.message : String(e)})`, e);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`the header must be a JSON object, got ${_describe(header)}`);
  }
  const duplicate = _firstDuplicateTopLevelKey(text);
  if (duplicate !== undefined) fail(`the header names "${duplicate}" twice`);

  const buffer = bytes.subarray(8 + n);
  const entries = header as Record<string, unknown>;
  let metadata: Record<string, string> = {};
  const rawMetadata = entries[_METADATA_KEY];
  if (rawMetadata !== undefined && rawMetadata !== null) {
    if (typeof rawMetadata !== "object" || Array.isArray(rawMetadata)) {
      fail(`${_METADATA_KEY} must be an object of strings, got ${_describe(rawMetadata)}`);
    }
    const pairs = Object.entries(rawMetadata as Record<string, unknown>);
    for (const [key, value] of pairs) {
      if (typeof value !== "string") {
        fail(`${_METADATA_KEY}.${key} must be a string, got ${_describe(value)}`);
      }
    }
    // fromEntries defines own properties, so even a key "__proto__" stays plain data.
    metadata = Object.fromEntries(pairs) as Record<string, string>;
  }

  const ranges: { name: string; begin: number; end: number }[] = [];
  const tensors = new Map<string, Tensor>();
  for (const [tensorName, raw] of Object.entries(entries)) {
    if (tensorName === _METADATA_KEY) continue;
    const what = `tensor "${tensorName}"`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      fail(`${what} must be an object with dtype, shape and data_offsets, got ${_describe(raw)}`);
    }
    const info = raw as Record<string, unknown>;
    const dtypeName = info.dtype;
    if (typeof dtypeName !== "string") {
      fail(`${what}: dtype must be a string, got ${_describe(dtypeName)}`);
    }
    const dtype = _DTYPE_BY_NAME.get(dtypeName as string);
    if (dtype === undefined) {
      fail(`${what}: dtype ${dtypeName} is not supported (expected one of ${_EXPECTED_DTYPES})`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      fail(`${what}: shape must be an array of non-negative integers, got ${_describe(shape)}`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(
        `${what}: data_offsets must be [begin, end] of non-negative integers, got ${
          _describe(offsets)
        }`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > buffer.length) {
      fail(`${what}: data_offsets [${begin}, ${end}] exceed the ${buffer.length}-byte data buffer`);
    }
    const dims = shape as number[];
    const count = dims.reduce((a, b) => a * b, 1);
    const elementBytes = TENSOR_ELEMENT_BYTES[dtype as TensorDtype];
    if (!Number.isSafeInteger(count * elementBytes)) {
      fail(`${what}: shape [${dims.join(", ")}] is too large`);
    }
    if (count * elementBytes !== end - begin) {
      fail(
        `${what}: shape [${dims.join(", ")}] of ${dtypeName} needs ${count * elementBytes} bytes ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    ranges.push({ name: tensorName, begin, end });
    const data = _allocate(dtype as TensorDtype, count);
    const target = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    target.set(buffer.subarray(begin, end));
    if (!_LITTLE_ENDIAN) _swapBytesInPlace(target, elementBytes);
    tensors.set(tensorName, { dtype: dtype as TensorDtype, shape: dims.slice(), data });
  }

  const filled = ranges.filter((r) => r.end > r.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < filled.length; i++) {
    const prev = filled[i - 1]!;
    const cur = filled[i]!;
    if (cur.begin < prev.end) {
      fail(
        `tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${cur.name}" ` +
          `[${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
  return { tensors, metadata };
}

/**
 * Serializes tensors into safetensors bytes. The output is deterministic: tensors are laid
 * out by element size (largest first, so every tensor is aligned to its element size) then by
 * name, and the header is padded with spaces to a multiple of 8 bytes.
 *
 * @param tensors tensors by name (`__metadata__` is reserved)
 * @param metadata `__metadata__` strings @default {}
 * @returns the whole file
 * @throws {TypeError} when a name is reserved, a dtype is unknown, data does not match its
 *   dtype, or a metadata value is not a string
 * @throws {RangeError} when a shape is invalid or does not match the data length
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({
 *   ids: { dtype: "i32", shape: [3], data: new Int32Array([7, 8, 9]) },
 * });
 * console.log(bytes.length % 8); // 4: header is padded, 12 data bytes follow it
 * ```
 */
export function serializeSafetensors(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) _checkTensor(name, tensors[name]!);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot serialize safetensors: metadata "${key}" must be a string, got ${_describe(value)}`,
      );
    }
  }
  names.sort((a, b) => {
    const size = TENSOR_ELEMENT_BYTES[tensors[b]!.dtype] - TENSOR_ELEMENT_BYTES[tensors[a]!.dtype];
    return size !== 0 ? size : a < b ? -1 : a > b ? 1 : 0;
  });

  // Entries, not assignments: a name such as "__proto__" must stay an ordinary key.
  const headerEntries: [string, unknown][] = [];
  const metadataEntries = Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (metadataEntries.length > 0) {
    headerEntries.push([_METADATA_KEY, Object.fromEntries(metadataEntries)]);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const size = t.data.byteLength;
    headerEntries.push([name, {
      dtype: SAFETENSORS_DTYPES[t.dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + size],
    }]);
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(headerEntries)));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const name of names) {
    const data = tensors[name]!.data;
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    out.set(src, at);
    if (!_LITTLE_ENDIAN) {
      _swapBytesInPlace(
        out.subarray(at, at + src.length),
        TENSOR_ELEMENT_BYTES[tensors[name]!.dtype],
      );
    }
    at += src.length;
  }
  return out;
}

/**
 * Reads and parses a safetensors file.
 *
 * @param path the file
 * @returns tensors and metadata, as {@linkcode parseSafetensors}
 * @throws {SafetensorsError} when the file is not valid safetensors (naming the file)
 * @throws {Deno.errors.NotFound} when the file does not exist
 *
 * @example
 * ```ts ignore
 * import { readSafetensors } from "./safetensors.ts";
 * const { tensors, metadata } = await readSafetensors("case.safetensors");
 * console.log([...tensors.keys()], metadata);
 * ```
 */
export async function readSafetensors(path: string | URL): Promise<ParsedSafetensors> {
  const bytes = await Deno.readFile(path);
  return parseSafetensors(bytes, _pathName(path));
}

/**
 * Serializes tensors and writes them to `path` atomically: the bytes go to a temporary file
 * in the same directory which is then renamed over `path`, so a failure (bad tensor, full
 * disk, ...) leaves no partial output and any previous file intact.
 *
 * @param path the file to write
 * @param tensors tensors by name
 * @param options metadata to store
 * @throws {TypeError | RangeError} as {@linkcode serializeSafetensors}; nothing is written
 *
 * @example
 * ```ts ignore
 * import { writeSafetensors } from "./safetensors.ts";
 * await writeSafetensors("x.safetensors", {
 *   x: { dtype: "f32", shape: [1], data: new Float32Array([1]) },
 * }, { metadata: { page_size: "16" } });
 * ```
 */
export async function writeSafetensors(
  path: string | URL,
  tensors: Record<string, Tensor>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, options.metadata));
}

function _pathName(path: string | URL): string {
  return path instanceof URL ? (path.protocol === "file:" ? fileURLToPath(path) : path.href) : path;
}

function _allocate(dtype: TensorDtype, count: number): TensorData[TensorDtype] {
  switch (dtype) {
    case "f16":
    case "bf16":
      return new Uint16Array(count);
    case "f8_e4m3":
      return new Uint8Array(count);
    case "i8":
      return new Int8Array(count);
    case "i32":
      return new Int32Array(count);
    case "f32":
      return new Float32Array(count);
  }
}

const _ARRAY_TYPES: Readonly<Record<TensorDtype, { name: string; is(x: unknown): boolean }>> = {
  f16: { name: "Uint16Array", is: (x) => x instanceof Uint16Array },
  bf16: { name: "Uint16Array", is: (x) => x instanceof Uint16Array },
  f8_e4m3: { name: "Uint8Array", is: (x) => x instanceof Uint8Array },
  i8: { name: "Int8Array", is: (x) => x instanceof Int8Array },
  i32: { name: "Int32Array", is: (x) => x instanceof Int32Array },
  f32: { name: "Float32Array", is: (x) => x instanceof Float32Array },
};

function _checkTensor(name: string, t: Tensor): void {
  const what = `Cannot serialize safetensors: tensor "${name}"`;
  if (name === _METADATA_KEY) {
    throw new TypeError(`${what} uses the reserved name ${_METADATA_KEY}`);
  }
  const array = _ARRAY_TYPES[t.dtype as TensorDtype];
  if (array === undefined) {
    throw new TypeError(
      `${what} has dtype ${_describe(t.dtype)}, expected one of ${
        Object.keys(SAFETENSORS_DTYPES).join(", ")
      }`,
    );
  }
  if (!array.is(t.data)) {
    throw new TypeError(
      `${what} has dtype ${t.dtype} so its data must be a ${array.name}, got ${_describe(t.data)}`,
    );
  }
  if (!Array.isArray(t.shape) || !t.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw new RangeError(`${what} has shape ${_describe(t.shape)}, expected non-negative integers`);
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new RangeError(
      `${what} has shape [${
        t.shape.join(", ")
      }] (${count} elements) but ${t.data.length} data elements`,
    );
  }
}

function _swapBytesInPlace(bytes: Uint8Array, elementBytes: number): void {
  if (elementBytes === 1) return;
  for (let i = 0; i + elementBytes <= bytes.length; i += elementBytes) {
    bytes.subarray(i, i + elementBytes).reverse();
  }
}

/** First key of the top-level object that occurs twice (JSON.parse keeps only the last). */
function _firstDuplicateTopLevelKey(json: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === "{" || c === "[") {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === "}" || c === "]") {
      depth--;
    } else if (c === "," && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

function _describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  try {
    const s = JSON.stringify(value);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(value);
  }
}
