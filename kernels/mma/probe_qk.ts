/**
 * GPU-machine probe (kernels/mma/tune.ts --probe4): the mma kernel's first Q K^T tile rebuilt
 * from its parts in small shaders, one variant per module, to find which part makes the real
 * kernel read the wrong K column. Q (16 x D) and K (16 x D) come from a storage buffer; each
 * variant stages them like the kernel (row stride D + 8, f16 workgroup arrays), computes
 * S = Q K^T on 16x16x16 subgroup matrices and writes S; the host compares with the product.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import { runProbeShader } from "./probe_run.ts";

const D = 128;
const KS = D + 8;
const SS = 20;

interface Variant {
  /** Separate Q array (no reuse of the K buffer for Q). */
  qOwn?: boolean;
  /** Q fragments as `let`s loaded right before each product (else function-scope vars). */
  qLet?: boolean;
  /** K fragment as a `let` (else one function-scope var). */
  kLet?: boolean;
  /** K loaded as a row-major left matrix, S^T = K Q^T (Q^T staged transposed). */
  transposed?: boolean;
  /** Extra declarations that make the workgroup layout like the kernel's. */
  kernelArrays?: boolean;
  /** Wrap the product in a runtime loop of one iteration (like the kernel's tile loop). */
  loop?: boolean;
  /** h_s elements: the kernel's 17 * KS for r16 k16, or a roomy array. */
  hElems?: number;
  /** Other workgroup variables: [declaration, an expression reading it]. */
  extra?: [string, string][];
  /** Declare s_s before h_s. */
  sFirst?: boolean;
}

const VARIANTS: Record<string, Variant> = {
  "kernel-like (Q then K through one array, vars)": { kernelArrays: true },
  "kernel-like in a runtime loop": { kernelArrays: true, loop: true },
  "Q in its own array": { qOwn: true, kernelArrays: true, loop: true },
  "Q fragments as lets": { qLet: true, qOwn: true, kernelArrays: true, loop: true },
  "K fragment as let": { kLet: true, kernelArrays: true, loop: true },
  "all lets, own Q, loop": { kLet: true, qLet: true, qOwn: true, kernelArrays: true, loop: true },
  "roomy h_s": { kernelArrays: true, loop: true, hElems: 8 * 1024 },
  "no other arrays": { loop: true },
  "+ flag u32": { loop: true, extra: [["var<workgroup> flag: u32;", "f32(flag)"]] },
  "+ p_s f16": { loop: true, extra: [["var<workgroup> p_s: array<f16, 408>;", "f32(p_s[0])"]] },
  "+ row_a, row_l f32": {
    loop: true,
    extra: [
      ["var<workgroup> row_a: array<f32, 16>;", "row_a[0]"],
      ["var<workgroup> row_l: array<f32, 16>;", "row_l[0]"],
    ],
  },
  "+ flag as vec4<u32>": {
    loop: true,
    extra: [["var<workgroup> flag4: vec4<u32>;", "f32(flag4.x)"]],
  },
  "s_s declared first": { loop: true, sFirst: true },
  "s_s first + p_s + flag": {
    loop: true,
    sFirst: true,
    extra: [
      ["var<workgroup> p_s: array<f16, 408>;", "f32(p_s[0])"],
      ["var<workgroup> flag: u32;", "f32(flag)"],
    ],
  },
};

