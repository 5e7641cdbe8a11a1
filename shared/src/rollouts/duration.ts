import { z } from 'zod';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `250ms`, `30s`, `5m`, `2h`, `1d` to ms; undefined when it is none of these. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * UNIT_MS[match[2]!]!);
}

/** A duration as a user writes it: ms as a number, or `30s`, `5m`, ... ; read as ms. */
export const DurationSchema = z
  .union([z.number().int().nonnegative(), z.string()])
  .transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const ms = parseDurationMs(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be a duration like 30s, 5m or 1h, or a number of ms (got ${JSON.stringify(value)})` });
      return z.NEVER;
    }
    return ms;
  });
