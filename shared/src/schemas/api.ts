import { z } from 'zod';
import { ErrorCode } from '../errors.js';
import { DeviceIdSchema, ModelRefSchema } from './device.js';
import { AgentIdSchema, EpisodeCloseReasonSchema, EpisodeContributorSchema, EpochSchema, HeartbeatSchema, LaneSchema } from './uplink.js';
import type { RolloutSummary } from '../rollouts/api.js';
import { DesiredReportSchema } from '../rollouts/desired-report.js';

/**
 * Response bodies of the control plane's HTTP API (DESIGN section 6). The server builds them
 * as these types; clients (outpostctl, the dashboard, tests) may parse them with these schemas.
 */

const Count = z.number().int().nonnegative();
/** Epoch milliseconds. */
const EpochMs = z.number().int();

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
  /** When the agent's current process started (from its heartbeat), epoch ms. */
  startedAtMs: z.number().int().nullable(),
  /** Restarts seen by the control plane (a new process start time between two heartbeats). */
  restarts: Count,
  /** What the agent did with its desired state (rollouts): applied or refused, with the code and reason. */
  desired: DesiredReportSchema.nullable(),
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

/** Something of an agent's accounting the control plane could not count (its other lanes still are). */
export const AccountingProblemSchema = z.object({
  epoch: z.string(),
  lane: z.string(),
  /** Stable: KV_VALUE_INVALID (the stored value does not decode) or ACCOUNTING_FAILED (a message could not be applied). */
  code: z.string(),
  message: z.string(),
  /** Uplink messages terminated because of it, when known. */
  messages: Count.optional(),
  lastAtMs: z.number().int().optional(),
});
export type AccountingProblem = z.infer<typeof AccountingProblemSchema>;

export const AgentDetailResponseSchema = AgentSummarySchema.extend({
  accounting: z.array(LaneAccountingSummarySchema),
  totals: AccountingTotalsSchema,
  /** Empty while everything the agent sent could be counted. */
  accountingProblems: z.array(AccountingProblemSchema),
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
  /**
   * Records of this device counted once, of every kind (telemetry, inference results,
   * anomalies, ...); reports about its messages (resends, refused payloads) are counted apart.
   */
  received: Count,
  /**
   * `received` by record kind (`telemetry`, `inference`, `anomaly`, ...). Compare `telemetry`
   * with `gaps` for how complete a device's own data is: only telemetry carries device seqs.
   */
  kinds: z.record(z.string(), Count),
  /** Records whose agent seq had been counted before (the uplink sent them again), dropped. */
  duplicates: Count,
  /**
   * Device messages that arrived again after a lost acknowledgement (same device seq and ts: a
   * QoS 1/2 resend), counted once and not in `received`: recognised by the agent or here.
   */
  deviceDuplicates: Count,
  /** Payloads of this device the agent refused (dead letters), by reason. */
  deadLetters: z.record(z.string(), Count),
  /** Holes in the device's own seq between the lowest and highest seen. */
  gaps: Count,
  /**
   * Of `gaps`: seqs of payloads the agent refused; seqs of telemetry it evicted or found
   * corrupt; and gaps matched by refused payloads whose seq could not be read (not JSON, not
   * UTF-8: each may explain one gap, so at most that many).
   */
  explainedGaps: z.object({ deadLetters: Count, evicted: Count, refusedWithoutSeq: Count }),
  /** Of `gaps`, those nothing explains: messages the device never sent, or that never reached the agent. */
  unexplainedGaps: Count,
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
  ErrorCode.AUTH_REQUIRED,
  ErrorCode.AUTH_INVALID,
  ErrorCode.FORBIDDEN,
  ErrorCode.AGENT_NOT_FOUND,
  ErrorCode.DEVICE_NOT_FOUND,
  ErrorCode.REQUEST_INVALID,
  ErrorCode.ROUTE_NOT_FOUND,
  ErrorCode.RATE_LIMITED,
  ErrorCode.INTERNAL_ERROR,
  ErrorCode.ROLLOUT_NOT_FOUND,
  ErrorCode.ROLLOUT_STATE_INVALID,
  ErrorCode.ROLLOUT_CONFLICT,
  ErrorCode.MODEL_NOT_FOUND,
  ErrorCode.MODEL_EXISTS,
  ErrorCode.MODEL_INVALID,
  ErrorCode.MODEL_DIGEST_MISMATCH,
  ErrorCode.MODEL_KEY_UNTRUSTED,
  ErrorCode.MODEL_KEY_INVALID,
  ErrorCode.MODEL_SIGNATURE_INVALID,
  ErrorCode.MODEL_EXPIRED,
  ErrorCode.SECURITY_NOT_CONFIGURED,
  ErrorCode.AGENT_UNREACHABLE,
]);
export type ApiErrorCode = z.infer<typeof ApiErrorCodeSchema>;

