import assert from "node:assert/strict";
import {
  adHocCase,
  DEFAULT_MANIFEST_URL,
  EMBEDDED_MANIFEST_NAME,
  expandCases,
  loadManifest,
  matchesFilter,
  parseManifest,
  type WorkloadCase,
} from "./loader.ts";
import { ManifestError } from "./schema.ts";
import { EMBEDDED_MANIFEST_YAML } from "./manifest_embedded.ts";

const manifest = loadManifest();
const all = expandCases(manifest);
const byId = new Map(all.map((c) => [c.id, c]));

function get(id: string): WorkloadCase {
  const c = byId.get(id);
  assert.ok(c, `missing case ${id}`);
  return c;
}

function shapeOf(c: WorkloadCase) {
  return {
    batch: c.batch,
    qLens: c.qLens,
    cacheLens: c.cacheLens,
    heads: c.numHeads,
    kv: c.numKvHeads,
    d: c.headDim,
    page: c.pageSize,
    maxPages: c.maxPagesPerReq,
    causal: c.isCausal,
    softcap: c.softcap,
  };
}

Deno.test("the embedded manifest is the text of workloads/manifest.yaml", () => {
  assert.equal(
    EMBEDDED_MANIFEST_YAML,
    Deno.readTextFileSync(DEFAULT_MANIFEST_URL),
    "run: deno run -A workloads/embed_manifest.ts",
  );
});

Deno.test("the embedded manifest parses to the same manifest as the file", () => {
  assert.deepEqual(parseManifest(EMBEDDED_MANIFEST_YAML, EMBEDDED_MANIFEST_NAME), manifest);
});

Deno.test("loadManifest() reads the default manifest and expandCases() makes unique case ids", () => {
  assert.equal(manifest.version, 1);
  assert.equal(manifest.ops[0]!.op, "paged_prefill_gqa");
  assert.ok(all.length >= 60, `only ${all.length} cases`);
  assert.equal(byId.size, all.length);
  for (const c of all) assert.equal(c.id, `${c.label}/${c.qDtype}`);
});

Deno.test("the manifest holds the seed workload with f16, bf16, fp8 and int8 caches", () => {
  const seed = "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new";
  const shape = {
    batch: 1,
    qLens: [512],
    cacheLens: [72 * 64 - 512],
    heads: 32,
    kv: 8,
    d: 128,
    page: 64,
    maxPages: 72,
    causal: true,
    softcap: null,
  };
  for (const q of ["f16", "bf16"] as const) {
    assert.deepEqual(shapeOf(get(`${seed}/${q}`)), shape);
    assert.equal(get(`${seed}/${q}`).cacheDtype, q);
    assert.equal(get(`${seed}-fp8/${q}`).cacheDtype, "fp8_e4m3");
    assert.equal(get(`${seed}-int8/${q}`).cacheDtype, "int8");
    assert.deepEqual(shapeOf(get(`${seed}-int8/${q}`)), shape);
  }
});

Deno.test("the manifest holds the TileOps H200 paged rows with fp8 and int8 variants", () => {
  const rows: Record<string, ReturnType<typeof shapeOf>> = {
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64": {
      batch: 8,
      qLens: new Array(8).fill(512),
      cacheLens: new Array(8).fill(4096),
      heads: 32,
      kv: 8,
      d: 128,
      page: 64,
      maxPages: 72,
      causal: true,
      softcap: null,
    },
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64": {
      batch: 4,
      qLens: new Array(4).fill(512),
      cacheLens: new Array(4).fill(4096),
      heads: 8,
      kv: 2,
      d: 64,
      page: 64,
      maxPages: 72,
      causal: true,
      softcap: 50,
    },
    "qwen35-9b-prefill-paged-b8-prefix32k-chunk1k-p64": {
      batch: 8,
      qLens: new Array(8).fill(1024),
      cacheLens: new Array(8).fill(32768),
      heads: 32,
      kv: 8,
      d: 256,
      page: 64,
      maxPages: 528,
      causal: true,
      softcap: null,
    },
    "qwen35-9b-prefill-paged-mixed-b8-p64": {
      batch: 8,
      qLens: [256, 512, 768, 1024, 384, 640, 896, 128],
      cacheLens: [4096, 8192, 16384, 32768, 12288, 24576, 30720, 2048],
      heads: 32,
      kv: 8,
      d: 256,
      page: 64,
      maxPages: 528,
      causal: true,
      softcap: null,
    },
  };
  for (const [label, shape] of Object.entries(rows)) {
    for (const [suffix, cache] of [["", "f16"], ["-fp8", "fp8_e4m3"], ["-int8", "int8"]]) {
      const c = get(`${label}${suffix}/f16`);
      assert.deepEqual(shapeOf(c), shape, label + suffix);
      assert.equal(c.cacheDtype, cache);
      assert.ok(byId.has(`${label}${suffix}/bf16`));
    }
  }
});

