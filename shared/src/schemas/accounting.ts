import { z } from 'zod';
import { DeviceIdSchema } from './device.js';
import { AgentIdSchema, EpochSchema, HeartbeatSchema, LaneSchema } from './uplink.js';

/**
 * Values the control plane keeps in its KV buckets. Every replica reads what any other replica
 * (possibly of another version) wrote, so these are contracts like the messages; `v` names the
 * layout. Maps keyed by device id are stored as lists of entries: a device id may be any
 * `^[A-Za-z0-9_.-]{1,64}$`, including `__proto__`, which a JSON object key would not survive
 * a schema parse.
 */

const Count = z.number().int().nonnegative();

/** Sorted, disjoint, non-adjacent inclusive ranges `[first, last]` of an interval set. */
export const SeqRangesSchema = z.array(z.tuple([z.number().int(), z.number().int()]));
export type SeqRanges = z.infer<typeof SeqRangesSchema>;

/** The newest telemetry reading of a device (by device time, then agent seq). */
export const LatestReadingSchema = z.object({
  /** Agent seq of the record it came from. */
  seq: z.number().int().positive(),
  /** Device time, epoch ms. */
  ts: z.number().int(),
  /** Agent time when the record was committed, epoch ms. */
  receivedAtMs: z.number().int(),
  /** Metric name -> value, as entries. */
  metrics: z.array(z.tuple([z.string(), z.number()])),
});
export type LatestReading = z.infer<typeof LatestReadingSchema>;

export const DeviceAccountingValueSchema = z.object({
  deviceId: DeviceIdSchema,
  /** Records of this device counted once. */
  received: Count,
  /** Records of this device whose agent seq had already been counted. */
  duplicates: Count,
  /** `received` by record kind (telemetry, inference, anomaly, ...); absent in values written before kinds were counted. */
  byKind: z.array(z.tuple([z.string().min(1).max(64), Count])).optional(),
  latest: LatestReadingSchema.optional(),
  /** The device's own seqs seen (holes are device-side gaps). */
  deviceSeqs: SeqRangesSchema,
  /** Device-seq holes merged away to bound the value's size; still counted as gaps. */
  deviceSeqGapsForgotten: Count,
  /**
   * Device messages that arrived again (a resend after a lost acknowledgement: same seq and
   * ts), counted once: those the agent recognised (`device-resend` reports) plus those the
   * control plane recognised itself. Absent in values written before resends were counted.
   */
  deviceDuplicates: Count.optional(),
  /** The device's latest messages as `[seq, ts]` (oldest first), to recognise a resend that got past the agent. */
  recentMessages: z.array(z.tuple([z.number().int().nonnegative(), z.number().int()])).optional(),
  /** Payloads the agent refused, by reason (`dead-letter` reports). */
  deadLetters: z.array(z.tuple([z.string().min(1).max(64), Count])).optional(),
  /** Device seqs of the refused payloads that had one: they explain device-seq gaps. */
  deadLetterSeqs: SeqRangesSchema.optional(),
  /** Refused payloads whose seq could not be read (not JSON, not UTF-8). */
  deadLettersWithoutSeq: Count.optional(),
});
export type DeviceAccountingValue = z.infer<typeof DeviceAccountingValueSchema>;

/** Eviction reports of one (agent, epoch, lane), folded: idempotent by report id. */
export const EvictionAccountingValueSchema = z.object({
  /** Ids of the reports already counted. */
  ids: SeqRangesSchema,
  /** Agent seqs reported evicted. */
  seqs: SeqRangesSchema,
  records: Count,
  bytes: Count,
  byDevice: z.array(z.tuple([z.string(), Count])),
  lastAtMs: z.number().int().optional(),
  /** The device seqs of the telemetry evicted, per device (they explain device-seq gaps). */
  deviceSeqs: z.array(z.tuple([z.string(), SeqRangesSchema])).optional(),
  /** Of `records`, rows the agent found corrupt and discarded. */
  corruptRecords: Count.optional(),
});
export type EvictionAccountingValue = z.infer<typeof EvictionAccountingValueSchema>;

/** KV value under `accountingKey(agentId, epoch, lane)` in ACCOUNTING_BUCKET. */
export const AccountingValueSchema = z.object({
  v: z.literal(1),
  agentId: AgentIdSchema,
  epoch: EpochSchema,
  lane: LaneSchema,
  /** Agent seqs received, each counted once. */
  seqs: SeqRangesSchema,
  /** Records whose seq was already in `seqs` when they arrived. */
  duplicates: Count,
  devices: z.array(DeviceAccountingValueSchema),
  evictions: EvictionAccountingValueSchema,
  /**
   * Stream sequences of the last uplink messages applied: a redelivery of a message whose
   * write landed but whose ack was lost is recognised and not counted as duplicates.
   */
  recentStreamSeqs: z.array(z.number().int().positive()),
  updatedAtMs: z.number().int(),
});
export type AccountingValue = z.infer<typeof AccountingValueSchema>;

/**
 * KV value under `accountingFailureKey(...)` in ACCOUNTING_BUCKET: uplink messages of one
 * (agent, epoch, lane) were given up after retries (the stored value does not decode, or a
 * message could not be applied); they were terminated, and the agent is flagged in the API.
 */
export const AccountingFailureSchema = z.object({
  v: z.literal(1),
  agentId: AgentIdSchema,
  epoch: EpochSchema,
  lane: LaneSchema,
  /** KV_VALUE_INVALID or ACCOUNTING_FAILED. */
  code: z.string().min(1),
  message: z.string(),
  /** Messages terminated so far (as this record's writers saw it). */
  messages: Count,
  firstAtMs: z.number().int(),
  lastAtMs: z.number().int(),
});
export type AccountingFailure = z.infer<typeof AccountingFailureSchema>;

/** KV value under the agent id in FLEET_BUCKET: the last heartbeat and when it was seen. */
export const FleetRecordSchema = z.object({
  v: z.literal(1),
  agentId: AgentIdSchema,
  /** The heartbeat with the newest `lastSeenMs`. */
  heartbeat: HeartbeatSchema,
  /** When the first heartbeat was stored by NATS (server clock), epoch ms. */
  firstSeenMs: z.number().int(),
  /** When the newest heartbeat was stored by NATS (server clock), epoch ms. */
  lastSeenMs: z.number().int(),
  heartbeats: Count,
  /** Times the agent's process start time changed between heartbeats (absent in records written before). */
  restarts: Count.optional(),
  /** When the last restart was seen (server clock), epoch ms. */
  lastRestartMs: z.number().int().optional(),
});
export type FleetRecord = z.infer<typeof FleetRecordSchema>;
