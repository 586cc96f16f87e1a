import assert from "node:assert/strict";
import { join } from "node:path";
import type { Tensor, TensorDtype } from "../op/types.ts";
import {
  parseSafetensors,
  readSafetensors,
  SAFETENSORS_DTYPES,
  SafetensorsError,
  serializeSafetensors,
  TENSOR_ELEMENT_BYTES,
  writeFileAtomic,
  writeSafetensors,
} from "./safetensors.ts";

const DTYPES: TensorDtype[] = ["f16", "bf16", "f8_e4m3", "i8", "i32", "f32"];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A tensor of random raw bits (NaN patterns included: comparisons are on bytes). */
function randomTensor(dtype: TensorDtype, shape: number[], seed: number): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const next = rng(seed);
  const bytes = new Uint8Array(count * TENSOR_ELEMENT_BYTES[dtype]);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
  const buf = bytes.buffer;
  const data = {
    f16: () => new Uint16Array(buf),
    bf16: () => new Uint16Array(buf),
    f8_e4m3: () => new Uint8Array(buf),
    i8: () => new Int8Array(buf),
    i32: () => new Int32Array(buf),
    f32: () => new Float32Array(buf),
  }[dtype]();
  return { dtype, shape, data } as Tensor;
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function assertSameTensor(actual: Tensor | undefined, expected: Tensor, name: string): void {
  assert.ok(actual, `${name} missing`);
  assert.equal(actual.dtype, expected.dtype, name);
  assert.deepEqual([...actual.shape], [...expected.shape], name);
  assert.equal(actual.data.constructor, expected.data.constructor, name);
  assert.deepEqual(bytesOf(actual), bytesOf(expected), name);
}

/** Builds a file by hand: 8-byte length, the header text (padded as given), the buffer. */
function handBuilt(headerText: string, buffer: Uint8Array | number[] = []): Uint8Array {
  const header = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + header.length + buffer.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(buffer, 8 + header.length);
  return out;
}

function assertFails(bytes: Uint8Array, problem: string | RegExp, name = "bad.safetensors"): void {
  assert.throws(() => parseSafetensors(bytes, name), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.ok(e instanceof SyntaxError);
    assert.equal(e.name, "SafetensorsError");
    assert.equal(e.file, name);
    assert.ok(e.message.startsWith(`Cannot read safetensors file ${name}: `), e.message);
    if (typeof problem === "string") assert.equal(e.problem, problem);
    else assert.match(e.problem, problem);
    return true;
  });
}

Deno.test("serializeSafetensors() and parseSafetensors() round-trip every dtype bit for bit", () => {
  const tensors: Record<string, Tensor> = {};
  DTYPES.forEach((dtype, i) => {
    tensors[`${dtype}_matrix`] = randomTensor(dtype, [3, 5, 7], 100 + i);
    tensors[`${dtype}_scalar`] = randomTensor(dtype, [], 200 + i);
    tensors[`${dtype}_empty`] = randomTensor(dtype, [0, 4], 300 + i);
    tensors[`${dtype}_odd`] = randomTensor(dtype, [1, 3], 400 + i);
  });
  const metadata = { page_size: "16", "ünïcode key": "välue ✓", empty: "" };
  const { tensors: parsed, metadata: meta } = parseSafetensors(
    serializeSafetensors(tensors, metadata),
  );
  assert.deepEqual(meta, metadata);
  assert.deepEqual([...parsed.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) assertSameTensor(parsed.get(name), t, name);
});

Deno.test("serializeSafetensors() pads the header with spaces to a multiple of 8 bytes", () => {
  for (let nameLength = 1; nameLength <= 16; nameLength++) {
    const bytes = serializeSafetensors({
      ["x".repeat(nameLength)]: randomTensor("i8", [3], nameLength),
    });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, `header length ${n} for a ${nameLength}-character name`);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    assert.equal(bytes.length, 8 + n + 3);
  }
});

