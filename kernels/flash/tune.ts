/**
 * Tuning run of the flash kernel (GPU machine): for each workload, verifies the default plan
 * against the float64 reference on sampled rows, then times several tile / split configs with
 * GPU timestamps (wall clock when absent) and prints ms, TFLOP/s, GB/s and % of the measured
 * ceilings. Writes the full results as JSON.
 *
 * Issue 5, v3 comparison (the v2 loop against the pipelined loop, PERF_LOG "v3: prediction"),
 * on the H200, about 2 minutes:
 *
 *   source .gpu/boot.sh && DENO_DIR=$PWD/.gpu_npm deno run -A --node-modules-dir=none \
 *     --cached-only --no-lock kernels/flash/tune.ts --compare
 *
 * `--compare` runs the seed row (f16, bf16), the b8 4k+512 row and the q4 32k decode row; every
 * config is verified against the float64 reference on sampled rows and timed after >= 300 ms of
 * warm-up (median of >= 20 runs); percentages are of the PERF_LOG ceilings (64.4 TFLOP/s f32
 * FMA, 4.17 TB/s copy), not re-measured. The short table (config, ms, TFLOP/s, % of 64.4, %
 * of 4.17 TB/s, PASS/FAIL) is printed last. Add `--only SUBSTR` to run fewer cases.
 *
 * `--half` times the v2 loop against f16 arithmetic (`FlashSpec.f16Math`) tiles on the seed,
 * fp8/int8 seed, b8, softcap-D64, D256 and decode q16/mixed rows, every config verified;
 * `--half-check` times the defaults on the rows of the issue-5 targets; `--half-flush` times
 * the f16 flush intervals (FlashSpec.f16QkFlush, f16PvFlush) on the seed and b8 rows.
 * `--splits` times the default tiles with more split-KV items (work list targetItems and
 * minSplitTiles) on the seed, softcap-D64, MHA and non-causal rows; `--splits-long` on the
 * rows with few row tiles and long prefixes (decode q16, decode mixed, qwen mixed D256).
 * `--lane-sum` times `FlashSpec.f16QkLaneSum` against the default on D128 rows. `--small-rows`
 * times the default tile's per-thread shape with 32 rows and half the threads (PERF_LOG v7).
 * `--d64` times D64 tiles (fewer key groups, 128-key tiles, 128 rows, O flushed every 64 keys)
 * on the four softcap-D64 rows (PERF_LOG v8). `--q4` times 16-row f16 tiles against the decode
 * kernel on the decode q4 rows, smaller workgroups on the MHA, MQA and varlen rows, and O flushed
 * every 64 keys on the softcap-D64 rows (PERF_LOG v9). `--qglobal` times f16 tiles with Q in a
 * global scratch buffer (`FlashSpec.qGlobal`: 12-23 KB of workgroup memory, two or three per SM)
 * against the defaults on the seed, MHA, MQA fp8, varlen, decode-mixed, softcap-D64, D256 and D96
 * rows (PERF_LOG v10). `--int8-alu` times int8 codes decoded by bit placement
 * (`FlashSpec.int8Alu`) against the default on the int8 rows; `--precise` the default plan (the
 * items of rows that see few keys with f32 products) against every item with f16 products, on the
 * rows with requests that start without a long prefix (`--precise-keys`: at thresholds 0, 16, 64
 * and 128); `--small-twins` the small quantized default rows against the same shapes with a
 * 16-bit cache (PERF_LOG v12). `--int8-fold` times the int8 scales folded out of the tile
 * (`FlashSpec.int8Fold`) against the default on the f16-tile int8 rows (PERF_LOG v13).
 * `--pool-bound` times bf16 caches' tile factors from the bound pass (`FlashSpec.poolBound`)
 * against per-tile maxima on the f16-tile bf16 rows; `--balance` the balanced split-KV of launches
 * with one long row tile against the default plan on the small-grid rows, `--balance-bytes` the
 * byte-cache varlen rows under it (precise items, the fold, lateNew), `--balance-tiles` the varlen
 * rows balanced on 64-row tiles (PERF_LOG v14).
 *
 * Usage: deno run -A kernels/flash/tune.ts [--compare] [--half | --half-check | --half-flush |
 *   --splits | --splits-long | --lane-sum | --small-rows | --d64 | --q4 | --qglobal] [--out FILE]
 *   [--only SUBSTR] [--local] [--simple] [--probe]
 * @module
 */
import { acquireGpu } from "../gpu.ts";
import { validateProblem } from "../../op/validate.ts";
import { uploadInputs } from "../device_inputs.ts";
import { runKernelPlan } from "../op.ts";
import { referenceAttention, sampleReferenceRows } from "../../reference/attention.ts";
import { compareOutput, describeOutputCheck } from "../../reference/check.ts";
import { adHocCase, expandCases, loadManifest, type WorkloadCase } from "../../workloads/loader.ts";
import { generateCase } from "../../workloads/generate.ts";
import { rooflineCosts } from "../../reports/roofline.ts";
import { measureCeilings } from "../../reports/ceilings.ts";
import { timeGpu } from "../../bench/timing.ts";
import { inputSetsFor, warmUp } from "../../bench/bench_case.ts";
import { defaultFlashTile, type FlashOptions, planFlash } from "./flash.ts";
import { planDecode } from "../decode/decode.ts";
import { simpleVariant } from "../paged_prefill/simple.ts";
import { F16_PRECISE_KEYS, flashHalfCandidates, type FlashTile } from "./spec.ts";
import type { Problem } from "../../op/types.ts";
import type { KernelPlan } from "../variant.ts";

const args = Deno.args;
const flag = (name: string) => args.includes(name);
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const local = flag("--local");
const compare = flag("--compare");
const only = value("--only");
const setsOption = value("--sets");
const outPath = value("--out") ??
  (Deno.env.get("OUT") ? `${Deno.env.get("OUT")}/flash_tune.json` : "flash_tune.json");

const t = (
  rows: number,
  keys: number,
  threads: number,
  sRows: number,
  oRows: number,
  unrollD = false,
  qF32 = false,
): FlashTile => ({ rows, keys, threads, sRows, oRows, unrollD, qF32 });
/** A pipelined tile (PERF_LOG v3); kv16 = 16-bit K/V tiles in workgroup memory. */
const tp = (
  rows: number,
  keys: number,
  threads: number,
  sRows: number,
  oRows: number,
  kv16: boolean,
): FlashTile => ({ rows, keys, threads, sRows, oRows, unrollD: false, pipelined: true, kv16 });

interface Config {
  name: string;
  options: FlashOptions;
  /**
   * Plan with this change to the row's default tile (`options.tile` unset), its few-key rows
   * as precise items as the default plan does unless `options.preciseKeys` says otherwise.
   */
  editTile?: (tile: FlashTile) => FlashTile;
  /** Time the decode kernel (its default plan) instead of flash; `options` unused. */
  decode?: boolean;
}
interface Job {
  c: WorkloadCase;
  configs: Config[];
}