function _wgsl(v: Variant): string {
  const L = "subgroup_matrix_left<f16, 16, 16>";
  const R = "subgroup_matrix_right<f16, 16, 16>";
  const A = "subgroup_matrix_result<f32, 16, 16>";
  const hElems = v.hElems ?? 17 * KS;
  const qArr = v.qOwn ? "q_s" : "h_s";
  const stage = (arr: string, srcOff: number) =>
    `  for (var i = 0u; i < 8u; i = i + 1u) {
    let c = lid + i * 32u;
    let r = c / ${D / 8}u;
    let du = c % ${D / 8}u;
    for (var e = 0u; e < 8u; e = e + 1u) {
      ${arr}[r * ${KS}u + du * 8u + e] = f16(src[${srcOff}u + r * ${D}u + du * 8u + e]);
    }
  }`;
  const lines: string[] = [];
  const qLoad = (kd: number) => `subgroupMatrixLoad<${L}>(&${qArr}, ${kd * 16}u, false, ${KS}u)`;
  if (!v.qLet && !v.transposed) {
    for (let kd = 0; kd < D / 16; kd++) lines.push(`  var qf${kd}: ${L};`);
  }
  lines.push(`  var kf: ${v.transposed ? L : R};`);
  lines.push(`  var sacc: ${A};`);
  lines.push(stage(qArr, 0));
  lines.push("  workgroupBarrier();");
  if (!v.qLet && !v.transposed) {
    for (let kd = 0; kd < D / 16; kd++) lines.push(`  qf${kd} = ${qLoad(kd)};`);
  }
  lines.push("  workgroupBarrier();");
  if (v.transposed) {
    // Q^T staged as [d][row] with stride 24 into q_t, K stays row-major in h_s.
    lines.push(`  for (var i = lid; i < ${16 * D}u; i = i + 32u) {
    q_t[(i % ${D}u) * 24u + i / ${D}u] = f16(src[i]);
  }`);
  }
  lines.push(stage("h_s", 16 * D));
  const loopOpen = v.loop
    ? "  for (var t = 0u; t < n; t = t + 1u) {\n  workgroupBarrier();"
    : "  {";
  lines.push(loopOpen);
  lines.push(`  sacc = ${A}();`);
  for (let kd = 0; kd < D / 16; kd++) {
    if (v.transposed) {
      lines.push(`  kf = subgroupMatrixLoad<${L}>(&h_s, ${kd * 16}u, false, ${KS}u);`);
      lines.push(
        `  sacc = subgroupMatrixMultiplyAccumulate(kf, subgroupMatrixLoad<${R}>(&q_t, ${
          kd * 16 * 24
        }u, false, 24u), sacc);`,
      );
      continue;
    }
    const k = `subgroupMatrixLoad<${R}>(&h_s, ${kd * 16}u, true, ${KS}u)`;
    const q = v.qLet ? qLoad(kd) : `qf${kd}`;
    if (v.kLet) {
      lines.push(`  { let kl = ${k}; sacc = subgroupMatrixMultiplyAccumulate(${q}, kl, sacc); }`);
    } else {
      lines.push(`  kf = ${k};`);
      lines.push(`  sacc = subgroupMatrixMultiplyAccumulate(${q}, kf, sacc);`);
    }
  }
  lines.push(`  subgroupMatrixStore(&s_s, 0u, sacc, false, ${SS}u);`);
  lines.push("  workgroupBarrier();");
  lines.push("  }");
  lines.push(`  for (var e = lid; e < 256u; e = e + 32u) {
    out[e] = s_s[(e / 16u) * ${SS}u + e % 16u];
  }`);
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${v.sFirst ? `var<workgroup> s_s: array<f32, ${17 * SS}>;` : ""}
var<workgroup> h_s: array<f16, ${hElems}>;
${v.qOwn ? `var<workgroup> q_s: array<f16, ${17 * KS}>;` : ""}
${v.transposed ? `var<workgroup> q_t: array<f16, ${D * 24 + 24}>;` : ""}
${v.sFirst ? "" : `var<workgroup> s_s: array<f32, ${17 * SS}>;`}
${(v.extra ?? []).map(([d]) => d).join("\n")}
${
    v.kernelArrays
      ? `var<workgroup> p_s: array<f16, 408>;
var<workgroup> row_a: array<f32, 16>;
var<workgroup> row_l: array<f32, 16>;
var<workgroup> flag: u32;`
      : ""
  }
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = u32(src[${32 * D}u]);
${lines.join("\n")}
${v.kernelArrays ? "  if (lid == 99u) { p_s[0] = f16(row_a[0] + row_l[0] + f32(flag)); }" : ""}
${v.extra ? `  if (lid == 99u) { out[300] = ${v.extra.map(([, u]) => u).join(" + ")}; }` : ""}
}
`;
}

/** Runs every variant; returns "ok" or the error pattern per variant. */
export async function probeQk(gpu: GpuContext): Promise<Record<string, string>> {
  const device = gpu.device;
  const src = new Float32Array(32 * D + 4);
  for (let i = 0; i < 32 * D; i++) src[i] = (((i * 29 + 5) % 128) - 64) / 32;
  src[32 * D] = 1;
  const q = (r: number, d: number) => src[r * D + d]!;
  const k = (n: number, d: number) => src[16 * D + n * D + d]!;
  const want = (r: number, n: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += q(r, d) * k(n, d);
    return s;
  };
  const out: Record<string, string> = {};
  for (
    const [name, v] of [
      ...Object.entries(VARIANTS),
      ["transposed scores", { transposed: true, kernelArrays: true, loop: true }] as const,
    ]
  ) {
    const code = _wgsl(v);
    try {
      const got = new Float32Array(
        await runProbeShader(device, `mma-probe-qk ${name}`, code, [src], 1024),
      );
      const tr = v.transposed === true;
      let bad = 0, shifted = 0;
      for (let r = 0; r < 16; r++) {
        for (let n = 0; n < 16; n++) {
          const g = tr ? got[n * 16 + r]! : got[r * 16 + n]!;
          if (Math.abs(g - want(r, n)) > 1e-3 * (1 + Math.abs(want(r, n)))) bad++;
          if (n < 15 && Math.abs(g - want(r, n + 1)) < 0.05 * (1 + Math.abs(want(r, n + 1)))) {
            shifted++;
          }
        }
      }
      out[name] = bad === 0 ? "ok" : `BAD ${bad}/256 (${shifted} look like the next key)`;
    } catch (e) {
      out[name] = `ERROR ${(e as Error).message.slice(0, 400)}`;
    }
  }
  return out;
}
