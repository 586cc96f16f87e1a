import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

async function run(cmd: string, args: string[], cwd: string) {
  const { code, stdout, stderr } = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

// Issue: users run the suite in CI as one binary. Bun compiles the CLI with Dawn's addon
// embedded; the binary must work from a folder that holds nothing else.
Deno.test("the standalone executable passes verify --page-size 16 and bench on Dawn from an empty folder", async () => {
  const build = await Deno.makeTempDir({ prefix: "pp-build-" });
  const alone = await Deno.makeTempDir({ prefix: "pp-alone-" });
  try {
    const install = await run(Deno.execPath(), ["install"], ROOT);
    assert.equal(install.code, 0, install.stderr);
    const binary = `${build}/paged-prefill-standalone`;
    const built = await run(
      Deno.execPath(),
      ["run", "-A", "tools/build_standalone.ts", "--output", binary],
      ROOT,
    );
    assert.equal(built.code, 0, built.stdout + built.stderr);
    await Deno.copyFile(binary, `${alone}/paged-prefill-standalone`);
    await Deno.chmod(`${alone}/paged-prefill-standalone`, 0o755);
    const exe = `${alone}/paged-prefill-standalone`;

    const info = await run(exe, ["info"], alone);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /implementation\s+dawn/);

    const verify = await run(exe, ["verify", "--page-size", "16"], alone);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /^\d+ passed, 0 failed$/m);
    assert.doesNotMatch(verify.stdout, /FAIL/);

    const bench = await run(
      exe,
      ["bench", "--iters", "2", "--warmup", "1", "--json", "r.json"],
      alone,
    );
    assert.equal(bench.code, 0, bench.stdout + bench.stderr);
    const report = JSON.parse(await Deno.readTextFile(`${alone}/r.json`));
    assert.equal(report.environment.backend, "dawn");
    assert.ok(report.results.length > 0);
    assert.ok(report.results.every((r: { correctness: { ok: boolean } }) => r.correctness.ok));
    assert.deepEqual([...Deno.readDirSync(alone)].map((e) => e.name).sort(), [
      "paged-prefill-standalone",
      "r.json",
    ]);
  } finally {
    await Deno.remove(build, { recursive: true });
    await Deno.remove(alone, { recursive: true });
  }
});
