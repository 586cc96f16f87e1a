/**
 * Diagnostic for kernels/mma/tune.ts: runs the mma attention pass with `dumpScores` (work item 0
 * writes the raw scores S = Q K^T of its first K tile into o) and compares each 16 x 16 block of
 * S with the float64 product computed here, with its transpose, and with zero. Tells whether
 * the Q K^T stage is already wrong on an adapter, and how. f16 caches only.
 * @module
 */
import type { GpuContext } from "../gpu.ts";
import type { PagedPrefillInputs, Problem } from "../../op/types.ts";
import type { DeviceProblem } from "../variant.ts";
import { f16BitsToNumber } from "../../reference/codecs.ts";
import { type MmaOptions, planMmaAttention } from "./mma.ts";
import { MMA_TILE } from "./spec.ts";

/** What the dumped scores of item 0's first tile look like against the reference. */
export interface ScoreDump {
  /** Rows and keys of the tile compared. */
  rows: number;
  keys: number;
  /** max |GPU - CPU| / max |CPU| over the tile. */
  relErr: number;
  /** 16 x 16 blocks that match S, S^T (within the block), zero, or nothing. */
  blocks: { match: number; transposed: number; zero: number; other: number };
  /** First values of row 0, GPU then CPU. */
  sample: { gpu: number[]; cpu: number[] };
  /** The whole dumped tile, [rows][keys] (for offline analysis with the same seed). */
  raw: number[];
  /** Item 0 of the work list (request, kv head, first row, slot, t0, t1, key end, old tiles). */
  item: number[];
}

/** Item 0's first-tile dump from the GPU, with what the host needs to read it. */
interface _Dump {
  data: Float32Array;
  items: Uint32Array;
  rows: number;
  keys: number;
}

/**
 * Plans the attention pass with `dumpScores` (and `dumpTile` when `tile`), non-split and with
 * row-major scores, runs it once and reads back what item 0 wrote into o: its first tile's
 * scores (rows x (keys + 4) f32) or its staged K tile (keys x (D + 8) f32).
 */
async function _runDump(
  gpu: GpuContext,
  dev: DeviceProblem,
  options: MmaOptions,
  tile: boolean,
): Promise<_Dump> {
  if (dev.problem.cacheDtype !== "f16") {
    throw new RangeError(`${tile ? "tile" : "score"} dumps need an f16 cache`);
  }
  const planned = await planMmaAttention(gpu, dev, {
    ...options,
    dumpScores: true,
    ...(tile ? { dumpTile: true } : {}),
    targetItems: 0,
    transposedScores: false,
  });
  const keys = Number(/_k(\d+)_/.exec(planned.key)![1]);
  const rows = Number(/_r(\d+)_/.exec(planned.key)![1]);
  const bytes = (tile ? keys * (dev.problem.headDim + 8) : rows * (keys + 4)) * 4;
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const pp of planned.passes) pp.encodeInto(pass);
  pass.end();
  const read = gpu.device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  enc.copyBufferToBuffer(dev.o, 0, read, 0, bytes);
  gpu.device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const data = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  for (const pp of planned.passes) pp.destroy();
  return { data, items: planned.list.items, rows, keys };
}

/** Item 0's first K tile: where its keys come from, and each key's f16 row as numbers. */
function _firstTile(inputs: PagedPrefillInputs, p: Problem, items: Uint32Array, keys: number) {
  const [b, kvh, t0, kend, nOld] = [items[0]!, items[1]!, items[4]!, items[6]!, items[7]!];
  const D = p.headDim;
  const old = p.cacheLens[b]!;
  const qStart = p.qStarts[b]!;
  const isOld = t0 < nOld;
  const base = isOld ? t0 * keys : old + (t0 - nOld) * keys;
  const kNew = inputs.kNew.data as Uint16Array;
  const kPages = inputs.kPages.data as Uint16Array;
  const bt = inputs.blockTable.data as Int32Array;
  return {
    isOld,
    /** Keys the kernel stages from this tile (the rest of the tile is zero). */
    cnt: isOld ? Math.min(keys, old - base) : Math.min(keys, kend - base),
    /** Key k of the tile as D numbers, or null past the old keys (or past k_new). */
    keyRow(k: number): number[] | null {
      const pos = base + k;
      if (isOld ? pos >= old : qStart + pos - old >= p.totalQ) return null;
      const off = isOld
        ? ((bt[b * p.maxPagesPerReq + Math.floor(pos / p.pageSize)]! * p.pageSize +
              (pos % p.pageSize)) * p.numKvHeads + kvh) * D
        : ((qStart + pos - old) * p.numKvHeads + kvh) * D;
      const src = isOld ? kPages : kNew;
      return Array.from({ length: D }, (_, d) => f16BitsToNumber(src[off + d]!));
    },
  };
}

