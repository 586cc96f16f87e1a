/**
 * Error model of the flash kernel's f16 arithmetic (`FlashSpec.f16Math`) on one output row, in
 * float64 with every f16 and f32 rounding the kernel makes: Q, K, V (and fp8 codes times their
 * scale) rounded to f16 when staged, times the range guard's powers of two; each score a
 * vec4<f16> chain of fused multiply-adds, its four lanes added into f32 every `qkFlush` D steps
 * (or summed in f16 first: `laneSum`); P rounded to f16; O's vec4<f16> partial sums added into
 * f32 every `pvFlush` keys; online softmax over 64-key tiles in f32. It reports the worst
 * element's share of SPEC §4's f16 tolerance (2e-3 + 2e-3 |ref|), the figure `verify` prints
 * as `toleranceUsed`, so flush intervals can be compared before a GPU run.
 *
 * Usage: deno run tools/f16_error_model.ts [--rows N] [--seed S] [--logit-scales C1,C2,...]
 * @module
 */
import { f16RangeGuard } from "../kernels/flash/template.ts";
import { createRng, type Rng } from "../workloads/random.ts";
import { decodeCacheElement, encodeCacheElement, inverseScale } from "../reference/codecs.ts";

const f16 = Math.f16round;
const f32 = Math.fround;

/** What one modelled row looks like and how the kernel would add it up. */
export interface RowModel {
  headDim: number;
  /** Keys the row attends to. */
  keys: number;
  qkFlush: number;
  pvFlush: number;
  laneSum: boolean;
  /** fp8 e4m3 codes times a scale, rounded to f16 when staged; else f16 values. */
  fp8: boolean;
  /** tanh softcap (0: off). */
  softcap: number;
  /** sm_scale times sqrt(D) (1: the default scale). @default 1 */
  logitScale?: number;
}

/** The largest power of two not above x (x > 0). */
function pow2Floor(x: number): number {
  return 2 ** Math.floor(Math.log2(x));
}

/**
 * The worst element's |o - ref| / (2e-3 + 2e-3 |ref|) for one row drawn from `rng`; q, k and v
 * are unit normals (SPEC §4's verify inputs).
 */
export function rowToleranceUsed(m: RowModel, rng: Rng): number {
  const D = m.headDim;
  const scale = (m.logitScale ?? 1) / Math.sqrt(D);
  const kScale = Math.fround(rng.uniform(0.5, 1.5)); // per-tensor fp8 scale
  const kInv = inverseScale(kScale);
  const q = Array.from({ length: D }, () => rng.normal()).map(f16);
  // K or V rows as the cache holds them: f16 values, or fp8 codes decoded with their scale.
  const stored = (x: number) =>
    m.fp8
      ? decodeCacheElement("fp8_e4m3", encodeCacheElement("fp8_e4m3", x, kInv), kScale)
      : f16(x);
  const cacheRows = () =>
    Array.from({ length: m.keys }, () => Array.from({ length: D }, () => stored(rng.normal())));
  const k = cacheRows();
  const v = cacheRows();

  // Reference: float64 over the values the kernel reads (decoded codes times scales).
  const logits = k.map((kr) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += q[d]! * kr[d]!;
    s *= scale;
    return m.softcap > 0 ? m.softcap * Math.tanh(s / m.softcap) : s;
  });
  const mx = Math.max(...logits);
  const w = logits.map((s) => Math.exp(s - mx));
  const wSum = w.reduce((a, b) => a + b, 0);
  const ref = Array.from(
    { length: D },
    (_, d) => w.reduce((a, wj, j) => a + wj * v[j]![d]!, 0) / wSum,
  );

  // Range guard factors (template.ts): |q~| < 2^qExp, |k~| <= 65504, |v~| <= vLimit.
  const guard = f16RangeGuard(m.laneSum ? 4 * m.qkFlush : m.qkFlush, m.pvFlush);
  const qMax = Math.max(...q.map(Math.abs));
  const fq = 2 ** (guard.qExp - Math.floor(Math.log2(qMax)) - 1);
  const fk = m.fp8 ? Math.min(1, pow2Floor(65472 / (448 * kScale))) : 1;
  const fv = pow2Floor(guard.vLimit / (m.fp8 ? 448 * kScale : 65504));
  const qt = q.map((x) => f16(x * fq));
  const kt = k.map((r) => r.map((x) => f16(x * fk)));
  const vt = v.map((r) => r.map((x) => f16(x * fv)));
  const sa = f32(scale * Math.LOG2E / (fq * fk));

  let run = -1e30;
  let l = 0;
  const o = new Array<number>(D).fill(0);
  for (let t0 = 0; t0 < m.keys; t0 += 64) {
    const tile = Array.from({ length: Math.min(64, m.keys - t0) }, (_, i) => t0 + i);
    const s = tile.map((j) => {
      let acc = 0;
      const h = [0, 0, 0, 0];
      for (let step = 0; step < D / 4; step++) {
        for (let lane = 0; lane < 4; lane++) {
          const d = 4 * step + lane;
          h[lane] = f16(qt[d]! * kt[j]![d]! + h[lane]!);
        }
        if ((step + 1) % m.qkFlush === 0) {
          acc = m.laneSum
            ? f32(acc + f16(f16(h[0]! + h[1]!) + f16(h[2]! + h[3]!)))
            : f32(acc + f32(f32(h[0]! + h[1]!) + f32(h[2]! + h[3]!)));
          h.fill(0);
        }
      }
      let x = f32(acc * sa); // log2 domain
      if (m.softcap > 0) {
        const c = m.softcap * Math.LOG2E;
        x = f32(c * (1 - 2 / (2 ** (Math.max(-15, Math.min(15, x / c)) * 2.8853900817779268) + 1)));
      }
      return x;
    });
    const mNew = Math.max(run, ...s);
    const alpha = f32(2 ** (run - mNew));
    run = mNew;
    const p = s.map((x) => f16(f32(2 ** (x - mNew))));
    l = f32(l * alpha + p.reduce((a, b) => f32(a + b), 0));
    for (let d = 0; d < D; d++) o[d] = f32(o[d]! * alpha);
    const ob = new Array<number>(D).fill(0);
    tile.forEach((j, i) => {
      for (let d = 0; d < D; d++) ob[d] = f16(p[i]! * vt[j]![d]! + ob[d]!);
      if ((i + 1) % m.pvFlush === 0 || i === tile.length - 1) {
        for (let d = 0; d < D; d++) o[d] = f32(ob[d]! / fv + o[d]!);
        ob.fill(0);
      }
    });
  }
  let worst = 0;
  for (let d = 0; d < D; d++) {
    const err = Math.abs(o[d]! / l - ref[d]!);
    worst = Math.max(worst, err / (2e-3 + 2e-3 * Math.abs(ref[d]!)));
  }
  return worst;
}

