import assert from "node:assert/strict";
import { join } from "node:path";
import type { PagedPrefillInputs, PagedPrefillParams, Tensor } from "../op/types.ts";
import { validateProblem } from "../op/validate.ts";
import {
  type CaseExpected,
  caseFromSafetensors,
  caseToSafetensors,
  outputsToSafetensors,
  readCase,
  writeCase,
} from "./case_file.ts";
import { parseSafetensors, SafetensorsError, serializeSafetensors } from "./safetensors.ts";

function seq(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 2654435761 + seed * 40503) % 65536);
}

function f16(shape: number[], seed: number): Tensor<"f16"> {
  return {
    dtype: "f16",
    shape,
    data: new Uint16Array(seq(shape.reduce((a, b) => a * b, 1), seed)),
  };
}

function i32(shape: number[], values: number[]): Tensor<"i32"> {
  return { dtype: "i32", shape, data: new Int32Array(values) };
}

/** B = 2, H = 2, H_kv = 1, D = 4, page_size 2, q_lens [2, 1], old [1, 3], 4 pages. */
function smallInputs(): PagedPrefillInputs {
  return {
    q: f16([3, 2, 4], 1),
    kNew: f16([3, 1, 4], 2),
    vNew: f16([3, 1, 4], 3),
    kPages: f16([8, 1, 4], 4),
    vPages: f16([8, 1, 4], 5),
    cuSeqlensQ: i32([3], [0, 2, 3]),
    cacheSeqlens: i32([2], [1, 3]),
    blockTable: i32([2, 3], [1, 0, -1, 2, 3, 777]),
  };
}

/** Tensors of a valid case as a name -> tensor map, as parsed from a file. */
function smallTensors(): Map<string, Tensor> {
  const i = smallInputs();
  return new Map<string, Tensor>([
    ["q", i.q],
    ["k_new", i.kNew],
    ["v_new", i.vNew],
    ["k_pages", i.kPages],
    ["v_pages", i.vPages],
    ["cu_seqlens_q", i.cuSeqlensQ],
    ["cache_seqlens", i.cacheSeqlens],
    ["block_table", i.blockTable],
  ]);
}

function fromMetadata(metadata: Record<string, string>, tensors = smallTensors()) {
  return caseFromSafetensors({ tensors, metadata }, "c.safetensors");
}

function assertCaseError(
  fn: () => unknown,
  errorClass: typeof TypeError | typeof RangeError | typeof SyntaxError,
  message: string,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.equal(e.constructor, errorClass, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.message, `Cannot read case file c.safetensors: ${message}`);
    return true;
  });
}

Deno.test("caseToSafetensors() and caseFromSafetensors() round-trip inputs, params and expected results", () => {
  const inputs = smallInputs();
  const params: PagedPrefillParams = {
    pageSize: 2,
    isCausal: false,
    smScale: 0.123456789,
    softcap: 50,
  };
  const expected: CaseExpected = {
    o: f16([3, 2, 4], 9),
    kPages: f16([8, 1, 4], 10),
    vPages: f16([8, 1, 4], 11),
  };
  const bytes = caseToSafetensors(inputs, params, expected, { metadata: { seed: "42" } });
  const c = caseFromSafetensors(parseSafetensors(bytes), "c.safetensors");
  assert.deepEqual(c.inputs, inputs);
  assert.deepEqual(c.params, params);
  assert.deepEqual(c.expected, expected);
  assert.deepEqual(c.metadata, {
    seed: "42",
    page_size: "2",
    is_causal: "false",
    sm_scale: "0.123456789",
    softcap: "50",
  });
  const problem = validateProblem(c.inputs, c.params);
  assert.deepEqual([problem.batch, problem.numHeads, problem.numKvHeads, problem.headDim], [
    2,
    2,
    1,
    4,
  ]);
});

Deno.test("caseFromSafetensors() maps k_scale and v_scale of quantized caches", () => {
  const tensors = smallTensors();
  tensors.set("k_pages", { dtype: "i8", shape: [8, 1, 4], data: new Int8Array(32).fill(-3) });
  tensors.set("v_pages", { dtype: "i8", shape: [8, 1, 4], data: new Int8Array(32).fill(5) });
  const kScale: Tensor = { dtype: "f32", shape: [1, 4], data: new Float32Array([0.5, 1, 2, 4]) };
  const vScale: Tensor = { dtype: "f32", shape: [1, 4], data: new Float32Array([1, 1, 1, 1]) };
  tensors.set("k_scale", kScale);
  tensors.set("v_scale", vScale);
  const c = fromMetadata({ page_size: "2" }, tensors);
  assert.equal(c.inputs.kScale, kScale);
  assert.equal(c.inputs.vScale, vScale);
  assert.equal(c.inputs.kPages.dtype, "i8");
  assert.deepEqual(c.expected, {});
});