/** Every 4xx/5xx body: `{ "error": { "code", "message" } }`. */
export const ApiErrorResponseSchema = z.object({
  error: z.object({ code: ApiErrorCodeSchema, message: z.string(), details: z.record(z.string(), z.unknown()).optional() }),
});
export type ApiErrorResponse = z.infer<typeof ApiErrorResponseSchema>;

// ---------------------------------------------------------------------------------------
// API tokens, their roles, and the audit log of mutating calls.
// ---------------------------------------------------------------------------------------

/**
 * Roles of API tokens (`http.auth.tokens[].role`): a viewer reads (every GET of /api, the event
 * stream, dry runs); an operator also changes things (rollouts, models, enrolment, revocation).
 */
export const TokenRole = { viewer: 'viewer', operator: 'operator' } as const;
export type TokenRole = (typeof TokenRole)[keyof typeof TokenRole];
export const TokenRoleSchema = z.enum([TokenRole.viewer, TokenRole.operator]);

/** Names of API tokens: who holds one (`http.auth.tokens[].name`, the audit log's `actor`). */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;

/** The audit log's actor of a call no token identified: auth is off, or the call was refused with 401. */
export const ANONYMOUS_ACTOR = 'anonymous';

/**
 * The audit log: a JetStream stream (limits retention, file storage, `streams.auditMaxAgeMs`)
 * with one message per mutating API call, written by the control plane only.
 */
export const AUDIT_STREAM = 'OUTPOST_AUDIT';
export const AUDIT_SUBJECT = 'outpost.audit';

/**
 * One mutating API call (an operator route, whatever its outcome, refused attempts included),
 * as the audit stream stores it. Holds no token, password, key or request body: only who, what,
 * when and how it ended.
 */