/** The worst `rowToleranceUsed` over `rows` rows per key count. */
export function worstToleranceUsed(
  base: Omit<RowModel, "keys">,
  keyCounts: number[],
  rows: number,
  seed: number,
): number {
  const rng = createRng(seed);
  let worst = 0;
  for (const keys of keyCounts) {
    for (let r = 0; r < rows; r++) {
      worst = Math.max(worst, rowToleranceUsed({ ...base, keys }, rng));
    }
  }
  return worst;
}

if (import.meta.main) {
  const arg = (name: string, dflt: number) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
  };
  const rows = arg("--rows", 300);
  const seed = arg("--seed", 1);
  const keyGroups: [string, number[]][] = [
    ["1-8 keys", [1, 2, 3, 4, 5, 6, 7, 8]],
    ["9-64 keys", [12, 17, 24, 33, 48, 64]],
    ["65-1k keys", [100, 300, 1000]],
  ];
  // --logit-scales 1,1.5,2: the default flushes at those sm_scale * sqrt(D); else the
  // flush settings at the default scale.
  const scalesArg = Deno.args.indexOf("--logit-scales");
  const settings: [string, Partial<RowModel>][] = scalesArg >= 0
    ? Deno.args[scalesArg + 1]!.split(",").map((c) => [
      `qk 8 / pv 32, sm_scale ${c} / sqrt(D)`,
      { qkFlush: 8, pvFlush: 32, logitScale: Number(c) },
    ])
    : [
      ["qk 8 / pv 16 (v4-v6 default)", { qkFlush: 8, pvFlush: 16 }],
      ["qk 8 / pv 16, lane sums", { qkFlush: 8, pvFlush: 16, laneSum: true }],
      ["qk 8 / pv 32 (v7 default)", { qkFlush: 8, pvFlush: 32 }],
      ["qk 8 / pv 64", { qkFlush: 8, pvFlush: 64 }],
      ["qk 16 / pv 16", { qkFlush: 16, pvFlush: 16 }],
    ];
  console.log(`worst element / f16 tolerance, ${rows} rows per key count and setting`);
  console.log(`| setting | D | cache | softcap | ${keyGroups.map(([n]) => n).join(" | ")} |`);
  console.log(`| --- | --- | --- | --- | ${keyGroups.map(() => "---").join(" | ")} |`);
  for (const [name, s] of settings) {
    for (const [D, fp8, softcap] of [[64, true, 20], [64, false, 0], [128, false, 0]] as const) {
      const base = {
        headDim: D,
        qkFlush: 8,
        pvFlush: 16,
        laneSum: false,
        fp8,
        softcap,
        ...s,
      };
      const cells = keyGroups.map(([, ks]) => worstToleranceUsed(base, ks, rows, seed).toFixed(2));
      console.log(
        `| ${name} | ${D} | ${fp8 ? "fp8" : "f16"} | ${softcap || "-"} | ${cells.join(" | ")} |`,
      );
    }
  }
}