Deno.test("caseFromSafetensors() leaves scales absent for f16 caches and defaults params", () => {
  const c = fromMetadata({ page_size: " 64 " });
  assert.equal("kScale" in c.inputs, false);
  assert.equal("vScale" in c.inputs, false);
  assert.deepEqual(c.params, { pageSize: 64, isCausal: true });
});

Deno.test("caseFromSafetensors() rejects an unknown tensor name and suggests the right one", () => {
  const typo = smallTensors();
  typo.set("kpages", typo.get("k_pages")!);
  typo.delete("k_pages");
  assertCaseError(
    () => fromMetadata({ page_size: "2" }, typo),
    TypeError,
    'unknown tensor "kpages" (did you mean "k_pages"?); a case file holds only q, k_new, v_new, k_pages, ' +
      "v_pages, k_scale, v_scale, cu_seqlens_q, cache_seqlens, block_table, o_expected, " +
      "k_pages_expected, v_pages_expected",
  );
  const two = smallTensors();
  two.set("o", f16([3, 2, 4], 1));
  two.set("OExpected", f16([3, 2, 4], 1));
  assert.throws(() => fromMetadata({ page_size: "2" }, two), {
    name: "TypeError",
    message:
      /^Cannot read case file c\.safetensors: unknown tensors "o", "OExpected" \(did you mean "o_expected"\?\); /,
  });
});

Deno.test("caseFromSafetensors() names every missing required tensor", () => {
  const tensors = smallTensors();
  tensors.delete("v_new");
  tensors.delete("block_table");
  assertCaseError(
    () => fromMetadata({ page_size: "2" }, tensors),
    TypeError,
    "missing required tensors v_new, block_table",
  );
  const one = smallTensors();
  one.delete("q");
  assertCaseError(
    () => fromMetadata({ page_size: "2" }, one),
    TypeError,
    "missing required tensor q",
  );
});

Deno.test("caseFromSafetensors() parses page_size as a required integer", () => {
  assert.equal(fromMetadata({ page_size: "16" }).params.pageSize, 16);
  assertCaseError(
    () => fromMetadata({}),
    TypeError,
    'missing required metadata page_size (an integer string, e.g. "64")',
  );
  for (const bad of ["abc", "16.0", "", "1e2", "0x10", "16 pages"]) {
    assertCaseError(
      () => fromMetadata({ page_size: bad }),
      SyntaxError,
      `__metadata__.page_size = ${JSON.stringify(bad)} is not an integer`,
    );
  }
  assertCaseError(
    () => fromMetadata({ page_size: "99999999999999999999" }),
    RangeError,
    '__metadata__.page_size = "99999999999999999999" is too large',
  );
  // Not op semantics: a page size of 3 is validateProblem()'s to reject, not the case reader's.
  const three = fromMetadata({ page_size: "3" });
  assert.equal(three.params.pageSize, 3);
  assert.throws(() => validateProblem(three.inputs, three.params), RangeError);
});

Deno.test("caseFromSafetensors() parses is_causal spellings and rejects others", () => {
  for (
    const [text, value] of [
      ["true", true],
      ["True", true],
      ["1", true],
      ["false", false],
      [
        "False",
        false,
      ],
      ["0", false],
      ["FALSE", false],
    ] as const
  ) {
    assert.equal(fromMetadata({ page_size: "2", is_causal: text }).params.isCausal, value, text);
  }
  for (const bad of ["yes", "", "2", "causal"]) {
    assertCaseError(
      () => fromMetadata({ page_size: "2", is_causal: bad }),
      SyntaxError,
      `__metadata__.is_causal = ${
        JSON.stringify(bad)
      } is not a boolean (expected true, false, 1 or 0)`,
    );
  }
});

Deno.test("caseFromSafetensors() parses sm_scale and softcap floats, with none as absent", () => {
  const p =
    fromMetadata({ page_size: "2", sm_scale: "0.08838834764831845", softcap: "1e+1" }).params;
  assert.equal(p.smScale, 0.08838834764831845);
  assert.equal(p.softcap, 10);
  for (const absent of ["none", "None", "null", "", "  "]) {
    const q = fromMetadata({ page_size: "2", sm_scale: absent, softcap: absent }).params;
    assert.equal("smScale" in q, false, absent);
    assert.equal("softcap" in q, false, absent);
  }
  assert.equal(fromMetadata({ page_size: "2", softcap: "0" }).params.softcap, 0);
  assert.equal(fromMetadata({ page_size: "2", softcap: "-inf" }).params.softcap, -Infinity);
  assert.ok(Number.isNaN(fromMetadata({ page_size: "2", sm_scale: "nan" }).params.smScale));
  assert.equal(fromMetadata({ page_size: "2", softcap: ".5" }).params.softcap, 0.5);
  for (const bad of ["abc", "1,5", "tensor(0.5)", "0x1"]) {
    assertCaseError(
      () => fromMetadata({ page_size: "2", softcap: bad }),
      SyntaxError,
      `__metadata__.softcap = ${
        JSON.stringify(bad)
      } is not a number (expected a decimal float or none)`,
    );
  }
});

