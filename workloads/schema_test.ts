import assert from "node:assert/strict";
import {
  formatPath,
  ManifestError,
  ManifestSchema,
  resolveLengths,
  rowIssues,
  validateManifest,
  WorkloadRowSchema,
} from "./schema.ts";
import { parseManifest } from "./loader.ts";

function randInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/** A valid random row (page 16, lengths that fit). */
function goodRow(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const batch = randInt(1, 4);
  const qLens = Array.from({ length: batch }, () => randInt(1, 200));
  const cacheLens = Array.from({ length: batch }, () => randInt(1, 900));
  const most = Math.max(...qLens.map((q, b) => q + cacheLens[b]!));
  return {
    label: `row-${randInt(1, 1e9)}`,
    dtypes: ["f16", "bf16"],
    batch,
    q_lens: qLens,
    cache_lens: cacheLens,
    heads: 8,
    heads_kv: 2,
    head_dim: 64,
    page_size: 16,
    max_pages_per_req: Math.ceil(most / 16) + randInt(0, 3),
    ...extra,
  };
}

function manifestWith(rows: unknown[]): unknown {
  return { version: 1, ops: [{ op: "paged_prefill_gqa", description: "test", workloads: rows }] };
}

/** Asserts that `rows[index]` (among valid rows) is rejected at `path` with `message`. */
function rejectsRow(bad: Record<string, unknown>, path: string, message: string): void {
  const rows = [goodRow(), goodRow(), bad];
  assert.throws(
    () => validateManifest(manifestWith(rows), "test.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError, String(e));
      assert.ok(e instanceof SyntaxError);
      assert.equal(e.file, "test.yaml");
      assert.equal(e.path, `ops[0].workloads[2].${path}`);
      assert.equal(
        e.message,
        `Invalid workload manifest test.yaml: ops[0].workloads[2].${path}: ${message}`,
      );
      return true;
    },
  );
}

Deno.test("ManifestSchema accepts valid rows and fills the documented defaults", () => {
  const m = validateManifest(
    manifestWith([goodRow(), goodRow({ q_lens: 7, cache_lens: 9 })]),
    "m.yaml",
  );
  const row = m.ops[0]!.workloads[1]!;
  assert.equal(row.cache_dtype, "same");
  assert.equal(row.is_causal, true);
  assert.equal(row.softcap, null);
  assert.equal(row.sm_scale, null);
  assert.equal(row.page_order, "contiguous");
  assert.deepEqual(row.tags, []);
  assert.equal(row.notes, undefined);
  assert.equal(row.verify_rows, undefined);
});

Deno.test("ManifestSchema keeps every optional field given", () => {
  const m = ManifestSchema.parse(manifestWith([goodRow({
    cache_dtype: "int8",
    is_causal: false,
    softcap: 50,
    sm_scale: 0.125,
    page_order: "shared-prefix",
    notes: "n",
    tags: ["default", "decode"],
    verify_rows: 16,
  })]));
  const row = m.ops[0]!.workloads[0]!;
  assert.deepEqual(
    [
      row.cache_dtype,
      row.is_causal,
      row.softcap,
      row.sm_scale,
      row.page_order,
      row.notes,
      row.tags,
      row.verify_rows,
    ],
    ["int8", false, 50, 0.125, "shared-prefix", "n", ["default", "decode"], 16],
  );
});

Deno.test("the manifest rejects a page_size that is not a power of two, naming the path", () => {
  rejectsRow(
    goodRow({ page_size: 48, max_pages_per_req: 1000 }),
    "page_size",
    "must be a power of two, got 48",
  );
});

Deno.test("the manifest rejects q_lens whose length differs from batch", () => {
  rejectsRow(
    goodRow({ batch: 3, q_lens: [1, 2], cache_lens: 5, max_pages_per_req: 9 }),
    "q_lens",
    "has 2 entries but batch is 3",
  );
});

