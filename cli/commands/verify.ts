/**
 * `paged-prefill verify`: runs workloads (manifest rows, an ad hoc problem or a case file) on
 * the GPU and checks o against the float64 reference, the append bit-exact and every other
 * pool byte unchanged (SPEC §4). Exit 1 when any check fails.
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { generateCase } from "../../workloads/generate.ts";
import { randomSeed } from "../../workloads/random.ts";
import type { WorkloadCase } from "../../workloads/loader.ts";
import { validateProblem } from "../../op/validate.ts";
import { readCase } from "../../io/case_file.ts";
import {
  type CaseVerification,
  type ExpectedTensors,
  verifyOnGpu,
} from "../../bench/verify_case.ts";
import type { GpuBackend } from "../../kernels/gpu.ts";
import { renderTextTable, type TableCell } from "../../reports/render_table.ts";
import type { GpuContext } from "../../kernels/gpu.ts";
import type { PagedPrefillInputs, PagedPrefillParams } from "../../op/types.ts";
import { addWorkloadOptions, selectCases, type WorkloadFlags } from "../workload_options.ts";
import { addBackendOption, describeGpu, gpuFromFlags } from "../gpu_options.ts";
import { addKernelOptions, variantsFor } from "../kernel_options.ts";
import { ExitCode, UsageError } from "../errors.ts";
import { err, out, progressBar, useColor } from "../output.ts";
import { writeFileAtomic } from "../../io/atomic_write.ts";
import { intFlag } from "../parse.ts";
import { checkResumeTarget, readVerifyResume } from "../verify_resume.ts";
import { formatShard, parseShard, shardOf } from "../verify_shard.ts";

/** Flags of `verify`. */
export interface VerifyFlags extends WorkloadFlags {
  backend?: GpuBackend;
  kernel?: string;
  strategy?: "fused" | "dequant";
  case?: string;
  seed?: number;
  rows?: number;
  json?: string;
  resume?: boolean;
  shard?: string;
}

/** One verified (case, kernel variant), as printed and written by `--json`. */
export interface VerifyRecord {
  id: string;
  kernel: string;
  kernelKey: string;
  seed: number | null;
  ok: boolean;
  batch: number;
  totalRows: number;
  checkedRows: number;
  heads: string;
  headDim: number;
  pageSize: number;
  qDtype: string;
  cacheDtype: string;
  maxAbsErr: number;
  maxRelErr: number;
  relL2Err: number;
  /** Share of the tolerance the worst element uses (`OutputCheck.toleranceUsed`). */
  toleranceUsed: number;
  mismatches: number;
  poolBadBytes: number;
  message: string;
}

function _record(
  id: string,
  seed: number | null,
  kernel: string,
  kernelKey: string,
  v: CaseVerification,
): VerifyRecord {
  const p = v.problem;
  return {
    id,
    kernel,
    kernelKey,
    seed,
    ok: v.ok,
    batch: p.batch,
    totalRows: v.totalRows,
    checkedRows: v.checkedRows,
    heads: `${p.numHeads}/${p.numKvHeads}`,
    headDim: p.headDim,
    pageSize: p.pageSize,
    qDtype: p.qDtype,
    cacheDtype: p.cacheDtype,
    maxAbsErr: v.output.maxAbsErr,
    maxRelErr: v.output.maxRelErr,
    relL2Err: v.output.relL2Err,
    toleranceUsed: v.output.toleranceUsed,
    mismatches: v.output.mismatches + (v.expectedOutput?.mismatches ?? 0),
    poolBadBytes: v.pools.badBytes + (v.expectedPools?.badBytes ?? 0),
    message: v.message,
  };
}

/** Renders verify records as a table. */
export function renderVerifyTable(records: readonly VerifyRecord[], color = false): string {
  const e = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
  const rows: TableCell[][] = records.map((r) => [
    r.id,
    r.kernel,
    String(r.batch),
    `${r.checkedRows}/${r.totalRows}`,
    r.heads,
    String(r.headDim),
    String(r.pageSize),
    `${r.qDtype}/${r.cacheDtype}`,
    e(r.maxAbsErr),
    e(r.maxRelErr),
    e(r.relL2Err),
    r.poolBadBytes === 0 ? "exact" : `${r.poolBadBytes} bad bytes`,
    { text: r.ok ? "PASS" : "FAIL", color: r.ok ? "green" : "red" },
  ]);
  return renderTextTable(
    [
      "workload",
      "kernel",
      "B",
      "rows",
      "H/Hkv",
      "D",
      "page",
      "q/cache",
      "max abs",
      "max rel",
      "rel L2",
      "pools",
      "status",
    ],
    rows,
    { color },
  );
}

async function _verifyCase(
  gpu: GpuContext,
  id: string,
  seed: number | null,
  inputs: PagedPrefillInputs,
  params: PagedPrefillParams,
  flags: { kernel?: string; strategy?: "fused" | "dequant"; rows?: number },
  expected?: ExpectedTensors,
): Promise<VerifyRecord[]> {
  const problem = validateProblem(inputs, params);
  const records: VerifyRecord[] = [];
  for (const variant of variantsFor(problem, gpu, flags, "all")) {
    const { verification, kernelKey } = await verifyOnGpu(gpu, inputs, params, {
      kernel: variant.name,
      ...(flags.rows !== undefined ? { rowsPerRequest: flags.rows } : {}),
      ...(seed !== null ? { sampleSeed: seed } : {}),
      ...(expected ? { expected } : {}),
    });
    records.push(_record(id, seed, variant.name, kernelKey, verification));
    if (!verification.ok) err(`FAIL ${id} [${variant.name}] ${verification.message}\n`);
  }
  return records;
}

