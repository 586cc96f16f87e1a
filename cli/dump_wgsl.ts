/**
 * `--dump-wgsl DIR`: writes each generated WGSL module of a plan to `DIR/<label>.wgsl`.
 * @module
 */
import type { KernelPlan } from "../kernels/variant.ts";
import { mkdir, writeTextFile } from "./runtime.ts";

/** Writes the plan's WGSL sources into `dir`; returns the files written. */
export async function dumpWgsl(dir: string, plan: KernelPlan): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [label, source] of Object.entries(plan.wgsl())) {
    const file = `${dir}/${label.replace(/[^A-Za-z0-9_.-]/g, "_")}.wgsl`;
    await writeTextFile(file, source);
    written.push(file);
  }
  return written;
}