export const AuditEntrySchema = z.object({
  /** When the call arrived at the control plane, epoch ms. */
  atMs: EpochMs,
  /** The token's name; `anonymous` when auth is off or no token was accepted (outcome 401). */
  actor: z.string().min(1).max(64),
  /** The token's role; `operator` when auth is off (everyone may do everything); null when no token was accepted. */
  role: TokenRoleSchema.nullable(),
  method: z.string().min(1).max(16),
  /** The route's pattern, `/api/rollouts/:id/:action`. */
  route: z.string().min(1).max(256),
  /** Path parameters as sent (each at most 100 characters). */
  params: z.record(z.string(), z.string()),
  /** What was asked for: `rollout.create`, `rollout.pause`, `model.publish`, `agent.enroll`, ... */
  action: z.string().min(1).max(64),
  /** How it ended: the HTTP status, and the error code of a 4xx/5xx. */
  outcome: z.object({ status: z.number().int().min(100).max(599), code: z.string().optional() }),
  /** What it was about: the rollout id created, the model `name@version`, ... */
  detail: z.string().max(256).optional(),
  /** The client's address as the control plane saw it (a proxy's, behind one). */
  remoteAddress: z.string().max(64).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** An entry as `GET /api/audit` lists it: with its sequence in the audit stream (increasing in write order). */
export const AuditListEntrySchema = AuditEntrySchema.extend({ seq: z.number().int().positive() });
export type AuditListEntry = z.infer<typeof AuditListEntrySchema>;

/** `GET /api/audit`: newest first. */
export const AuditListResponseSchema = z.object({ entries: z.array(AuditListEntrySchema) });
export type AuditListResponse = z.infer<typeof AuditListResponseSchema>;

// ---------------------------------------------------------------------------------------
// Live data: the recent window per device, anomalies, and the server-sent event stream.
// ---------------------------------------------------------------------------------------

/** Kinds of uplink records the control plane reads (UplinkRecord.kind). */
export const RecordKind = {
  /** Telemetry lane; body: Telemetry `{ ts, seq?, metrics }`. */
  telemetry: 'telemetry',
  /** Telemetry lane; body: InferenceResult `{ ts, model, score, anomaly }` (only with `inference.upstream: every-score`). */
  inference: 'inference',
  /** Telemetry lane; body: InferenceSummary `{ fromTs, toTs, model, count, mean, max, anomalies, threshold? }`: one device's scores over one interval. */
  inferenceSummary: 'inference-summary',
  /** Events lane; body: InferenceResult with `anomaly: true` (one per flagged window: agents before episodes). */
  anomaly: 'anomaly',
  /** Events lane; body: EpisodeOpened: a device's anomaly episode began (its first flagged window). */
  anomalyOpened: 'anomaly-opened',
  /** Events lane; body: EpisodeClosed: the whole episode, once it ended. */
  anomalyClosed: 'anomaly-closed',
  /**
   * Events lane; body: DeviceResendReport `{ seq, ts }`. A device message the agent had already
   * committed arrived again (a QoS 1/2 resend after a lost acknowledgement): acknowledged again,
   * stored once, and reported so the control plane counts it as a device duplicate.
   */
  deviceResend: 'device-resend',
  /** Events lane; body: DeadLetterReport `{ reason, topic, detail, seq? }`: a device payload the agent refused. */
  deadLetter: 'dead-letter',
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const MetricValuesSchema = z.record(z.string(), z.number());

export const SeriesPointSchema = z.object({
  /** Device time, epoch ms. */
  ts: EpochMs,
  /** Agent time when the record was committed, epoch ms. */
  receivedAtMs: EpochMs,
  metrics: MetricValuesSchema,
});
export type SeriesPoint = z.infer<typeof SeriesPointSchema>;

/** One inference result of a device (an `inference` or `anomaly` record), or a summary of several (`inference-summary`). */
export const InferencePointSchema = z.object({
  ts: EpochMs,
  /** The score; of a summary, the mean of its scores. */
  score: z.number(),
  /** Of a summary: any of its rows. */
  anomaly: z.boolean(),
  /** The model's threshold, when the agent sent it with the result. */
  threshold: z.number().optional(),
  model: ModelRefSchema,
  /** Set when the point summarises the rows scored from `fromTs` to `ts` (the agent's default upstream). */
  summary: z.object({ fromTs: EpochMs, count: z.number().int().positive(), max: z.number(), anomalies: z.number().int().nonnegative() }).optional(),
});
export type InferencePoint = z.infer<typeof InferencePointSchema>;

/** `GET /api/agents/{agentId}/devices/{deviceId}/series`: the device's recent window. */
export const SeriesResponseSchema = z.object({
  agentId: AgentIdSchema,
  deviceId: DeviceIdSchema,
  /**
   * What the answer covers, epoch ms: the recent window (`toMs` is now) or from `sinceMs` when
   * given. The window is kept by arrival time, so a point's device time may lie outside it.
   */
  fromMs: EpochMs,
  toMs: EpochMs,
  /** Telemetry, by `ts` ascending. */
  points: z.array(SeriesPointSchema),
  /** Inference results, by `ts` ascending. */
  inference: z.array(InferencePointSchema),
});
export type SeriesResponse = z.infer<typeof SeriesResponseSchema>;

/** Whether an episode is still going on (no closed record yet) or over. */
export const EpisodeState = { open: 'open', closed: 'closed' } as const;
export type EpisodeState = (typeof EpisodeState)[keyof typeof EpisodeState];

/** An anomaly episode as the API lists it: built from its `anomaly-opened` and `anomaly-closed` records. */
export const EpisodeViewSchema = z.object({
  episodeId: z.string(),
  state: z.enum([EpisodeState.open, EpisodeState.closed]),
  /** Device time of the first flagged window, epoch ms. */
  startTs: EpochMs,
  /** Device time of the last flagged window known; the start while only the opened record arrived. */
  lastSeenTs: EpochMs,
  /** Device time it ended (see EpisodeClosed.endTs); null while open. */
  endTs: EpochMs.nullable(),
  /** Flagged windows; null while open. */
  windows: z.number().int().positive().nullable(),
  /** Why it closed; null while open. */
  reason: EpisodeCloseReasonSchema.nullable(),
  /** The metrics that contributed most, strongest first; empty when the model gives no evidence. */
  contributors: z.array(EpisodeContributorSchema),
});
export type EpisodeView = z.infer<typeof EpisodeViewSchema>;

/**
 * One anomaly: an episode (consecutive flagged windows of a device, one alarm however long it
 * lasts) with `episode` set, or one flagged window reported by an agent from before episodes.
 */
export const AnomalySchema = z.object({
  agentId: AgentIdSchema,
  deviceId: DeviceIdSchema,
  /** Device time of the scored data (of an episode: its start), epoch ms. */
  ts: EpochMs,
  /** The score (of an episode: its peak so far). */
  score: z.number(),
  threshold: z.number().optional(),
  model: ModelRefSchema,
  /** Agent time when the (first) record was committed, epoch ms. */
  receivedAtMs: EpochMs,
  /** Set for an episode; absent for a single window of an older agent. */
  episode: EpisodeViewSchema.optional(),
});
export type Anomaly = z.infer<typeof AnomalySchema>;

/** `GET /api/anomalies`: newest first. */
export const AnomalyListResponseSchema = z.object({ anomalies: z.array(AnomalySchema) });
export type AnomalyListResponse = z.infer<typeof AnomalyListResponseSchema>;

/** Event names of `GET /api/events` (text/event-stream). */
export const ServerEventType = {
  /** Data: AgentListResponse. On connect and whenever the fleet view changes (at most once per second). */
  agents: 'agents',
  /** Data: RolloutSummary. Whenever a rollout's document changes (a step, an operator action). */
  rollout: 'rollout',
  telemetry: 'telemetry',
  inference: 'inference',
  anomaly: 'anomaly',
} as const;
export type ServerEventType = (typeof ServerEventType)[keyof typeof ServerEventType];

export const TelemetryEventSchema = z.object({
  agentId: AgentIdSchema,
  deviceId: DeviceIdSchema,
  ts: EpochMs,
  receivedAtMs: EpochMs,
  metrics: MetricValuesSchema,
});
export type TelemetryEvent = z.infer<typeof TelemetryEventSchema>;

/** Data of `inference` and `anomaly` events. */
export const InferenceEventSchema = z.object({
  agentId: AgentIdSchema,
  deviceId: DeviceIdSchema,
  ts: EpochMs,
  score: z.number(),
  anomaly: z.boolean(),
  threshold: z.number().optional(),
  model: ModelRefSchema,
});
export type InferenceEvent = z.infer<typeof InferenceEventSchema>;

/** One server-sent event as a client reads it. */
export type ServerEvent =
  | { type: typeof ServerEventType.agents; data: AgentListResponse }
  | { type: typeof ServerEventType.rollout; data: RolloutSummary }
  | { type: typeof ServerEventType.telemetry; data: TelemetryEvent }
  | { type: typeof ServerEventType.inference; data: InferenceEvent }
  | { type: typeof ServerEventType.anomaly; data: InferenceEvent };

// ---------------------------------------------------------------------------------------
// Request parameters. Query strings arrive as text: these schemas take the text and give the
// typed value (the OpenAPI document shows their input side).
// ---------------------------------------------------------------------------------------

/** Largest `limit` of `GET /api/anomalies`. */
export const MAX_ANOMALIES_LIMIT = 1_000;
export const DEFAULT_ANOMALIES_LIMIT = 100;
/** Default look-back of `GET /api/anomalies` without `since`. */
export const DEFAULT_ANOMALIES_SINCE_MS = 60 * 60 * 1000;
/** Latest time a query accepts (the year 275760, the end of JavaScript time). */
const MAX_EPOCH_MS = 8.64e15;

/** `123` -> 123: epoch milliseconds as decimal digits. */
export const EpochMsParamSchema = z
  .string()
  .regex(/^\d{1,16}$/, 'must be epoch milliseconds (decimal digits)')
  .transform(Number)
  .refine((ms) => ms <= MAX_EPOCH_MS, 'is not a valid time');

/**
 * A point in time: epoch milliseconds, or an ISO 8601 date-time (`2026-11-24T10:00:00Z`,
 * `2026-11-24`). Parsed to epoch ms.
 */
export const TimeParamSchema = z.string().transform((text, ctx) => {
  if (/^\d{1,16}$/.test(text) && Number(text) <= MAX_EPOCH_MS) return Number(text);
  const ms = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: 'must be epoch milliseconds or an ISO 8601 time (2026-11-24T10:00:00Z)' });
    return z.NEVER;
  }
  return ms;
});