const manifest = loadManifest();
const byId = (id: string): WorkloadCase => {
  const c = expandCases(manifest).find((x) => x.id === id);
  if (!c) throw new Error(`no case ${id}`);
  return c;
};
/**
 * The D256 row of the tuning runs (not in the manifest): B1, q 1024, 8192 old keys, 32/8 heads;
 * `kind` names its dtype ("bf16" q) or cache ("same", "fp8_e4m3", "int8"), and its label.
 */
const D256_SHAPE = {
  batch: 1,
  heads: 32,
  headsKv: 8,
  headDim: 256,
  qLen: 1024,
  cacheLen: 8192,
  pageSize: 64,
} as const;
const d256Of = (kind?: "bf16" | "same" | "fp8_e4m3" | "int8") =>
  adHocCase({
    ...D256_SHAPE,
    ...(kind === "bf16" ? { dtype: "bf16" as const } : kind ? { cacheDtype: kind } : {}),
    label: kind ? `adhoc-d256-q1k-old8k-${kind}` : "adhoc-d256-q1k-old8k",
  });
const d256Case = d256Of();
const dflt: Config = { name: "default", options: {} };
/** `--byte-words`, `--byte-chunk`: the byte-chunk stagings tried beside lateNew (PERF_LOG v11). */
const byteStaging = ([
  ["--byte-words", "byteWords", { byteChunk: 4 }],
  ["--byte-chunk", "chunk8", { byteChunk: 8 }],
  ["--byte-chunk", "chunk8 lateNew", { byteChunk: 8, lateNew: true }],
] as const).filter(([flagName]) => flag(flagName)).map(([, name, staging]) =>
  [name, staging] as const
);
/** `a` and `b` twice in alternation, the repeats named "... again". */
const inAlternation = (a: Config, b: Config): Config[] => [
  a,
  b,
  { ...a, name: `${a.name} again` },
  { ...b, name: `${b.name} again` },
];
const v2: Config = { name: "v2 default (f32)", options: { pipelined: false, f16Math: false } };
const v3: Config = { name: "v3 pipe (default tile)", options: { pipelined: true } };
/** A v2 tile with f16 arithmetic (FlashSpec.f16Math). */
const th = (
  rows: number,
  keys: number,
  threads: number,
  sRows: number,
  oRows: number,
  flush: { f16QkFlush?: number; f16PvFlush?: number } = {},
): FlashTile => ({ ...t(rows, keys, threads, sRows, oRows), f16Math: true, ...flush });
/** An f16 tile with Q in a global scratch buffer (FlashSpec.qGlobal). */
const thq = (
  rows: number,
  keys: number,
  threads: number,
  sRows: number,
  oRows: number,
  flush: { f16PvFlush?: number } = {},
): FlashTile => ({ ...th(rows, keys, threads, sRows, oRows, flush), qGlobal: true });
/** The modes of the f16-tile era (v4 on): each verifies every config and measures the ceilings. */
const HALF_MODES = [
  "--half",
  "--half-check",
  "--half-flush",
  "--splits",
  "--splits-long",
  "--lane-sum",
  "--small-rows",
  "--d64",
  "--q4",
  "--fit2",
  "--fit2b",
  "--fit2-splits",
  "--qglobal",
  "--qglobal2",
  "--fp8alu",
  "--d256-bytes",
  "--late-new",
  "--late-new-check",
  "--byte-words",
  "--byte-chunk",
  "--int8-alu",
  "--precise",
  "--precise-keys",
  "--small-twins",
  "--int8-fold",
  "--pool-bound",
  "--balance",
  "--balance-bytes",
  "--balance-tiles",
  "--int8-bound",
  "--varlen-sweep",
  "--varlen-tiles",
  "--late-new-share",
];
const half = HALF_MODES.some(flag);
const jobs: Job[] = local
  ? [{
    c: adHocCase({ batch: 2, heads: 8, headsKv: 2, headDim: 32, qLen: 40, cacheLen: 100 }),
    configs: [
      dflt,
      { name: "t16", options: { tile: t(16, 16, 32, 2, 2), targetItems: 0 } },
      v3,
    ],
  }]
  : flag("--half-flush")
  ? [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        ...[[8, 32], [4, 32], [32, 32], [8, 8], [16, 16]].map(([qk, pv]) => ({
          name: `f16 64x64 s2o8 flush qk ${qk} pv ${pv}`,
          options: { tile: th(64, 64, 256, 2, 8, { f16QkFlush: qk, f16PvFlush: pv }) },
        })),
      ],
    },
    {
      c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"),
      configs: [dflt, {
        name: "f16 64x64 s2o8 flush qk 8 pv 32",
        options: { tile: th(64, 64, 256, 2, 8, { f16QkFlush: 8, f16PvFlush: 32 }) },
      }],
    },
  ]
  : flag("--fit2")
  ? [
    // Tiles of <= 23 KB of workgroup memory: two resident per SM (tools/probe_occupancy.ts: the
    // SM holds ~48 KB under Vulkan, so every tile of >= 24 KB runs alone; PERF_LOG v9).
    ...[
      "mha-prefill-paged-b2-h16-d128-p32/f16",
      "mqa-prefill-paged-b2-h16kv1-d128-p32/f16",
      "varlen-mixed-b6-with-empty-p32/f16",
      "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "f16 32x32 wg128 s2o4 (20 KB)", options: { tile: th(32, 32, 128, 2, 4) } },
        { name: "f16 32x32 wg128 s1o2 (20 KB)", options: { tile: th(32, 32, 128, 1, 2) } },
      ],
    })),
    // D96: the default 64x32 tile has 128 invocations alone on its SM (4 warps).
    {
      c: byId("gqa-prefill-paged-noncausal-softcap30-b2-d96-p16/f16"),
      configs: [
        dflt,
        { name: "f16 64x64 wg256 s2o2", options: { tile: th(64, 64, 256, 2, 2) } },
        { name: "f16 64x32 wg256 s2o2", options: { tile: th(64, 32, 256, 2, 2) } },
        { name: "f16 64x64 wg256 s2o1", options: { tile: th(64, 64, 256, 2, 1) } },
      ],
    },
  ]
  : flag("--qglobal")
  ? [
    // Q in a global scratch buffer (FlashSpec.qGlobal, PERF_LOG v10): tiles of 12-23 KB of
    // workgroup memory, two or three resident per SM, against the defaults.
    ...[
      "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
      "mha-prefill-paged-b2-h16-d128-p32/f16",
      "mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/bf16",
      "varlen-mixed-b6-with-empty-p32/f16",
      "llama-8b-decode-paged-b8-mixed-q1-16-p64/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "qg 64x64 wg256 s2o8 (28 KB)", options: { tile: thq(64, 64, 256, 2, 8) } },
        { name: "qg 64x32 wg256 s2o4 (15 KB)", options: { tile: thq(64, 32, 256, 2, 4) } },
        { name: "qg 64x32 wg256 s2o8 (15 KB)", options: { tile: thq(64, 32, 256, 2, 8) } },
        { name: "qg 32x32 wg128 s2o4 (12 KB)", options: { tile: thq(32, 32, 128, 2, 4) } },
        { name: "qg 32x64 wg128 s2o8 (22 KB)", options: { tile: thq(32, 64, 128, 2, 8) } },
      ],
    })),
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16"),
      configs: [
        dflt,
        {
          name: "qg 64x128 wg256 s4o4 pv64 (39 KB)",
          options: { tile: thq(64, 128, 256, 4, 4, { f16PvFlush: 64 }) },
        },
        { name: "qg 64x64 wg256 s4o4 (22 KB)", options: { tile: thq(64, 64, 256, 4, 4) } },
        { name: "qg 64x32 wg256 s2o4 (11 KB)", options: { tile: thq(64, 32, 256, 2, 4) } },
      ],
    },
    {
      c: d256Case,
      configs: [
        dflt,
        { name: "qg 64x16 wg256 s1o4 (12 KB)", options: { tile: thq(64, 16, 256, 1, 4) } },
        { name: "qg 64x32 wg256 s1o4 (23 KB)", options: { tile: thq(64, 32, 256, 1, 4) } },
        { name: "qg 64x64 wg256 s1o4 (43 KB)", options: { tile: thq(64, 64, 256, 1, 4) } },
        { name: "qg 32x32 wg128 s1o4 (20 KB)", options: { tile: thq(32, 32, 128, 1, 4) } },
      ],
    },
    {
      c: byId("gqa-prefill-paged-noncausal-softcap30-b2-d96-p16/f16"),
      configs: [
        dflt,
        { name: "qg 64x64 wg256 s2o2 (24 KB)", options: { tile: thq(64, 64, 256, 2, 2) } },
      ],
    },
  ]
  : flag("--qglobal2")
  ? [
    // Larger register tiles (fewer workgroup-memory loads per product), with Q in workgroup
    // memory where it still fits and in the global scratch where it does not (PERF_LOG v10).
    {
      c: d256Case,
      configs: [
        dflt,
        { name: "qg 64x64 wg256 s1o4 (43 KB)", options: { tile: thq(64, 64, 256, 1, 4) } },
        { name: "qg 64x64 wg256 s2o8 (44 KB)", options: { tile: thq(64, 64, 256, 2, 8) } },
        { name: "qg 64x64 wg256 s2o4 (44 KB)", options: { tile: thq(64, 64, 256, 2, 4) } },
        { name: "qg 64x64 wg256 s1o8 (43 KB)", options: { tile: thq(64, 64, 256, 1, 8) } },
      ],
    },
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        { name: "f16 64x64 wg256 s4o8 (45 KB)", options: { tile: th(64, 64, 256, 4, 8) } },
        { name: "qg 64x64 wg256 s4o8 (28 KB)", options: { tile: thq(64, 64, 256, 4, 8) } },
      ],
    },
    ...[
      "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16",
      "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-fp8/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        {
          name: "f16 64x128 wg256 s8o4 pv64 (47 KB)",
          options: { tile: th(64, 128, 256, 8, 4, { f16PvFlush: 64 }) },
        },
        {
          name: "qg 64x128 wg256 s8o4 pv64 (39 KB)",
          options: { tile: thq(64, 128, 256, 8, 4, { f16PvFlush: 64 }) },
        },
      ],
    })),
  ]
  : flag("--fp8alu")
  ? [
    // fp8 codes decoded by bit placement (FlashSpec.fp8Alu) against the workgroup table, on each
    // fp8 row's default tile; and the D256 default (Q in the global scratch) on bf16 and byte
    // caches (PERF_LOG v10).
    ...([
      ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16", th(64, 64, 256, 2, 8)],
      ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/bf16", th(64, 64, 256, 2, 8)],
      ["mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/bf16", th(32, 32, 128, 2, 4)],
      ["mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/f16", th(32, 32, 128, 2, 4)],
      ["varlen-mixed-b6-with-empty-p32-fp8/bf16", th(32, 32, 128, 2, 4)],
      [
        "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-fp8/f16",
        th(64, 128, 256, 4, 4, { f16PvFlush: 64 }),
      ],
    ] as const).map(([id, tile]) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "same tile, fp8Alu", options: { tile: { ...tile, fp8Alu: true } } },
      ],
    })),
    ...(["bf16", "fp8_e4m3", "int8"] as const).map((kind) => ({
      c: d256Of(kind),
      configs: [
        dflt,
        { name: "f16 64x16 wg256 s1o4 (v9)", options: { tile: th(64, 16, 256, 1, 4) } },
        ...(kind === "fp8_e4m3"
          ? [{
            name: "qg 64x64 s2o8 fp8Alu",
            options: { tile: { ...thq(64, 64, 256, 2, 8), fp8Alu: true } },
          }]
          : []),
      ],
    })),
  ]
  : flag("--late-new-check")
  ? ([
    // The D128 byte rows whose bench moved 1-6% with lateNew on by default (PERF_LOG v11): the
    // default tile against the same tile without it, twice in alternation.
    ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16", th(64, 64, 256, 2, 8)],
    ["llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-fp8/f16", th(64, 64, 256, 2, 8)],
    ["llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-fp8/bf16", th(64, 64, 256, 2, 8)],
    ["llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-int8/f16", th(64, 64, 256, 2, 8)],
    ["varlen-mixed-b6-with-empty-p32-fp8/f16", th(32, 32, 128, 2, 4)],
  ] as const).map(([id, tile]) => {
    const off = { name: "same tile, no lateNew", options: { tile: { ...tile, fp8Alu: true } } };
    return { c: byId(id), configs: inAlternation(dflt, off) };
  })
  : flag("--int8-alu")
  ? [
    // int8 codes decoded by bit placement (FlashSpec.int8Alu) against decode_int8, on each
    // int8 row's default tile, twice in alternation (PERF_LOG v12).
    "adhoc-d256-q1k-old8k-int8",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/bf16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/f16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "default-gqa-b2-d64-p16-int8/f16",
  ].map((id) => {
    const on: Config = {
      name: "default tile, int8Alu",
      options: {},
      editTile: (tile) => ({ ...tile, int8Alu: true }),
    };
    return {
      c: id.startsWith("adhoc") ? d256Of("int8") : byId(id),
      configs: inAlternation(dflt, on),
    };
  })
  : flag("--int8-fold")
  ? [
    // int8 scales folded out of the tile (FlashSpec.int8Fold: K's into Q, V's into O) against
    // the default on each f16-tile int8 row, twice in alternation; the D256 row's 16-bit twin as
    // the ratio's reference (PERF_LOG v13).
    "adhoc-d256-q1k-old8k-int8",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/bf16",
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-int8/f16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/f16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
  ].map((id) => {
    const on: Config = {
      name: "default tile, int8Fold",
      options: {},
      editTile: (tile) => ({ ...tile, int8Fold: true }),
    };
    return {
      c: id.startsWith("adhoc") ? d256Of("int8") : byId(id),
      configs: inAlternation(dflt, on),
    };
  }).concat([{ c: d256Case, configs: [dflt] }])
  : flag("--int8-bound")
  ? [
    // int8 caches with bf16 q: the tile factors from the new tokens' bound pass with the codes
    // times their scales staged as before (byteNewBound's factors over the largest scale), against
    // the default (int8Fold) and the per-tile guard (PERF_LOG v15).
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/bf16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/bf16",
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-int8/bf16",
  ].map((id) => {
    const varlen = id.startsWith("varlen");
    const split = varlen ? { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 } : {};
    return {
      c: byId(id),
      configs: [
        dflt,
        {
          name: "new bound, no fold",
          options: split,
          editTile: (tile) => ({ ...tile, int8Fold: false, byteNewBound: true }),
        },
        {
          name: "per-tile guard",
          options: split,
          editTile: (tile) => ({ ...tile, int8Fold: false, byteNewBound: false }),
        },
        { ...dflt, name: "default again" },
      ],
    };
  })
  : flag("--late-new-share")
  ? [
    // lateNew on the 32-row byte tiles against staging new tokens with the codes, on rows whose
    // keys are mostly new tokens (varlen) and mostly old ones (MQA) (PERF_LOG v15).
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
    "varlen-mixed-b6-with-empty-p32-fp8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/f16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/bf16",
  ].map((id) => {
    const options: FlashOptions = id.startsWith("varlen")
      ? { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 }
      : {};
    const same: Config = { name: "same tile", options, editTile: (tile) => tile };
    const off: Config = {
      name: "same tile, lateNew off",
      options,
      editTile: (tile) => ({ ...tile, lateNew: false }),
    };
    return { c: byId(id), configs: inAlternation(same, off) };
  })
  : flag("--varlen-tiles")
  ? [
    // Other 32-row tile shapes (registers per thread, keys per barrier) and lateNew off on the
    // balanced varlen rows, 16-bit against byte caches (PERF_LOG v15).
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
  ].map((id) => {
    const options: FlashOptions = { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 };
    const shape = (
      keys: number,
      threads: number,
      sRows: number,
      oRows: number,
      extra: Partial<FlashTile> = {},
    ): Config => ({
      name: `32x${keys} wg${threads} s${sRows}o${oRows}${
        Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : ""
      }`,
      options,
      editTile: (tile) => ({ ...tile, rows: 32, keys, threads, sRows, oRows, ...extra }),
    });
    return {
      c: byId(id),
      configs: [
        dflt,
        shape(32, 128, 2, 4, { lateNew: false }),
        shape(32, 128, 2, 2),
        shape(32, 256, 1, 2),
        shape(32, 256, 1, 4),
        shape(64, 128, 2, 4),
        shape(32, 128, 1, 4),
        shape(32, 64, 4, 8),
        { ...dflt, name: "default again" },
      ],
    };
  })
  : flag("--varlen-sweep")
  ? [
    // The balanced split's parameters and the precise items' launch weight on the varlen rows,
    // 16-bit and byte caches (PERF_LOG v15).
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
  ].map((id) => {
    const b = (targetItems: number, minSplitTiles: number, preciseCost?: number): Config => ({
      name: `balanced ${targetItems} min${minSplitTiles}${
        preciseCost === undefined ? "" : ` cost${preciseCost}`
      }`,
      options: {
        targetItems,
        splitBelow: 1e9,
        minSplitTiles,
        ...(preciseCost === undefined ? {} : { preciseCost }),
      },
    });
    return {
      c: byId(id),
      configs: [
        dflt,
        b(264, 2),
        b(264, 8),
        b(396, 4),
        b(528, 4),
        b(198, 4),
        b(264, 4, 1),
        b(264, 4, 3),
        b(264, 4, 1.5),
        { ...dflt, name: "default again" },
      ],
    };
  })
  : flag("--balance-tiles")
  ? [
    // The varlen rows balanced on the 64-row tile (one per SM, 132 slots) against the default
    // 32-row one: the byte decode shared by 64 rows instead of 32 (PERF_LOG v14).
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32/bf16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
  ].map((id) => ({
    c: byId(id),
    configs: [
      dflt,
      {
        name: "64-row tile, balanced 132",
        options: { targetItems: 132, splitBelow: 1e9, minSplitTiles: 4 },
        editTile: () => ({ ...flashHalfCandidates(128)[0]!, poolBound: false }),
      },
      {
        name: "64-row tile, balanced 264",
        options: { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 },
        editTile: () => ({ ...flashHalfCandidates(128)[0]!, poolBound: false }),
      },
      {
        name: "default tile without int8Fold, balanced 264",
        options: { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 },
        editTile: (tile) => ({ ...tile, int8Fold: false }),
      },
      { ...dflt, name: "default again" },
    ],
  }))
  : flag("--balance-bytes")
  ? [
    // The byte-cache varlen rows under the balanced split (PERF_LOG v14): the default plan, the
    // v13 split rules, and the balanced split with the int8 fold or fp8 bound dropped.
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "varlen-mixed-b6-with-empty-p32/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
    "varlen-mixed-b6-with-empty-p32-fp8/bf16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
  ].map((id) => ({
    c: byId(id),
    configs: [
      dflt,
      { name: "v13 split rules", options: { targetItems: 512, splitBelow: 128, minSplitTiles: 8 } },
      {
        name: "balanced, unbounded",
        options: { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 },
        editTile: (tile) => ({ ...tile, int8Fold: false, byteNewBound: false }),
      },
      {
        name: "balanced, lateNew off",
        options: { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4 },
        editTile: (tile) => ({ ...tile, lateNew: false }),
      },
      {
        name: "balanced, no precise items",
        options: { targetItems: 264, splitBelow: 1e9, minSplitTiles: 4, preciseKeys: 0 },
        editTile: (tile) => tile,
      },
      {
        name: "v13 split rules, no precise items",
        options: { targetItems: 512, splitBelow: 128, minSplitTiles: 8, preciseKeys: 0 },
        editTile: (tile) => tile,
      },
      { ...dflt, name: "default again" },
    ],
  }))
  : flag("--balance")
  ? [
    // Split-KV of only the row tiles longer than the work per resident workgroup (PERF_LOG v14):
    // the default plan against targets of 264 (two 32-row tiles per SM on 132 SMs) and 400
    // items with splitting whatever the row tiles' count.
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32/bf16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "mha-prefill-paged-b2-h16-d128-p32/f16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32/f16",
    "gqa-prefill-paged-noncausal-softcap30-b2-d96-p16/f16",
    "default-varlen-b3-with-empty-p16/f16",
    "llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/f16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
  ].map((id) => ({
    c: byId(id),
    configs: [
      dflt,
      ...[264, 400].map((target): Config => ({
        name: `balanced ${target}`,
        options: { targetItems: target, splitBelow: 1e9, minSplitTiles: 4 },
      })),
      { ...dflt, name: "default again" },
    ],
  }))
  : flag("--pool-bound")
  ? [
    // bf16 caches: tile factors from the bound pass's scan of the pools and new tokens
    // (FlashSpec.poolBound, forced on whatever `poolBoundPays` says) against each tile's maxima,
    // twice in alternation (PERF_LOG v14).
    "adhoc-d256-q1k-old8k-bf16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16",
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/bf16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16",
    "llama-8b-decode-paged-b8-prefix32k-q16-p64/bf16",
    "llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/bf16",
    "mha-prefill-paged-b2-h16-d128-p32/bf16",
    "mqa-prefill-paged-b2-h16kv1-d128-p32/bf16",
    "varlen-mixed-b6-with-empty-p32/bf16",
  ].map((id) => {
    const on: Config = {
      name: "default tile, poolBound",
      options: {},
      editTile: (tile) => ({ ...tile, poolBound: true }),
    };
    const off: Config = {
      name: "default tile, per-tile maxima",
      options: {},
      editTile: (tile) => ({ ...tile, poolBound: false }),
    };
    return {
      c: id.startsWith("adhoc") ? d256Of("bf16") : byId(id),
      configs: inAlternation(on, off),
    };
  })
  : flag("--precise")
  ? [
    // The rows with requests that start with few keys: the default plan (those rows' items with
    // f32 products) against every item with f16 products (PERF_LOG v12).
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32/bf16",
    "varlen-mixed-b6-with-empty-p32-fp8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
    "default-varlen-b3-with-empty-p16/f16",
    "tiny-page1-b2-h4kv1-d32/f16",
  ].map((id) => {
    const plain: Config = {
      name: "no precise items",
      options: { preciseKeys: 0 },
      editTile: (tile) => tile,
    };
    return {
      c: byId(id),
      configs: inAlternation(dflt, plain),
    };
  })
  : flag("--precise-keys")
  ? [
    // How the precise items' cost grows with their threshold: 0 (no precise code), 16 (the
    // second QK^T / PV in the kernel, few items take it), 64, 128 (PERF_LOG v12).
    "varlen-mixed-b6-with-empty-p32/f16",
    "varlen-mixed-b6-with-empty-p32/bf16",
    "varlen-mixed-b6-with-empty-p32-fp8/f16",
    "varlen-mixed-b6-with-empty-p32-fp8/bf16",
    "varlen-mixed-b6-with-empty-p32-int8/f16",
    "varlen-mixed-b6-with-empty-p32-int8/bf16",
    "default-varlen-b3-with-empty-p16/f16",
  ].map((id) => ({
    c: byId(id),
    configs: [0, 16, 64, 128, 0].map((keys) => ({
      name: `precise keys ${keys}`,
      options: { preciseKeys: keys },
      editTile: (tile: FlashTile) => tile,
    })),
  }))
  : flag("--late-new") || flag("--byte-words") || flag("--byte-chunk")
  ? [
    // Byte caches staging the pool's word only, new tokens' words loaded at the store
    // (FlashSpec.lateNew), in chunks of one u32 (FlashSpec.byteChunk 4, with --byte-words) or
    // of 8 codes (byteChunk 8, with --byte-chunk), against each row's default tile (PERF_LOG v11).
    d256Of("same"),
    ...(["fp8_e4m3", "int8"] as const).map(d256Of),
    adHocCase({
      ...D256_SHAPE,
      dtype: "bf16",
      cacheDtype: "fp8_e4m3",
      label: "adhoc-d256-q1k-old8k-bf16-fp8",
    }),
  ].map((c) => ({
    c,
    configs: c.cacheDtype === "fp8_e4m3" || c.cacheDtype === "int8"
      ? [
        dflt,
        {
          name: "qg 64x64 s2o8 lateNew",
          options: { tile: { ...thq(64, 64, 256, 2, 8), fp8Alu: true, lateNew: true } },
        },
        ...byteStaging.map(([name, staging]) => ({
          name: `qg 64x64 s2o8 ${name}`,
          options: { tile: { ...thq(64, 64, 256, 2, 8), fp8Alu: true, ...staging } },
        })),
      ]
      : [dflt],
  })).concat(
    ([
      ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16", th(64, 64, 256, 2, 8)],
      ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16", th(64, 64, 256, 2, 8)],
      [
        "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-fp8/f16",
        th(64, 128, 256, 4, 4, { f16PvFlush: 64 }),
      ],
      [
        "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/bf16",
        th(64, 128, 256, 4, 4, { f16PvFlush: 64 }),
      ],
      ["mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/bf16", th(32, 32, 128, 2, 4)],
      ["varlen-mixed-b6-with-empty-p32-int8/bf16", th(32, 32, 128, 2, 4)],
      ["default-gqa-b2-d64-p16-int8/f16", th(64, 128, 256, 4, 4, { f16PvFlush: 64 })],
    ] as const).map(([id, tile]) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "same tile, lateNew", options: { tile: { ...tile, fp8Alu: true, lateNew: true } } },
        ...byteStaging.map(([name, staging]) => ({
          name: `same tile, ${name}`,
          options: { tile: { ...tile, fp8Alu: true, ...staging } },
        })),
      ],
    })),
    // The int8 default row's f16 twin (the manifest has none): its quantized-cache ratio.
    [{
      c: {
        ...byId("default-gqa-b2-d64-p16-int8/f16"),
        id: "default-gqa-b2-d64-p16-int8-as-f16/f16",
        label: "default-gqa-b2-d64-p16-int8-as-f16",
        cacheDtype: "f16",
      },
      configs: [dflt],
    }],
  )
  : flag("--small-twins")
  ? [
    // The small quantized default rows and their f16-cache twins (the manifest has none), on the
    // f32 tiles problems under F16_MIN_FLOPS take: their quantized-cache ratios (PERF_LOG v12).
    "default-gqa-b2-d64-p16-int8/f16",
    "default-gqa-b2-d64-p16-int8/bf16",
    "default-gqa-b2-d128-p16-fp8/f16",
    "default-gqa-b2-d128-p16-fp8/bf16",
  ].flatMap((id) => {
    const c = byId(id);
    const twin = { ...c, id: `${c.label}-as-16bit/${c.qDtype}`, cacheDtype: c.qDtype };
    return [{ c, configs: [dflt] }, { c: twin, configs: [dflt] }];
  })
  : flag("--d256-bytes")
  ? [
    // D256 with byte caches on the Q-in-scratch tiles: fewer staged chunks per thread (32-key
    // tiles) or another O split, against the f16 cache (PERF_LOG v10).
    ...(["same", "fp8_e4m3", "int8"] as const).map((kind) => ({
      c: d256Of(kind),
      configs: [
        dflt,
        { name: "qg 64x64 s2o4", options: { tile: { ...thq(64, 64, 256, 2, 4), fp8Alu: true } } },
        { name: "qg 64x32 s2o8", options: { tile: { ...thq(64, 32, 256, 2, 8), fp8Alu: true } } },
        { name: "qg 64x32 s2o4", options: { tile: { ...thq(64, 32, 256, 2, 4), fp8Alu: true } } },
        {
          name: "qg 64x64 s2o8 pv64",
          options: { tile: { ...thq(64, 64, 256, 2, 8, { f16PvFlush: 64 }), fp8Alu: true } },
        },
      ],
    })),
  ]
  : flag("--fit2-splits")
  ? [
    // The 32-row tiles' split policy on the one-wave rows (256 items, unsplit by default).
    ...[
      "mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/bf16",
      "mqa-prefill-paged-b2-h16kv1-d128-p32/bf16",
      "mha-prefill-paged-b2-h16-d128-p32/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        ...[[512, 4, 512], [1024, 4, 1024], [512, 8, 512]].map((
          [targetItems, minSplitTiles, splitBelow],
        ) => ({
          name: `32x32 split ${targetItems} min ${minSplitTiles} below ${splitBelow}`,
          options: { tile: th(32, 32, 128, 2, 4), targetItems, minSplitTiles, splitBelow },
        })),
      ],
    })),
  ]
  : flag("--fit2b")
  ? [
    // Where the two-per-SM tile stops paying: rows of 10-23 GFLOP, and bf16.
    ...[
      "llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/f16",
      "llama-8b-decode-paged-b8-mixed-q1-16-p64/f16",
      "mha-prefill-paged-b2-h16-d128-p32/bf16",
      "varlen-mixed-b6-with-empty-p32-int8/f16",
      "mqa-prefill-paged-b2-h16kv1-d128-p32-fp8/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "f16 32x32 wg128 s2o4 (20 KB)", options: { tile: th(32, 32, 128, 2, 4) } },
      ],
    })),
    {
      c: byId("gqa-prefill-paged-noncausal-softcap30-b2-d96-p16/bf16"),
      configs: [
        dflt,
        { name: "f16 64x64 wg256 s2o2", options: { tile: th(64, 64, 256, 2, 2) } },
        { name: "f16 32x32 wg128 s2o2", options: { tile: th(32, 32, 128, 2, 2) } },
      ],
    },
  ]
  : flag("--q4")
  ? [
    // Decode q4 (16 rows per KV head) on 16-row f16 tiles: one pass over K/V for all 16 rows
    // (the decode kernel reads it twice, once per 8-row tile; PERF_LOG v9).
    ...[
      "llama-8b-decode-paged-b8-prefix32k-q4-p64/f16",
      "llama-8b-decode-paged-b8-prefix32k-q4-p64-fp8/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        { name: "decode kernel", options: {}, decode: true },
        dflt,
        { name: "f16 16x64 wg64 s4o4", options: { tile: th(16, 64, 64, 4, 4) } },
        { name: "f16 16x64 wg32 s4o4", options: { tile: th(16, 64, 32, 4, 4) } },
        { name: "f16 16x32 wg32 s4o4", options: { tile: th(16, 32, 32, 4, 4) } },
        { name: "f16 16x64 wg64 s2o4", options: { tile: th(16, 64, 64, 2, 4) } },
        { name: "f16 16x128 wg128 s4o4", options: { tile: th(16, 128, 128, 4, 4) } },
        { name: "f16 16x64 wg128 s1o1", options: { tile: th(16, 64, 128, 1, 1) } },
      ],
    })),
    // The small-grid rows (one wave of 64-row items): smaller workgroups with the same work
    // per thread, several per SM.
    ...[
      "mha-prefill-paged-b2-h16-d128-p32/f16",
      "mqa-prefill-paged-b2-h16kv1-d128-p32/f16",
      "varlen-mixed-b6-with-empty-p32/f16",
    ].map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        { name: "f16 32x64 wg64 s4o8", options: { tile: th(32, 64, 64, 4, 8) } },
        { name: "f16 16x64 wg64 s4o4", options: { tile: th(16, 64, 64, 4, 4) } },
        { name: "f16 16x64 wg32 s4o4", options: { tile: th(16, 64, 32, 4, 4) } },
      ],
    })),
    ...[
      "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16",
      "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16",
    ].map((id) => ({
      c: byId(id),
      configs: [dflt, {
        name: "f16 64x128 wg256 s4o4 pv flush 64",
        options: { tile: th(64, 128, 256, 4, 4, { f16PvFlush: 64 }) },
      }],
    })),
  ]
  : flag("--d64")
  ? [
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/bf16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-fp8/f16",
    "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64-int8/f16",
  ].map((id) => ({
    c: byId(id),
    configs: [
      dflt,
      { name: "f16 64x64 wg256 s4o4 (v7 default)", options: { tile: th(64, 64, 256, 4, 4) } },
      // Fewer key groups per row (8, not 16): a quarter of the row-max reads per tile.
      { name: "f16 64x64 wg256 s2o4", options: { tile: th(64, 64, 256, 2, 4) } },
      { name: "f16 64x128 wg256 s4o4", options: { tile: th(64, 128, 256, 4, 4) } },
      { name: "f16 64x128 wg256 s2o4", options: { tile: th(64, 128, 256, 2, 4) } },
      // O flushed every 64 keys: the error model's worst D64 cells stay where 32 keys has them
      // (docs/perf/f16_error_model_flushes_2026-11-21.log); not timed yet (PERF_LOG v8, next).
      {
        name: "f16 64x128 wg256 s4o4 pv flush 64",
        options: { tile: th(64, 128, 256, 4, 4, { f16PvFlush: 64 }) },
      },
      { name: "f16 128x32 wg256 s4o8", options: { tile: th(128, 32, 256, 4, 8) } },
    ],
  }))
  : flag("--small-rows")
  ? [
    ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16", 128],
    ["llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16", 128],
    ["llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16", 128],
    ["gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16", 64],
    ["mha-prefill-paged-b2-h16-d128-p32/f16", 128],
    ["llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/f16", 128],
    ["llama-8b-decode-paged-b8-prefix32k-q16-p64/f16", 128],
  ].map(([id, d]) => ({
    c: byId(id as string),
    configs: [
      dflt,
      // The default tile's per-thread shape with half the rows and threads: twice the items,
      // smaller workgroups that can share an SM.
      d === 64
        ? { name: "f16 32x64 wg128 s4o4", options: { tile: th(32, 64, 128, 4, 4) } }
        : { name: "f16 32x64 wg128 s2o8", options: { tile: th(32, 64, 128, 2, 8) } },
      ...(d === 64 ? [] : [
        {
          name: "f16 32x64 wg128 s2o8 no split",
          options: { tile: th(32, 64, 128, 2, 8), targetItems: 0 },
        },
      ]),
    ],
  }))
  : flag("--lane-sum")
  ? [
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
    "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16",
    "llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16",
    "llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/f16",
  ].map((id) => ({
    c: byId(id),
    configs: [dflt, {
      name: "f16 64x64 s2o8 lane sum",
      options: { tile: { ...th(64, 64, 256, 2, 8), f16QkLaneSum: true } },
    }],
  }))
  : flag("--splits") || flag("--splits-long")
  ? (flag("--splits")
    ? [
      "llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16",
      "gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16",
      "mha-prefill-paged-b2-h16-d128-p32/f16",
      "llama-8b-prefill-paged-noncausal-b2-prefix1k-chunk256-p64/f16",
    ]
    : [
      "llama-8b-decode-paged-b8-prefix32k-q16-p64/f16",
      "llama-8b-decode-paged-b8-mixed-q1-16-p64/f16",
      "qwen35-9b-prefill-paged-mixed-b8-p64/f16",
    ]).map((id) => ({
      c: byId(id),
      configs: [
        dflt,
        ...(flag("--splits")
          ? [[0, 8], [256, 8], [512, 8], [512, 16], [1024, 16], [2048, 4]]
          : [[0, 8], [128, 8], [256, 8], [512, 8]]).map((
            [targetItems, minSplitTiles],
          ) => ({
            name: `split ${targetItems} min ${minSplitTiles}`,
            options: { targetItems, minSplitTiles },
          })),
      ],
    }))
  : flag("--half-check")
  ? [
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"), configs: [v2, dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16"), configs: [dflt] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"), configs: [dflt] },
    { c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"), configs: [v2, dflt] },
    { c: byId("qwen35-9b-prefill-paged-mixed-b8-p64/f16"), configs: [dflt] },
  ]
  : half
  ? [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        v2,
        dflt,
        { name: "f16 64x64 wg256 s4o4", options: { tile: th(64, 64, 256, 4, 4) } },
        { name: "f16 64x64 wg256 s2o8", options: { tile: th(64, 64, 256, 2, 8) } },
        { name: "f16 64x32 wg256 s2o4", options: { tile: th(64, 32, 256, 2, 4) } },
        {
          name: "f16 64x64 qk flush 8",
          options: { tile: th(64, 64, 256, 2, 4, { f16QkFlush: 8 }) },
        },
      ],
    },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16"), configs: [v2, dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16"), configs: [v2, dflt] },
    {
      c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"),
      configs: [dflt, { name: "f16 64x64 wg256 s4o4", options: { tile: th(64, 64, 256, 4, 4) } }],
    },
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"),
      configs: [
        dflt,
        { name: "f16 128x64 wg256 s4o8", options: { tile: th(128, 64, 256, 4, 8) } },
        { name: "f16 64x128 wg256 s4o4", options: { tile: th(64, 128, 256, 4, 4) } },
      ],
    },
    {
      c: d256Case,
      configs: [
        dflt,
        { name: "f16 32x32 wg128 s1o2", options: { tile: th(32, 32, 128, 1, 2) } },
        { name: "f16 64x16 wg256 s1o4", options: { tile: th(64, 16, 256, 1, 4) } },
        { name: "f16 32x32 wg256 s1o2", options: { tile: th(32, 32, 256, 1, 2) } },
      ],
    },
    { c: byId("llama-8b-decode-paged-b8-prefix32k-q16-p64/f16"), configs: [v2, dflt] },
    { c: byId("llama-8b-decode-paged-b8-mixed-q1-16-p64/f16"), configs: [v2, dflt] },
  ]
  : compare
  ? [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        v2,
        v3, // 64x32 wg256 s2o4 kv16
        { name: "v3 pipe 64x16 f32 K/V", options: { tile: tp(64, 16, 256, 1, 4, false) } },
        { name: "v3 pipe 32x32 wg128 kv16", options: { tile: tp(32, 32, 128, 2, 4, true) } },
      ],
    },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16"), configs: [v2, v3] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"), configs: [v2, v3] },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q4-p64/f16"),
      configs: [
        v2,
        v3, // 16x64 wg128 s1o1 kv16
        { name: "v3 pipe 16x32 kv16", options: { tile: tp(16, 32, 128, 1, 1, true) } },
        {
          name: "v3 pipe 16x64 kv16 split8192",
          options: { pipelined: true, targetItems: 8192, minSplitTiles: 4 },
        },
      ],
    },
  ]
  : flag("--probe")
  ? [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        { name: "64x32 wg256 s2o4", options: { tile: t(64, 32, 256, 2, 4) } },
        { name: "64x32 wg256 s2o2", options: { tile: t(64, 32, 256, 2, 2) } },
        { name: "64x32 wg256 s2o8", options: { tile: t(64, 32, 256, 2, 8) } },
        { name: "64x16 wg256 s1o4", options: { tile: t(64, 16, 256, 1, 4) } },
      ],
    },
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"),
      configs: [
        dflt,
        { name: "64x64 s4o4", options: { tile: t(64, 64, 128, 4, 4) } },
        { name: "64x64 wg256 s4o4", options: { tile: t(64, 64, 256, 4, 4) } },
      ],
    },
    {
      c: adHocCase({
        batch: 4,
        heads: 8,
        headsKv: 2,
        headDim: 64,
        qLen: 512,
        cacheLen: 4096,
        pageSize: 64,
        label: "adhoc-d64-b4-nosoftcap",
      }),
      configs: [dflt, { name: "64x64 s4o4", options: { tile: t(64, 64, 128, 4, 4) } }],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q1-p64/f16"),
      configs: [
        dflt,
        { name: "split8192 min2", options: { targetItems: 8192, minSplitTiles: 2 } },
        {
          name: "16x64 split8192 min2",
          options: { tile: t(16, 64, 128, 1, 1), targetItems: 8192, minSplitTiles: 2 },
        },
      ],
    },
  ]
  : [
    {
      c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/f16"),
      configs: [
        dflt,
        { name: "64x32 wg128 (v1)", options: { tile: t(64, 32, 128, 2, 4) } },
        { name: "default again", options: {} },
      ],
    },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new/bf16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-fp8/f16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new-int8/f16"), configs: [dflt] },
    { c: byId("llama-3.1-8b-prefill-paged-pg16-4k-old-512-new/f16"), configs: [dflt] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64/f16"), configs: [dflt] },
    { c: byId("llama-8b-prefill-paged-b8-prefix4k-chunk512-p64-fp8/f16"), configs: [dflt] },
    { c: byId("varlen-mixed-b6-with-empty-p32/f16"), configs: [dflt] },
    { c: byId("mqa-prefill-paged-b2-h16kv1-d128-p32/bf16"), configs: [dflt] },
    {
      c: byId("gqa-prefill-paged-softcap50-b4-prefix4k-chunk512-p64/f16"),
      configs: [dflt],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q4-p64/f16"),
      configs: [dflt],
    },
    {
      c: byId("llama-8b-decode-paged-b8-prefix32k-q1-p64/f16"),
      configs: [dflt],
    },
    {
      c: d256Case,
      configs: [dflt],
    },
  ];

const gpu = await acquireGpu();
console.error(
  `adapter: ${gpu.adapterName}; workgroup memory ${gpu.limits.maxComputeWorkgroupStorageSize}; timestamps ${gpu.hasTimestamps}; features ${
    [...gpu.features].join(",")
  }`,
);
// --compare uses the PERF_LOG ceilings (measuring them costs device time and moves little).
const ceilings = compare || half
  ? null
  : await measureCeilings(gpu, { quick: true, cachePath: null });
const bw = ceilings?.bandwidth.bytesPerSecond ?? 4.17e12;
const fma = ceilings?.f32.flopsPerSecond ?? 64.4e12;
console.error(
  `ceilings: copy ${(bw / 1e9).toFixed(0)} GB/s, f32 ${(fma / 1e12).toFixed(1)} TFLOP/s (${
    ceilings?.f32.form ?? "PERF_LOG values"
  })`,
);

interface Row {
  id: string;
  config: string;
  key: string;
  ms: number;
  p10: number;
  p90: number;
  method: string;
  tflops: number;
  gbps: number;
  pctFma: number;
  pctBw: number;
  items: number;
  split: boolean;
  verify?: string;
}
const rows: Row[] = [];
const seed = Date.now() % 1000000;

type Inputs = ReturnType<typeof generateCase>["inputs"];
type Reference = ReturnType<typeof referenceAttention>;

/** Runs `options` on fresh pools (the op appends in place) and checks o on the sampled rows. */
async function verifyConfig(
  inputs: Inputs,
  problem: Problem,
  cfg: Config,
  ref: Reference,
): Promise<string> {
  const vdev = uploadInputs(gpu, inputs, problem);
  const vplan = await planConfig(vdev, cfg);
  try {
    const out = await runKernelPlan(gpu, vplan, vdev, inputs);
    const check = compareOutput(out.o, ref, problem);
    return `${check.ok ? "PASS" : "FAIL"} ${describeOutputCheck(check)}`;
  } finally {
    vplan.destroy();
    vdev.destroy();
  }
}

function planConfig(dev: ReturnType<typeof uploadInputs>, cfg: Config): Promise<KernelPlan> {
  if (cfg.decode) return planDecode(gpu, dev);
  if (!cfg.editTile) return planFlash(gpu, dev, cfg.options);
  const tile = defaultFlashTile(dev.problem, gpu);
  if (!tile) throw new Error(`no default tile for ${cfg.name}`);
  return planFlash(gpu, dev, {
    preciseKeys: F16_PRECISE_KEYS,
    ...cfg.options,
    tile: cfg.editTile(tile),
  });
}

for (const job of jobs) {
  if (only && !job.c.id.includes(only)) continue;
  const c = job.c;
  const t0 = performance.now();
  const { inputs, params } = generateCase(c, seed);
  const problem = validateProblem(inputs, params);
  const costs = rooflineCosts({ ...problem, maxPagesPerReq: problem.maxPagesPerReq });
  console.error(
    `${c.id}: generated in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${
      (costs.flops / 1e9).toFixed(2)
    } GFLOP, ${(costs.bytes / 1e6).toFixed(1)} MB`,
  );
  let ref: Reference | null = null;
  const refFor = (): Reference => {
    if (!ref) {
      const r0 = performance.now();
      const sample = sampleReferenceRows(problem, { rowsPerRequest: c.verifyRows ?? 8, seed });
      ref = referenceAttention(inputs, problem, { rows: sample });
      console.error(`  reference: ${((performance.now() - r0) / 1000).toFixed(1)} s`);
    }
    return ref;
  };
  const dev = uploadInputs(gpu, inputs, problem);
  // --sets: the inputs uploaded this many times (bench's count with "bench"), the timed calls
  // rotating over them as `bench` does, so that no set stays in L2 between its calls.
  const setCount = setsOption === "bench" ? inputSetsFor(problem) : Number(setsOption ?? 1);
  const extraDevs = Array.from({ length: setCount - 1 }, () => uploadInputs(gpu, inputs, problem));
  try {
    for (const [ci, cfg] of job.configs.entries()) {
      let plan: KernelPlan;
      const extraPlans: KernelPlan[] = [];
      try {
        plan = await planConfig(dev, cfg);
        for (const d of extraDevs) extraPlans.push(await planConfig(d, cfg));
      } catch (e) {
        console.error(`  ${cfg.name}: ${(e as Error).message.slice(0, 300)}`);
        continue;
      }
      let verify: string | undefined;
      if (ci === 0 || compare || half) {
        try {
          verify = await verifyConfig(inputs, problem, cfg, refFor());
        } catch (e) {
          verify = `FAIL(${(e as Error).message.slice(0, 200)})`;
        }
      }
      const plans = [plan, ...extraPlans];
      let next = 0;
      await warmUp(gpu, (enc) => plans[next++ % plans.length]!.encode(enc), 1000);
      const stats = await timeGpu(gpu, (enc, ts) => plans[next++ % plans.length]!.encode(enc, ts), {
        warmup: 3,
        iters: compare ? 20 : 15,
        minTimeMs: 300,
        maxIters: 1000,
      });
      const s = stats.median / 1e3;
      const row: Row = {
        id: c.id,
        config: cfg.name,
        key: plan.key,
        ms: stats.median,
        p10: stats.p10,
        p90: stats.p90,
        method: stats.method,
        tflops: costs.flops / s / 1e12,
        gbps: costs.bytes / s / 1e9,
        pctFma: (100 * costs.flops / s) / fma,
        pctBw: (100 * costs.bytes / s) / bw,
        items: 0,
        split: plan.key.includes("_split"),
        verify,
      };
      rows.push(row);
      console.error(
        `  ${cfg.name}: ${stats.median.toFixed(3)} ms ${row.tflops.toFixed(1)} TFLOP/s ${
          row.pctFma.toFixed(0)
        }% fma ${row.pctBw.toFixed(0)}% bw ${verify ?? ""}`,
      );
      plans.forEach((x) => x.destroy());
    }
    if (flag("--simple")) {
      const plan = await simpleVariant.plan(gpu, dev);
      // Warm the clocks: ~300 ms of back-to-back runs (the CPU reference lets the GPU idle).
      const w0 = performance.now();
      while (performance.now() - w0 < 300) {
        const enc = gpu.device.createCommandEncoder();
        for (let k = 0; k < 4; k++) plan.encode(enc);
        gpu.device.queue.submit([enc.finish()]);
        await gpu.device.queue.onSubmittedWorkDone();
      }
      const stats = await timeGpu(gpu, (enc, ts) => plan.encode(enc, ts), { warmup: 1, iters: 3 });
      console.error(`  simple: ${stats.median.toFixed(3)} ms`);
      plan.destroy();
    }
  } finally {
    dev.destroy();
    extraDevs.forEach((d) => d.destroy());
  }
}

await Deno.writeTextFile(
  outPath,
  JSON.stringify({ adapter: gpu.adapterName, seed, ceilings, rows }, null, 2),
);
console.log(
  `\nflash tune: ${gpu.adapterName}; copy ${(bw / 1e9).toFixed(0)} GB/s; f32 ${
    (fma / 1e12).toFixed(1)
  } TFLOP/s; seed ${seed}`,
);
console.log("case | config | ms | TFLOP/s | %fma | GB/s | %bw | verify");
for (const r of rows) {
  console.log(
    `${r.id} | ${r.config} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(2)} | ${
      r.pctFma.toFixed(0)
    } | ${r.gbps.toFixed(0)} | ${r.pctBw.toFixed(0)} | ${r.verify ?? ""}`,
  );
}
if (compare) {
  console.log(
    `\nv3 compare (% of ${(fma / 1e12).toFixed(1)} TFLOP/s and ${(bw / 1e12).toFixed(2)} TB/s)`,
  );
  console.log("case | config | kernel | ms median | TFLOP/s | % f32 | % bw | verify");
  for (const r of rows) {
    const tag = r.key.includes("_pipe")
      ? r.key.replace(/^.*_(r\d+_k\d+_wg\d+).*$/, "$1") +
        (r.key.includes("_kv16") ? " kv16" : " f32kv")
      : r.key.replace(/^.*_(r\d+_k\d+_wg\d+).*$/, "$1");
    console.log(
      `${
        r.id.replace("llama-3.1-8b-prefill-paged-pg64-4k-old-512-new", "seed")
      } | ${r.config} | ${tag} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(1)} | ${
        r.pctFma.toFixed(0)
      }% | ${r.pctBw.toFixed(0)}% | ${(r.verify ?? "").split(" ")[0]}`,
    );
  }
}
