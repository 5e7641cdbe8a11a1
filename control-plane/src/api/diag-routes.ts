// An agent's diagnostics, asked of the agent itself over NATS (issue [install]): its doctor, its
// live status, its recent log lines. The control plane sends a request to
// `outpost.diag.{agentId}.{doctor|status|logs}` (the AGENTS account exports these, OUTPOST
// imports them; only that agent may subscribe to its own) and answers with what the agent said,
// checked against the shared schemas: an agent is outside the control plane's trust boundary.
import {
  AgentDiagStatusSchema,
  AgentParamsSchema,
  DiagLogsQuerySchema,
  DiagLogsReplySchema,
  diagSubject,
  DiagRequest,
  DoctorReportSchema,
  ErrorCode,
  SERVICE_ERROR_HEADER,
  type ApiSchema,
} from '@outpost/shared';
import type { FleetRegistry } from '../fleet/fleet-registry.js';
import type { NatsClient } from '../nats/types.js';
import { apiError } from './errors.js';
import type { HttpResponse } from './http-server.js';
import { defineRoute, type ApiRoute, type RouteError } from './route-spec.js';

/** How long an agent may take over its doctor (a quick_check of a large outbox, model hashes), ms. */
export const DEFAULT_DIAG_DOCTOR_TIMEOUT_MS = 30_000;
/** How long an agent may take over its status or log lines, ms. */
export const DEFAULT_DIAG_TIMEOUT_MS = 5_000;

export interface DiagRoutesOptions {
  nats: Pick<NatsClient, 'request'>;
  /** Tells an agent never seen (404) from one that is not listening (503) or did not answer in time (504). */
  fleet: Pick<FleetRegistry, 'get'>;
  doctorTimeoutMs?: number;
  timeoutMs?: number;
}

/** Nobody subscribes to the agent's diagnostics subject now: NATS says so at once (no responders). */
const NOT_LISTENING: RouteError = {
  status: 503,
  code: ErrorCode.AGENT_UNREACHABLE,
  when: 'nobody listens on the agent\'s diagnostics subject (NATS says so at once, within one account only: with production auth an offline agent is a 504)',
};
/** No answer within the route's timeout. */
const NO_ANSWER: RouteError = {
  status: 504,
  code: ErrorCode.AGENT_UNREACHABLE,
  when: 'the agent did not answer in time: it is offline (the doctor asks its status first, so that takes the status timeout), or overloaded, or its version or enrolment has no diagnostics',
};
const NOT_FOUND: RouteError = { status: 404, code: ErrorCode.AGENT_NOT_FOUND, when: 'no agent with this id ever sent a heartbeat (it is not asked)' };

type Outcome = Awaited<ReturnType<NatsClient['request']>>;

/** The error answer for a request the agent did not answer. */
function unanswered(agentId: string, request: DiagRequest, outcome: Exclude<Outcome, { type: 'reply' }>, timeoutMs: number): HttpResponse {
  if (outcome.type === 'no-responders') {
    return apiError(503, ErrorCode.AGENT_UNREACHABLE, `agent ${agentId} is not listening on its diagnostics subject: it is offline now, or its version or enrolment has no diagnostics (enrol it again)`, { agentId, reason: outcome.type });
  }
  return apiError(504, ErrorCode.AGENT_UNREACHABLE, `agent ${agentId} did not answer ${request} within ${timeoutMs} ms: it is offline, or its version or enrolment has no diagnostics (enrol it again)`, { agentId, reason: outcome.type });
}

/**
 * Asks `agentId` and answers with its reply parsed by `schema`, or the error that explains why not.
 *
 * An agent never seen is answered at once (404) without asking: through the AGENTS account's
 * service export nats-server 2.9 reports no "no responders" (that 503 comes only within one
 * account), so a request to an agent that is not there waits for its whole timeout. For the
 * same reason `presenceTimeoutMs`, when set, first asks the agent's status with that shorter
 * timeout: an offline agent costs that long, not the doctor's.
 */
