/**
 * Writes a random, valid case file (SPEC §7) for `paged-prefill run|verify --case FILE`:
 *
 * ```sh
 * deno run -A tools/make_case.ts --out case.safetensors [--seed N] [--q-dtype f16|bf16]
 *   [--cache-dtype same|f16|bf16|fp8_e4m3|int8] [--page-size N] [--batch N] [--heads N]
 *   [--heads-kv N] [--head-dim N] [--q-len N[,N...]] [--cache-len N[,N...]] [--max-pages N]
 *   [--varlen] [--no-causal] [--softcap X] [--sm-scale X]
 *   [--page-order contiguous|permuted|shared-prefix] [--with-expected]
 * ```
 *
 * Inputs come from `generateCase()` (random-normal q/k/v, canary-filled pools, a block table in
 * the page order with junk in unreferenced entries). `--with-expected` adds `o_expected` (the
 * float64 reference rounded once to q's dtype) and `k_pages_expected` / `v_pages_expected`
 * (the reference append). The seed, label and generator are recorded in `__metadata__`.
 * @module
 */
import { parseArgs } from "node:util";
import { writeCase } from "../io/case_file.ts";
import type { CaseExpected } from "../io/case_file.ts";
import type { CacheDtype, PagedPrefillInputs, Problem, QDtype } from "../op/types.ts";
import { validateProblem } from "../op/validate.ts";
import { referenceAppend, referenceAttention } from "../reference/attention.ts";
import { encodeHalfArray } from "../reference/codecs.ts";
import { generateCase } from "../workloads/generate.ts";
import { adHocCase, type AdHocOptions } from "../workloads/loader.ts";
import { randomSeed } from "../workloads/random.ts";
import { PAGE_ORDERS, type PageOrder } from "../workloads/schema.ts";

const _USAGE = `Usage: deno run -A tools/make_case.ts --out FILE [options]

Writes a random, valid paged-prefill case file (safetensors) for \`run --case\` / \`verify --case\`.

Options (defaults as the CLI's ad-hoc workloads):
  --out FILE              output .safetensors file (required; written atomically)
  --seed N                PRNG seed (default: random; recorded in the file)
  --q-dtype f16|bf16      dtype of q, k_new, v_new and o (default f16)
  --cache-dtype D         same | f16 | bf16 | fp8_e4m3 | fp8 | int8 (default same = q dtype)
  --page-size N           tokens per page, a power of two (default 16)
  --batch N               requests (default 2)
  --heads N, --heads-kv N query and kv heads (default 8, 2)
  --head-dim N            D (default 64)
  --q-len N[,N...]        new tokens per request (default 64)
  --cache-len N[,N...]    old tokens per request (default 200)
  --max-pages N           block table columns (default: just enough)
  --varlen                spread single q/cache lengths over the batch
  --no-causal             non-causal attention (default causal)
  --softcap X             score cap (default off)
  --sm-scale X            score scale (default 1/sqrt(D))
  --page-order O          ${PAGE_ORDERS.join(" | ")} (default contiguous)
  --with-expected         also store o_expected, k_pages_expected, v_pages_expected
  -h, --help              print this help
`;

/** Exit codes: 0 written, 2 bad usage or input. */
const _EXIT = { ok: 0, badInput: 2 } as const;

/** A bad flag or value: printed as one `error:` line, exit code 2. */
class _UsageError extends Error {
  override name = "UsageError";
}

/** What one run of the tool is asked to do (flags parsed and checked). */
interface _Request {
  out: string;
  seed: number;
  withExpected: boolean;
  adHoc: AdHocOptions;
}

