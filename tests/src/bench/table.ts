/**
 * The one text table of the bench: the first row is the header, underlined with dashes; the
 * first column (the figure's name) is left-aligned, the others (values) right-aligned, two spaces
 * apart. outpostctl keeps its own (control-plane/src/cli/table.ts): it is product output.
 */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  const lines: string[] = [];
  for (const [i, row] of rows.entries()) {
    lines.push(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  '));
    if (i === 0) lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  return lines;
}
