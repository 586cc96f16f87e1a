/**
 * A plain-text table of workload cases for the CLI's `list` command: one line per manifest row
 * (its q dtypes gathered), so the renderer stays pure and the CLI only prints.
 * @module
 */
import type { WorkloadCase } from "./loader.ts";

const _HEADERS = [
  "label",
  "dtypes",
  "cache",
  "B",
  "q_lens",
  "cache_lens",
  "H/H_kv",
  "D",
  "page",
  "order",
  "tags",
] as const;

/** Right-aligned columns (numbers). */
const _RIGHT = new Set(["B", "H/H_kv", "D", "page"]);

/** Lists longer than this many characters are cut with "...". */
const _MAX_LIST = 28;

function _lengths(v: readonly number[]): string {
  if (v.length === 0) return "-";
  if (v.every((x) => x === v[0])) return v.length > 1 ? `${v[0]} x${v.length}` : String(v[0]);
  const full = v.join(",");
  if (full.length <= _MAX_LIST) return full;
  let out = "";
  for (const x of v) {
    const next = out === "" ? String(x) : `${out},${x}`;
    if (next.length > _MAX_LIST - 3) break;
    out = next;
  }
  return `${out},...`;
}

/**
 * The cases as an aligned text table (label, dtypes, cache, B, q_lens, cache_lens, H/H_kv, D,
 * page, order, tags) with one line per label, then a count line. Uniform lengths print as
 * `512 x8`; `cache` prints `same` when the cache has the q dtype.
 *
 * @example
 * ```ts
 * import { adHocCase } from "./loader.ts";
 * import { renderManifestList } from "./render_list.ts";
 * const text = renderManifestList([adHocCase({ batch: 4, qLen: 128 })]);
 * if (!text.includes("128 x4") || !text.includes("8/2")) throw new Error(text);
 * ```
 */
export function renderManifestList(cases: readonly WorkloadCase[]): string {
  const rows = new Map<string, WorkloadCase[]>();
  for (const c of cases) {
    const group = rows.get(c.label);
    if (group) group.push(c);
    else rows.set(c.label, [c]);
  }
  const table: string[][] = [];
  for (const [label, group] of rows) {
    const c = group[0]!;
    const caches = [
      ...new Set(group.map((g) => g.cacheDtype === g.qDtype ? "same" : g.cacheDtype)),
    ];
    table.push([
      label,
      group.map((g) => g.qDtype).join(","),
      caches.join(","),
      String(c.batch),
      _lengths(c.qLens),
      _lengths(c.cacheLens),
      `${c.numHeads}/${c.numKvHeads}`,
      String(c.headDim),
      String(c.pageSize),
      c.pageOrder,
      c.tags.length > 0 ? c.tags.join(",") : "-",
    ]);
  }
  const widths = _HEADERS.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => {
      const w = widths[i]!;
      return _RIGHT.has(_HEADERS[i]!) ? cell.padStart(w) : cell.padEnd(w);
    }).join("  ").trimEnd();
  const out = [line(_HEADERS), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of table) out.push(line(r));
  out.push("");
  out.push(
    `${table.length} workload${table.length === 1 ? "" : "s"}, ${cases.length} case${
      cases.length === 1 ? "" : "s"
    } (one per q dtype)`,
  );
  return out.join("\n") + "\n";
}