/**
 * Runs the tool on `args` and returns its exit code; prints a one-line summary to stdout and
 * errors as `error: ...` to stderr.
 *
 * @param args command-line arguments (without the script name)
 * @returns 0 when the file was written, 2 for bad usage or input
 *
 * @example
 * ```ts ignore
 * import { main } from "./make_case.ts";
 * const code = await main(["--out", "/tmp/case.safetensors", "--seed", "1", "--with-expected"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let request: _Request | "help";
  try {
    request = _parse(args);
  } catch (e) {
    if (e instanceof _UsageError || e instanceof TypeError) {
      console.error(`error: ${e.message}`);
      console.error("Run with --help for usage.");
      return _EXIT.badInput;
    }
    throw e;
  }
  if (request === "help") {
    console.log(_USAGE);
    return _EXIT.ok;
  }
  try {
    const c = adHocCase(request.adHoc);
    const { inputs, params } = generateCase(c, request.seed);
    const problem = validateProblem(inputs, params);
    const expected = request.withExpected ? _expected(inputs, problem) : undefined;
    await writeCase(request.out, {
      inputs,
      params,
      expected,
      metadata: { seed: String(request.seed), label: c.label, generator: "tools/make_case.ts" },
    });
    console.log(
      `wrote ${request.out}: ${c.label}, seed ${request.seed}, T_q ${problem.totalQ}, ` +
        `${problem.numPages} pages${expected ? ", with expected results" : ""}`,
    );
    return _EXIT.ok;
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError || e instanceof Deno.errors.NotFound) {
      console.error(`error: ${e.message}`);
      return _EXIT.badInput;
    }
    throw e;
  }
}

/** Expected results: reference o rounded once to q's dtype, and the reference pools. */
function _expected(inputs: PagedPrefillInputs, problem: Problem): CaseExpected {
  const { rows, o } = referenceAttention(inputs, problem);
  const rowSize = problem.numHeads * problem.headDim;
  const values = new Float64Array(problem.totalQ * rowSize);
  rows.forEach((r, n) => values.set(o.subarray(n * rowSize, (n + 1) * rowSize), r.token * rowSize));
  const { kPages, vPages } = referenceAppend(inputs, problem);
  return {
    o: {
      dtype: problem.qDtype,
      shape: [...inputs.q.shape],
      data: encodeHalfArray(problem.qDtype, values),
    },
    kPages,
    vPages,
  };
}

function _parse(args: string[]): _Request | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      options: {
        out: { type: "string" },
        seed: { type: "string" },
        "q-dtype": { type: "string" },
        "cache-dtype": { type: "string" },
        "page-size": { type: "string" },
        batch: { type: "string" },
        heads: { type: "string" },
        "heads-kv": { type: "string" },
        "head-dim": { type: "string" },
        "q-len": { type: "string" },
        "cache-len": { type: "string" },
        "max-pages": { type: "string" },
        varlen: { type: "boolean" },
        causal: { type: "boolean" },
        softcap: { type: "string" },
        "sm-scale": { type: "string" },
        "page-order": { type: "string" },
        "with-expected": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new _UsageError(e instanceof Error ? e.message : String(e));
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.out === undefined || v.out === "") throw new _UsageError("--out FILE is required");

  const adHoc: AdHocOptions = {};
  const int = (flag: string, text: string | undefined, min: number) => {
    if (text === undefined) return undefined;
    const n = Number(text.trim());
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new _UsageError(
        `Cannot read ${flag}: expected a whole number >= ${min}, got "${text}"`,
      );
    }
    return n;
  };
  const ints = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const list = text.split(",").map((part) => int(flag, part, 0)!);
    return list.length === 1 ? list[0]! : list;
  };
  const float = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new _UsageError(`Cannot read ${flag}: expected a finite number, got "${text}"`);
    }
    return n;
  };
  const choice = <T extends string>(
    flag: string,
    text: string | undefined,
    choices: readonly T[],
  ) => {
    if (text === undefined) return undefined;
    if (!(choices as readonly string[]).includes(text)) {
      throw new _UsageError(
        `Cannot read ${flag}: expected one of ${choices.join(", ")}, got "${text}"`,
      );
    }
    return text as T;
  };

  const set = <K extends keyof AdHocOptions>(key: K, value: AdHocOptions[K] | undefined) => {
    if (value !== undefined) adHoc[key] = value;
  };
  set("dtype", choice<QDtype>("--q-dtype", v["q-dtype"], ["f16", "bf16"]));
  set(
    "cacheDtype",
    choice<CacheDtype | "same" | "fp8">(
      "--cache-dtype",
      v["cache-dtype"],
      ["same", "f16", "bf16", "fp8_e4m3", "fp8", "int8"],
    ),
  );
  set("pageSize", int("--page-size", v["page-size"], 1));
  set("batch", int("--batch", v.batch, 1));
  set("heads", int("--heads", v.heads, 1));
  set("headsKv", int("--heads-kv", v["heads-kv"], 1));
  set("headDim", int("--head-dim", v["head-dim"], 1));
  set("qLen", ints("--q-len", v["q-len"]));
  set("cacheLen", ints("--cache-len", v["cache-len"]));
  set("maxPagesPerReq", int("--max-pages", v["max-pages"], 1));
  set("varlen", v.varlen);
  set("causal", v.causal);
  set("softcap", float("--softcap", v.softcap));
  set("smScale", float("--sm-scale", v["sm-scale"]));
  set("pageOrder", choice<PageOrder>("--page-order", v["page-order"], PAGE_ORDERS));
  const seed = v.seed === undefined ? randomSeed() : int("--seed", v.seed, 0)!;
  return { out: v.out, seed, withExpected: v["with-expected"] ?? false, adHoc };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
