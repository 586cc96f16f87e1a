import assert from "node:assert/strict";
import { MMA_FUSED_APPEND, type MmaOptions } from "./mma.ts";
import { mmaSpecProblem } from "./spec.ts";
import { mmaBindings, mmaWgsl } from "./template.ts";
import {
  GQA_VARLEN_P8,
  H200_D128_MMA_SPEC,
  runEmulated,
  TILE_2X1X16,
  TILE_8X2X32,
} from "./_testing.ts";

const SEED = Number(Deno.env.get("PP_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
let caseNo = 0;

const FUSED: MmaOptions = { tile: TILE_2X1X16, fusedAppend: true, pipelined: false };

Deno.test("emulated mma with the fused append writes every new row bit-exactly in one pass: f16, GQA, varlen with an empty request", async () => {
  const { key, passes } = await runEmulated(
    { ...GQA_VARLEN_P8, cacheDtype: "f16", seed: SEED + caseNo++ },
    FUSED,
  );
  assert.match(key, /_fa(_|$)/);
  assert.deepEqual(passes.filter((p) => p.startsWith("paged_append")), []);
});

Deno.test("emulated mma with the fused append: bf16 q and cache, split-KV, page size 4, 4-byte staging units", async () => {
  const { key, passes } = await runEmulated({
    qDtype: "bf16",
    cacheDtype: "bf16",
    qLens: [3, 7],
    cacheLens: [150, 41],
    heads: 8,
    kvHeads: 2,
    headDim: 32,
    pageSize: 4,
    seed: SEED + caseNo++,
  }, { ...FUSED, narrowStaging: true, targetItems: 64, minSplitTiles: 2 });
  assert.match(key, /_split_.*_nw_.*_fa/);
  assert.equal(passes.filter((p) => p.startsWith("paged_append")).length, 0);
});

Deno.test("the fused append is not applied over an fp8 cache: the append keeps its own pass and the pools stay right", async () => {
  const { key, passes } = await runEmulated(
    { ...GQA_VARLEN_P8, cacheDtype: "fp8_e4m3", seed: SEED + caseNo++ },
    FUSED,
  );
  assert.doesNotMatch(key, /_fa/);
  assert.equal(passes.filter((p) => p.startsWith("paged_append")).length, 1);
});

Deno.test("mma specs refuse the fused append with directKV or a 1-byte cache, naming them", () => {
  const spec = { ...H200_D128_MMA_SPEC, fusedAppend: true };
  assert.equal(mmaSpecProblem(spec), null);
  assert.match(mmaSpecProblem({ ...spec, directKV: true }) ?? "", /directKV/);
  assert.match(mmaSpecProblem({ ...spec, cacheDtype: "int8" }) ?? "", /int8/);
});

Deno.test("the fused append binds the pools read_write and writes them only past the last item", () => {
  const spec = { ...H200_D128_MMA_SPEC, ...TILE_8X2X32, fusedAppend: true };
  assert.deepEqual(mmaBindings(spec).slice(4, 6), ["read_write", "read_write"]);
  assert.deepEqual(mmaBindings(H200_D128_MMA_SPEC).slice(4, 6), ["read", "read"]);
  const code = mmaWgsl(spec);
  assert.match(code, /var<storage, read_write> k_pages/);
  const writes = [...code.matchAll(/k_pages\[[^\]]+\] = /g)].map((m) => m.index!);
  assert.equal(writes.length, 1);
  // The only write sits inside the branch taken by workgroups with no item.
  assert.ok(writes[0]! > code.indexOf("if (item >= params.n_items)"));
  assert.ok(writes[0]! < code.indexOf("let it0 = items["));
  assert.doesNotMatch(mmaWgsl(H200_D128_MMA_SPEC), /k_pages\[[^\]]+\] = /);
});

Deno.test("the fused append is off by default until verified over every manifest case", () => {
  assert.equal(MMA_FUSED_APPEND, false);
});
