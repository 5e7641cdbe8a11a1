import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { DeviceTopicKind, parseDeviceTopic, TelemetrySchema } from '@outpost/shared';

/**
 * Recorded traffic (FORMAT of `outpost-sim devices --record`): one JSON line per message,
 * `{"ts","deviceId","topic","payload":{ts,seq,metrics}}`, or `"raw"` (and `"rawBase64"`)
 * instead of `payload` for a malformed message. Training and evaluation see what the agent
 * would: only valid telemetry (TelemetrySchema) on a device's telemetry topic.
 */

/** One valid telemetry message of a recording. */
export interface TelemetryRecord {
  deviceId: string;
  /** The payload's ts (device clock, epoch ms). */
  ts: number;
  seq: number | undefined;
  metrics: Readonly<Record<string, number>>;
}

/** Why a line of a recording was not used. */
export const SkipReason = {
  /** Recorded as malformed on purpose (`raw`), or not JSON at all. */
  malformed: 'malformed',
  /** JSON, but the payload fails TelemetrySchema (the agent would dead-letter it). */
  invalidPayload: 'invalid-payload',
  /** Not a `devices/{id}/telemetry` topic, or the topic names another device. */
  notTelemetry: 'not-telemetry',
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export type RecordLineResult = { type: 'telemetry'; record: TelemetryRecord } | { type: 'skipped'; reason: SkipReason };

/** Parses one line of a recording. Never throws: a bad line is a skip with a reason. */
export function parseRecordLine(line: string): RecordLineResult {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { type: 'skipped', reason: SkipReason.malformed };
  }
  if (typeof value !== 'object' || value === null) return { type: 'skipped', reason: SkipReason.malformed };
  const { deviceId, topic, payload } = value as { deviceId?: unknown; topic?: unknown; payload?: unknown };
  if (payload === undefined) return { type: 'skipped', reason: SkipReason.malformed };
  if (typeof deviceId !== 'string' || typeof topic !== 'string') return { type: 'skipped', reason: SkipReason.notTelemetry };
  const parsedTopic = parseDeviceTopic(topic);
  if (parsedTopic?.rest !== DeviceTopicKind.telemetry || parsedTopic.deviceId !== deviceId) return { type: 'skipped', reason: SkipReason.notTelemetry };
  const telemetry = TelemetrySchema.safeParse(payload);
  if (!telemetry.success) return { type: 'skipped', reason: SkipReason.invalidPayload };
  return { type: 'telemetry', record: { deviceId, ts: telemetry.data.ts, seq: telemetry.data.seq, metrics: telemetry.data.metrics } };
}

/** Counts of what reading a recording used and skipped. */
export interface RecordStats {
  lines: number;
  telemetry: number;
  skipped: Record<SkipReason, number>;
}

/** Zeroed counts for `readRecordFile`. */
export function createRecordStats(): RecordStats {
  return { lines: 0, telemetry: 0, skipped: { malformed: 0, 'invalid-payload': 0, 'not-telemetry': 0 } };
}

/**
 * Streams the valid telemetry of a recording file in file order, counting skipped lines
 * into `stats`. Empty lines are ignored.
 */
export async function* readRecordFile(file: string, stats: RecordStats = createRecordStats()): AsyncGenerator<TelemetryRecord> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    stats.lines++;
    const result = parseRecordLine(line);
    if (result.type === 'skipped') {
      stats.skipped[result.reason]++;
      continue;
    }
    stats.telemetry++;
    yield result.record;
  }
}
