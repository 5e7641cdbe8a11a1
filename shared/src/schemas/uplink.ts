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

/** Records a batch holds at most (uplink.batchMaxRecords is at most 5,000). */
export const MAX_BATCH_RECORDS = 5_000;

/** One device's part of a batch, as the summary tells it (BatchSummarySchema). */
export const BatchDeviceSummarySchema = z.object({
  deviceId: DeviceIdSchema,
  /** The device's records in the batch, by kind. */
  kinds: z.array(z.tuple([z.string().min(1).max(64), z.number().int().positive()])).min(1),
  /**
   * Its telemetry records that carry a device seq, in batch order: the seqs as runs
   * `[first, length]` of consecutive values, and each record's ts, the first as it is and the
   * others as differences from the one before. Enough to count device resends exactly (same
   * seq and ts) without a record body.
   */
  telemetry: z
    .object({
      runs: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().positive()])).min(1),
      ts: z.array(z.number().int()).min(1),
    })
    .optional(),
  /** Its newest telemetry reading in the batch (by device time, then agent seq). */
  latest: z
    .object({
      seq: z.number().int().positive(),
      ts: z.number().int(),
      receivedAtMs: z.number().int(),
      metrics: z.array(z.tuple([z.string(), z.number()])),
    })
    .optional(),
});
export type BatchDeviceSummary = z.infer<typeof BatchDeviceSummarySchema>;

/**
 * What the control plane's accounting needs of a batch, sent beside its records
 * (BATCH_ENCODING_SUMMARY): the agent seqs, and per device its records by kind, its device
 * seqs and ts in order, and its latest reading. Consistency with the records is the agent's
 * word, as the records themselves are; the control plane checks the summary is whole.
 */
export const BatchSummarySchema = z
  .object({
    agentId: AgentIdSchema,
    epoch: EpochSchema,
    lane: LaneSchema,
    firstSeq: z.number().int().positive(),
    lastSeq: z.number().int().positive(),
    /** The records' agent seqs: sorted, disjoint ranges (the batch's range minus rows found corrupt). */
    seqs: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).max(MAX_BATCH_RECORDS),
    devices: z.array(BatchDeviceSummarySchema).min(1).max(MAX_BATCH_RECORDS),
  })
  .superRefine((b, ctx) => {
    let records = 0;
    let previous = b.firstSeq - 1;
    for (const [first, last] of b.seqs) {
      if (first <= previous || last < first || last > b.lastSeq) {
        ctx.addIssue({ code: 'custom', path: ['seqs'], message: `ranges must be sorted, disjoint and inside [firstSeq, lastSeq]` });
        return;
      }
      previous = last;
      records += last - first + 1;
    }
    let counted = 0;
    b.devices.forEach((d, i) => {
      let telemetry = 0;
      for (const [kind, n] of d.kinds) {
        counted += n;
        if (kind === 'telemetry') telemetry += n;
      }
      if (d.telemetry === undefined) return;
      const runLength = d.telemetry.runs.reduce((n, [, length]) => n + length, 0);
      if (runLength !== d.telemetry.ts.length || runLength > telemetry) {
        ctx.addIssue({ code: 'custom', path: ['devices', i, 'telemetry'], message: 'runs and ts must describe as many records, at most its telemetry' });
      }
    });
    if (counted !== records) ctx.addIssue({ code: 'custom', path: ['devices'], message: `${counted} records by kind, ${records} agent seqs` });
  });
export type BatchSummary = z.infer<typeof BatchSummarySchema>;

/**
 * A BATCH_ENCODING_SUMMARY payload: 4 bytes of big-endian length of the gzip-compressed summary
 * (BatchSummarySchema JSON), that, then the gzip-compressed records (UplinkRecordSchema JSON,
 * one per line, in seq order).
 */
export function frameSummaryBatch(summaryGz: Uint8Array, recordsGz: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(summaryGz.length, 0);
  return Buffer.concat([head, summaryGz, recordsGz]);
}

/** The two compressed parts of a BATCH_ENCODING_SUMMARY payload; undefined when the framing is broken. */
export function splitSummaryBatch(data: Uint8Array): { summaryGz: Uint8Array; recordsGz: Uint8Array } | undefined {
  if (data.length < 4) return undefined;
  const length = ((data[0]! << 24) >>> 0) + (data[1]! << 16) + (data[2]! << 8) + data[3]!;
  if (length === 0 || 4 + length > data.length) return undefined;
  return { summaryGz: data.subarray(4, 4 + length), recordsGz: data.subarray(4 + length) };
}

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

