import assert from "node:assert/strict";
import { renderManifestList } from "./render_list.ts";
import { adHocCase, expandCases, loadManifest } from "./loader.ts";

Deno.test("renderManifestList() prints one aligned line per label with its q dtypes", () => {
  const cases = expandCases(loadManifest(), { tag: "default" });
  const text = renderManifestList(cases);
  const lines = text.trimEnd().split("\n");
  const labels = [...new Set(cases.map((c) => c.label))];
  assert.equal(lines.length, 2 + labels.length + 2);
  assert.match(
    lines[0]!,
    /^label\s+dtypes\s+cache\s+B\s+q_lens\s+cache_lens\s+H\/H_kv\s+D\s+page\s+order\s+tags$/,
  );
  assert.match(lines[1]!, /^-+( +-+){10}$/);
  const row = lines.find((l) => l.startsWith("default-gqa-b2-d64-p16 "))!;
  assert.match(
    row,
    /^default-gqa-b2-d64-p16\s+f16,bf16\s+same\s+2\s+64,128\s+512,256\s+8\/2\s+64\s+16\s+permuted\s+default$/,
  );
  const fp8 = lines.find((l) => l.startsWith("default-gqa-b2-d128-p16-fp8 "))!;
  assert.match(fp8, /\sfp8_e4m3\s/);
  assert.equal(lines.at(-1), `${labels.length} workloads, ${cases.length} cases (one per q dtype)`);
  const starts = lines.slice(2, 2 + labels.length).map((l) => l.search(/ (same|fp8_e4m3|int8) /));
  assert.equal(new Set(starts).size, 1, "the cache column is aligned");
});

Deno.test("renderManifestList() abbreviates uniform and long length lists", () => {
  const n = 3 + Math.floor(Math.random() * 5);
  const uniform = adHocCase({ batch: n, qLen: 512, cacheLen: 4096 });
  const long = adHocCase({ batch: 12, qLen: 100, cacheLen: 1000, varlen: true, label: "long" });
  const text = renderManifestList([uniform, long]);
  assert.ok(text.includes(`512 x${n}`) && text.includes(`4096 x${n}`));
  const line = text.split("\n").find((l) => l.startsWith("long "))!;
  assert.ok(line.includes(",..."), line);
  assert.ok(text.endsWith("2 workloads, 2 cases (one per q dtype)\n"));
});

Deno.test("renderManifestList() of no cases prints the header and a zero count", () => {
  const text = renderManifestList([]);
  assert.ok(text.startsWith("label"));
  assert.ok(text.endsWith("0 workloads, 0 cases (one per q dtype)\n"));
});
