/**
 * The workload-selection flags shared by `verify`, `bench` and `list`: manifest rows
 * (`--workload`, `--filter`, `--tag`, `--all`) or an ad hoc problem from shape flags (SPEC §7).
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import {
  adHocCase,
  type CaseFilter,
  expandCases,
  loadManifest,
  type WorkloadCase,
} from "../workloads/mod.ts";
import { PAGE_ORDERS } from "../workloads/schema.ts";
import { choiceFlag, intFlag, intListFlag, numberFlag } from "./parse.ts";
import { UsageError } from "./errors.ts";

/** Parsed workload-selection flags. */
export interface WorkloadFlags {
  manifest?: string;
  workload?: string[];
  filter?: string[];
  tag?: string[];
  excludeTag?: string[];
  all?: boolean;
  batch?: number;
  heads?: number;
  headsKv?: number;
  headDim?: number;
  qLen?: number[];
  cacheLen?: number[];
  pageSize?: number;
  maxPages?: number;
  causal?: boolean;
  varlen?: boolean;
  softcap?: number;
  smScale?: number;
  dtype?: "f16" | "bf16";
  cacheDtype?: "same" | "f16" | "bf16" | "fp8" | "fp8_e4m3" | "int8";
  pageOrder?: (typeof PAGE_ORDERS)[number];
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Adds the workload-selection and ad hoc shape flags to `command`. */
export function addWorkloadOptions<C extends Command<[], Record<string, unknown>>>(command: C) {
  return command
    .option("--manifest <file>", "manifest file (JSON or YAML) instead of the built-in one")
    .option("--workload <id>", "run this manifest row (label or label/dtype); repeatable", collect)
    .option(
      "--filter <pattern>",
      "run manifest rows whose id contains it (* and ? glob); repeatable",
      collect,
    )
    .option("--tag <tag>", "run manifest rows with this tag; repeatable", collect)
    .option("--exclude-tag <tag>", "leave out manifest rows with this tag; repeatable", collect)
    .option("--all", "run every manifest row")
    .option("--batch <n>", "ad hoc: requests", intFlag("--batch", 1))
    .option("--heads <n>", "ad hoc: query heads H", intFlag("--heads", 1))
    .option("--heads-kv <n>", "ad hoc: KV heads H_kv", intFlag("--heads-kv", 1))
    .option("--head-dim <n>", "ad hoc: head dim D", intFlag("--head-dim", 1))
    .option("--q-len <n[,n...]>", "ad hoc: new tokens per request", intListFlag("--q-len", 0))
    .option(
      "--cache-len <n[,n...]>",
      "ad hoc: old tokens per request",
      intListFlag("--cache-len", 0),
    )
    .option(
      "--page-size <n>",
      "page size (filters manifest rows, or sets the ad hoc problem's)",
      intFlag("--page-size", 1),
    )
    .option("--max-pages <n>", "ad hoc: max_pages_per_req", intFlag("--max-pages", 1))
    .option("--causal", "ad hoc: causal mask (default)")
    .option("--no-causal", "ad hoc: no causal mask")
    .option("--varlen", "ad hoc: spread lengths over the batch")
    .option("--softcap <x>", "ad hoc: score cap (0 = off)", numberFlag("--softcap"))
    .option("--sm-scale <x>", "ad hoc: score scale (default 1/sqrt(D))", numberFlag("--sm-scale"))
    .addOption(
      new Option("--dtype <dtype>", "q dtype (filters manifest rows, or sets the ad hoc problem's)")
        .argParser(choiceFlag("--dtype", ["f16", "bf16"] as const)),
    )
    .addOption(
      new Option(
        "--cache-dtype <dtype>",
        "cache dtype (filters manifest rows, or sets the ad hoc problem's)",
      )
        .argParser(
          choiceFlag("--cache-dtype", ["same", "f16", "bf16", "fp8", "fp8_e4m3", "int8"] as const),
        ),
    )
    .addOption(
      new Option("--page-order <order>", "ad hoc: physical page order")
        .argParser(choiceFlag("--page-order", PAGE_ORDERS)),
    );
}

/** Flags that make the problem ad hoc (the rest only filter manifest rows). */
const AD_HOC_FLAGS = [
  "batch",
  "heads",
  "headsKv",
  "headDim",
  "qLen",
  "cacheLen",
  "maxPages",
  "causal",
  "varlen",
  "softcap",
  "smScale",
  "pageOrder",
] as const;

/**
 * The cases the flags select. Manifest mode when `--workload/--filter/--tag/--all` is given or
 * no ad hoc shape flag is; `--page-size`, `--dtype` and `--cache-dtype` then filter rows, and
 * with no selection at all the rows tagged `defaultTag` run. Shape flags alone build one ad
 * hoc problem (from the defaults of `adHocCase`).
 */
export function selectCases(flags: WorkloadFlags, defaultTag: string): WorkloadCase[] {
  const adHocGiven = AD_HOC_FLAGS.filter((k) => flags[k] !== undefined);
  const selection = (flags.workload?.length ?? 0) + (flags.filter?.length ?? 0) +
    (flags.tag?.length ?? 0) + (flags.all ? 1 : 0);
  if (adHocGiven.length > 0) {
    if (selection > 0) {
      throw new UsageError(
        `Cannot combine manifest selection (--workload/--filter/--tag/--all) with ad hoc shape flags (--${
          adHocGiven.map((k) => k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())).join(", --")
        })`,
      );
    }
    return [adHocFromFlags(flags)];
  }
  const manifest = loadManifest(flags.manifest);
  const cacheDtype = flags.cacheDtype === "fp8" ? "fp8_e4m3" : flags.cacheDtype;
  const filter: CaseFilter = {
    ...(flags.workload ? { id: flags.workload } : {}),
    ...(flags.filter ? { label: flags.filter } : {}),
    ...(flags.tag ? { tag: flags.tag } : {}),
    ...(flags.pageSize !== undefined ? { pageSize: flags.pageSize } : {}),
    ...(flags.dtype ? { qDtype: flags.dtype } : {}),
    ...(cacheDtype ? { cacheDtype } : {}),
  };
  const narrowed = selection > 0 || flags.pageSize !== undefined || flags.dtype !== undefined ||
    flags.cacheDtype !== undefined;
  if (!narrowed) filter.tag = [defaultTag];
  const excluded = new Set(flags.excludeTag ?? []);
  const cases = expandCases(manifest, filter).filter((c: WorkloadCase) =>
    !c.tags.some((t) => excluded.has(t))
  );
  if (cases.length === 0) {
    if (selection === 0) return [adHocFromFlags(flags)];
    const asked = [
      ...(flags.workload ?? []).map((w) => `--workload ${w}`),
      ...(flags.filter ?? []).map((w) => `--filter ${w}`),
      ...(flags.tag ?? []).map((w) => `--tag ${w}`),
    ].join(" ");
    throw new UsageError(
      `Cannot find a manifest row matching ${asked || "the flags"}: see \`paged-prefill list\``,
    );
  }
  if (flags.workload) {
    for (const w of flags.workload) {
      if (!cases.some((c: WorkloadCase) => c.id === w || c.label === w)) {
        throw new UsageError(`Cannot find manifest row "${w}": see \`paged-prefill list\``);
      }
    }
  }
  return cases;
}

function adHocFromFlags(flags: WorkloadFlags): WorkloadCase {
  const pick = (
    v: number[] | undefined,
  ) => (v === undefined ? undefined : v.length === 1 ? v[0]! : v);
  try {
    return adHocCase({
      ...(flags.batch !== undefined ? { batch: flags.batch } : {}),
      ...(flags.heads !== undefined ? { heads: flags.heads } : {}),
      ...(flags.headsKv !== undefined ? { headsKv: flags.headsKv } : {}),
      ...(flags.headDim !== undefined ? { headDim: flags.headDim } : {}),
      ...(flags.qLen !== undefined ? { qLen: pick(flags.qLen)! } : {}),
      ...(flags.cacheLen !== undefined ? { cacheLen: pick(flags.cacheLen)! } : {}),
      ...(flags.pageSize !== undefined ? { pageSize: flags.pageSize } : {}),
      ...(flags.maxPages !== undefined ? { maxPagesPerReq: flags.maxPages } : {}),
      ...(flags.causal !== undefined ? { causal: flags.causal } : {}),
      ...(flags.varlen !== undefined ? { varlen: flags.varlen } : {}),
      ...(flags.softcap !== undefined ? { softcap: flags.softcap } : {}),
      ...(flags.smScale !== undefined ? { smScale: flags.smScale } : {}),
      ...(flags.dtype !== undefined ? { dtype: flags.dtype } : {}),
      ...(flags.cacheDtype !== undefined ? { cacheDtype: flags.cacheDtype } : {}),
      ...(flags.pageOrder !== undefined ? { pageOrder: flags.pageOrder } : {}),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
