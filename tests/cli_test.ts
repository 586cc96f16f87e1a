import assert from "node:assert/strict";
import { readSafetensors } from "../io/safetensors.ts";
import { writeCase } from "../io/case_file.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase } from "../workloads/loader.ts";

// Spawning the CLI: `deno run -A cli/main.ts ...` with NO_COLOR, capturing output.
/** What a CLI run printed and returned. */
interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;

/** Runs `paged-prefill ...args` as a child process. */
function runCli(...args: string[]): Promise<CliRun> {
  return runCliWithEnv({}, ...args);
}

/** Runs `paged-prefill ...args` as a child process with extra environment variables. */
function runCliWithEnv(extra: Record<string, string>, ...args: string[]): Promise<CliRun> {
  return runScript(MAIN, extra, ...args);
}

/**
 * Writes a one-op manifest with `description` and the YAML flow maps `workloads` (one per row)
 * to `dir`/m.yaml and returns its path.
 */
async function writeManifest(
  dir: string,
  description: string,
  workloads: readonly string[],
): Promise<string> {
  const path = `${dir}/m.yaml`;
  const rows = workloads.map((w) => `      - ${w}\n`).join("");
  await Deno.writeTextFile(
    path,
    `version: 1\nops:\n  - op: paged_prefill_gqa\n    description: ${description}\n    workloads:\n${rows}`,
  );
  return path;
}

const MERGE = new URL("../tools/merge_verify.ts", import.meta.url).pathname;

/** Runs `tools/merge_verify.ts ...args` as a child process. */
function runMerge(...args: string[]): Promise<CliRun> {
  return runScript(MERGE, {}, ...args);
}

/** Runs the Deno script `path` with `args` (NO_COLOR, extra environment), capturing output. */
async function runScript(
  path: string,
  extra: Record<string, string>,
  ...args: string[]
): Promise<CliRun> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path, ...args],
    env: {
      NO_COLOR: "1",
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      ...extra,
    },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

/** The stderr lines that start with `error:`. */
function errorLines(run: CliRun): string[] {
  return run.stderr.split("\n").filter((l) => l.startsWith("error:"));
}

Deno.test("every command prints its help to stdout with exit code 0", async () => {
  for (const command of ["verify", "bench", "run", "list", "info", "ceilings", "report"]) {
    const r = await runCli(command, "-h");
    assert.equal(r.code, 0, `${command} -h: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: paged-prefill ${command}`));
  }
  const top = await runCli("--help");
  assert.equal(top.code, 0);
  for (const command of ["verify", "bench", "run", "list", "info", "ceilings", "report"]) {
    assert.match(top.stdout, new RegExp(`\\b${command}\\b`));
  }
});

Deno.test("an unknown flag or command is rejected with exit code 2 and one error line", async () => {
  for (
    const args of [
      ["verify", "--bogus"],
      ["frobnicate"],
      ["verify", "--page-size", "abc"],
      ["verify", "--dtype", "f32"],
      ["bench", "--iters", "0"],
      ["verify", "extra-argument"],
    ]
  ) {
    const r = await runCli(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(errorLines(r).length, 1, `${args.join(" ")}: ${r.stderr}`);
  }
  const bad = await runCli("verify", "--page-size", "abc");
  assert.match(bad.stderr, /--page-size.*whole number.*"abc"/);
});

Deno.test("list prints every manifest row including the seed workload", async () => {
  const r = await runCli("list");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /llama-3\.1-8b-prefill-paged-pg64-4k-old-512-new/);
  assert.match(r.stdout, /qwen35-9b-prefill-paged-mixed-b8-p64/);
});

