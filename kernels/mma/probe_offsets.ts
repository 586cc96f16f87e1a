/**
 * GPU-machine probe of subgroup matrix loads and stores at the offsets and strides the mma
 * kernel uses (kernels/mma/tune.ts --probe2). The first probe (probe.ts) loaded from workgroup
 * memory at offset 0 only; this one loads left/right f16 matrices and f32 result matrices from
 * workgroup arrays at many (offset, stride, majorness) triples, and stores results into a
 * workgroup array at several offsets, each read back through an identity product or by threads,
 * and says for each case whether the 16 x 16 block matches the one the Dawn spec defines.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import { runProbeShader } from "./probe_run.ts";

/** One load or store case. */
export interface OffsetCase {
  what: "left" | "right" | "result-load" | "result-store";
  offset: number;
  stride: number;
  colMajor: boolean;
}

/** Result of one case: "ok", or what the block looked like instead. */
export interface OffsetResult extends OffsetCase {
  outcome: string;
}

const N_H = 6144; // f16 workgroup array (elements)
const N_F = 3072; // f32 workgroup array (elements)

/** The default cases: the kernel's strides (136 = D + 8 for D = 128, 72, 68) and offsets. */
export function defaultOffsetCases(): OffsetCase[] {
  const cases: OffsetCase[] = [];
  for (const what of ["left", "right"] as const) {
    for (const stride of [24, 72, 136]) {
      for (const offset of [0, 8, 16, 32, 16 * stride, 16 * stride + 16]) {
        for (const colMajor of [false, true]) cases.push({ what, offset, stride, colMajor });
      }
    }
  }
  for (const what of ["result-load", "result-store"] as const) {
    for (const stride of [20, 68]) {
      for (const offset of [0, 4, 16, 16 * stride, 16 * stride + 16]) {
        cases.push({ what, offset, stride, colMajor: false });
      }
    }
  }
  return cases;
}

function _wgsl(cases: OffsetCase[]): string {
  const L = "subgroup_matrix_left<f16, 16, 16>";
  const R = "subgroup_matrix_right<f16, 16, 16>";
  const A = "subgroup_matrix_result<f32, 16, 16>";
  const body = cases.map((c, i) => {
    const out = i * 256;
    const cm = c.colMajor ? "true" : "false";
    switch (c.what) {
      case "left":
        return `  {
    let m = subgroupMatrixLoad<${L}>(&wh, ${c.offset}u, ${cm}, ${c.stride}u);
    subgroupMatrixStore(&out, ${out}u, subgroupMatrixMultiplyAccumulate(m, ident_r, z), false, 16u);
  }`;
      case "right":
        return `  {
    let m = subgroupMatrixLoad<${R}>(&wh, ${c.offset}u, ${cm}, ${c.stride}u);
    subgroupMatrixStore(&out, ${out}u, subgroupMatrixMultiplyAccumulate(ident_l, m, z), false, 16u);
  }`;
      case "result-load":
        return `  {
    let m = subgroupMatrixLoad<${A}>(&wf, ${c.offset}u, false, ${c.stride}u);
    subgroupMatrixStore(&out, ${out}u, m, false, 16u);
  }`;
      case "result-store":
        return `  {
    workgroupBarrier();
    subgroupMatrixStore(&ws, ${c.offset}u, l0i, false, ${c.stride}u);
    workgroupBarrier();
    for (var e = lid; e < 256u; e = e + 32u) {
      out[${out}u + e] = ws[${c.offset}u + (e / 16u) * ${c.stride}u + e % 16u];
    }
  }`;
    }
  }).join("\n");
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> wh: array<f16, ${N_H}>;
var<workgroup> wf: array<f32, ${N_F}>;
var<workgroup> ws: array<f32, ${N_F}>;
var<workgroup> wi: array<f16, 384>;

@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < ${N_H}u; i = i + 32u) {
    wh[i] = f16(src[i]);
  }
  for (var i = lid; i < ${N_F}u; i = i + 32u) {
    wf[i] = src[${N_H}u + i];
    ws[i] = 0.0;
  }
  for (var i = lid; i < 384u; i = i + 32u) {
    wi[i] = select(f16(0.0), f16(1.0), i / 24u == i % 24u);
  }
  workgroupBarrier();
  let ident_l = subgroupMatrixLoad<${L}>(&wi, 0u, false, 24u);
  let ident_r = subgroupMatrixLoad<${R}>(&wi, 0u, false, 24u);
  let z = ${A}();
  let l0 = subgroupMatrixLoad<${L}>(&wh, 0u, false, 24u);
  let l0i = subgroupMatrixMultiplyAccumulate(l0, ident_r, z);
