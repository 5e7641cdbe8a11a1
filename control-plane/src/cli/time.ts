// Times on the command line and in tables.
import { TimeParamSchema } from '@outpost/shared';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * `--since`: a duration back from `nowMs` (`90s`, `15m`, `1h`, `2d`), epoch milliseconds, or an
 * ISO 8601 time. Returns epoch ms, or undefined when `text` is none of these.
 */
export function parseSince(text: string, nowMs: number): number | undefined {
  const duration = DURATION.exec(text.trim());
  if (duration !== null) return Math.round(nowMs - Number(duration[1]) * UNIT_MS[duration[2]!]!);
  const parsed = TimeParamSchema.safeParse(text.trim());
  return parsed.success ? parsed.data : undefined;
}

/** `5s ago`, `3m ago`, `2h ago`, `4d ago`; `in 5s` for a time ahead of `nowMs`. */
export function formatAge(atMs: number, nowMs: number): string {
  const ms = nowMs - atMs;
  const abs = Math.abs(ms);
  const text = abs < 1_000 ? 'now' : abs < 60_000 ? `${Math.floor(abs / 1_000)}s` : abs < 3_600_000 ? `${Math.floor(abs / 60_000)}m` : abs < 86_400_000 ? `${Math.floor(abs / 3_600_000)}h` : `${Math.floor(abs / 86_400_000)}d`;
  if (text === 'now') return text;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

/** ISO 8601 in UTC, to the second. */
export function formatTime(atMs: number): string {
  const date = new Date(atMs);
  return Number.isNaN(date.getTime()) ? String(atMs) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
