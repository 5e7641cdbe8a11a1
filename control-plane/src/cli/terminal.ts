// A block of lines redrawn in place on a terminal (`rollout status --watch`): ANSI cursor
// movement back to the block's first line, each line cleared and written again, the rest of
// the screen below cleared. Lines are cut to the terminal's width, so none wraps and the
// cursor always goes back exactly as many lines as were drawn. Pure apart from `write`.

/** A run of text with an optional style applied after cutting (escape codes never count as width). */
export interface Segment {
  text: string;
  style?: ((text: string) => string) | undefined;
}
export type Line = readonly Segment[];

// ECMA-48 control sequences (CSI = ESC [).
const CSI = '\u001b[';
/** Cursor up n lines (CUU). */
const cursorUp = (n: number): string => `${CSI}${n}A`;
/** Erase the whole line (EL 2). */
const CLEAR_LINE = `${CSI}2K`;
/** Erase from the cursor to the end of the screen (ED 0). */
const CLEAR_BELOW = `${CSI}J`;
/** DEC private mode 25: cursor visible. */
export const HIDE_CURSOR = `${CSI}?25l`;
export const SHOW_CURSOR = `${CSI}?25h`;

/** Width assumed when the terminal does not say (a pty without a size). */
export const DEFAULT_TERMINAL_COLUMNS = 80;
export const DEFAULT_TERMINAL_ROWS = 24;

/** The line's text without styles. */
export function plainText(line: Line): string {
  return line.map((s) => s.text).join('');
}

/** The line cut to `width` characters (the last one an ellipsis when cut), styles applied. */
export function renderLine(line: Line, width = Number.POSITIVE_INFINITY): string {
  const total = plainText(line).length;
  let room = total > width ? Math.max(0, width - 1) : total;
  let out = '';
  for (const segment of line) {
    if (room <= 0) break;
    const text = segment.text.slice(0, room);
    room -= text.length;
    out += segment.style === undefined || text === '' ? text : segment.style(text);
  }
  return total > width && width > 0 ? `${out}…` : out;
}

export interface TerminalSize {
  columns?: number | undefined;
  rows?: number | undefined;
}

export interface LiveRegion {
  /** Draws `lines` over the previous frame; false (nothing written) when it looks the same. */
  draw(lines: readonly Line[]): boolean;
  /** Leaves the last frame on screen, writes `after` below it and shows the cursor again. */
  finish(after?: string): void;
}

/**
 * A region starting at the cursor. `size()` is read at each draw; a frame taller than the
 * terminal is cut to its height minus one, since the cursor cannot move above the screen.
 */
export function createLiveRegion(write: (text: string) => void, size: () => TerminalSize): LiveRegion {
  let height = 0;
  let last: string | undefined;
  let finished = false;
  return {
    draw(lines) {
      if (finished) return false;
      const { columns, rows } = size();
      const width = Math.max(1, (columns === undefined || columns <= 0 ? DEFAULT_TERMINAL_COLUMNS : columns) - 1);
      const maxLines = Math.max(1, (rows === undefined || rows <= 0 ? DEFAULT_TERMINAL_ROWS : rows) - 1);
      let shown = lines;
      if (lines.length > maxLines) {
        shown = [...lines.slice(0, maxLines - 1), [{ text: `… ${lines.length - maxLines + 1} more line(s); a taller terminal shows them` }]];
      }
      const rendered = shown.map((line) => renderLine(line, width));
      const frame = rendered.join('\n');
      if (frame === last) return false;
      let out = height === 0 ? HIDE_CURSOR : `\r${cursorUp(height)}`;
      for (const line of rendered) out += `${CLEAR_LINE}${line}\n`;
      write(`${out}${CLEAR_BELOW}`);
      height = rendered.length;
      last = frame;
      return true;
    },
    finish(after) {
      if (finished) return;
      finished = true;
      // From the start of a cleared line: a Ctrl-C the terminal echoed as ^C is gone.
      write(`\r${CLEAR_LINE}${after ?? ''}${SHOW_CURSOR}`);
    },
  };
}