Deno.test("verify of an ad hoc problem on the software GPU passes and says so", async () => {
  const r = await runCli(
    "verify",
    "--batch",
    "3",
    "--q-len",
    "5,0,9",
    "--cache-len",
    "20,3,0",
    "--page-size",
    "4",
    "--heads",
    "4",
    "--heads-kv",
    "2",
    "--head-dim",
    "32",
    "--seed",
    "7",
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /PASS/);
  assert.doesNotMatch(r.stdout, /FAIL/);
  assert.match(r.stdout, /\b\d+ passed, 0 failed/);
});

Deno.test("a manifest selection that matches nothing exits 2 naming it", async () => {
  const r = await runCli("verify", "--workload", "no-such-row");
  assert.equal(r.code, 2);
  assert.match(errorLines(r)[0] ?? "", /no-such-row/);
});

Deno.test("run --case writes o and both pools in the input's dtypes", async () => {
  const dir = await Deno.makeTempDir();
  const { inputs, params } = generateCase(
    adHocCase({ batch: 2, qLen: [3, 6], cacheLen: [5, 17], pageSize: 8, cacheDtype: "int8" }),
    11,
  );
  await writeCase(`${dir}/in.safetensors`, { inputs, params });
  const r = await runCli(
    "run",
    "--case",
    `${dir}/in.safetensors`,
    "--out",
    `${dir}/out.safetensors`,
  );
  assert.equal(r.code, 0, r.stderr);
  const out = await readSafetensors(`${dir}/out.safetensors`);
  assert.deepEqual([...out.tensors.keys()].sort(), ["k_pages", "o", "v_pages"]);
  assert.equal(out.tensors.get("o")!.dtype, "f16");
  assert.deepEqual(out.tensors.get("o")!.shape, [9, 8, 64]);
  assert.equal(out.tensors.get("k_pages")!.dtype, "i8");
  assert.deepEqual(out.tensors.get("k_pages")!.shape, inputs.kPages.shape);
  const v = await runCli("verify", "--case", `${dir}/in.safetensors`);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a rejected case exits 2 with one line and writes no output file", async () => {
  const dir = await Deno.makeTempDir();
  const { inputs, params } = generateCase(adHocCase({ batch: 2, pageSize: 8 }), 3);
  const table = inputs.blockTable.data as Int32Array;
  table[0] = 1_000_000; // a referenced entry far outside the pool
  await writeCase(`${dir}/bad.safetensors`, { inputs, params });
  const r = await runCli(
    "run",
    "--case",
    `${dir}/bad.safetensors`,
    "--out",
    `${dir}/out.safetensors`,
  );
  assert.equal(r.code, 2, r.stderr);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /block_table\[0\]\[0\] = 1000000/);
  await assert.rejects(Deno.stat(`${dir}/out.safetensors`), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a missing case file exits 2 with one line naming the file", async () => {
  const r = await runCli("run", "--case", "/no/such/case.safetensors");
  assert.equal(r.code, 2, r.stderr);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /\/no\/such\/case\.safetensors/);
});