Deno.test("the manifest rejects cache_lens whose length differs from batch", () => {
  rejectsRow(
    goodRow({ batch: 1, q_lens: 4, cache_lens: [5, 6], max_pages_per_req: 9 }),
    "cache_lens",
    "has 2 entries but batch is 1",
  );
});

Deno.test("the manifest rejects heads_kv that does not divide heads", () => {
  rejectsRow(goodRow({ heads: 12, heads_kv: 8 }), "heads_kv", "must divide heads 12, got 8");
});

Deno.test("the manifest rejects an unsupported head_dim", () => {
  rejectsRow(
    goodRow({ head_dim: 130 }),
    "head_dim",
    "must be a multiple of 4 in [4, 256], got 130",
  );
});

Deno.test("the manifest rejects a request that overflows max_pages_per_req * page_size", () => {
  rejectsRow(
    goodRow({
      batch: 2,
      q_lens: [512, 512],
      cache_lens: [4096, 4097],
      page_size: 64,
      max_pages_per_req: 72,
    }),
    "max_pages_per_req",
    "holds 72 pages * page_size 64 = 4608 slots but request 1 needs 4609 (cache_len 4097 + q_len 512)",
  );
});

Deno.test("the manifest rejects a q dtype listed twice", () => {
  rejectsRow(goodRow({ dtypes: ["bf16", "bf16"] }), "dtypes[1]", "lists bf16 twice");
});

Deno.test("the manifest rejects an unknown field, naming it", () => {
  rejectsRow(goodRow({ page_sizes: 16 }), "page_sizes", "is not a known field");
});

Deno.test("the manifest rejects a field of the wrong type", () => {
  rejectsRow(goodRow({ batch: "2" }), "batch", "must be a number");
  rejectsRow(goodRow({ is_causal: "yes" }), "is_causal", "must be true or false");
  rejectsRow(goodRow({ q_lens: "64" }), "q_lens", "must be an integer >= 0 or a list of them");
});

Deno.test("the manifest rejects out-of-range numbers", () => {
  rejectsRow(goodRow({ heads: 0 }), "heads", "must be >= 1");
  rejectsRow(goodRow({ page_size: 16.5 }), "page_size", "must be an integer");
  rejectsRow(goodRow({ softcap: -1 }), "softcap", "must be >= 0");
  rejectsRow(goodRow({ sm_scale: 0 }), "sm_scale", "must be > 0");
  rejectsRow(goodRow({ verify_rows: 0 }), "verify_rows", "must be >= 1");
});

Deno.test("the manifest rejects unknown enum values", () => {
  rejectsRow(goodRow({ dtypes: ["f32"] }), "dtypes[0]", "must be f16 or bf16");
  rejectsRow(goodRow({ cache_dtype: "fp8" }), "cache_dtype", "must be same, fp8_e4m3 or int8");
  rejectsRow(
    goodRow({ page_order: "random" }),
    "page_order",
    "must be contiguous, permuted or shared-prefix",
  );
});

Deno.test("the manifest rejects labels with spaces or slashes and bad tags", () => {
  rejectsRow(
    goodRow({ label: "a/b" }),
    "label",
    "must be letters, digits and . _ + - (no spaces or slashes)",
  );
  rejectsRow(goodRow({ tags: ["Default"] }), "tags[0]", "must be lowercase letters, digits and -");
});

Deno.test("the manifest rejects a label used twice, naming the first use", () => {
  const a = goodRow({ label: "twice" }), b = goodRow({ label: "twice" });
  assert.throws(
    () => validateManifest(manifestWith([a, goodRow(), b]), "dup.json"),
    new ManifestError("dup.json", [{
      path: "ops[0].workloads[2].label",
      message: "duplicates twice of ops[0].workloads[0]",
    }]),
  );
});

