import { z } from 'zod';
import { DesiredReportSchema } from '../rollouts/desired-report.js';
import { DeviceIdSchema, ModelRefSchema } from './device.js';

const Count = z.number().int().nonnegative();

/** Outbox lanes; `events` drains before `telemetry` and is evicted last. */
export const Lane = { events: 'events', telemetry: 'telemetry' } as const;
export type Lane = (typeof Lane)[keyof typeof Lane];
export const LaneSchema = z.enum([Lane.events, Lane.telemetry]);
export const LANES_IN_DRAIN_ORDER: readonly Lane[] = [Lane.events, Lane.telemetry];

export const AgentIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'agent id must match ^[A-Za-z0-9_-]{1,64}$');

/**
 * The epoch is minted when an agent's database is created, so a re-provisioned gateway
 * never reuses (agentId, epoch, lane, seq).
 */
export const EpochSchema = z.string().regex(/^[0-9a-z]{8,40}$/, 'epoch must be 8 to 40 lowercase alphanumerics');

/** One outbox record as it travels upstream. */
export const UplinkRecordSchema = z.object({
  seq: z.number().int().positive(),
  deviceId: DeviceIdSchema,
  /** Device time, epoch ms. */
  ts: z.number().int(),
  /** Agent time when the record was committed, epoch ms. */
  receivedAtMs: z.number().int(),
  /** The device's own seq, when it sent one. */
  deviceSeq: z.number().int().nonnegative().optional(),
  /** What the record is: `telemetry`, `inference`, `anomaly`, `rollout-result`, ... */
  kind: z.string().min(1).max(64),
  /** The record's validated body (for telemetry: `{ ts, seq?, metrics }`). */
  body: z.unknown(),
});
export type UplinkRecord = z.infer<typeof UplinkRecordSchema>;

/** A batch of consecutive records of one lane; published compressed with Nats-Msg-Id. */
export const UplinkBatchSchema = z
  .object({
    agentId: AgentIdSchema,
    epoch: EpochSchema,
    lane: LaneSchema,
    firstSeq: z.number().int().positive(),
    lastSeq: z.number().int().positive(),
    records: z.array(UplinkRecordSchema).min(1),
  })
  .refine((b) => b.lastSeq >= b.firstSeq, { message: 'lastSeq must be >= firstSeq', path: ['lastSeq'] });
export type UplinkBatch = z.infer<typeof UplinkBatchSchema>;

/** Sorted, disjoint inclusive ranges `[first, last]` of seqs. */
const SeqRangeListSchema = z.array(z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])).max(1_024);

/** Why records were dropped: the outbox's byte bound (oldest first), or rows the uplink found corrupt. */
export const EvictionReason = { full: 'full', corrupt: 'corrupt' } as const;
export type EvictionReason = (typeof EvictionReason)[keyof typeof EvictionReason];

/** Records the agent dropped (to stay inside its byte bound, or unreadable): reported so gaps are explained. */
export const EvictionReportSchema = z.object({
  /** The agent's eviction row id: reports are idempotent by (agentId, epoch, id). */
  id: z.number().int().positive(),
  agentId: AgentIdSchema,
  epoch: EpochSchema,
  lane: LaneSchema,
  /** Absent in reports of agents from before reasons: `full`. */
  reason: z.enum([EvictionReason.full, EvictionReason.corrupt]).optional(),
  /** `full`: every record of [firstSeq, lastSeq]; `corrupt`: `records` rows between them. */
  firstSeq: z.number().int().positive(),
  lastSeq: z.number().int().positive(),
  records: z.number().int().positive(),
  bytes: z.number().int().nonnegative(),
  /** Evicted record counts per device. */
  byDevice: z.record(z.string(), z.number().int().positive()),
  /** The device seqs of the telemetry evicted, per device, as ranges (a device's own data lost: explains its seq gaps). */
  deviceSeqs: z.array(z.tuple([DeviceIdSchema, SeqRangeListSchema])).optional(),
  atMs: z.number().int(),
});
export type EvictionReport = z.infer<typeof EvictionReportSchema>;

/** Body of a `device-resend` record: a device message committed before arrived again. */
export const DeviceResendReportSchema = z.object({
  seq: z.number().int().nonnegative(),
  /** The message's device time, epoch ms (the same as the original's). */
  ts: z.number().int(),
});
export type DeviceResendReport = z.infer<typeof DeviceResendReportSchema>;

/** Body of a `dead-letter` record: a device payload the agent refused, reported so the gap it leaves is explained. */
export const DeadLetterReportSchema = z.object({
  /** A RejectReason. */
  reason: z.string().min(1).max(64),
  topic: z.string().max(1_024),
  detail: z.string().max(1_024),
  /** The device's seq, when the payload had a readable one. */
  seq: z.number().int().nonnegative().optional(),
});
export type DeadLetterReport = z.infer<typeof DeadLetterReportSchema>;

/**
 * Body of an `inference-summary` record (telemetry lane): the scores one model gave one device
 * over one interval. With `inference.upstream: summaries` (the default) these and the anomalies
 * are what goes upstream of the scores; every score still goes to its device locally.
 */
export const InferenceSummarySchema = z.object({
  /** Device time of the first and the last row scored in the interval, epoch ms. */
  fromTs: z.number().int(),
  toTs: z.number().int(),
  model: ModelRefSchema,
  /** Rows scored. */
  count: z.number().int().positive(),
  mean: z.number().finite(),
  max: z.number().finite(),
  /** Rows whose score was above the threshold. */
  anomalies: z.number().int().nonnegative(),
  threshold: z.number().finite().optional(),
});
export type InferenceSummary = z.infer<typeof InferenceSummarySchema>;

export const HeartbeatSchema = z.object({
  agentId: AgentIdSchema,
  epoch: EpochSchema,
  ts: z.number().int(),
  /** When this agent process started, epoch ms: a new value means the agent restarted. */
  startedAtMs: z.number().int().optional(),
  labels: z.record(z.string(), z.string()),
  versions: z.object({ agent: z.string(), model: z.string().optional(), config: z.string().optional() }),
  buffer: z.object({
    records: z.record(LaneSchema, z.number().int().nonnegative()),
    bytes: z.number().int().nonnegative(),
    maxBytes: z.number().int().positive(),
    oldestRecordAgeMs: z.number().int().nonnegative().optional(),
    evictedRecords: z.record(LaneSchema, z.number().int().nonnegative()),
    /** False while the outbox cannot commit (disk full): publishes stay unacknowledged. */
    storageOk: z.boolean().optional(),
  }),
  ingest: z.object({
    accepted: z.number().int().nonnegative(),
    rejected: z.number().int().nonnegative(),
    /** Device resends recognised (acknowledged again, stored once) since the process started. */
    resends: z.number().int().nonnegative().optional(),
    devicesConnected: z.number().int().nonnegative(),
    /** Publishes committed per second since the previous heartbeat. */
    acceptedPerS: z.number().nonnegative().optional(),
  }),
  uplink: z
    .object({
      /** Records acknowledged by JetStream per second since the previous heartbeat. */
      recordsPerS: z.number().nonnegative(),
    })
    .optional(),
  inference: z
    .object({
      up: z.boolean(),
      model: z.string().optional(),
      /** Since `model` became active: rows scored, of them anomalies, and rows that could not be scored (rollout gates read these). */
      counts: z.object({ model: z.string(), rows: Count, anomalies: Count, errors: Count, sinceMs: z.number().int() }).optional(),
    })
    .optional(),
  /** What the agent did with its desired state (rollouts). */
  desired: DesiredReportSchema.optional(),
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;