Deno.test("report renders a bench report and merges reports, a workload timed again replacing the earlier result", async () => {
  const dir = await Deno.makeTempDir();
  const b = await runCli(
    "bench",
    "--batch",
    "1",
    "--q-len",
    "8",
    "--cache-len",
    "40",
    "--page-size",
    "8",
    "--iters",
    "2",
    "--warmup",
    "0",
    "--kernel",
    "simple",
    "--json",
    `${dir}/a.json`,
    "--html",
    `${dir}/a.html`,
  );
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /TFLOP\/s/);
  // The report is rewritten after each case through a temporary file: none is left behind.
  const files = [];
  for await (const e of Deno.readDir(dir)) files.push(e.name);
  assert.deepEqual(files.sort(), ["a.html", "a.json"]);
  const html = await Deno.readTextFile(`${dir}/a.html`);
  assert.match(html, /<svg[\s\S]*<\/svg>/);
  const r = await runCli("report", `${dir}/a.json`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /adhoc-b1/);
  const m = await runCli("report", "--merge", `${dir}/m.json`, `${dir}/a.json`, `${dir}/a.json`);
  assert.equal(m.code, 0, m.stderr);
  const merged = JSON.parse(await Deno.readTextFile(`${dir}/m.json`));
  // The same workload and kernel twice: the later result replaces the earlier.
  assert.equal(merged.results.length, 1);
  const cmp = await runCli("report", `${dir}/a.json`, `${dir}/m.json`);
  assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bench --backends deno,dawn times both implementations on the same inputs and compares them", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runCli(
    "bench",
    "--backends",
    "deno,dawn",
    "--batch",
    "1",
    "--q-len",
    "8",
    "--cache-len",
    "24",
    "--page-size",
    "8",
    "--kernel",
    "simple",
    "--iters",
    "2",
    "--json",
    `${dir}/r.json`,
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /dawn against deno/);
  const deno = JSON.parse(await Deno.readTextFile(`${dir}/r.deno.json`));
  const dawn = JSON.parse(await Deno.readTextFile(`${dir}/r.dawn.json`));
  assert.equal(deno.environment.backend, "deno");
  assert.equal(dawn.environment.backend, "dawn");
  assert.equal(deno.results[0].case.seed, dawn.results[0].case.seed);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bench -h lists the timing and backend flags", async () => {
  const r = await runCli("bench", "-h");
  assert.equal(r.code, 0);
  for (
    const flag of [
      "--iters",
      "--warmup",
      "--warmup-ms",
      "--input-sets",
      "--min-time",
      "--backends",
      "--json",
      "--md",
      "--html",
    ]
  ) {
    assert.match(r.stdout, new RegExp(`${flag}\\b`), flag);
  }
});