Deno.test("serializeSafetensors() is deterministic and aligns every tensor to its element size", () => {
  const a = randomTensor("i8", [3], 1);
  const b = randomTensor("f32", [5], 2);
  const c = randomTensor("f16", [3], 3);
  const first = serializeSafetensors({ a, b, c }, { y: "1", x: "2" });
  const second = serializeSafetensors({ c, a, b }, { x: "2", y: "1" });
  assert.deepEqual(first, second);
  const n = Number(new DataView(first.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(first.subarray(8, 8 + n)));
  assert.deepEqual(Object.keys(header), ["__metadata__", "b", "c", "a"]);
  assert.deepEqual(header.b.data_offsets, [0, 20]);
  assert.deepEqual(header.c.data_offsets, [20, 26]);
  assert.deepEqual(header.a.data_offsets, [26, 29]);
  assert.equal((8 + n) % 8, 0);
});

Deno.test("serializeSafetensors() writes an empty __metadata__-free header for no tensors", () => {
  const bytes = serializeSafetensors({});
  assert.equal(bytes.length, 16);
  assert.equal(new TextDecoder().decode(bytes.subarray(8)), "{}      ");
  const parsed = parseSafetensors(bytes);
  assert.equal(parsed.tensors.size, 0);
  assert.deepEqual(parsed.metadata, {});
});

Deno.test("parseSafetensors() reads a file built byte by byte by hand", () => {
  // Buffer: [0, 4) i32 -2; [4, 12) f32 1.5, -0.25; [12, 16) f16 1.0, -2.0 (0x3c00, 0xc000);
  // [16, 18) bf16 1.0 (0x3f80); [18, 21) i8 127, -128, 5; [21, 23) e4m3 1.0 (0x38), -448 (0xfe).
  // The header lists them out of buffer order, with whitespace and trailing space padding.
  const buffer = new Uint8Array(23);
  const view = new DataView(buffer.buffer);
  view.setInt32(0, -2, true);
  view.setFloat32(4, 1.5, true);
  view.setFloat32(8, -0.25, true);
  view.setUint16(12, 0x3c00, true);
  view.setUint16(14, 0xc000, true);
  view.setUint16(16, 0x3f80, true);
  buffer.set([0x7f, 0x80, 0x05], 18);
  buffer.set([0x38, 0xfe], 21);
  const header = '{ "w" : {"shape": [2], "dtype": "F32", "data_offsets": [4, 12]},\n' +
    ' "__metadata__": {"page_size": "64", "is_causal": "false"},\n' +
    ' "h": {"dtype": "F16", "shape": [1, 2], "data_offsets": [12, 16]},\n' +
    ' "b": {"dtype": "BF16", "shape": [], "data_offsets": [16, 18]},\n' +
    ' "n": {"dtype": "I32", "shape": [1, 1, 1], "data_offsets": [0, 4]},\n' +
    ' "s": {"dtype": "I8", "shape": [3], "data_offsets": [18, 21]},\n' +
    ' "e": {"dtype": "F8_E4M3", "shape": [2, 1], "data_offsets": [21, 23]},\n' +
    ' "z": {"dtype": "F32", "shape": [0], "data_offsets": [23, 23]}}' + " ".repeat(13);
  const { tensors, metadata } = parseSafetensors(handBuilt(header, buffer), "hand.safetensors");
  assert.deepEqual(metadata, { page_size: "64", is_causal: "false" });
  assert.deepEqual([...tensors.keys()], ["w", "h", "b", "n", "s", "e", "z"]);
  assert.deepEqual(tensors.get("w"), {
    dtype: "f32",
    shape: [2],
    data: new Float32Array([1.5, -0.25]),
  });
  assert.deepEqual(tensors.get("h"), {
    dtype: "f16",
    shape: [1, 2],
    data: new Uint16Array([0x3c00, 0xc000]),
  });
  assert.deepEqual(tensors.get("b"), { dtype: "bf16", shape: [], data: new Uint16Array([0x3f80]) });
  assert.deepEqual(tensors.get("n"), {
    dtype: "i32",
    shape: [1, 1, 1],
    data: new Int32Array([-2]),
  });
  assert.deepEqual(tensors.get("s"), {
    dtype: "i8",
    shape: [3],
    data: new Int8Array([127, -128, 5]),
  });
  assert.deepEqual(tensors.get("e"), {
    dtype: "f8_e4m3",
    shape: [2, 1],
    data: new Uint8Array([0x38, 0xfe]),
  });
  assert.deepEqual(tensors.get("z"), { dtype: "f32", shape: [0], data: new Float32Array(0) });
});

Deno.test("parseSafetensors() copies misaligned data into fresh aligned arrays", () => {
  // f32 at buffer offset 1, and the whole file at byte offset 3 of a larger allocation.
  const buffer = new Uint8Array(9);
  buffer[0] = 0xaa;
  new DataView(buffer.buffer).setFloat32(1, 3.25, true);
  new DataView(buffer.buffer).setFloat32(5, -7, true);
  const file = handBuilt(
    '{"p":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}',
    buffer,
  );
  const backing = new Uint8Array(file.length + 3);
  backing.set(file, 3);
  const input = backing.subarray(3);
  const { tensors } = parseSafetensors(input);
  const f = tensors.get("f")!;
  assert.ok(f.data instanceof Float32Array);
  assert.equal(f.data.byteOffset % 4, 0);
  assert.deepEqual(f.data, new Float32Array([3.25, -7]));
  input.fill(0);
  assert.deepEqual(f.data, new Float32Array([3.25, -7]), "parsed data must not alias the input");
  assert.deepEqual(tensors.get("p")!.data, new Int8Array([-86]));
});

Deno.test("parseSafetensors() accepts gaps in the buffer and empty tensors anywhere", () => {
  const file = handBuilt(
    '{"a":{"dtype":"I8","shape":[2],"data_offsets":[4,6]},' +
      '"e":{"dtype":"I32","shape":[0,3],"data_offsets":[5,5]}}',
    [9, 9, 9, 9, 1, 2, 9, 9],
  );
  const { tensors } = parseSafetensors(file);
  assert.deepEqual(tensors.get("a")!.data, new Int8Array([1, 2]));
  assert.equal(tensors.get("e")!.data.length, 0);
});

Deno.test("parseSafetensors() rejects a truncated header", () => {
  assertFails(
    new Uint8Array(5),
    "truncated header: the file is 5 bytes, shorter than the 8-byte header length",
  );
  const file = handBuilt("{}      ").subarray(0, 12);
  assertFails(file, "truncated header: the header length is 8 bytes but only 4 bytes follow it");
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 0xffff_ffff_ffff_ffffn, true);
  assertFails(huge, /^truncated header: the header length is 18446744073709551615 bytes/);
  assertFails(handBuilt(""), "the header length is 0 bytes, too short for a JSON object");
});