async function ask<T>(
  options: DiagRoutesOptions,
  agentId: string,
  request: DiagRequest,
  body: unknown,
  schema: ApiSchema<T>,
  timeouts: { timeoutMs: number; presenceTimeoutMs?: number },
): Promise<HttpResponse> {
  if ((await options.fleet.get(agentId)) === undefined) return apiError(404, ErrorCode.AGENT_NOT_FOUND, `no agent ${agentId}: it never sent a heartbeat`, { agentId });
  if (timeouts.presenceTimeoutMs !== undefined) {
    const presence = await options.nats.request(diagSubject(agentId, DiagRequest.status), Buffer.from(''), timeouts.presenceTimeoutMs);
    if (presence.type !== 'reply') return unanswered(agentId, DiagRequest.status, presence, timeouts.presenceTimeoutMs);
  }
  const outcome = await options.nats.request(diagSubject(agentId, request), Buffer.from(body === undefined ? '' : JSON.stringify(body)), timeouts.timeoutMs);
  if (outcome.type !== 'reply') return unanswered(agentId, request, outcome, timeouts.timeoutMs);
  const refused = outcome.reply.header(SERVICE_ERROR_HEADER);
  const text = Buffer.from(outcome.reply.data).toString('utf8');
  if (refused !== undefined) return apiError(500, ErrorCode.INTERNAL_ERROR, `agent ${agentId} could not answer (${refused}): ${text.slice(0, 200)}`, { agentId, agentCode: refused });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return apiError(500, ErrorCode.INTERNAL_ERROR, `agent ${agentId} answered ${request} with something this control plane does not read (another version?)`, { agentId });
  return { status: 200, body: parsed.data, headers: { 'cache-control': 'no-store' } };
}

export function createDiagRoutes(options: DiagRoutesOptions): ApiRoute[] {
  const doctorTimeoutMs = options.doctorTimeoutMs ?? DEFAULT_DIAG_DOCTOR_TIMEOUT_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAG_TIMEOUT_MS;
  const errors = [NOT_FOUND, NOT_LISTENING, NO_ANSWER];
  return [
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/diag/doctor',
      access: 'viewer',
      summary: "Run the agent's doctor inside the agent and answer its report",
      description:
        'The same checks as `outpost-agent doctor` on the gateway (config, data dir, outbox, NATS, clock skew, MQTT port, model files, certificates), run by the agent itself with its own NATS connection; each ok, warn, fail or skip with a one-line remedy. Only reads.',
      params: AgentParamsSchema,
      errors,
      response: { description: "The agent's doctor report", contentType: 'application/json', schemaName: 'DoctorReport' },
      handle: ({ params }) => ask(options, params.agentId, DiagRequest.doctor, undefined, DoctorReportSchema, { timeoutMs: doctorTimeoutMs, presenceTimeoutMs: timeoutMs }),
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/diag/status',
      access: 'viewer',
      summary: 'The agent\'s live status, asked of the agent now',
      description: 'Process, uplink connection, outbox, broker ports, the last heartbeat it sent, and its log ring; unlike GET /api/agents/{agentId}, not the fleet registry\'s last heartbeat.',
      params: AgentParamsSchema,
      errors,
      response: { description: "The agent's status", contentType: 'application/json', schemaName: 'AgentDiagStatus' },
      handle: ({ params }) => ask(options, params.agentId, DiagRequest.status, undefined, AgentDiagStatusSchema, { timeoutMs }),
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/diag/logs',
      access: 'viewer',
      summary: "The agent's recent log lines (the last 1,000 it keeps), oldest first",
      description: 'Lines as the agent wrote them (JSON, secrets redacted by the agent\'s logger), each with a sequence number; ask again with `after` = `lastSeq` to follow. `missed` counts lines after `after` the agent no longer keeps.',
      params: AgentParamsSchema,
      query: DiagLogsQuerySchema,
      errors,
      response: { description: 'Log lines', contentType: 'application/json', schemaName: 'AgentLogs' },
      handle: ({ params, query }) => ask(options, params.agentId, DiagRequest.logs, { afterSeq: query.after ?? 0, ...(query.limit === undefined ? {} : { limit: query.limit }) }, DiagLogsReplySchema, { timeoutMs }),
    }),
  ];
}