export const LimitParamSchema = z
  .string()
  .regex(/^\d{1,7}$/, `must be an integer from 1 to ${MAX_ANOMALIES_LIMIT}`)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_ANOMALIES_LIMIT, `must be an integer from 1 to ${MAX_ANOMALIES_LIMIT}`);

export const AgentParamsSchema = z.object({ agentId: AgentIdSchema.describe('Agent id') });
export const DeviceParamsSchema = z.object({
  agentId: AgentIdSchema.describe('Agent id'),
  deviceId: DeviceIdSchema.describe('Device id (unique within its agent only)'),
});

export const SeriesQuerySchema = z.object({
  /** Only points with `ts >= sinceMs` (device time); default the whole recent window. */
  sinceMs: EpochMsParamSchema.optional().describe('Only entries with ts >= sinceMs (device time, epoch ms); default the whole recent window'),
});
export type SeriesQuery = z.output<typeof SeriesQuerySchema>;

export const AnomaliesQuerySchema = z.object({
  /** Only anomalies with `ts >= since`; default one hour ago. */
  since: TimeParamSchema.optional().describe('Only anomalies with ts >= since: epoch ms or an ISO 8601 time; default one hour ago'),
  agentId: AgentIdSchema.optional().describe('Only anomalies of this agent'),
  deviceId: DeviceIdSchema.optional().describe('Only anomalies of this device (of any agent, unless agentId is given)'),
  /** At most this many, newest first; default 100. */
  limit: LimitParamSchema.optional().describe(`At most this many, newest first: 1 to ${MAX_ANOMALIES_LIMIT}, default ${DEFAULT_ANOMALIES_LIMIT}`),
});
export type AnomaliesQuery = z.output<typeof AnomaliesQuerySchema>;

