// Diagnostics of an agent (issue [install]): the doctor's report, the agent's live status and
// its recent log lines, the NATS subjects the agent answers them on, and the control plane's
// time service the doctor measures clock skew against.
import { z } from 'zod';
import { ErrorCode, OutpostError } from '../errors.js';
import { AgentIdSchema, HeartbeatSchema } from './uplink.js';

// ---------------------------------------------------------------------------------------
// The doctor's report: the same shape from `outpost-agent doctor` and from the running agent.
// ---------------------------------------------------------------------------------------

/** A check's outcome. `skip`: it could not run because an earlier one failed (it says which). */
export const DoctorStatus = { ok: 'ok', warn: 'warn', fail: 'fail', skip: 'skip' } as const;
export type DoctorStatus = (typeof DoctorStatus)[keyof typeof DoctorStatus];
export const DoctorStatusSchema = z.enum([DoctorStatus.ok, DoctorStatus.warn, DoctorStatus.fail, DoctorStatus.skip]);

/** The checks, in the order they run. */
export const DoctorCheckId = {
  config: 'config',
  dataDir: 'data-dir',
  outbox: 'outbox',
  nats: 'nats',
  clock: 'clock',
  mqttPort: 'mqtt-port',
  models: 'models',
  certificates: 'certificates',
} as const;
export type DoctorCheckId = (typeof DoctorCheckId)[keyof typeof DoctorCheckId];
export const DoctorCheckIdSchema = z.enum(Object.values(DoctorCheckId) as [DoctorCheckId, ...DoctorCheckId[]]);

/** What each check looks at, for people. */
export const DOCTOR_CHECK_TITLES: Readonly<Record<DoctorCheckId, string>> = {
  [DoctorCheckId.config]: 'config file',
  [DoctorCheckId.dataDir]: 'data dir',
  [DoctorCheckId.outbox]: 'outbox',
  [DoctorCheckId.nats]: 'NATS uplink',
  [DoctorCheckId.clock]: 'clock skew',
  [DoctorCheckId.mqttPort]: 'MQTT port',
  [DoctorCheckId.models]: 'model files',
  [DoctorCheckId.certificates]: 'certificates',
};

export const DoctorCheckSchema = z.object({
  id: DoctorCheckIdSchema,
  status: DoctorStatusSchema,
  /** One line: what the check found. */
  summary: z.string(),
  /** One line: what to do about it; set unless the check is ok. */
  remedy: z.string().optional(),
  /** More lines when there are several findings (each bad config key, each certificate). */
  details: z.array(z.string()).optional(),
});
export type DoctorCheck = z.infer<typeof DoctorCheckSchema>;

/** Where the checks ran: `local` (`outpost-agent doctor` on the gateway), `agent` (inside the running agent, asked over NATS). */
export const DoctorOrigin = { local: 'local', agent: 'agent' } as const;
export type DoctorOrigin = (typeof DoctorOrigin)[keyof typeof DoctorOrigin];

/** The worst outcome of a report (a skipped check counts as nothing: the check that made it skip says why). */
export const DoctorOverallSchema = z.enum([DoctorStatus.ok, DoctorStatus.warn, DoctorStatus.fail]);
export type DoctorOverall = z.infer<typeof DoctorOverallSchema>;

export const DoctorReportSchema = z.object({
  /** Undefined when the config could not be read. */
  agentId: AgentIdSchema.optional(),
  configFile: z.string().optional(),
  origin: z.enum([DoctorOrigin.local, DoctorOrigin.agent]),
  agentVersion: z.string(),
  /** When the checks ran, by the doctor's clock, epoch ms. */
  atMs: z.number().int(),
  status: DoctorOverallSchema,
  checks: z.array(DoctorCheckSchema),
});
export type DoctorReport = z.infer<typeof DoctorReportSchema>;

/** The worst of `checks`: fail, then warn, else ok. */
export function doctorOverall(checks: readonly Pick<DoctorCheck, 'status'>[]): DoctorOverall {
  if (checks.some((c) => c.status === DoctorStatus.fail)) return DoctorStatus.fail;
  if (checks.some((c) => c.status === DoctorStatus.warn)) return DoctorStatus.warn;
  return DoctorStatus.ok;
}

// ---------------------------------------------------------------------------------------
// The agent's live status and recent log lines.
// ---------------------------------------------------------------------------------------

const LaneCountsSchema = z.object({ events: z.number().int(), telemetry: z.number().int() });

/** What the running agent says of itself now (`outpostctl agents status ID`). */
export const AgentDiagStatusSchema = z.object({
  agentId: AgentIdSchema,
  agentVersion: z.string(),
  pid: z.number().int(),
  nodeVersion: z.string(),
  startedAtMs: z.number().int(),
  /** The agent's clock when it answered, epoch ms. */
  nowMs: z.number().int(),
  uplink: z.object({ connected: z.boolean() }),
  outbox: z.object({
    records: LaneCountsSchema,
    bytes: z.number().int(),
    maxBytes: z.number().int(),
    evicted: LaneCountsSchema,
    deadLetters: z.number().int(),
    oldestReceivedAtMs: z.number().int().optional(),
  }),
  /** Its embedded broker's ports (undefined in bridge mode) and connected devices. */
  broker: z.object({ mode: z.enum(['embedded', 'bridge']), mqttPort: z.number().int().optional(), tlsPort: z.number().int().optional() }),
  /** The heartbeat it sent last (undefined before the first one). */
  lastHeartbeat: HeartbeatSchema.optional(),
  logs: z.object({ keptLines: z.number().int(), lastSeq: z.number().int(), maxLines: z.number().int() }),
});
export type AgentDiagStatus = z.infer<typeof AgentDiagStatusSchema>;

