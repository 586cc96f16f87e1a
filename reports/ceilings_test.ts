import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { acquireGpu } from "../kernels/gpu.ts";
import {
  ceilingLines,
  CEILINGS_VERSION,
  ceilingsCacheKey,
  ceilingsCachePath,
  datasheetFor,
  loadCachedCeilings,
  measureCeilings,
} from "./ceilings.ts";

Deno.test("datasheetFor() recognises H100 SXM and H200 by adapter name, with a source", () => {
  const h100 = datasheetFor("NVIDIA H100 80GB HBM3");
  assert.equal(h100?.name, "NVIDIA H100 SXM");
  assert.equal(h100?.bandwidthBytesPerSecond, 3.35e12);
  assert.equal(h100?.f32FlopsPerSecond, 67e12);
  assert.equal(h100?.matrixFlopsPerSecond, 989e12);
  assert.match(h100!.source, /datasheet/);
  const h200 = datasheetFor("NVIDIA H200");
  assert.equal(h200?.bandwidthBytesPerSecond, 4.8e12);
  assert.equal(h200?.f32FlopsPerSecond, 67e12);
  assert.equal(h200?.matrixFlopsPerSecond, 989e12);
  // Other parts have other figures: not matched rather than wrong.
  assert.equal(datasheetFor("NVIDIA H100 PCIe"), null);
  assert.equal(datasheetFor("NVIDIA H200 NVL"), null);
  assert.equal(datasheetFor("llvmpipe (LLVM 15.0.6, 256 bits)"), null);
});

Deno.test("ceilingLines() lists measured ceilings then datasheet ones", () => {
  const lines = ceilingLines(null, datasheetFor("NVIDIA H200"));
  assert.deepEqual(lines.map((l) => `${l.id}/${l.kind}/${l.source}`), [
    "bandwidth/bandwidth/datasheet",
    "f32/compute/datasheet",
    "matrix/compute/datasheet",
  ]);
  assert.deepEqual(ceilingLines(null, null), []);
});

Deno.test("ceilingsCachePath() prefers XDG_CACHE_HOME, then ~/.cache", () => {
  const saved = Deno.env.get("XDG_CACHE_HOME");
  try {
    Deno.env.set("XDG_CACHE_HOME", "/x/cache");
    assert.equal(ceilingsCachePath(), "/x/cache/paged-prefill/ceilings.json");
    Deno.env.delete("XDG_CACHE_HOME");
    const home = Deno.env.get("HOME");
    if (home) assert.equal(ceilingsCachePath(), `${home}/.cache/paged-prefill/ceilings.json`);
  } finally {
    if (saved === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", saved);
  }
});

Deno.test("measureCeilings() measures every form, keeps the best, and caches per adapter", async () => {
  const gpu = await acquireGpu();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "pp-ceilings-"));
  const cachePath = path.join(dir, "ceilings.json");
  try {
    const progress: string[] = [];
    // Tiny runs: 1 ms target, 3 samples.
    const options = {
      quick: true,
      targetMs: 1,
      cachePath,
      onProgress: (m: string) => progress.push(m),
    };
    const c = await measureCeilings(gpu, options);
    assert.equal(c.version, CEILINGS_VERSION);
    assert.equal(c.adapter, gpu.adapterName);
    assert.equal(c.key, ceilingsCacheKey(gpu));
    assert.equal(c.quick, true);
    assert.equal(c.timing, gpu.hasTimestamps ? "timestamp" : "wall");

    const names = c.bandwidth.forms.map((f) => f.name);
    assert.deepEqual(names, ["copy-shader-vec4-wg256", "copyBufferToBuffer"]);
    const f32Names = c.f32.forms.map((f) => f.name);
    for (
      const n of [
        "fma-vec4-rolled-wg256",
        "fma-vec4-unroll16-wg256",
        "muladd-vec4-unroll16-wg256",
        "fma-scalar-unroll16-wg256",
        "fma-vec4-unroll16-wg64",
      ]
    ) assert.ok(f32Names.includes(n), n);
    for (const forms of [c.bandwidth.forms, c.f32.forms, c.f16?.forms ?? []]) {
      for (const f of forms) {
        assert.equal(f.error, undefined, `${f.name}: ${f.error}`);
        assert.ok(f.value > 0 && f.bestMs > 0 && f.work > 0, f.name);
        assert.ok(f.value >= f.medianValue, f.name);
      }
    }
    // The ceiling is the best form.
    assert.equal(c.bandwidth.bytesPerSecond, Math.max(...c.bandwidth.forms.map((f) => f.value)));
    assert.equal(
      c.bandwidth.method,
      c.bandwidth.forms.find((f) => f.value === c.bandwidth.bytesPerSecond)!.name,
    );
    assert.equal(c.f32.flopsPerSecond, Math.max(...c.f32.forms.map((f) => f.value)));
    assert.equal(c.f16 !== undefined, gpu.hasF16);
    if (c.f16) assert.ok(c.f16.forms.every((f) => f.name.includes("vec4h")));
    assert.equal(
      progress.length,
      c.bandwidth.forms.length + c.f32.forms.length + (c.f16?.forms.length ?? 0),
    );
    assert.match(progress[0]!, /^bandwidth copy-shader-vec4-wg256: [\d.]+ GB\/s/);

    // Cached: loaded as is, and returned by the next call without measuring.
    const cached = await loadCachedCeilings(gpu, { cachePath });
    assert.deepEqual(cached, c);
    assert.equal(await loadCachedCeilings(gpu, { cachePath, acceptQuick: false }), null);
    const again = await measureCeilings(gpu, {
      ...options,
      onProgress: () => assert.fail("measured"),
    });
    assert.equal(again.measuredAt, c.measuredAt);

    // Another microbenchmark version is measured again; a corrupt cache reads as empty.
    const file = JSON.parse(await fs.readFile(cachePath, "utf8"));
    file.entries[c.key].version = CEILINGS_VERSION + 1;
    await fs.writeFile(cachePath, JSON.stringify(file));
    assert.equal(await loadCachedCeilings(gpu, { cachePath }), null);
    await fs.writeFile(cachePath, "{ corrupt");
    assert.equal(await loadCachedCeilings(gpu, { cachePath }), null);
  } finally {
    await fs.rm(dir, { recursive: true });
    gpu.destroy();
  }
});

Deno.test("measureCeilings() with refresh measures again and with cachePath null writes nothing", async () => {
  const gpu = await acquireGpu();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "pp-ceilings-"));
  const cachePath = path.join(dir, "ceilings.json");
  try {
    const first = await measureCeilings(gpu, { quick: true, targetMs: 0.5, cachePath });
    await new Promise((r) => setTimeout(r, 5));
    const second = await measureCeilings(gpu, {
      quick: true,
      targetMs: 0.5,
      cachePath,
      refresh: true,
    });
    assert.notEqual(second.measuredAt, first.measuredAt);
    assert.equal((await loadCachedCeilings(gpu, { cachePath }))?.measuredAt, second.measuredAt);
    await fs.rm(cachePath);
    await measureCeilings(gpu, { quick: true, targetMs: 0.5, cachePath: null });
    await assert.rejects(() => fs.stat(cachePath));
  } finally {
    await fs.rm(dir, { recursive: true });
    gpu.destroy();
  }
});