/** Builds the `verify` command. */
export function verifyCommand(setExit: (code: number) => void) {
  const command = addKernelOptions(addBackendOption(addWorkloadOptions(
    new Command("verify")
      .description(
        "check the kernels against the float64 reference: o within SPEC §4 tolerance, the append bit-exact, every other pool byte unchanged",
      )
      .option("--case <file>", "verify a safetensors case file (and its *_expected tensors)")
      .option(
        "--seed <n>",
        "seed of the generated inputs (default: fresh each run)",
        intFlag("--seed", 0),
      )
      .option(
        "--rows <n>",
        "query rows checked per request (default: all, sampled when large)",
        intFlag("--rows", 2),
      )
      .option("--json <file>", "write the results as JSON")
      .option(
        "--shard <i/n>",
        "verify only every n-th selected case, from the i-th (1-based): run n processes side by side and join their --json files with tools/merge_verify.ts",
      )
      .option(
        "--resume",
        "go on from the --json file of an earlier run cut short: keep its results and leave out the cases it finished",
      ),
  )));
  return command.action(async (flags) => {
    const f = flags as unknown as VerifyFlags;
    let cases: WorkloadCase[] = [];
    const shard = f.shard !== undefined ? parseShard(f.shard) : null;
    if (shard && f.case) {
      throw new UsageError(
        `Cannot shard: expected manifest cases, got --case ${f.case}`,
      );
    }
    if (!f.case) cases = selectCases(f, "default");
    let selected: string[] | null = null;
    if (shard) {
      const adHoc = cases.find((c) => c.source !== "manifest");
      if (adHoc) {
        throw new UsageError(
          `Cannot shard: expected manifest cases (--all, --workload, --filter or --tag), got the ad hoc problem ${adHoc.id}`,
        );
      }
      selected = cases.map((c) => c.id);
      cases = shardOf(cases, shard);
    }
    if (f.resume && (!f.json || f.case)) {
      throw new UsageError(
        `Cannot resume: expected --json FILE and manifest cases, got ${
          f.case ? `--case ${f.case}` : "no --json"
        }`,
      );
    }
    // Read before any GPU work: a file that is not verify output is refused untouched.
    const earlier = f.resume ? await readVerifyResume<VerifyRecord>(f.json!) : null;
    const gpu = await gpuFromFlags(f);
    err(`verify on ${describeGpu(gpu)}\n`);
    const records: VerifyRecord[] = earlier ? [...earlier.results] : [];
    const skipped: { id: string; reason: string }[] = earlier ? [...earlier.skipped] : [];
    // Rewritten after every case (complete: false until the end), so a run cut short by a
    // time limit keeps what it verified.
    const writeJson = async (complete: boolean) => {
      await writeFileAtomic(
        f.json!,
        JSON.stringify(
          {
            adapter: gpu.adapterName,
            backend: gpu.backend,
            complete,
            ...(shard ? { shard: formatShard(shard), selected } : {}),
            results: records,
            skipped,
          },
          null,
          2,
        ) + "\n",
      );
    };
    try {
      if (earlier) {
        // Another adapter's file is refused before anything is written over it.
        checkResumeTarget(f.json!, earlier, {
          adapter: gpu.adapterName,
          backend: gpu.backend,
          shard: shard ? formatShard(shard) : null,
          selected,
        });
        const before = cases.length;
        cases = cases.filter((c) => !earlier.done.has(c.id));
        err(
          `resuming ${f.json}: ${
            before - cases.length
          } case(s) already done, ${cases.length} to go\n`,
        );
      }
      if (f.case) {
        const file = await readCase(f.case);
        records.push(
          ...await _verifyCase(gpu, f.case, null, file.inputs, file.params, f, file.expected),
        );
      } else {
        const bar = progressBar(cases.length);
        for (const c of cases) {
          bar.tick(c.id);
          const seed = f.seed ?? randomSeed();
          const { inputs, params } = generateCase(c, seed);
          try {
            // The manifest's verify_rows samples big rows unless --rows says otherwise.
            const rows = f.rows ?? c.verifyRows;
            records.push(
              ...await _verifyCase(gpu, c.id, seed, inputs, params, {
                ...f,
                ...(rows !== undefined ? { rows } : {}),
              }),
            );
          } catch (e) {
            // A manifest row this adapter cannot run (a buffer over its limits): say so, go
            // on with the rest, and do not count it as verified.
            if (!(e instanceof RangeError)) throw e;
            skipped.push({ id: c.id, reason: (e as Error).message });
            err(`SKIP ${c.id}: ${(e as Error).message}\n`);
          }
          if (f.json) await writeJson(false);
        }
        bar.done();
      }
    } finally {
      gpu.destroy();
    }
    out(renderVerifyTable(records, useColor()));
    const failed = records.filter((r) => !r.ok).length;
    out(
      `${records.length - failed} passed, ${failed} failed` +
        (skipped.length > 0 ? `, ${skipped.length} skipped (over this adapter's limits)` : "") +
        "\n",
    );
    if (f.json) await writeJson(true);
    // Skipped rows were not verified: the run did not prove them right.
    setExit(failed > 0 || skipped.length > 0 ? ExitCode.checkFailed : ExitCode.ok);
  });
}