Deno.test("parseSafetensors() rejects a header that is not a UTF-8 JSON object", () => {
  assertFails(handBuilt('{"a": '), /^the header is not valid JSON \(.+\)$/);
  const badUtf8 = handBuilt('{"a":1}  ');
  badUtf8[10] = 0xff;
  assertFails(badUtf8, "the header is not valid UTF-8");
  assertFails(handBuilt("[1, 2]"), "the header must be a JSON object, got [1,2]");
  assertFails(handBuilt("null"), "the header must be a JSON object, got null");
});

Deno.test("parseSafetensors() rejects a name used twice", () => {
  const t = '{"dtype":"I8","shape":[1],"data_offsets":[0,1]}';
  assertFails(
    handBuilt(`{"a":${t},"b":{"x":{"a":1}},"a":${t}}`, [1]),
    'the header names "a" twice',
  );
  assertFails(handBuilt(`{"a\\u0062":${t},"ab":${t}}`, [1]), 'the header names "ab" twice');
});

Deno.test("parseSafetensors() rejects bad __metadata__", () => {
  assertFails(
    handBuilt('{"__metadata__": ["x"]}'),
    '__metadata__ must be an object of strings, got ["x"]',
  );
  assertFails(
    handBuilt('{"__metadata__": {"page_size": 16}}'),
    "__metadata__.page_size must be a string, got 16",
  );
});

