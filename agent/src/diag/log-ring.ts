// The agent's recent log lines, kept for `outpostctl agents logs` (issue [install]): a ring of
// the last lines exactly as the logger wrote them, so secrets are already redacted (the shared
// logger redacts by field name before a line exists).
import { DEFAULT_DIAG_LOG_LINES, MAX_DIAG_LOG_REPLY_BYTES, type DiagLogsReply } from '@outpost/shared';

/** A longer line is cut to this many characters, marked with MARK_CUT (a 64 MiB payload logged by mistake must not fill the ring). */
export const MAX_LOG_LINE_CHARS = 8 * 1024;
/** Ends a line that was cut. */
export const LINE_CUT_MARK = ' …[cut]';

export interface LogRing {
  /** Keeps one line (a trailing newline is dropped). Never throws. */
  push(line: string): void;
  /**
   * The kept lines after `afterSeq`, oldest first: at most `limit`, and at most `maxBytes` of
   * text (UTF-8; at least one line whatever its size, so a reader always moves on).
   */
  read(afterSeq: number, limit: number, maxBytes?: number): DiagLogsReply;
  /** Lines kept now. */
  size(): number;
  /** Sequence number of the newest line (0: none yet). */
  lastSeq(): number;
  readonly maxLines: number;
}

/** A ring of the last `maxLines` lines (default 1,000), numbered from 1 on. */
export function createLogRing(maxLines = DEFAULT_DIAG_LOG_LINES): LogRing {
  if (!Number.isSafeInteger(maxLines) || maxLines < 1) throw new RangeError(`maxLines must be a positive integer, not ${maxLines}`);
  const texts: string[] = new Array<string>(maxLines);
  let last = 0;
  const oldestSeq = (): number => Math.max(1, last - maxLines + 1);
  return {
    maxLines,
    push(line) {
      let text = line.endsWith('\n') ? line.slice(0, -1) : line;
      if (text.length > MAX_LOG_LINE_CHARS) text = `${text.slice(0, MAX_LOG_LINE_CHARS)}${LINE_CUT_MARK}`;
      last += 1;
      texts[(last - 1) % maxLines] = text;
    },
    read(afterSeq, limit, maxBytes = MAX_DIAG_LOG_REPLY_BYTES) {
      const first = Math.max(afterSeq + 1, oldestSeq());
      const missed = last === 0 ? 0 : Math.max(0, Math.min(first, last + 1) - (afterSeq + 1));
      const lines: DiagLogsReply['lines'] = [];
      let bytes = 0;
      let seq = first;
      for (; seq <= last && lines.length < limit; seq++) {
        const text = texts[(seq - 1) % maxLines]!;
        const size = Buffer.byteLength(text, 'utf8') + 16;
        if (lines.length > 0 && bytes + size > maxBytes) break;
        bytes += size;
        lines.push({ seq, text });
      }
      return { lines, lastSeq: last, missed, more: seq <= last };
    },
    size: () => Math.min(last, maxLines),
    lastSeq: () => last,
  };
}