// ---------------------------------------------------------------------------------------
// Anomaly episodes: consecutive flagged windows of one device are one episode, reported when it
// opens and again when it closes (events lane), so an operator counts one alarm per fault.
// ---------------------------------------------------------------------------------------

/**
 * Clean (not flagged) windows in a row that close a device's episode. 3: a fault whose score dips
 * under the threshold for one or two windows (4 to 8 s at the shipped models' hop of 4 samples at
 * 1 Hz) is still one alarm, and an episode is reported closed 12 s after its last flagged window.
 * The evaluation (models/src/evaluate, `flaggedRuns`) merges alarm events by the same rule, so
 * its false alarms per device-day count what the agent reports.
 */
export const EPISODE_CLOSE_AFTER_CLEAN_WINDOWS = 3;

/** Why an episode closed. */
export const EpisodeCloseReason = {
  /** EPISODE_CLOSE_AFTER_CLEAN_WINDOWS clean windows in a row. */
  recovered: 'recovered',
  /** No scored window of the device for `inference.episodeSilenceMs`. */
  silent: 'silent',
  /** A window of the device was scored by another model (a swap): the new model opens its own. */
  modelChanged: 'model-changed',
  /** The agent stopped. */
  shutdown: 'shutdown',
  /**
   * Set by the control plane, never sent by an agent: a newer episode of the same device began
   * while this one had no closed record (the agent stopped without closing it: kill -9, power loss).
   */
  superseded: 'superseded',
} as const;
export type EpisodeCloseReason = (typeof EpisodeCloseReason)[keyof typeof EpisodeCloseReason];
export const EpisodeCloseReasonSchema = z.enum([
  EpisodeCloseReason.recovered,
  EpisodeCloseReason.silent,
  EpisodeCloseReason.modelChanged,
  EpisodeCloseReason.shutdown,
  EpisodeCloseReason.superseded,
]);

/** Most contributing metrics an episode names. */
export const MAX_EPISODE_CONTRIBUTORS = 8;

/** A metric that made an episode's windows anomalous, from the model's `evidence` output. */
export const EpisodeContributorSchema = z.object({
  metric: z.string().min(1).max(128),
  /** The window feature (detector) with the strongest evidence for this metric: `jump`, `run`, `level0`, ... */
  detector: z.string().min(1).max(64),
  /** That evidence at its highest over the episode (the score is the highest evidence of any metric). */
  evidence: z.number().finite(),
});
export type EpisodeContributor = z.infer<typeof EpisodeContributorSchema>;

/** What an episode's opened and closed records both carry. */
const EpisodeBaseSchema = z.object({
  /** Unique per agent; the closed record names the episode its opened record named. */
  episodeId: z.string().min(1).max(64),
  model: ModelRefSchema,
  /** Device time of the first flagged window (its newest sample), epoch ms. */
  startTs: z.number().int(),
  threshold: z.number().finite(),
  /**
   * Metrics whose evidence crossed the threshold, strongest first (at least the strongest one);
   * empty when the model has no `evidence` output.
   */
  contributors: z.array(EpisodeContributorSchema).max(MAX_EPISODE_CONTRIBUTORS),
});

/** Body of an `anomaly-opened` record (events lane): a device's first flagged window after a clean spell. */
export const EpisodeOpenedSchema = EpisodeBaseSchema.extend({
  /** The first window's score. */
  score: z.number().finite(),
});
export type EpisodeOpened = z.infer<typeof EpisodeOpenedSchema>;

/** Body of an `anomaly-closed` record (events lane): the whole episode, so it reads alone. */
export const EpisodeClosedSchema = EpisodeBaseSchema.extend({
  /** Device time of the last flagged window, epoch ms. */
  lastSeenTs: z.number().int(),
  /**
   * Device time the episode ended, epoch ms: `recovered`, the first of the clean windows that
   * closed it; otherwise `lastSeenTs` (nothing later is known).
   */
  endTs: z.number().int(),
  peakScore: z.number().finite(),
  /** Device time of the window with the peak score. */
  peakTs: z.number().int(),
  /** Flagged windows in the episode. */
  windows: z.number().int().positive(),
  reason: EpisodeCloseReasonSchema,
});
export type EpisodeClosed = z.infer<typeof EpisodeClosedSchema>;
