/**
 * Workloads: the manifest schema and loader, case expansion and filters, ad-hoc cases, the
 * seeded input generator and the `list` renderer.
 *
 * @example
 * ```ts
 * import { expandCases, generateCase, loadManifest } from "./mod.ts";
 * const [first] = expandCases(loadManifest(), { tag: "default" });
 * const { inputs } = generateCase(first!, 1);
 * if (inputs.q.shape.length !== 3) throw new Error();
 * ```
 * @module
 */
export * from "./schema.ts";
export * from "./loader.ts";
export * from "./generate.ts";
export * from "./random.ts";
export * from "./render_list.ts";
export * from "./manifest_embedded.ts";