Deno.test("the manifest sweeps page sizes 16..256 and page orders on the llama shape", () => {
  const sweep = expandCases(manifest, {
    label: "llama-3.1-8b-prefill-paged-pg*-4k-old-512-new",
    qDtype: "f16",
  });
  assert.deepEqual(sweep.map((c) => c.pageSize).sort((a, b) => a - b), [16, 32, 64, 128, 256]);
  for (const c of sweep) {
    assert.equal(c.maxPagesPerReq, Math.ceil(4608 / c.pageSize));
    assert.deepEqual([c.batch, c.qLens[0], c.cacheLens[0], c.numHeads, c.numKvHeads, c.headDim], [
      1,
      512,
      4096,
      32,
      8,
      128,
    ]);
  }
  const orders = new Set(expandCases(manifest, { tag: "page-order" }).map((c) => c.pageOrder));
  assert.deepEqual([...orders].sort(), ["contiguous", "permuted", "shared-prefix"]);
});

Deno.test("the manifest has decode-like, varlen-with-empty, MHA, MQA and non-causal rows", () => {
  const decode = expandCases(manifest, { tag: "decode" });
  assert.ok(decode.some((c) => c.qLens.every((q) => q === 1)));
  assert.ok(decode.some((c) => c.qLens.every((q) => q === 16)));
  assert.ok(
    decode.every((c) => c.qLens.every((q) => q <= 16) && Math.max(...c.cacheLens) >= 30000),
  );
  assert.ok(
    all.some((c) => c.tags.includes("varlen") && c.qLens.includes(0) && new Set(c.qLens).size > 2),
  );
  assert.ok(all.some((c) => c.numHeads === c.numKvHeads && c.numHeads > 1));
  assert.ok(all.some((c) => c.numKvHeads === 1 && c.numHeads > 1));
  assert.ok(all.some((c) => !c.isCausal));
});

Deno.test("the default set is small, tagged default and covers fp8 and int8 caches", () => {
  const defaults = expandCases(manifest, { tag: "default" });
  assert.ok(defaults.length >= 4 && defaults.length <= 12, `${defaults.length} default cases`);
  const caches = new Set(defaults.map((c) => c.cacheDtype));
  assert.ok(
    caches.has("fp8_e4m3") && caches.has("int8") && (caches.has("f16") || caches.has("bf16")),
  );
  for (const c of defaults) {
    const tokens = c.qLens.reduce((a, b) => a + b, 0);
    assert.ok(tokens <= 256 && Math.max(...c.cacheLens) <= 512, c.id);
  }
});