/** Log lines an agent keeps for `agents logs` (after redaction, as written to stdout). */
export const DEFAULT_DIAG_LOG_LINES = 1_000;
/** One reply carries at most this many bytes of log text: NATS's default max_payload is 1 MiB. */
export const MAX_DIAG_LOG_REPLY_BYTES = 512 * 1024;

export const DiagLogsRequestSchema = z.object({
  /** Lines after this sequence number (0: from the oldest kept). */
  afterSeq: z.number().int().min(0).default(0),
  /** At most this many lines, the oldest first. */
  limit: z.number().int().min(1).max(DEFAULT_DIAG_LOG_LINES).default(DEFAULT_DIAG_LOG_LINES),
});
export type DiagLogsRequest = z.input<typeof DiagLogsRequestSchema>;

export const DiagLogLineSchema = z.object({ seq: z.number().int().min(1), text: z.string() });
export type DiagLogLine = z.infer<typeof DiagLogLineSchema>;

export const DiagLogsReplySchema = z.object({
  lines: z.array(DiagLogLineSchema),
  /** The newest line's sequence number the agent has (0: none yet): ask after it next. */
  lastSeq: z.number().int().min(0),
  /** Lines after `afterSeq` the agent no longer keeps (the ring moved on). */
  missed: z.number().int().min(0),
  /** More lines wait after the last one returned (the reply hit its size bound or `limit`). */
  more: z.boolean(),
});
export type DiagLogsReply = z.infer<typeof DiagLogsReplySchema>;

// ---------------------------------------------------------------------------------------
// NATS subjects: the agent's diagnostics service and the control plane's time service.
// ---------------------------------------------------------------------------------------

/** What an agent answers on `outpost.diag.{agentId}.{request}`. */
export const DiagRequest = { doctor: 'doctor', status: 'status', logs: 'logs' } as const;
export type DiagRequest = (typeof DiagRequest)[keyof typeof DiagRequest];

/**
 * Every agent's diagnostics subjects: the AGENTS account exports them as a service, the
 * OUTPOST account (the control plane) imports them. Each agent may subscribe to its own only.
 */
export const DIAG_SUBJECTS = 'outpost.diag.>';

function assertAgentToken(agentId: string): void {
  if (!AgentIdSchema.safeParse(agentId).success) throw new OutpostError(ErrorCode.SUBJECT_INVALID, `invalid agent id ${JSON.stringify(agentId)} for a NATS subject`);
}

/** `outpost.diag.{agentId}.{request}`: request/reply, answered by that agent only. */
export function diagSubject(agentId: string, request: DiagRequest): string {
  assertAgentToken(agentId);
  return `outpost.diag.${agentId}.${request}`;
}

/** `outpost.diag.{agentId}.*`: what the agent subscribes to (its NATS permissions allow nothing wider). */
export function diagListenSubject(agentId: string): string {
  assertAgentToken(agentId);
  return `outpost.diag.${agentId}.*`;
}

/** The request a diagnostics subject asks for, and of whom; undefined for any other subject. */
export function parseDiagSubject(subject: string): { agentId: string; request: DiagRequest } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'outpost' || parts[1] !== 'diag') return undefined;
  const [, , agentId = '', request] = parts;
  if (!AgentIdSchema.safeParse(agentId).success) return undefined;
  if (request !== DiagRequest.doctor && request !== DiagRequest.status && request !== DiagRequest.logs) return undefined;
  return { agentId, request };
}

/**
 * `outpost.svc.time.{agentId}`: request/reply; the control plane answers with its clock. The
 * doctor measures the agent's clock skew with it (inside the agents' existing service
 * permission `outpost.svc.*.{agentId}`).
 */
export function timeServiceSubject(agentId: string): string {
  assertAgentToken(agentId);
  return `outpost.svc.time.${agentId}`;
}

/** The agent id of a time service subject; undefined for any other subject. */
export function parseTimeServiceSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'outpost' || parts[1] !== 'svc' || parts[2] !== 'time') return undefined;
  const agentId = parts[3] ?? '';
  return AgentIdSchema.safeParse(agentId).success ? agentId : undefined;
}

/** The time service's answer: the control plane's clock when it answered, epoch ms. */
export const TimeReplySchema = z.object({ nowMs: z.number().int() });
export type TimeReply = z.infer<typeof TimeReplySchema>;

// ---------------------------------------------------------------------------------------
// The control plane's HTTP API over these (outpostctl agents doctor|status|logs).
// ---------------------------------------------------------------------------------------

/** `GET /api/agents/{agentId}/diag/logs?after=&limit=` */
export const DiagLogsQuerySchema = z.object({
  after: z
    .string()
    .regex(/^\d{1,15}$/, 'must be a log line sequence number (0 or more)')
    .transform(Number)
    .optional()
    .describe('Only lines after this sequence number (the `lastSeq` of the previous answer); default 0, every line kept'),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, `must be an integer from 1 to ${DEFAULT_DIAG_LOG_LINES}`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= DEFAULT_DIAG_LOG_LINES, `must be an integer from 1 to ${DEFAULT_DIAG_LOG_LINES}`)
    .optional()
    .describe(`At most this many lines, oldest first: 1 to ${DEFAULT_DIAG_LOG_LINES}, default ${DEFAULT_DIAG_LOG_LINES}`),
});
export type DiagLogsQuery = z.output<typeof DiagLogsQuerySchema>;
