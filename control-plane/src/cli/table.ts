// Aligned text tables for the CLI's human output. Widths are measured on the plain text and
// colour is applied after padding, so escape codes never break the alignment.

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  align?: Align;
}

/** A cell: plain text, or text with a style applied after padding. */
export type Cell = string | { text: string; style?: (text: string) => string };

export interface TableStyle {
  header(text: string): string;
}

const PLAIN: TableStyle = { header: (t) => t };

/** Columns separated by two spaces; the last column is not padded (no trailing blanks). */
export function formatTable(columns: readonly Column[], rows: readonly (readonly Cell[])[], style: TableStyle = PLAIN): string {
  const text = (cell: Cell | undefined): string => (cell === undefined ? '' : typeof cell === 'string' ? cell : cell.text);
  const widths = columns.map((c, k) => Math.max(c.header.length, ...rows.map((r) => text(r[k]).length)));
  const pad = (value: string, k: number): string => {
    if (k === columns.length - 1 && columns[k]!.align !== 'right') return value;
    const fill = ' '.repeat(widths[k]! - value.length);
    return columns[k]!.align === 'right' ? fill + value : value + fill;
  };
  const lines = [columns.map((c, k) => style.header(pad(c.header, k))).join('  ')];
  for (const row of rows) {
    lines.push(
      columns
        .map((_c, k) => {
          const cell = row[k];
          const padded = pad(text(cell), k);
          return typeof cell === 'object' && cell.style !== undefined ? cell.style(padded) : padded;
        })
        .join('  '),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `label  value` lines with the labels aligned. */
export function formatFields(fields: readonly (readonly [label: string, value: string])[], style: TableStyle = PLAIN): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `${style.header(label.padEnd(width))}  ${value}`).join('\n') + '\n';
}