/** Default `limit` of `GET /api/audit`. */
export const DEFAULT_AUDIT_LIMIT = 100;

export const AuditQuerySchema = z.object({
  /** At most this many, newest first; default 100. */
  limit: LimitParamSchema.optional().describe(`At most this many entries, newest first: 1 to ${MAX_ANOMALIES_LIMIT}, default ${DEFAULT_AUDIT_LIMIT}`),
  /** Only entries with `atMs >= since`. */
  since: TimeParamSchema.optional().describe('Only entries with atMs >= since: epoch ms or an ISO 8601 time; default no bound'),
  /** Only entries of this actor (a token name, or `anonymous`). */
  actor: z
    .string()
    .regex(TOKEN_NAME_PATTERN, 'must be a token name (1 to 64 letters, digits or _.@-) or anonymous')
    .optional()
    .describe('Only entries of this actor: a token name, or `anonymous`'),
});
export type AuditQuery = z.output<typeof AuditQuerySchema>;

export const EventsQuerySchema = z.object({
  /** Telemetry and inference events of this agent only (agents and anomaly events always flow). */
  agentId: AgentIdSchema.optional().describe('Telemetry and inference events of this agent only (agents and anomaly events always flow)'),
  /** Telemetry and inference events of this device only. */
  deviceId: DeviceIdSchema.optional().describe('Telemetry and inference events of this device only'),
  /** Only these event types (comma-separated), e.g. `rollout` for a rollout watch; default every type. */
  types: z
    .string()
    .transform((s) => s.split(',').filter((t) => t !== ''))
    .pipe(z.array(z.enum(Object.values(ServerEventType) as [ServerEventType, ...ServerEventType[]])).min(1))
    .optional()
    .describe('Only these event types, comma-separated (agents, rollout, telemetry, inference, anomaly); default every type'),
});
export type EventsQuery = z.output<typeof EventsQuerySchema>;

// ---------------------------------------------------------------------------------------
// JSON Schema of the API's zod schemas, for the OpenAPI document (zod 4 converts natively), so
// packages that describe the API need no zod import of their own.
// ---------------------------------------------------------------------------------------

/** A zod schema of the API: output (what a parse gives) `O`, input (what arrives) `I`. */
export type ApiSchema<O = unknown, I = unknown> = z.ZodType<O, I>;

/** JSON Schema as a plain object. */
export type JsonSchemaObject = Record<string, unknown>;

/** Which side of a schema to describe: a request parameter arrives as its input, a response goes out as its output. */
export type SchemaSide = 'input' | 'output';

function withoutDialect(schema: JsonSchemaObject): JsonSchemaObject {
  const rest = { ...schema };
  delete rest['$schema'];
  delete rest['$id'];
  return rest;
}

/**
 * zod marks the output of a plain object closed (`additionalProperties: false`) because a parse
 * strips unknown keys; the API promises the opposite (fields may be added, never renamed), so
 * the document leaves objects open.
 */
const leaveObjectsOpen = ({ jsonSchema }: { jsonSchema: { additionalProperties?: unknown } }): void => {
  if (jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
};

/**
 * JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) of named schemas, as OpenAPI
 * `components.schemas`: a named schema used inside another becomes a
 * `$ref: '#/components/schemas/<name>'`.
 */
export function toSchemaComponents(named: Readonly<Record<string, z.ZodType>>, side: SchemaSide = 'output'): Record<string, JsonSchemaObject> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}`, io: side, unrepresentable: 'any', override: leaveObjectsOpen });
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, withoutDialect(schema as JsonSchemaObject)]));
}

/** JSON Schema (draft 2020-12) of one schema, inline. */
export function toJsonSchema(schema: z.ZodType, side: SchemaSide = 'output'): JsonSchemaObject {
  return withoutDialect(z.toJSONSchema(schema, { io: side, unrepresentable: 'any', override: leaveObjectsOpen }) as JsonSchemaObject);
}