Deno.test("expandCases() filters by label substring, glob, exact id, tag, page size and dtypes", () => {
  const sub = expandCases(manifest, { label: "softcap50" });
  assert.ok(sub.length === 6 && sub.every((c) => c.label.includes("softcap50")));
  const glob = expandCases(manifest, { label: "qwen35-*-int8" });
  assert.deepEqual(glob.map((c) => c.id), [
    "qwen35-9b-prefill-paged-b8-prefix32k-chunk1k-p64-int8/f16",
    "qwen35-9b-prefill-paged-b8-prefix32k-chunk1k-p64-int8/bf16",
    "qwen35-9b-prefill-paged-mixed-b8-p64-int8/f16",
    "qwen35-9b-prefill-paged-mixed-b8-p64-int8/bf16",
  ]);
  assert.equal(
    expandCases(manifest, { label: "*/bf16" }).length,
    all.filter((c) => c.qDtype === "bf16").length,
  );
  const id = expandCases(manifest, {
    id: ["default-gqa-b2-d64-p16/bf16", "mqa-prefill-paged-b2-h16kv1-d128-p32"],
  });
  assert.deepEqual(id.map((c) => c.id), [
    "default-gqa-b2-d64-p16/bf16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32/f16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32/bf16",
  ]);
  assert.ok(expandCases(manifest, { pageSize: 256 }).every((c) => c.pageSize === 256));
  assert.ok(expandCases(manifest, { pageSize: [16, 32] }).every((c) => c.pageSize <= 32));
  const fp8 = expandCases(manifest, { cacheDtype: "fp8" });
  assert.ok(fp8.length > 0 && fp8.every((c) => c.cacheDtype === "fp8_e4m3"));
  const same = expandCases(manifest, { cacheDtype: "same", qDtype: "bf16" });
  assert.ok(same.length > 0 && same.every((c) => c.cacheDtype === "bf16"));
  const both = expandCases(manifest, { tag: ["mha", "mqa"], cacheDtype: ["int8", "fp8_e4m3"] });
  assert.ok(both.length > 0 && both.every((c) => c.cacheDtype === "fp8_e4m3"));
  assert.deepEqual(expandCases(manifest, { label: "no-such-row" }), []);
});

Deno.test("matchesFilter() with an empty filter keeps every case", () => {
  assert.ok(all.every((c) => matchesFilter(c) && matchesFilter(c, {})));
});

