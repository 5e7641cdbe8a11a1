// What the live view reads from an uplink record: a device's telemetry, one inference result, or
// a summary of a device's inference results over an interval (the agent's default upstream).
// The agent validated every body before it went into its outbox; this is the control plane's
// own check, so a malformed record is skipped here instead of reaching a chart.
import {
  EpisodeClosedSchema,
  EpisodeOpenedSchema,
  InferenceResultSchema,
  InferenceSummarySchema,
  RecordKind,
  type InferencePoint,
  type UplinkBatch,
  type UplinkRecord,
} from '@outpost/shared';
import { telemetryMetrics } from '../ingest/accounting.js';
import type { EpisodeRecord } from './anomaly-log.js';

interface LiveRecordBase {
  agentId: string;
  deviceId: string;
  /** Device time, epoch ms. */
  ts: number;
  /** Agent time when the record was committed, epoch ms. */
  receivedAtMs: number;
  /**
   * The identity of what the record shows, so nothing shows twice: a device message by its
   * device seq and ts (`m:{seq}:{ts}`: the agent resending a batch, or a device resend stored
   * twice, carries the same), anything else by its place in the outbox (`{epoch}:{lane}:{seq}`).
   */
  key: string;
}

export type LiveRecord =
  | (LiveRecordBase & { type: typeof RecordKind.telemetry; metrics: Readonly<Record<string, number>> })
  | (LiveRecordBase & { type: typeof RecordKind.inference | typeof RecordKind.anomaly | typeof RecordKind.inferenceSummary; result: InferencePoint });

/** The inference result of a record body, with `threshold` when the agent sent one; undefined when the body is not one. */
export function parseInferenceBody(body: unknown): InferencePoint | undefined {
  const parsed = InferenceResultSchema.safeParse(body);
  if (!parsed.success) return undefined;
  const threshold = (body as { threshold?: unknown }).threshold;
  const { ts, score, anomaly, model } = parsed.data;
  return typeof threshold === 'number' && Number.isFinite(threshold) ? { ts, score, anomaly, threshold, model } : { ts, score, anomaly, model };
}

/**
 * An `inference-summary` body as one point: at its last row's time, its mean as the score,
 * flagged when any row was; undefined when the body is not one.
 */
export function parseInferenceSummaryBody(body: unknown): InferencePoint | undefined {
  const parsed = InferenceSummarySchema.safeParse(body);
  if (!parsed.success) return undefined;
  const s = parsed.data;
  return {
    ts: s.toTs,
    score: s.mean,
    anomaly: s.anomalies > 0,
    ...(s.threshold === undefined ? {} : { threshold: s.threshold }),
    model: s.model,
    summary: { fromTs: s.fromTs, count: s.count, max: s.max, anomalies: s.anomalies },
  };
}

/** The live form of one record of `batch`; undefined for another kind or a malformed body. */
export function toLiveRecord(batch: Pick<UplinkBatch, 'agentId' | 'epoch' | 'lane'>, record: UplinkRecord): LiveRecord | undefined {
  const key =
    record.kind === RecordKind.telemetry && record.deviceSeq !== undefined ? `m:${record.deviceSeq}:${record.ts}` : `${batch.epoch}:${batch.lane}:${record.seq}`;
  const base = { agentId: batch.agentId, deviceId: record.deviceId, ts: record.ts, receivedAtMs: record.receivedAtMs, key };
  switch (record.kind) {
    case RecordKind.telemetry: {
      const metrics = telemetryMetrics(record.body);
      return metrics === undefined ? undefined : { ...base, type: RecordKind.telemetry, metrics };
    }
    case RecordKind.inference:
    case RecordKind.anomaly: {
      const result = parseInferenceBody(record.body);
      return result === undefined ? undefined : { ...base, type: record.kind, ts: result.ts, result };
    }
    case RecordKind.inferenceSummary: {
      const result = parseInferenceSummaryBody(record.body);
      return result === undefined ? undefined : { ...base, type: record.kind, ts: result.ts, result };
    }
    default:
      return undefined;
  }
}

/** An `anomaly-opened` or `anomaly-closed` record of `batch`; undefined for another kind or a malformed body. */
export function toEpisodeRecord(batch: Pick<UplinkBatch, 'agentId'>, record: UplinkRecord): EpisodeRecord | undefined {
  const base = { agentId: batch.agentId, deviceId: record.deviceId, receivedAtMs: record.receivedAtMs };
  if (record.kind === RecordKind.anomalyOpened) {
    const parsed = EpisodeOpenedSchema.safeParse(record.body);
    return parsed.success ? { ...base, type: 'opened', body: parsed.data } : undefined;
  }
  if (record.kind === RecordKind.anomalyClosed) {
    const parsed = EpisodeClosedSchema.safeParse(record.body);
    return parsed.success ? { ...base, type: 'closed', body: parsed.data } : undefined;
  }
  return undefined;
}
