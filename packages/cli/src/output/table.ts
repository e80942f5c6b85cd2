/** A column of {@link renderTable}: its heading and whether its cells are right-aligned (numbers). */
export interface Column {
  readonly heading: string;
  readonly align?: "left" | "right";
}

/**
 * An aligned plain-text table: columns two spaces apart, headings on the first line, no trailing
 * blanks. Cells are shown as given (callers format numbers and times).
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.heading.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (columns[i]?.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.heading)), ...rows.map((r) => line(columns.map((_, i) => r[i] ?? "")))].join("\n");
}