Deno.test("verify goes on past a row over the adapter's buffer limit, names it, and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  // 70k old tokens x 8 KV heads x D 128 in f16: a 143 MB pool, over lavapipe's 128 MiB binding.
  const manifest = await writeManifest(dir, "limits", [
    "{ label: small, dtypes: [f16], batch: 1, q_lens: 4, cache_lens: 20, heads: 4, heads_kv: 2, head_dim: 32, page_size: 8, max_pages_per_req: 4 }",
    "{ label: huge, dtypes: [f16], batch: 1, q_lens: 1, cache_lens: 70000, heads: 8, heads_kv: 8, head_dim: 128, page_size: 256, max_pages_per_req: 274 }",
  ]);
  const r = await runCli(
    "verify",
    "--manifest",
    manifest,
    "--all",
    "--kernel",
    "simple",
    "--json",
    `${dir}/v.json`,
  );
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /small\/f16 .*PASS/);
  assert.match(r.stdout, /1 passed, 0 failed, 1 skipped/);
  assert.match(r.stderr, /SKIP huge\/f16: .*limit/);
  // The JSON is rewritten after every case through a temporary file; the last write says so.
  const v = JSON.parse(await Deno.readTextFile(`${dir}/v.json`));
  assert.equal(v.complete, true);
  assert.equal(v.results.length, 1);
  assert.equal(v.skipped.length, 1);
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  assert.deepEqual(names.sort(), ["m.yaml", "v.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("verify --resume goes on after the cases an earlier --json run finished, keeping its results", async () => {
  const dir = await Deno.makeTempDir();
  const manifest = await writeManifest(dir, "resume", [
    "{ label: first, dtypes: [f16], batch: 1, q_lens: 3, cache_lens: 9, heads: 2, heads_kv: 1, head_dim: 16, page_size: 4, max_pages_per_req: 4 }",
    "{ label: second, dtypes: [f16], batch: 2, q_lens: [2, 5], cache_lens: [7, 0], heads: 4, heads_kv: 2, head_dim: 16, page_size: 8, max_pages_per_req: 2 }",
  ]);
  const json = `${dir}/v.json`;
  const args = ["verify", "--manifest", manifest, "--all", "--kernel", "simple"];
  const full = await runCli(...args, "--json", json);
  assert.equal(full.code, 0, full.stdout + full.stderr);
  const whole = JSON.parse(await Deno.readTextFile(json));
  assert.deepEqual(whole.results.map((r: { id: string }) => r.id), ["first/f16", "second/f16"]);
  // A run cut short after its first case: what the per-case rewrite leaves behind.
  const cut = { ...whole, complete: false, results: whole.results.slice(0, 1) };
  await Deno.writeTextFile(json, JSON.stringify(cut));
  const resumed = await runCli(...args, "--json", json, "--resume");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.match(resumed.stderr, /1 case\(s\) already done, 1 to go/);
  const after = JSON.parse(await Deno.readTextFile(json));
  assert.equal(after.complete, true);
  assert.deepEqual(after.results.map((r: { id: string }) => r.id), ["first/f16", "second/f16"]);
  // The first case was not run again: its record (seed included) is the earlier one.
  assert.deepEqual(after.results[0], whole.results[0]);
  assert.match(resumed.stdout, /2 passed, 0 failed/);
  // No file yet: --resume starts from nothing.
  await Deno.remove(json);
  const fresh = await runCli(...args, "--json", json, "--resume");
  assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr);
  assert.equal(JSON.parse(await Deno.readTextFile(json)).results.length, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("verify --resume refuses a missing --json, another adapter's file and a non-verify file, touching nothing", async () => {
  const dir = await Deno.makeTempDir();
  const args = ["verify", "--batch", "1", "--q-len", "3", "--cache-len", "5", "--heads", "2"];
  const noJson = await runCli(...args, "--heads-kv", "1", "--head-dim", "16", "--resume");
  assert.equal(noJson.code, 2, noJson.stdout + noJson.stderr);
  assert.deepEqual(errorLines(noJson), [
    "error: Cannot resume: expected --json FILE and manifest cases, got no --json",
  ]);
  const other = JSON.stringify({
    adapter: "NVIDIA H200",
    backend: "dawn",
    complete: false,
    results: [{ id: "x/f16", kernel: "mma", ok: true }],
    skipped: [],
  });
  const cases: [string, RegExp][] = [
    [
      other,
      /^error: Cannot resume from .*o\.json: expected a run on .*, got one on NVIDIA H200 \(dawn\)$/,
    ],
    [
      '{"results": 3}',
      /^error: Cannot resume from .*o\.json: expected verify --json output, got adapter: /,
    ],
    [
      "not json",
      /^error: Cannot resume from .*o\.json: expected verify --json output, got no JSON$/,
    ],
  ];
  for (const [text, line] of cases) {
    await Deno.writeTextFile(`${dir}/o.json`, text);
    const r = await runCli(
      ...args,
      "--heads-kv",
      "1",
      "--head-dim",
      "16",
      "--json",
      `${dir}/o.json`,
      "--resume",
    );
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, line);
    assert.equal(await Deno.readTextFile(`${dir}/o.json`), text, "the file is left as it was");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("verify --shard runs disjoint parts of the cases that tools/merge_verify.ts joins into the whole run", async () => {
  const dir = await Deno.makeTempDir();
  const manifest = await writeManifest(dir, "shards", [
    "{ label: one, dtypes: [f16, bf16], batch: 1, q_lens: 3, cache_lens: 9, heads: 2, heads_kv: 1, head_dim: 16, page_size: 4, max_pages_per_req: 4 }",
    "{ label: two, dtypes: [f16], batch: 2, q_lens: [2, 5], cache_lens: [7, 0], heads: 4, heads_kv: 2, head_dim: 16, page_size: 8, max_pages_per_req: 2 }",
  ]);
  const args = ["verify", "--manifest", manifest, "--all", "--kernel", "simple"];
  const parts: string[][] = [];
  for (const shard of ["1/2", "2/2"]) {
    const r = await runCli(...args, "--shard", shard, "--json", `${dir}/${shard[0]}.json`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/${shard[0]}.json`));
    assert.equal(file.shard, shard);
    assert.deepEqual(file.selected, ["one/f16", "one/bf16", "two/f16"]);
    parts.push(file.results.map((x: { id: string }) => x.id));
  }
  // Round robin over the three cases, in manifest order.
  assert.deepEqual(parts, [["one/f16", "two/f16"], ["one/bf16"]]);
  const merged = await runMerge("--out", `${dir}/all.json`, `${dir}/2.json`, `${dir}/1.json`);
  assert.equal(merged.code, 0, merged.stderr);
  assert.equal(
    merged.stdout.trim(),
    `${dir}/all.json: 3 passed, 0 failed, 0 skipped, from 2 shards; complete: true`,
  );
  const all = JSON.parse(await Deno.readTextFile(`${dir}/all.json`));
  assert.equal(all.complete, true);
  assert.deepEqual(all.results.map((x: { id: string }) => x.id).sort(), [
    "one/bf16",
    "one/f16",
    "two/f16",
  ]);
  assert.ok(all.results.every((x: { ok: boolean }) => x.ok));
  // A shard file is not resumed as another shard (or as the whole run), and is left as it was.
  const before = await Deno.readTextFile(`${dir}/1.json`);
  for (const [more, want] of [[["--shard", "2/2"], "--shard 2/2"], [[], "no --shard"]] as const) {
    const r = await runCli(...args, ...more, "--json", `${dir}/1.json`, "--resume");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.deepEqual(errorLines(r), [
      `error: Cannot resume from ${dir}/1.json: expected a run with ${want}, got --shard 1/2`,
    ]);
    assert.equal(await Deno.readTextFile(`${dir}/1.json`), before);
  }
  // Nor is the whole run's file resumed as a shard, or a shard over another selection.
  await Deno.writeTextFile(`${dir}/whole.json`, JSON.stringify({ ...all, complete: false }));
  const asShard = await runCli(
    ...args,
    "--shard",
    "1/2",
    "--json",
    `${dir}/whole.json`,
    "--resume",
  );
  assert.equal(asShard.code, 2, asShard.stdout + asShard.stderr);
  assert.deepEqual(errorLines(asShard), [
    `error: Cannot resume from ${dir}/whole.json: expected a run with --shard 1/2, got no --shard`,
  ]);
  const narrower = await runCli(
    "verify",
    "--manifest",
    manifest,
    "--filter",
    "one",
    "--kernel",
    "simple",
    "--shard",
    "1/2",
    "--json",
    `${dir}/1.json`,
    "--resume",
  );
  assert.equal(narrower.code, 2, narrower.stdout + narrower.stderr);
  assert.deepEqual(errorLines(narrower), [
    `error: Cannot resume from ${dir}/1.json: expected a shard of the same 2 selected cases, got one of 3 others (another selection or manifest)`,
  ]);
  assert.equal(await Deno.readTextFile(`${dir}/1.json`), before);
  // Bad shards, a shard of a case file and of an ad hoc problem exit 2 in one line, before any
  // GPU work.
  const bad = await runCli(...args, "--shard", "3/2");
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.deepEqual(errorLines(bad), [
    'error: Cannot read --shard: expected I/N with 1 <= I <= N, got "3/2"',
  ]);
  const caseFile = await runCli("verify", "--case", `${dir}/none.safetensors`, "--shard", "1/2");
  assert.equal(caseFile.code, 2, caseFile.stdout + caseFile.stderr);
  assert.deepEqual(errorLines(caseFile), [
    `error: Cannot shard: expected manifest cases, got --case ${dir}/none.safetensors`,
  ]);
  const adHoc = await runCli("verify", "--batch", "1", "--q-len", "3", "--shard", "1/2");
  assert.equal(adHoc.code, 2, adHoc.stdout + adHoc.stderr);
  assert.equal(errorLines(adHoc).length, 1, adHoc.stderr);
  assert.match(
    errorLines(adHoc)[0]!,
    /^error: Cannot shard: expected manifest cases \(--all, --workload, --filter or --tag\), got the ad hoc problem /,
  );
  // The merge tool refuses bad arguments and parts that do not fit, in one line, writing nothing.
  await Deno.writeTextFile(`${dir}/notjson.json`, "not json");
  await Deno.writeTextFile(`${dir}/other.json`, '{"results": 3}');
  const refusals: [string[], RegExp][] = [
    [[`${dir}/1.json`], /^Cannot merge: expected --out FILE and shard files, got no --out$/],
    [[`${dir}/1.json`, "--out"], /^Cannot merge: expected --out FILE, got --out with no file$/],
    [
      ["--out", `${dir}/bad.json`, `${dir}/1.json`, "--force"],
      /^Cannot merge: expected shard files, got the flag --force$/,
    ],
    [
      ["--out", `${dir}/bad.json`, `${dir}/missing.json`],
      /^Cannot merge .*missing\.json: expected a readable file, got /,
    ],
    [
      ["--out", `${dir}/bad.json`, `${dir}/notjson.json`],
      /^Cannot merge .*notjson\.json: expected verify --json output, got no JSON$/,
    ],
    [
      ["--out", `${dir}/bad.json`, `${dir}/other.json`],
      /^Cannot merge .*other\.json: expected verify --json output, got adapter: /,
    ],
    [
      ["--out", `${dir}/bad.json`, `${dir}/1.json`, `${dir}/1.json`],
      /^Cannot merge .*1\.json: expected each shard once, got 1\/2 again \(also .*1\.json\)$/,
    ],
    [
      ["--out", `${dir}/no/such/dir/bad.json`, `${dir}/1.json`, `${dir}/2.json`],
      /^Cannot write .*no\/such\/dir\/bad\.json: /,
    ],
  ];
  for (const [more, line] of refusals) {
    const r = await runMerge(...more);
    const stderr = r.stderr.trim();
    assert.equal(r.code, 2, stderr);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(stderr, line);
    await assert.rejects(Deno.stat(`${dir}/bad.json`));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a malformed PAGED_PREFILL_MMA* variable exits 2 with one line naming it, before any GPU work or output", async () => {
  const dir = await Deno.makeTempDir();
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    [{ PAGED_PREFILL_MMA_TILE: "8x2" }, ["verify"], /PAGED_PREFILL_MMA_TILE: .*"8x2"/],
    [{ PAGED_PREFILL_MMA_PIPELINED: "yes" }, ["bench"], /PAGED_PREFILL_MMA_PIPELINED.*"yes"/],
    [{ PAGED_PREFILL_MMA: "on" }, ["verify"], /PAGED_PREFILL_MMA: expected 0 or 1, got "on"/],
  ];
  for (const [env, command, pattern] of cases) {
    const json = `${dir}/${command[0]}.json`;
    const r = await runCliWithEnv(env, ...command, "--batch", "1", "--json", json);
    assert.equal(r.code, 2, r.stderr);
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
    assert.doesNotMatch(r.stderr, /(verify|bench) on /, "no GPU was opened");
    await assert.rejects(Deno.stat(json), Deno.errors.NotFound);
  }
  // Well-formed values pass the check (the mma kernel is not asked for here).
  const ok = await runCliWithEnv(
    { PAGED_PREFILL_MMA: "1", PAGED_PREFILL_MMA_TILE: "2x1x16", PAGED_PREFILL_MMA_PIPELINED: "0" },
    "verify",
    "--batch",
    "1",
    "--q-len",
    "3",
    "--cache-len",
    "5",
    "--page-size",
    "4",
    "--kernel",
    "simple",
  );
  assert.equal(ok.code, 0, ok.stderr);
  await Deno.remove(dir, { recursive: true });
});
