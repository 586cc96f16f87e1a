/**
 * GPU-machine probe of the subgroup matrix conventions the mma kernel relies on: which product
 * a load/load/multiply/store sequence computes for each (left, right) majorness, how a result
 * stored to and loaded from workgroup memory comes out, the u32 -> vec2<f16> bitcast and
 * `subgroupShuffleXor`. For kernels/mma/tune.ts (needs an adapter with f16 subgroup matrices).
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import { runProbeShader } from "./probe_run.ts";

const PROBE_WGSL = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

@group(0) @binding(0) var<storage, read> ab: array<f32>;
@group(0) @binding(1) var<storage, read> words: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> wa: array<f16, 384>;
var<workgroup> wb: array<f16, 384>;
var<workgroup> wc: array<f32, 320>;

@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < 256u; i = i + 32u) {
    wa[(i / 16u) * 24u + i % 16u] = f16(ab[i]);
    wb[(i / 16u) * 24u + i % 16u] = f16(ab[256u + i]);
  }
  workgroupBarrier();
  let lr = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wa, 0u, false, 24u);
  let lc = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wa, 0u, true, 24u);
  let rr = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&wb, 0u, false, 24u);
  let rc = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&wb, 0u, true, 24u);
  let z = subgroup_matrix_result<f32, 16, 16>();
  let c0 = subgroupMatrixMultiplyAccumulate(lr, rr, z);
  subgroupMatrixStore(&out, 0u, c0, false, 16u);
  subgroupMatrixStore(&out, 256u, subgroupMatrixMultiplyAccumulate(lr, rc, z), false, 16u);
  subgroupMatrixStore(&out, 512u, subgroupMatrixMultiplyAccumulate(lc, rr, z), false, 16u);
  subgroupMatrixStore(&wc, 0u, c0, false, 20u);
  workgroupBarrier();
  for (var i = lid; i < 256u; i = i + 32u) {
    out[768u + i] = wc[(i / 16u) * 20u + i % 16u];
  }
  let c4 = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&wc, 0u, false, 20u);
  subgroupMatrixStore(&out, 1024u, c4, false, 16u);
  subgroupMatrixStore(&out, 1280u, c0, true, 16u);
  let h = bitcast<vec2<f16>>(words[lid]);
  out[1536u + 2u * lid] = f32(h.x);
  out[1537u + 2u * lid] = f32(h.y);
  out[1600u + lid] = subgroupShuffleXor(f32(lid), 1u);
  let c5 = subgroupMatrixMultiplyAccumulate(lr, rr, c0);
  subgroupMatrixStore(&out, 1632u, c5, false, 16u);
  var acc = subgroup_matrix_result<f32, 16, 16>();
  for (var i = 0u; i < 3u; i = i + 1u) {
    acc = subgroupMatrixMultiplyAccumulate(lr, rr, acc);
  }
  subgroupMatrixStore(&out, 1888u, acc, false, 16u);
  // runtime offsets (the kernel's are never constants)
  let dyn = select(0u, 256u, lid < 4096u);
  let ld = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wa, dyn - 256u, false, 24u);
  subgroupMatrixStore(&out, 1888u + dyn, subgroupMatrixMultiplyAccumulate(ld, rr, z), false, 16u);
}
`;

/** What each probe step computed (names of the matching candidate, or "none"). */
export interface MatrixProbe {
  /** left row-major x right row-major (expected "AB"). */
  rowRow: string;
  /** left row-major x right column-major (expected "AB^T"). */
  rowCol: string;
  /** left column-major x right row-major (expected "A^TB"). */
  colRow: string;
  /** result stored row-major to workgroup memory, read by threads (expected "AB"). */
  storeWorkgroup: string;
  /** result loaded back from workgroup memory and stored (expected "AB"). */
  loadResult: string;
  /** result stored column-major (expected "(AB)^T"). */
  storeColMajor: string;
  /** C + AB with C = AB (expected "2AB"). */
  accumulate: string;
  /** three accumulations in a loop (expected "3AB"). */
  loop3: string;
  /** runtime load and store offsets (expected "AB"). */
  runtimeOffset: string;
  bitcastOk: boolean;
  shuffleOk: boolean;
}

function _mul(a: Float64Array, b: Float64Array): Float64Array {
  const c = new Float64Array(256);
  for (let r = 0; r < 16; r++) {
    for (let k = 0; k < 16; k++) {
      for (let col = 0; col < 16; col++) c[r * 16 + col]! += a[r * 16 + k]! * b[k * 16 + col]!;
    }
  }
  return c;
}

function _t(a: Float64Array): Float64Array {
  const o = new Float64Array(256);
  for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) o[c * 16 + r] = a[r * 16 + c]!;
  return o;
}

/** Runs the probe on `gpu` (throws when the shader does not compile). */
export async function probeMatrixConventions(gpu: GpuContext): Promise<MatrixProbe> {
  const device = gpu.device;
  const a = new Float64Array(256), b = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    a[i] = ((i * 7 + 3) % 11) / 8 - 0.5;
    b[i] = ((i * 5 + 1) % 13) / 8 - 0.75;
  }
  const abData = new Float32Array(512);
  abData.set(a, 0);
  abData.set(b, 256);
  const words = new Uint32Array(32);
  // f16 pairs: low half 1 + i/64, high half -(2 + i/32)
  const f16 = (x: number) => {
    const v = new Float32Array([x]);
    const u = new Uint32Array(v.buffer)[0]!;
    const e = ((u >> 23) & 0xff) - 127 + 15;
    return ((u >>> 16) & 0x8000) | (e << 10) | ((u >> 13) & 0x3ff);
  };
  for (let i = 0; i < 32; i++) words[i] = f16(1 + i / 64) | (f16(-(2 + i / 32)) << 16);
  const out = new Float32Array(
    await runProbeShader(device, "mma probe", PROBE_WGSL, [abData, words], 2400 * 4),
  );
  const at = _t(a), bt = _t(b);
  const cands: Record<string, Float64Array> = {
    "AB": _mul(a, b),
    "A^TB": _mul(at, b),
    "AB^T": _mul(a, bt),
    "A^TB^T": _mul(at, bt),
  };
  for (const [k, v] of Object.entries({ ...cands })) cands[`(${k})^T`] = _t(v);
  cands["2AB"] = cands["AB"]!.map((x) => 2 * x);
  cands["3AB"] = cands["AB"]!.map((x) => 3 * x);
  const match = (off: number) => {
    for (const [k, v] of Object.entries(cands)) {
      let ok = true;
      for (let i = 0; i < 256 && ok; i++) ok = Math.abs(out[off + i]! - v[i]!) < 1e-3;
      if (ok) return k;
    }
    return `none (first values ${Array.from(out.slice(off, off + 4)).join(", ")})`;
  };
  let bitcastOk = true;
  for (let i = 0; i < 32; i++) {
    bitcastOk &&= out[1536 + 2 * i] === Math.fround(1 + i / 64) &&
      out[1537 + 2 * i] === Math.fround(-(2 + i / 32));
  }
  let shuffleOk = true;
  for (let i = 0; i < 32; i++) shuffleOk &&= out[1600 + i] === (i ^ 1);
  return {
    rowRow: match(0),
    rowCol: match(256),
    colRow: match(512),
    storeWorkgroup: match(768),
    loadResult: match(1024),
    storeColMajor: match(1280),
    accumulate: match(1632),
    loop3: match(1888),
    runtimeOffset: match(2144),
    bitcastOk,
    shuffleOk,
  };
}
