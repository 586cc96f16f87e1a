/**
 * Roofline model, ceilings, the bench report schema, and its renderers (terminal table,
 * Markdown, HTML with an SVG roofline) and comparison.
 * @module
 */
export * from "./roofline.ts";
export * from "./ceilings.ts";
export * from "./schema.ts";
export * from "./build.ts";
export * from "./render_table.ts";
export * from "./render_markdown.ts";
export * from "./render_html.ts";
export * from "./compare.ts";
