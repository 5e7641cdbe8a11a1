import { z } from 'zod';
import { ErrorCode } from '../errors.js';
import { DeviceIdSchema } from './device.js';
import { AgentIdSchema, EpochSchema, HeartbeatSchema, LaneSchema } from './uplink.js';

/**
 * Response bodies of the control plane's HTTP API (DESIGN section 6). The server builds them
 * as these types; clients (outpostctl, the dashboard, tests) may parse them with these schemas.
 */

const Count = z.number().int().nonnegative();

/** How an agent reads at request time (computed from its last heartbeat, never stored). */
export const AgentStatus = {
  online: 'online',
  /** Online, but something needs a look: see `reasons`. */
  degraded: 'degraded',
  offline: 'offline',
  /** Data arrived from it, but no heartbeat yet. */
  unknown: 'unknown',
} as const;
export type AgentStatus = (typeof AgentStatus)[keyof typeof AgentStatus];
export const AgentStatusSchema = z.enum([AgentStatus.online, AgentStatus.degraded, AgentStatus.offline, AgentStatus.unknown]);

/** Why an agent is not plainly online. */
export const StatusReason = {
  heartbeatMissed: 'heartbeat-missed',
  noHeartbeat: 'no-heartbeat',
  bufferBacklog: 'buffer-backlog',
  bufferNearlyFull: 'buffer-nearly-full',
  inferenceDown: 'inference-down',
  storageFailing: 'storage-failing',
} as const;
export type StatusReason = (typeof StatusReason)[keyof typeof StatusReason];
export const StatusReasonSchema = z.enum([
  StatusReason.heartbeatMissed,
  StatusReason.noHeartbeat,
  StatusReason.bufferBacklog,
  StatusReason.bufferNearlyFull,
  StatusReason.inferenceDown,
  StatusReason.storageFailing,
]);

const HeartbeatShape = HeartbeatSchema.shape;

export const AgentSummarySchema = z.object({
  agentId: AgentIdSchema,
  status: AgentStatusSchema,
  reasons: z.array(StatusReasonSchema),
  labels: z.record(z.string(), z.string()),
  /** Fields below come from the last heartbeat; null while there was none. */
  epoch: EpochSchema.nullable(),
  versions: HeartbeatShape.versions.nullable(),
  /** NATS server time of the first and the newest heartbeat, epoch ms. */
  firstSeenMs: z.number().int().nullable(),
  lastSeenMs: z.number().int().nullable(),
  buffer: HeartbeatShape.buffer.nullable(),
  ingest: HeartbeatShape.ingest.nullable(),
  inference: HeartbeatShape.inference.unwrap().nullable(),
});
export type AgentSummary = z.infer<typeof AgentSummarySchema>;

export const AgentListResponseSchema = z.object({ agents: z.array(AgentSummarySchema) });
export type AgentListResponse = z.infer<typeof AgentListResponseSchema>;

/** Agent-seq accounting of one (epoch, lane). */
export const LaneAccountingSummarySchema = z.object({
  epoch: EpochSchema,
  lane: LaneSchema,
  /** Records counted once. */
  received: Count,
  /** Records that arrived again after being counted. */
  duplicates: Count,
  /** Highest agent seq received; 0 when none. */
  maxSeq: Count,
  /** Agent seqs below maxSeq never received. */
  gaps: Count,
  /** Of `gaps`, seqs the agent reported evicted. */
  explainedByEviction: Count,
  unexplainedGaps: Count,
  evicted: z.object({ records: Count, bytes: Count, reports: Count }),
  devices: Count,
  updatedAtMs: z.number().int(),
});
export type LaneAccountingSummary = z.infer<typeof LaneAccountingSummarySchema>;

export const AccountingTotalsSchema = z.object({
  received: Count,
  duplicates: Count,
  gaps: Count,
  explainedByEviction: Count,
  unexplainedGaps: Count,
  evicted: Count,
});
export type AccountingTotals = z.infer<typeof AccountingTotalsSchema>;

export const AgentDetailResponseSchema = AgentSummarySchema.extend({
  accounting: z.array(LaneAccountingSummarySchema),
  totals: AccountingTotalsSchema,
});
export type AgentDetailResponse = z.infer<typeof AgentDetailResponseSchema>;

export const LatestReadingViewSchema = z.object({
  ts: z.number().int(),
  receivedAtMs: z.number().int(),
  metrics: z.record(z.string(), z.number()),
});
export type LatestReadingView = z.infer<typeof LatestReadingViewSchema>;

/** One device of an agent, merged over all its epochs and lanes. */
export const DeviceSummarySchema = z.object({
  deviceId: DeviceIdSchema,
  received: Count,
  duplicates: Count,
  /** Holes in the device's own seq between the lowest and highest seen. */
  gaps: Count,
  /** Records of this device the agent reported evicted. */
  evicted: Count,
  latest: LatestReadingViewSchema.nullable(),
});
export type DeviceSummary = z.infer<typeof DeviceSummarySchema>;

export const DeviceListResponseSchema = z.object({ agentId: AgentIdSchema, devices: z.array(DeviceSummarySchema) });
export type DeviceListResponse = z.infer<typeof DeviceListResponseSchema>;

/** At most this many device-seq holes are listed in a device detail. */
export const MAX_LISTED_GAP_RANGES = 100;

export const DeviceDetailResponseSchema = DeviceSummarySchema.extend({
  agentId: AgentIdSchema,
  deviceSeq: z.object({
    min: z.number().int().nullable(),
    max: z.number().int().nullable(),
    /** The lowest holes `[first, last]`, at most MAX_LISTED_GAP_RANGES. */
    gapRanges: z.array(z.tuple([z.number().int(), z.number().int()])),
  }),
  byEpochLane: z.array(z.object({ epoch: EpochSchema, lane: LaneSchema, received: Count, duplicates: Count, evicted: Count })),
});
export type DeviceDetailResponse = z.infer<typeof DeviceDetailResponseSchema>;

export const HealthResponseSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string().optional() })),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

/** Error codes the HTTP API answers with; clients branch on them. */
export const ApiErrorCodeSchema = z.enum([
  ErrorCode.AGENT_NOT_FOUND,
  ErrorCode.DEVICE_NOT_FOUND,
  ErrorCode.REQUEST_INVALID,
  ErrorCode.ROUTE_NOT_FOUND,
  ErrorCode.INTERNAL_ERROR,
]);
export type ApiErrorCode = z.infer<typeof ApiErrorCodeSchema>;

/** Every 4xx/5xx body: `{ "error": { "code", "message" } }`. */
export const ApiErrorResponseSchema = z.object({
  error: z.object({ code: ApiErrorCodeSchema, message: z.string(), details: z.record(z.string(), z.unknown()).optional() }),
});
export type ApiErrorResponse = z.infer<typeof ApiErrorResponseSchema>;
