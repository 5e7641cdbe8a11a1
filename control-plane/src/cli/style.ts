// Colour for the CLI's human output: only when stdout is a terminal and NO_COLOR is unset
// (https://no-color.org); decided by the caller, so this file never looks at the process.
import { styleText } from 'node:util';

type Format = Parameters<typeof styleText>[0];

export interface Style {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
}

/** Styles that colour only when `enabled`. */
export function createStyle(enabled: boolean): Style {
  const apply = (format: Format) => (text: string) => (enabled ? styleText(format, text) : text);
  return { enabled, bold: apply('bold'), dim: apply('dim'), green: apply('green'), yellow: apply('yellow'), red: apply('red') };
}
