import assert from "node:assert/strict";
import { join } from "node:path";
import { readCase } from "../io/case_file.ts";
import { validateProblem } from "../op/validate.ts";
import { main } from "./make_case.ts";

const SMALL = [
  "--batch",
  "2",
  "--heads",
  "4",
  "--heads-kv",
  "2",
  "--head-dim",
  "8",
  "--q-len",
  "5,3",
];

Deno.test("make_case writes a valid case file with expected results that readCase() reads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "case.safetensors");
    const args = [...SMALL, "--cache-len", "7,20", "--page-size", "4", "--cache-dtype", "fp8"];
    assert.equal(
      await main(["--out", out, "--seed", "11", "--q-dtype", "bf16", ...args, "--with-expected"]),
      0,
    );
    const c = await readCase(out);
    const problem = validateProblem(c.inputs, c.params);
    assert.deepEqual(
      [problem.qDtype, problem.cacheDtype, problem.batch, problem.totalQ, problem.pageSize],
      ["bf16", "fp8_e4m3", 2, 8, 4],
    );
    assert.deepEqual(c.expected.o?.shape, [8, 4, 8]);
    assert.equal(c.expected.o?.dtype, "bf16");
    assert.equal(c.expected.kPages?.dtype, "f8_e4m3");
    assert.equal(c.metadata.seed, "11");
    // The same seed reproduces the same bytes.
    const again = join(dir, "again.safetensors");
    assert.equal(
      await main(["--out", again, "--seed", "11", "--q-dtype", "bf16", ...args, "--with-expected"]),
      0,
    );
    assert.deepEqual(await Deno.readFile(again), await Deno.readFile(out));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("make_case leaves expected results out unless asked and honours --no-causal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "case.safetensors");
    assert.equal(await main(["--out", out, ...SMALL, "--no-causal", "--softcap", "20"]), 0);
    const c = await readCase(out);
    assert.deepEqual(c.expected, {});
    assert.deepEqual(c.params, { pageSize: 16, isCausal: false, softcap: 20 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("make_case exits 2 and writes nothing on bad usage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "case.safetensors");
    for (
      const args of [
        [],
        ["--out", out, "--bogus"],
        ["--out", out, "--q-dtype", "f32"],
        ["--out", out, "--page-size", "48"],
        ["--out", out, "--batch", "two"],
      ]
    ) {
      assert.equal(await main(args), 2, args.join(" "));
    }
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
