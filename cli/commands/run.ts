/**
 * `paged-prefill run --case IN.safetensors [--out OUT.safetensors]`: runs the op on the GPU on
 * tensors from a case file (e.g. dumped from PyTorch) and writes `o`, `k_pages` and `v_pages`
 * (the pools after the append) in the input's dtypes. A rejected case writes nothing.
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { outputsToSafetensors, readCase } from "../../io/case_file.ts";
import { writeFileAtomic } from "../../io/safetensors.ts";
import { planPagedPrefill, runPlanned } from "../../kernels/op.ts";
import type { GpuBackend } from "../../kernels/gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { addBackendOption, describeGpu, gpuFromFlags } from "../gpu_options.ts";
import { ExitCode, UsageError } from "../errors.ts";
import { err, out } from "../output.ts";
import { dumpWgsl } from "../dump_wgsl.ts";

/** Flags of `run`. */
export interface RunFlags {
  case?: string;
  out?: string;
  kernel?: string;
  backend?: GpuBackend;
  dumpWgsl?: string;
}

/** Builds the `run` command. */
export function runCommand(setExit: (code: number) => void) {
  return addBackendOption(
    new Command("run")
      .description("run the op on a safetensors case file and write o and the updated pools")
      .option(
        "--case <file>",
        "input case file: tensors named as in SPEC §1, params in __metadata__",
      )
      .option("--out <file>", "write o, k_pages and v_pages (after the append) here")
      .option("--kernel <name>", "kernel variant (default: the fastest that supports the case)")
      .option(
        "--dump-wgsl <dir>",
        "write the generated WGSL of the planned kernel into this folder",
      ),
  ).action(async (flags) => {
    const f = flags as unknown as RunFlags;
    if (!f.case) throw new UsageError("Cannot run: --case FILE is required (see run -h)");
    const file = await readCase(f.case);
    // Validate before touching the GPU: a rejected case writes nothing.
    const problem = validateProblem(file.inputs, file.params);
    const gpu = await gpuFromFlags(f);
    try {
      const planned = await planPagedPrefill(
        gpu,
        file.inputs,
        file.params,
        f.kernel ? { kernel: f.kernel } : {},
      );
      try {
        if (f.dumpWgsl) await dumpWgsl(f.dumpWgsl, planned.plan);
        const outputs = await runPlanned(gpu, planned, file.inputs);
        if (f.out) {
          await writeFileAtomic(f.out, outputsToSafetensors(outputs, file.metadata ?? {}));
        }
        err(`ran ${planned.plan.key} on ${describeGpu(gpu)}\n`);
        out(
          `ok: B=${problem.batch} T_q=${problem.totalQ} H=${problem.numHeads}/${problem.numKvHeads} D=${problem.headDim} page=${problem.pageSize} q=${problem.qDtype} cache=${problem.cacheDtype}` +
            (f.out ? ` -> ${f.out}` : "") + "\n",
        );
      } finally {
        planned.destroy();
      }
    } finally {
      gpu.destroy();
    }
    setExit(ExitCode.ok);
  });
}