Deno.test("loadManifest() reads a JSON manifest file and names it in errors", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/m.json`;
    const row = {
      label: "json-row",
      dtypes: ["bf16"],
      batch: 2,
      q_lens: [3, 1 + Math.floor(Math.random() * 9)],
      cache_lens: 17,
      heads: 4,
      heads_kv: 1,
      head_dim: 32,
      page_size: 8,
      max_pages_per_req: 4,
    };
    const doc = {
      version: 1,
      ops: [{ op: "paged_prefill_gqa", description: "j", workloads: [row] }],
    };
    Deno.writeTextFileSync(path, JSON.stringify(doc, null, 2));
    const cases = expandCases(loadManifest(path));
    assert.deepEqual(cases.map((c) => [c.id, c.cacheDtype, c.qLens]), [[
      "json-row/bf16",
      "bf16",
      row.q_lens,
    ]]);
    Deno.writeTextFileSync(path, JSON.stringify({ ...doc, version: "1" }, null, 2));
    assert.throws(
      () => loadManifest(path),
      (e: unknown) =>
        e instanceof ManifestError && e.file === path && e.line === 2 &&
        e.message ===
          `Invalid workload manifest ${path}:2: version: must be 1 (the supported version), got 1`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("loadManifest() rejects a document that is not a mapping", () => {
  assert.throws(
    () => parseManifest("- 1\n- 2\n", "list.yaml"),
    new ManifestError("list.yaml", [{ path: "", line: 1, message: "must be a mapping of fields" }]),
  );
});

Deno.test("loadManifest() throws NotFound for a missing file", () => {
  assert.throws(() => loadManifest("/nonexistent/manifest.yaml"), Deno.errors.NotFound);
});

Deno.test("adHocCase() has the documented defaults", () => {
  const c = adHocCase();
  assert.deepEqual(shapeOf(c), {
    batch: 2,
    qLens: [64, 64],
    cacheLens: [200, 200],
    heads: 8,
    kv: 2,
    d: 64,
    page: 16,
    maxPages: Math.ceil(264 / 16),
    causal: true,
    softcap: null,
  });
  assert.deepEqual([c.qDtype, c.cacheDtype, c.pageOrder, c.smScale, c.source], [
    "f16",
    "f16",
    "contiguous",
    null,
    "ad-hoc",
  ]);
  assert.equal(c.label, "adhoc-b2-h8-kv2-d64-q64-old200-p16-f16");
  assert.equal(c.id, `${c.label}/f16`);
});

Deno.test("adHocCase() takes every option and spells them in the label", () => {
  const c = adHocCase({
    batch: 3,
    heads: 16,
    headsKv: 4,
    headDim: 128,
    qLen: [5, 0, 9],
    cacheLen: [100, 7, 64],
    pageSize: 32,
    maxPagesPerReq: 9,
    causal: false,
    softcap: 30,
    smScale: 0.2,
    dtype: "bf16",
    cacheDtype: "int8",
    pageOrder: "shared-prefix",
  });
  assert.deepEqual(shapeOf(c), {
    batch: 3,
    qLens: [5, 0, 9],
    cacheLens: [100, 7, 64],
    heads: 16,
    kv: 4,
    d: 128,
    page: 32,
    maxPages: 9,
    causal: false,
    softcap: 30,
  });
  assert.deepEqual([c.qDtype, c.cacheDtype, c.smScale, c.pageOrder], [
    "bf16",
    "int8",
    0.2,
    "shared-prefix",
  ]);
  assert.equal(
    c.label,
    "adhoc-b3-h16-kv4-d128-q5_0_9-old100_7_64-p32-bf16-int8-noncausal-softcap30-shared-prefix",
  );
});

Deno.test("adHocCase() with varlen spreads the lengths over the batch", () => {
  const q = 40 + Math.floor(Math.random() * 200), old = 100 + Math.floor(Math.random() * 900);
  const c = adHocCase({ batch: 4, qLen: q, cacheLen: old, varlen: true });
  assert.deepEqual(c.qLens, [q, Math.round(q * 3 / 4), Math.round(q / 2), Math.round(q / 4)]);
  assert.deepEqual(c.cacheLens, [
    Math.round(old / 4),
    Math.round(old / 2),
    Math.round(old * 3 / 4),
    old,
  ]);
  assert.equal(
    c.maxPagesPerReq,
    Math.ceil(Math.max(...c.qLens.map((x, b) => x + c.cacheLens[b]!)) / 16),
  );
});

Deno.test("adHocCase() accepts fp8 and a 16-bit cache dtype equal to the q dtype", () => {
  assert.equal(adHocCase({ cacheDtype: "fp8" }).cacheDtype, "fp8_e4m3");
  assert.equal(adHocCase({ dtype: "bf16", cacheDtype: "bf16" }).cacheDtype, "bf16");
});

Deno.test("adHocCase() rejects inconsistent options naming the flag", () => {
  assert.throws(
    () => adHocCase({ pageSize: 48 }),
    new RangeError("Cannot build ad-hoc workload: --page-size must be a power of two, got 48"),
  );
  assert.throws(
    () => adHocCase({ heads: 6, headsKv: 4 }),
    new RangeError("Cannot build ad-hoc workload: --heads-kv must divide heads 6, got 4"),
  );
  assert.throws(
    () => adHocCase({ qLen: [1, 2, 3] }),
    new RangeError("Cannot build ad-hoc workload: --q-len has 3 entries but batch is 2"),
  );
  assert.throws(
    () => adHocCase({ cacheLen: 1000, maxPagesPerReq: 4 }),
    new RangeError(
      "Cannot build ad-hoc workload: --max-pages holds 4 pages * page_size 16 = 64 slots but request 0 needs 1064 (cache_len 1000 + q_len 64)",
    ),
  );
  assert.throws(
    () => adHocCase({ batch: 0 }),
    new RangeError("Cannot build ad-hoc workload: --batch must be >= 1 (got 0)"),
  );
  assert.throws(
    () => adHocCase({ headDim: 130 }),
    new RangeError(
      "Cannot build ad-hoc workload: --head-dim must be a multiple of 4 in [4, 256], got 130",
    ),
  );
  assert.throws(
    () => adHocCase({ softcap: -2 }),
    new RangeError("Cannot build ad-hoc workload: --softcap must be >= 0 (got -2)"),
  );
  assert.throws(
    () => adHocCase({ dtype: "f16", cacheDtype: "bf16" }),
    new RangeError(
      "Cannot build ad-hoc workload: --cache-dtype bf16 must equal --dtype f16 (a 16-bit cache has the q dtype)",
    ),
  );
});

Deno.test("adHocCase() rejects unknown enum values with a TypeError naming the flag", () => {
  assert.throws(
    () => adHocCase({ dtype: "f32" as "f16" }),
    new TypeError("Cannot build ad-hoc workload: --dtype must be f16 or bf16 (got f32)"),
  );
  assert.throws(
    () => adHocCase({ pageOrder: "random" as "permuted" }),
    new TypeError(
      'Cannot build ad-hoc workload: --page-order must be contiguous, permuted or shared-prefix (got "random")',
    ),
  );
});
