import assert from "node:assert/strict";

Deno.test("deno task compile without a denort binary fails with one line naming DENORT_BIN", async () => {
  const env = { ...Deno.env.toObject() };
  delete env.DENORT_BIN;
  const dir = await Deno.makeTempDir(); // an empty DENO_DIR: no cached denort either
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./compile.ts", import.meta.url).pathname],
    env: { ...env, DENO_DIR: dir, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  const err = new TextDecoder().decode(stderr).trim().split("\n").filter((l) => l.trim() !== "");
  assert.notEqual(code, 0, new TextDecoder().decode(stdout));
  assert.equal(err.length, 1, err.join("\n"));
  assert.match(err[0]!, /DENORT_BIN/);
});
