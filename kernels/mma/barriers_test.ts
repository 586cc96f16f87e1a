/**
 * Static barrier check of the generated (real, not emulated) key loops: the emulated tests run
 * the algorithm on a software GPU, but the emulation's own barriers inside every product hide a
 * missing barrier in the loop. Here every subgroup matrix access to workgroup memory is paired
 * with the other accesses of the same array, around the loop, and each pair that involves a
 * write must have a barrier between them.
 */
import { mmaWgsl } from "./template.ts";
import { mmaKey, type MmaSpec } from "./spec.ts";
import { H200_D128_MMA_SPEC } from "./_testing.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const ARRAYS = ["h_s", "s_s", "p_s", "q_s"] as const;

/** One statement of the loop body: what it reads and writes, and whether it is a barrier. */
interface Access {
  text: string;
  barrier: boolean;
  /** Ids of the enclosing blocks (`if`, `for`, plain), outermost first. */
  blocks: number[];
  /** Array -> "matrix" (a subgroup matrix load/store: lanes touch each other's elements) or "element". */
  reads: Map<string, "matrix" | "element">;
  writes: Map<string, "matrix" | "element">;
}

function _accesses(statement: string, blocks: number[]): Access {
  const reads = new Map<string, "matrix" | "element">();
  const writes = new Map<string, "matrix" | "element">();
  for (const a of ARRAYS) {
    if (statement.includes(`subgroupMatrixStore(&${a},`)) writes.set(a, "matrix");
    if (new RegExp(`subgroupMatrixLoad<[^>]*>+\\(&${a},`).test(statement)) reads.set(a, "matrix");
    if (new RegExp(`(^|[^\\w])${a}\\[[^\\]]*\\]\\s*=[^=]`).test(statement)) {
      if (!writes.has(a)) writes.set(a, "element");
    }
    const rhs = statement.replace(new RegExp(`^\\s*${a}\\[[^\\]]*\\]\\s*=`), "");
    if (new RegExp(`(^|[^\\w&])${a}\\[`).test(rhs) && !reads.has(a)) reads.set(a, "element");
  }
  return {
    text: statement.trim(),
    barrier: /workgroupBarrier\(\)|workgroupUniformLoad\(/.test(statement),
    blocks,
    reads,
    writes,
  };
}

/**
 * The statements of the body of the `index`-th key loop in `wgsl` (from `for (var t = t0` to
 * its closing brace): with `fixedMax` the fast loop is 0 and the fallback's rescaled loop 1.
 */
export function loopStatements(wgsl: string, index = 0): Access[] {
  let start = -1;
  for (let i = 0; i <= index; i++) start = wgsl.indexOf("for (var t = t0;", start + 1);
  assert(start > 0, `key loop ${index} not found`);
  const open = wgsl.indexOf("{", start);
  let depth = 0;
  let end = open;
  for (; end < wgsl.length; end++) {
    if (wgsl[end] === "{") depth++;
    else if (wgsl[end] === "}" && --depth === 0) break;
  }
  assert(end < wgsl.length, `key loop ${index} never closes`);
  const body = wgsl.slice(open + 1, end);
  const out: Access[] = [];
  const stack: number[] = [];
  let next = 0;
  for (const part of body.split(/([;{}])/)) {
    if (part === "{") stack.push(next++);
    else if (part === "}") stack.pop();
    else if (part !== ";") {
      const a = _accesses(part, [...stack]);
      if (a.barrier || a.reads.size > 0 || a.writes.size > 0) out.push(a);
    }
  }
  return out;
}

/**
 * Pairs of statements (in loop order, wrapping once around the back edge) that access the same
 * workgroup array, one reading and one writing it, at least one as a subgroup matrix, with no
 * barrier between them. Element-only pairs are one invocation's own elements and are skipped.
 */
export function unorderedPairs(statements: Access[]): string[] {
  // A barrier orders a pair when it runs whenever one of the two accesses does: its enclosing
  // blocks enclose that access too (a barrier under another `if` may be skipped).
  const encloses = (bar: Access, x: Access) => bar.blocks.every((id, d) => x.blocks[d] === id);
  const out: string[] = [];
  const n = statements.length;
  for (let i = 0; i < n; i++) {
    const a = statements[i]!;
    const between: Access[] = [];
    for (let k = 1; k < n; k++) {
      const b = statements[(i + k) % n]!;
      if (b.barrier) {
        if (encloses(b, a)) break;
        between.push(b);
        continue;
      }
      if (between.some((bar) => encloses(bar, b))) continue;
      for (const arr of ARRAYS) {
        const aw = a.writes.get(arr), ar = a.reads.get(arr);
        const bw = b.writes.get(arr), br = b.reads.get(arr);
        // A read and a write (either order); two writes go to disjoint blocks by design.
        const conflict = (aw && br) || (ar && bw);
        if (!conflict) continue;
        const kinds = [aw, ar, bw, br].filter((x) => x !== undefined);
        if (!kinds.includes("matrix")) continue;
        out.push(`${arr}: "${a.text.slice(0, 70)}" then "${b.text.slice(0, 70)}"`);
      }
    }
  }
  return out;
}

const base = H200_D128_MMA_SPEC;

const SPECS: Array<[string, MmaSpec]> = [
  ["classic 8x2x32 f16", base],
  ["classic 4x1x64 fp8 split, scores row-major", {
    ...base,
    cacheDtype: "fp8_e4m3",
    rowBlocks: 4,
    colWarps: 1,
    keys: 64,
    split: true,
    transposedScores: false,
  }],
  ["pipelined 8x2x32 f16", { ...base, pipelined: true }],
  ["pipelined 8x2x32 int8 split", { ...base, cacheDtype: "int8", split: true, pipelined: true }],
  ["pipelined 4x1x64 int8, Q resident, scores row-major", {
    ...base,
    cacheDtype: "int8",
    headDim: 64,
    rowBlocks: 4,
    colWarps: 1,
    keys: 64,
    qResident: true,
    transposedScores: false,
    pipelined: true,
  }],
  ["pipelined 8x2x32 bf16 softcap, O rescaled every tile", {
    ...base,
    qDtype: "bf16",
    cacheDtype: "bf16",
    softcap: true,
    alwaysRescale: true,
    pipelined: true,
  }],
];

for (const [name, spec] of SPECS) {
  Deno.test(`mma key loop orders every matrix access to workgroup memory with barriers: ${name}`, () => {
    const pairs = unorderedPairs(loopStatements(mmaWgsl(spec)));
    assert(pairs.length === 0, `unordered accesses:\n${pairs.join("\n")}`);
  });
}

// fixedMax: the fast loop and the fallback's rescaled loop, each checked on its own.
const FIXED_SPECS: Array<[string, MmaSpec]> = [
  ["classic 8x2x32 f16, wide S^T rows", { ...base, widePaddedScores: true, fixedMax: true }],
  ["classic 4x1x64 bf16 split, scores row-major", {
    ...base,
    qDtype: "bf16",
    cacheDtype: "bf16",
    rowBlocks: 4,
    colWarps: 1,
    keys: 64,
    split: true,
    transposedScores: false,
    fixedMax: true,
  }],
  ["pipelined 8x2x32 f16", { ...base, pipelined: true, fixedMax: true }],
  ["pipelined 4x1x64 f16 split softcap, Q resident, scores row-major", {
    ...base,
    headDim: 64,
    rowBlocks: 4,
    colWarps: 1,
    keys: 64,
    split: true,
    softcap: true,
    qResident: true,
    transposedScores: false,
    pipelined: true,
    fixedMax: true,
  }],
];

for (const [name, spec] of FIXED_SPECS) {
  Deno.test(`fixed-max mma: the fast loop and the fallback order every matrix access with barriers: ${name}`, () => {
    const code = mmaWgsl(spec);
    for (const index of [0, 1]) {
      const pairs = unorderedPairs(loopStatements(code, index));
      assert(pairs.length === 0, `loop ${index}, unordered accesses:\n${pairs.join("\n")}`);
    }
  });
}

Deno.test("the barrier check flags the fixed-max fast loops without any one of their barriers", () => {
  const cases: Array<[MmaSpec, string[]]> = [
    [{ ...base, fixedMax: true }, [
      "// K tile ready; last P V done",
      "// S ready; K tile no longer read",
      "// P and V tile ready",
      "// V tile and P no longer read",
    ]],
    [{ ...base, pipelined: true, fixedMax: true }, [
      "// P, V(t) and K(t + 1) ready",
      "// S(t + 1) ready",
    ]],
  ];
  for (const [spec, markers] of cases) {
    const code = mmaWgsl(spec);
    for (const marker of markers) {
      // The first occurrence is the fast loop's (the fallback's loop comes after it).
      const line = code.split("\n").find((l) => l.includes(marker));
      assert(line !== undefined && /workgroupBarrier\(\)/.test(line), marker);
      const pairs = unorderedPairs(loopStatements(code.replace(line, ""), 0));
      assert(pairs.length > 0, `removing "${marker}" from ${mmaKey(spec)} went unnoticed`);
    }
  }
});

Deno.test("the barrier check flags the pipelined loop without any one of its barriers, and the classic one without S ready", () => {
  const code = mmaWgsl({ ...base, cacheDtype: "int8", pipelined: true });
  const markers = ["// S(t + 1) ready", "// O is back in registers", "// P, alpha, V(t) and K"];
  for (const marker of markers) {
    const line = code.split("\n").find((l) => l.includes(marker));
    assert(line !== undefined && /workgroupBarrier\(\)|workgroupUniformLoad/.test(line), marker);
    const broken = code.replace(line, "");
    const pairs = unorderedPairs(loopStatements(broken));
    assert(pairs.length > 0, `removing "${marker}" went unnoticed`);
  }
  // The classic loop without its "S ready" barrier, likewise.
  const classic = mmaWgsl(base);
  const line = classic.split("\n").find((l) => l.includes("// S ready; K tile no longer read"))!;
  assert(unorderedPairs(loopStatements(classic.replace(line, ""))).length > 0, "classic S ready");
});