Deno.test("caseFromSafetensors() rejects metadata keys that misspell a param and keeps others", () => {
  for (
    const [key, meant] of [["is_casual", "is_causal"], ["pageSize", "page_size"], [
      "softcapp",
      "softcap",
    ], [
      "sm-scale",
      "sm_scale",
    ], ["causal", "is_causal"]] as const
  ) {
    assertCaseError(
      () => fromMetadata({ page_size: "2", [key]: "1" }),
      TypeError,
      `unknown metadata key "${key}" (did you mean "${meant}"?)`,
    );
  }
  const c = fromMetadata({ page_size: "2", format: "pt", seed: "7", notes: "from torch" });
  assert.deepEqual(c.metadata, { page_size: "2", format: "pt", seed: "7", notes: "from torch" });
});

Deno.test("caseToSafetensors() rejects extra metadata naming a param and a non-integer page size", () => {
  assert.throws(
    () => caseToSafetensors(smallInputs(), { pageSize: 2 }, {}, { metadata: { softcap: "3" } }),
    {
      name: "TypeError",
      message:
        'Cannot write case file: extra metadata "softcap" names a param; pass it in params instead',
    },
  );
  assert.throws(() => caseToSafetensors(smallInputs(), { pageSize: 2.5 }), {
    name: "RangeError",
    message: "Cannot write case file: page_size must be an integer, got 2.5",
  });
});

Deno.test("caseToSafetensors() writes params as metadata strings", () => {
  const { metadata } = parseSafetensors(
    caseToSafetensors(smallInputs(), { pageSize: 2, smScale: null }),
  );
  assert.deepEqual(metadata, { page_size: "2", is_causal: "true" });
});

Deno.test("outputsToSafetensors() stores o, k_pages and v_pages with the input's metadata", () => {
  const o = f16([3, 2, 4], 20);
  const kPages: Tensor = {
    dtype: "f8_e4m3",
    shape: [8, 1, 4],
    data: new Uint8Array(seq(32, 21).map((x) => x & 255)),
  };
  const vPages: Tensor = {
    dtype: "f8_e4m3",
    shape: [8, 1, 4],
    data: new Uint8Array(32).fill(0x38),
  };
  const metadata = { page_size: "2", is_causal: "true", seed: "5" };
  const parsed = parseSafetensors(outputsToSafetensors({ o, kPages, vPages }, metadata));
  assert.deepEqual(parsed.metadata, metadata);
  assert.deepEqual(Object.fromEntries(parsed.tensors), { o, k_pages: kPages, v_pages: vPages });
});

Deno.test("writeCase() and readCase() round-trip a case through a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "case.safetensors");
    const inputs = smallInputs();
    await writeCase(path, { inputs, params: { pageSize: 2 }, expected: { o: f16([3, 2, 4], 3) } });
    const c = await readCase(path);
    assert.deepEqual(c.inputs, inputs);
    assert.deepEqual(c.params, { pageSize: 2, isCausal: true });
    assert.deepEqual(c.expected.o, f16([3, 2, 4], 3));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["case.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readCase() names the file in its errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "typo.safetensors");
    const tensors = Object.fromEntries(smallTensors());
    await Deno.writeFile(
      path,
      serializeSafetensors({ ...tensors, qq: tensors.q! }, { page_size: "2" }),
    );
    await assert.rejects(() => readCase(path), {
      name: "TypeError",
      message: new RegExp(`^Cannot read case file ${path}: unknown tensor "qq"; `),
    });
    const broken = join(dir, "broken.safetensors");
    await Deno.writeFile(broken, new Uint8Array(4));
    await assert.rejects(() => readCase(broken), SafetensorsError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeCase() leaves no file when serialization throws", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "case.safetensors");
    const inputs = {
      ...smallInputs(),
      q: { dtype: "f16", shape: [3, 2, 4], data: new Uint16Array(5) } as Tensor,
    };
    await assert.rejects(() => writeCase(path, { inputs, params: { pageSize: 2 } }), RangeError);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
