/**
 * Golden WGSL: the generated source of a few canonical specs is pinned under
 * `tests/testdata/<key>.wgsl`, so any change to a template shows up in review as a diff.
 *
 * After an intended template change, regenerate the files and commit them with the change:
 *
 *     UPDATE_GOLDEN=1 deno test -A kernels/paged_prefill/wgsl_golden_test.ts
 */
import assert from "node:assert/strict";
import { type PagedPrefillSpec, specKey } from "./spec.ts";
import { pagedPrefillWgsl } from "./template.ts";
import { dequantKey, type DequantSpec, dequantWgsl } from "./dequant.ts";
import { appendKey, type AppendSpec, appendWgsl } from "../append/template.ts";

const TESTDATA = new URL("../../tests/testdata/", import.meta.url);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

const PREFILL_SPECS: PagedPrefillSpec[] = [
  {
    qDtype: "f16",
    cacheDtype: "f16",
    headDim: 128,
    causal: true,
    softcap: false,
    workgroupSize: 64,
  },
  {
    qDtype: "bf16",
    cacheDtype: "fp8_e4m3",
    headDim: 64,
    causal: true,
    softcap: true,
    workgroupSize: 64,
  },
  {
    qDtype: "f16",
    cacheDtype: "int8",
    headDim: 128,
    causal: false,
    softcap: false,
    workgroupSize: 64,
  },
];
const APPEND_SPECS: AppendSpec[] = [
  { qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, workgroupSize: 64 },
  { qDtype: "f16", cacheDtype: "fp8_e4m3", headDim: 128, workgroupSize: 64, unitWords: 1 },
];
const DEQUANT_SPEC: DequantSpec = { cacheDtype: "int8", workgroupSize: 64 };

const GOLDEN: Array<[string, string]> = [
  ...PREFILL_SPECS.map((s): [string, string] => [specKey("simple", s), pagedPrefillWgsl(s)]),
  ...APPEND_SPECS.map((s): [string, string] => [appendKey(s), appendWgsl(s)]),
  [dequantKey(DEQUANT_SPEC), dequantWgsl(DEQUANT_SPEC)],
];

for (const [key, source] of GOLDEN) {
  Deno.test(`the generated WGSL of ${key} matches its golden file`, async () => {
    const file = new URL(`${key}.wgsl`, TESTDATA);
    if (UPDATE) {
      await Deno.mkdir(TESTDATA, { recursive: true });
      await Deno.writeTextFile(file, source);
      return;
    }
    let golden: string;
    try {
      golden = await Deno.readTextFile(file);
    } catch {
      throw new Error(
        `Missing golden file ${file.pathname}: run UPDATE_GOLDEN=1 deno test -A ${import.meta.url}`,
      );
    }
    const a = source.split("\n"), g = golden.split("\n");
    const line = a.findIndex((l, i) => l !== g[i]);
    assert.ok(
      source === golden,
      `${key}: template output changed at line ${line + 1}:\n  golden:    ${
        g[line]
      }\n  generated: ${a[line]}\n` +
        "If intended, run UPDATE_GOLDEN=1 deno test -A kernels/paged_prefill/wgsl_golden_test.ts",
    );
  });
}

Deno.test("the WGSL template output is deterministic for a spec", () => {
  for (const s of PREFILL_SPECS) assert.equal(pagedPrefillWgsl(s), pagedPrefillWgsl({ ...s }));
});