/** Runs the dump for `options` (a non-split, non-transposed mma config) and compares. */
export async function dumpFirstScores(
  gpu: GpuContext,
  dev: DeviceProblem,
  inputs: PagedPrefillInputs,
  options: MmaOptions,
): Promise<ScoreDump> {
  const { data: s, items, rows, keys } = await _runDump(gpu, dev, options, false);
  const ss = keys + 4;
  const cpu = _scores(inputs, dev.problem, items, rows, keys);
  let maxRef = 0, maxErr = 0;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < keys; k++) {
      maxRef = Math.max(maxRef, Math.abs(cpu[r * keys + k]!));
      maxErr = Math.max(maxErr, Math.abs(s[r * ss + k]! - cpu[r * keys + k]!));
    }
  }
  const tol = 2e-3 * Math.max(maxRef, 1e-6);
  const blocks = { match: 0, transposed: 0, zero: 0, other: 0 };
  for (let rb = 0; rb < rows / MMA_TILE; rb++) {
    for (let kb = 0; kb < keys / MMA_TILE; kb++) {
      let m = true, t = true, z = true;
      for (let i = 0; i < MMA_TILE; i++) {
        for (let j = 0; j < MMA_TILE; j++) {
          const g = s[(rb * 16 + i) * ss + kb * 16 + j]!;
          m &&= Math.abs(g - cpu[(rb * 16 + i) * keys + kb * 16 + j]!) <= tol;
          t &&= Math.abs(g - cpu[(rb * 16 + j) * keys + kb * 16 + i]!) <= tol;
          z &&= g === 0;
        }
      }
      if (m) blocks.match++;
      else if (t) blocks.transposed++;
      else if (z) blocks.zero++;
      else blocks.other++;
    }
  }
  return {
    rows,
    keys,
    relErr: maxErr / Math.max(maxRef, 1e-30),
    blocks,
    sample: {
      gpu: Array.from(s.slice(0, 6), (x) => Number(x.toPrecision(4))),
      cpu: Array.from(cpu.slice(0, 6), (x) => Number(x.toPrecision(4))),
    },
    raw: Array.from({ length: rows * keys }, (_, i) => s[Math.floor(i / keys) * ss + (i % keys)]!),
    item: Array.from(items.slice(0, 8)),
  };
}

/** Float64 S of item 0's first tile, [rows][keys], zero where the kernel stages zeros. */
function _scores(
  inputs: PagedPrefillInputs,
  p: Problem,
  items: Uint32Array,
  rows: number,
  keys: number,
): Float64Array {
  const [b, kvh, f0] = [items[0]!, items[1]!, items[2]!];
  const G = p.numHeads / p.numKvHeads;
  const D = p.headDim;
  const qStart = p.qStarts[b]!;
  const nrows = p.qLens[b]! * G;
  const tile = _firstTile(inputs, p, items, keys);
  const K = Array.from({ length: tile.cnt }, (_, k) => tile.keyRow(k)!);
  const q = inputs.q.data as Uint16Array;
  const out = new Float64Array(rows * keys);
  for (let r = 0; r < rows; r++) {
    const flat = f0 + r;
    if (flat >= nrows) continue;
    const qo = ((qStart + Math.floor(flat / G)) * p.numHeads + kvh * G + (flat % G)) * D;
    for (let k = 0; k < tile.cnt; k++) {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += f16BitsToNumber(q[qo + d]!) * K[k]![d]!;
      out[r * keys + k] = acc;
    }
  }
  return out;
}

/**
 * Runs the pass with `dumpTile` (item 0 writes its first staged K tile, h_s, as f32) and says,
 * for each tile row, which key of the tile it holds (exact match over the first 120 dims) and
 * how many of its D values are exact.
 */
export async function dumpFirstTile(
  gpu: GpuContext,
  dev: DeviceProblem,
  inputs: PagedPrefillInputs,
  options: MmaOptions,
): Promise<{ rows: string; exactRows: number; keys: number }> {
  const { data: h, items, keys } = await _runDump(gpu, dev, options, true);
  const D = dev.problem.headDim;
  const ks = D + 8;
  const tile = _firstTile(inputs, dev.problem, items, keys);
  const want = Array.from({ length: keys + 2 }, (_, k) => tile.keyRow(k));
  const desc: string[] = [];
  let exactRows = 0;
  for (let r = 0; r < keys; r++) {
    const got = Array.from({ length: D }, (_, d) => h[r * ks + d]!);
    let which = -1;
    for (let k = 0; k < want.length && which < 0; k++) {
      const w = want[k];
      if (w && got.slice(0, 120).every((x, d) => x === w[d])) which = k;
    }
    const exact = which >= 0 ? got.filter((x, d) => x === want[which]![d]).length : 0;
    if (which === r && exact === D) exactRows++;
    else {desc.push(
        `row ${r}: key ${which} (${exact}/${D} exact; last ${got.slice(D - 3).join(",")})`,
      );}
  }
  return { rows: desc.slice(0, 6).join("; "), exactRows, keys };
}
