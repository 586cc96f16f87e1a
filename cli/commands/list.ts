/**
 * `paged-prefill list`: the manifest's workloads, one line per (row, q dtype).
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { renderManifestList } from "../../workloads/mod.ts";
import { addWorkloadOptions, selectCases, type WorkloadFlags } from "../workload_options.ts";
import { ExitCode } from "../errors.ts";
import { out } from "../output.ts";
import { writeTextFile } from "../runtime.ts";

/** Builds the `list` command. */
export function listCommand(setExit: (code: number) => void) {
  return addWorkloadOptions(
    new Command("list")
      .description("list the manifest's workloads (all rows unless filtered)")
      .option("--json <file>", "also write the selected cases as JSON"),
  ).action(async (flags) => {
    const f = flags as WorkloadFlags & { json?: string };
    const narrowed = f.workload || f.filter || f.tag || f.pageSize !== undefined ||
      f.dtype !== undefined || f.cacheDtype !== undefined;
    const cases = selectCases(narrowed ? f : { ...f, all: true }, "default");
    out(renderManifestList(cases));
    if (f.json) await writeTextFile(f.json, JSON.stringify(cases, null, 2) + "\n");
    setExit(ExitCode.ok);
  });
}