${body}
}
`;
}

/** Runs the cases on `gpu` in one dispatch of one warp. */
export async function probeOffsets(
  gpu: GpuContext,
  cases: OffsetCase[] = defaultOffsetCases(),
): Promise<OffsetResult[]> {
  const device = gpu.device;
  const src = new Float32Array(N_H + N_F);
  // Multiples of 1/64 in [-4, 4): exact in f16, distinct enough to recognise misplaced blocks.
  for (let i = 0; i < N_H; i++) src[i] = (((i * 37 + 11) % 512) - 256) / 64;
  for (let i = 0; i < N_F; i++) src[N_H + i] = (((i * 53 + 7) % 1024) - 512) / 64;
  const out = new Float32Array(
    await runProbeShader(
      device,
      "mma offset probe",
      _wgsl(cases),
      [src],
      cases.length * 256 * 4,
    ),
  );
  const h = src.subarray(0, N_H);
  const f = src.subarray(N_H);
  return cases.map((c, i) => {
    const got = out.subarray(i * 256, i * 256 + 256);
    const at = (arr: Float32Array, r: number, col: number, cm: boolean, off: number, st: number) =>
      arr[off + (cm ? col * st + r : r * st + col)]!;
    const expect = (r: number, col: number): number => {
      if (c.what === "left" || c.what === "right") {
        return at(h, r, col, c.colMajor, c.offset, c.stride);
      }
      if (c.what === "result-load") return at(f, r, col, false, c.offset, c.stride);
      return h[r * 24 + col]!; // result-store: l0 (offset 0, stride 24) times identity
    };
    let bad = 0;
    for (let r = 0; r < 16; r++) {
      for (let col = 0; col < 16; col++) if (got[r * 16 + col] !== expect(r, col)) bad++;
    }
    if (bad === 0) return { ...c, outcome: "ok" };
    // What offset (same stride and majorness) would explain the block, if any?
    let explained = "";
    if (c.what !== "result-store") {
      const arr = c.what === "result-load" ? f : h;
      for (let o = 0; o + 16 * c.stride <= arr.length && !explained; o++) {
        let ok = true;
        for (let r = 0; r < 16 && ok; r++) {
          for (let col = 0; col < 16 && ok; col++) {
            ok = got[r * 16 + col] === at(arr, r, col, c.colMajor, o, c.stride);
          }
        }
        if (ok) explained = ` = the block at offset ${o}`;
      }
    }
    return {
      ...c,
      outcome: `BAD ${bad}/256${explained}; first ${Array.from(got.slice(0, 3)).join(",")} want ${
        expect(0, 0)
      },${expect(0, 1)},${expect(0, 2)}`,
    };
  });
}

/** A loop case: matrices live across a loop whose trip count is only known at run time. */
export interface LoopResult {
  name: string;
  outcome: string;
}

// Each case accumulates acc += L x I over a loop of n = 3 iterations (n read from a buffer),
// so the expected result is 3 L. L = wh[0..] at stride 24.
const LOOP_CASES: Record<string, string> = {
  "constant trip count": `var acc = Z();
  for (var i = 0u; i < 3u; i = i + 1u) {
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
  }`,
  "runtime trip count": `var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
  }`,
  "runtime trip count, barrier in the loop": `var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    workgroupBarrier();
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
  }`,
  "left matrix in a var set inside an if, runtime loop": `var lv: subgroup_matrix_left<f16, 16, 16>;
  if (n > 1u) {
    lv = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 0u, false, 24u);
  }
  var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    workgroupBarrier();
    acc = subgroupMatrixMultiplyAccumulate(lv, ident_r, acc);
  }`,
  "runtime loop, threads rewrite another part of the array": `var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    workgroupBarrier();
    wh[1024u + lid] = f16(f32(i));
    workgroupBarrier();
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
  }`,
  "runtime loop, matrix reloaded in the loop after the threads rewrite its source": `var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    workgroupBarrier();
    for (var e = lid; e < 384u; e = e + 32u) {
      wh[2048u + e] = wh[e];
    }
    workgroupBarrier();
    let lk = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 2048u, false, 24u);
    acc = subgroupMatrixMultiplyAccumulate(lk, ident_r, acc);
  }`,
  "runtime loop, result stored to and reloaded from workgroup memory each iteration":
    `var acc = Z();
  for (var i = 0u; i < n; i = i + 1u) {
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
    workgroupBarrier();
    subgroupMatrixStore(&ws, 0u, acc, false, 20u);
    workgroupBarrier();
    acc = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&ws, 0u, false, 20u);
  }`,
  "runtime loop, eight left matrices held across it": `var acc = Z();
  let m1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 16u, false, 24u);
  let m2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 384u, false, 24u);
  let m3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 400u, false, 24u);
  for (var i = 0u; i < n; i = i + 1u) {
    workgroupBarrier();
    acc = subgroupMatrixMultiplyAccumulate(l0, ident_r, acc);
    acc = subgroupMatrixMultiplyAccumulate(m1, ident_r, acc);
    acc = subgroupMatrixMultiplyAccumulate(m2, ident_r, acc);
    acc = subgroupMatrixMultiplyAccumulate(m3, ident_r, acc);
  }`,
};

/** Runs each loop case in its own module; the result should be 3 L (or 3 (L + M1 + M2 + M3)). */
export async function probeLoops(gpu: GpuContext): Promise<LoopResult[]> {
  const device = gpu.device;
  const src = new Float32Array(N_H + N_F + 4);
  for (let i = 0; i < N_H; i++) src[i] = (((i * 37 + 11) % 512) - 256) / 64;
  src[N_H + N_F] = 3;
  const h = src.subarray(0, N_H);
  const results: LoopResult[] = [];
  for (const [name, body] of Object.entries(LOOP_CASES)) {
    const code = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> wh: array<f16, ${N_H}>;
var<workgroup> ws: array<f32, 512>;
var<workgroup> wi: array<f16, 384>;
alias Z = subgroup_matrix_result<f32, 16, 16>;
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = u32(src[${N_H + N_F}u]);
  if (n == 0u) {
    return;
  }
  for (var i = lid; i < ${N_H}u; i = i + 32u) {
    wh[i] = f16(src[i]);
  }
  for (var i = lid; i < 384u; i = i + 32u) {
    wi[i] = select(f16(0.0), f16(1.0), i / 24u == i % 24u);
  }
  workgroupBarrier();
  let ident_r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&wi, 0u, false, 24u);
  let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, 0u, false, 24u);
  ${body}
  subgroupMatrixStore(&out, 0u, acc, false, 16u);
}
`;
    try {
      const got = new Float32Array(
        await runProbeShader(device, "mma loop probe", code, [src], 1024),
      );
      const many = name.includes("eight");
      let bad = 0;
      for (let r = 0; r < 16; r++) {
        for (let c = 0; c < 16; c++) {
          const l = (o: number) => h[o + r * 24 + c]!;
          const want = 3 * (many ? l(0) + l(16) + l(384) + l(400) : l(0));
          if (got[r * 16 + c] !== want) bad++;
        }
      }
      results.push({
        name,
        outcome: bad === 0 ? "ok" : `BAD ${bad}/256; first ${Array.from(got.slice(0, 3))}`,
      });
    } catch (e) {
      results.push({ name, outcome: `ERROR ${(e as Error).message.slice(0, 300)}` });
    }
  }
  return results;
}
