import { MAX_METRICS_PER_MESSAGE, METRIC_NAME_PATTERN, type Telemetry } from './device.js';

/** Largest `ts` TelemetrySchema accepts (the end of the JavaScript Date range), epoch ms. */
const MAX_TS_MS = 8.64e15;

/**
 * The accept path of TelemetrySchema written out by hand: ingest runs it on every device
 * message, where zod's generic machinery was a tenth of the agent's CPU (bench profile,
 * docs/PERFORMANCE.md). It answers only "valid, and here is the value" or "not sure": on
 * undefined the caller runs TelemetrySchema, which stays the one source of truth and of error
 * messages. A property test keeps the two in agreement (telemetry-check.test.ts).
 *
 * @param json a value from JSON.parse
 * @returns the telemetry exactly as TelemetrySchema.parse would return it, or undefined
 */
export function checkTelemetryFast(json: unknown): Telemetry | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const { ts, seq, metrics } = json as { ts?: unknown; seq?: unknown; metrics?: unknown };
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < 0 || ts > MAX_TS_MS) return undefined;
  if (seq !== undefined && (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)) return undefined;
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) return undefined;
  let count = 0;
  for (const name in metrics) {
    if (!Object.hasOwn(metrics, name)) return undefined;
    const value = (metrics as Record<string, unknown>)[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || !METRIC_NAME_PATTERN.test(name)) return undefined;
    count++;
  }
  if (count === 0 || count > MAX_METRICS_PER_MESSAGE) return undefined;
  // A JSON.parse result holds plain data only; zod would copy `metrics` into a fresh object of
  // the same keys in the same order, which is what serialising it again produces too.
  return seq === undefined ? { ts, metrics: metrics as Record<string, number> } : { ts, seq, metrics: metrics as Record<string, number> };
}