Deno.test("the manifest rejects an unsupported version and a wrong op", () => {
  assert.throws(
    () => validateManifest({ version: 2, ops: [] }, "v.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.path, "version");
      assert.equal(
        e.message,
        "Invalid workload manifest v.yaml: version: must be 1 (the supported version), got 2 (and 1 more)",
      );
      assert.equal(e.issues[1]!.path, "ops");
      return true;
    },
  );
  const bad = manifestWith([goodRow()]) as { ops: Array<Record<string, unknown>> };
  bad.ops[0]!.op = "decode";
  assert.throws(
    () => validateManifest(bad, "op.yaml"),
    (e: unknown) =>
      e instanceof ManifestError &&
      e.message === "Invalid workload manifest op.yaml: ops[0].op: must be paged_prefill_gqa",
  );
});

Deno.test("the manifest rejects an op without workloads", () => {
  assert.throws(
    () => validateManifest(manifestWith([]), "empty.yaml"),
    (e: unknown) =>
      e instanceof ManifestError && e.path === "ops[0].workloads" &&
      e.message ===
        "Invalid workload manifest empty.yaml: ops[0].workloads: must list at least one workload",
  );
});

Deno.test("ManifestError reports every issue and the line of the first", () => {
  const text = [
    "version: 1",
    "ops:",
    "  - op: paged_prefill_gqa",
    "    description: d",
    "    workloads:",
    "      - label: a",
    "        dtypes: [f16]",
    "        batch: 1",
    "        q_lens: 3",
    "        cache_lens: 5",
    "        heads: 8",
    "        heads_kv: 3",
    "        head_dim: 64",
    "        page_size: 24",
    "        max_pages_per_req: 2",
  ].join("\n");
  assert.throws(
    () => parseManifest(text, "lines.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.line, 12);
      assert.equal(e.path, "ops[0].workloads[0].heads_kv");
      assert.equal(
        e.message,
        "Invalid workload manifest lines.yaml:12: ops[0].workloads[0].heads_kv: must divide heads 8, got 3 (and 1 more)",
      );
      assert.deepEqual(e.issues[1], {
        path: "ops[0].workloads[0].page_size",
        line: 14,
        message: "must be a power of two, got 24",
      });
      return true;
    },
  );
});

Deno.test("parseManifest() reports YAML syntax errors as a ManifestError with the line", () => {
  assert.throws(
    () => parseManifest("version: 1\nops:\n  - op: [unclosed\n", "broken.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.path, "");
      assert.ok(e.line !== undefined && e.line >= 3, `line ${e.line}`);
      assert.match(e.message, /^Invalid workload manifest broken\.yaml:\d+: \S/);
      assert.ok(!e.message.includes("\n"));
      return true;
    },
  );
});

Deno.test("parseManifest() rejects duplicate keys in a mapping", () => {
  assert.throws(
    () => parseManifest("version: 1\nversion: 1\nops: []\n", "dupkey.yaml"),
    (e: unknown) =>
      e instanceof ManifestError && e.file === "dupkey.yaml" && /unique/i.test(e.message),
  );
});

Deno.test("rowIssues() finds every cross-field problem of a row at once", () => {
  const row = WorkloadRowSchema.parse(goodRow({ page_size: 16 }));
  assert.deepEqual(rowIssues(row), []);
  const bad = { ...row, heads: 9, heads_kv: 2, head_dim: 66, page_size: 12 };
  assert.deepEqual(rowIssues(bad).map((i) => i.path[0]), ["heads_kv", "head_dim", "page_size"]);
});

Deno.test("resolveLengths() repeats a number per request and copies a list", () => {
  const n = randInt(1, 1000), b = randInt(1, 9);
  assert.deepEqual(resolveLengths(n, b), new Array(b).fill(n));
  const list = [randInt(0, 9), randInt(0, 9)];
  const copy = resolveLengths(list, 2);
  assert.deepEqual(copy, list);
  assert.notEqual(copy, list);
});

Deno.test("formatPath() writes indices in brackets and keys with dots", () => {
  assert.equal(formatPath([]), "");
  assert.equal(formatPath(["version"]), "version");
  assert.equal(formatPath(["ops", 0, "workloads", 12, "tags", 1]), "ops[0].workloads[12].tags[1]");
});