Deno.test("parseSafetensors() names unsupported dtypes and lists the supported ones", () => {
  for (const dtype of ["F64", "I64", "U8", "BOOL", "F8_E5M2", "I16", "f16"]) {
    assertFails(
      handBuilt(`{"x":{"dtype":"${dtype}","shape":[1],"data_offsets":[0,1]}}`, [0]),
      `tensor "x": dtype ${dtype} is not supported (expected one of F16, BF16, F8_E4M3, I8, I32, F32)`,
    );
  }
  assertFails(
    handBuilt('{"x":{"dtype":5,"shape":[1],"data_offsets":[0,1]}}', [0]),
    'tensor "x": dtype must be a string, got 5',
  );
});

Deno.test("parseSafetensors() rejects malformed tensor entries", () => {
  assertFails(
    handBuilt('{"x": 3}'),
    'tensor "x" must be an object with dtype, shape and data_offsets, got 3',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"I8","shape":[-1],"data_offsets":[0,1]}}', [0]),
    'tensor "x": shape must be an array of non-negative integers, got [-1]',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"I8","shape":[1.5],"data_offsets":[0,1]}}', [0]),
    'tensor "x": shape must be an array of non-negative integers, got [1.5]',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"I8","data_offsets":[0,1]}}', [0]),
    'tensor "x": shape must be an array of non-negative integers, got nothing',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"I8","shape":[1],"data_offsets":[0,1,2]}}', [0]),
    'tensor "x": data_offsets must be [begin, end] of non-negative integers, got [0,1,2]',
  );
});

Deno.test("parseSafetensors() rejects data_offsets outside the buffer", () => {
  assertFails(
    handBuilt('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(12)),
    'tensor "x": data_offsets [0, 16] exceed the 12-byte data buffer',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"I8","shape":[0],"data_offsets":[4,2]}}', new Uint8Array(4)),
    'tensor "x": data_offsets [4, 2] end before they begin',
  );
});

Deno.test("parseSafetensors() rejects a byte size that does not match the shape", () => {
  assertFails(
    handBuilt('{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', new Uint8Array(24)),
    'tensor "x": shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] hold 20',
  );
  assertFails(
    handBuilt('{"x":{"dtype":"BF16","shape":[],"data_offsets":[0,1]}}', new Uint8Array(2)),
    'tensor "x": shape [] of BF16 needs 2 bytes but data_offsets [0, 1] hold 1',
  );
});

Deno.test("parseSafetensors() rejects overlapping tensors", () => {
  assertFails(
    handBuilt(
      '{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},' +
        '"b":{"dtype":"I8","shape":[4],"data_offsets":[3,7]}}',
      new Uint8Array(8),
    ),
    'tensors "a" [0, 4) and "b" [3, 7) overlap',
  );
});

Deno.test("parseSafetensors() names <bytes> when no file name is given", () => {
  assert.throws(() => parseSafetensors(new Uint8Array(0)), {
    name: "SafetensorsError",
    message:
      "Cannot read safetensors file <bytes>: truncated header: the file is 0 bytes, shorter than the 8-byte header length",
  });
});

Deno.test("serializeSafetensors() rejects tensors it cannot represent", () => {
  const ok = randomTensor("f16", [2], 1);
  assert.throws(() => serializeSafetensors({ __metadata__: ok }), {
    name: "TypeError",
    message:
      'Cannot serialize safetensors: tensor "__metadata__" uses the reserved name __metadata__',
  });
  assert.throws(
    () =>
      serializeSafetensors({
        x: { dtype: "f16", shape: [2], data: new Float32Array(2) } as unknown as Tensor,
      }),
    {
      name: "TypeError",
      message:
        'Cannot serialize safetensors: tensor "x" has dtype f16 so its data must be a Uint16Array, got Float32Array',
    },
  );
  assert.throws(
    () =>
      serializeSafetensors({
        x: { dtype: "f64", shape: [2], data: new Float64Array(2) } as unknown as Tensor,
      }),
    {
      name: "TypeError",
      message:
        'Cannot serialize safetensors: tensor "x" has dtype "f64", expected one of f16, bf16, f8_e4m3, i8, i32, f32',
    },
  );
  assert.throws(() => serializeSafetensors({ x: { ...ok, shape: [3] } }), {
    name: "RangeError",
    message:
      'Cannot serialize safetensors: tensor "x" has shape [3] (3 elements) but 2 data elements',
  });
  assert.throws(() => serializeSafetensors({ x: { ...ok, shape: [-2] } }), {
    name: "RangeError",
    message:
      'Cannot serialize safetensors: tensor "x" has shape [-2], expected non-negative integers',
  });
  assert.throws(() => serializeSafetensors({}, { a: 1 } as unknown as Record<string, string>), {
    name: "TypeError",
    message: 'Cannot serialize safetensors: metadata "a" must be a string, got 1',
  });
});

Deno.test("serializeSafetensors() and parseSafetensors() keep __proto__ as an ordinary name", () => {
  const t = randomTensor("i8", [2], 9);
  const tensors = Object.fromEntries([["__proto__", t]]) as Record<string, Tensor>;
  const metadata = Object.fromEntries([["__proto__", "x"]]) as Record<string, string>;
  const parsed = parseSafetensors(serializeSafetensors(tensors, metadata));
  assertSameTensor(parsed.tensors.get("__proto__"), t, "__proto__");
  assert.equal(Object.getPrototypeOf(parsed.metadata), Object.prototype);
  assert.deepEqual(Object.entries(parsed.metadata), [["__proto__", "x"]]);
});

Deno.test("SAFETENSORS_DTYPES names every tensor dtype", () => {
  assert.deepEqual(Object.keys(SAFETENSORS_DTYPES).sort(), [...DTYPES].sort());
});

Deno.test("writeSafetensors() and readSafetensors() round-trip through a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "x.safetensors");
    const tensors = { a: randomTensor("bf16", [4, 4], 7), b: randomTensor("i32", [3], 8) };
    await writeSafetensors(path, tensors, { metadata: { k: "v" } });
    const parsed = await readSafetensors(path);
    assert.deepEqual(parsed.metadata, { k: "v" });
    for (const [name, t] of Object.entries(tensors)) {
      assertSameTensor(parsed.tensors.get(name), t, name);
    }
    const url = new URL(`file://${path}`);
    assert.equal((await readSafetensors(url)).tensors.size, 2);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["x.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors() names the file in its errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "broken.safetensors");
    await Deno.writeFile(path, handBuilt("{oops}"));
    await assert.rejects(() => readSafetensors(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(
        e.message,
        new RegExp(`^Cannot read safetensors file ${path}: the header is not valid JSON`),
      );
      return true;
    });
    await assert.rejects(
      () => readSafetensors(join(dir, "missing.safetensors")),
      Deno.errors.NotFound,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors() leaves no file when serialization throws", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "out.safetensors");
    const bad = { x: { dtype: "i8", shape: [5], data: new Int8Array(2) } as Tensor };
    await assert.rejects(() => writeSafetensors(path, bad), RangeError);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    // An existing file survives a failed overwrite untouched.
    await writeSafetensors(path, { y: randomTensor("i8", [2], 1) });
    const before = await Deno.readFile(path);
    await assert.rejects(() => writeSafetensors(path, bad), RangeError);
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() removes its temporary file when the rename fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = join(dir, "taken");
    await Deno.mkdir(join(target, "child"), { recursive: true });
    await assert.rejects(() => writeFileAtomic(target, serializeSafetensors({})));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["taken"]);
    await assert.rejects(() =>
      writeFileAtomic(join(dir, "no", "such", "dir.safetensors"), new Uint8Array(1))
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["taken"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
