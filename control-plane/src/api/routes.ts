// The HTTP API (DESIGN section 6): fleet, per-device accounting, health, metrics. Handlers
// validate path parameters with the shared schemas and answer errors as
// `{ "error": { "code", "message" } }` with a stable code.
import {
  AgentIdSchema,
  DeviceIdSchema,
  ErrorCode,
  type AgentDetailResponse,
  type AgentListResponse,
  type ApiErrorCode,
  type ApiErrorResponse,
  type DeviceListResponse,
  type HealthResponse,
  type Logger,
} from '@outpost/shared';
import type { Registry } from 'prom-client';
import type { FleetRegistry } from '../fleet/fleet-registry.js';
import { toAgentSummary, type StatusThresholds } from '../fleet/fleet-record.js';
import { summarizeLane, type LaneAccounting } from '../ingest/accounting.js';
import type { HttpResponse, Route } from './http-server.js';
import { accountingTotals, deviceDetail, deviceSummaries } from './views.js';

export interface HealthCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ApiDeps {
  fleet: FleetRegistry;
  /** Every (epoch, lane) accounting of an agent. */
  readAccounting(agentId: string): Promise<LaneAccounting[]>;
  thresholds: StatusThresholds;
  registry: Registry;
  health(): HealthCheck[];
  now(): number;
  logger: Logger;
}

export function apiError(status: number, code: ApiErrorCode, message: string, details?: Record<string, unknown>): HttpResponse {
  const body: ApiErrorResponse = { error: { code, message, ...(details === undefined ? {} : { details }) } };
  return { status, body };
}

const ok = (body: unknown): HttpResponse => ({ status: 200, body });

/** A bad parameter is echoed back at most this long. */
const MAX_ECHOED_CHARS = 100;

type Checked = { ok: true; value: string } | { ok: false; response: HttpResponse };

function checkParam(params: Readonly<Record<string, string>>, name: string, schema: typeof AgentIdSchema | typeof DeviceIdSchema): Checked {
  const value = params[name] ?? '';
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  const shown = value.length > MAX_ECHOED_CHARS ? `${value.slice(0, MAX_ECHOED_CHARS)}...` : value;
  return { ok: false, response: apiError(400, ErrorCode.REQUEST_INVALID, `${name}: ${result.error.issues[0]?.message ?? 'invalid'}`, { param: name, value: shown }) };
}

const agentNotFound = (agentId: string): HttpResponse => apiError(404, ErrorCode.AGENT_NOT_FOUND, `no agent ${JSON.stringify(agentId)} is known`, { agentId });

export function createApiRoutes(deps: ApiDeps): Route[] {
  const { fleet, thresholds } = deps;

  /** The agent's fleet record and accounting; undefined when neither exists. */
  const loadAgent = async (agentId: string) => {
    const [record, lanes] = await Promise.all([fleet.get(agentId), deps.readAccounting(agentId)]);
    if (record === undefined && lanes.length === 0) return undefined;
    return { record, lanes };
  };

  return [
    {
      method: 'GET',
      path: '/healthz',
      async handle() {
        const checks = deps.health();
        const healthy = checks.every((c) => c.ok);
        const body: HealthResponse = { status: healthy ? 'ok' : 'degraded', checks };
        return { status: healthy ? 200 : 503, body };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      async handle() {
        return { status: 200, body: await deps.registry.metrics(), contentType: deps.registry.contentType };
      },
    },
    {
      method: 'GET',
      path: '/api/agents',
      async handle() {
        const nowMs = deps.now();
        const body: AgentListResponse = { agents: fleet.list().map((r) => toAgentSummary(r.agentId, r, nowMs, thresholds)) };
        return ok(body);
      },
    },
    {
      method: 'GET',
      path: '/api/agents/:agentId',
      async handle({ params }) {
        const agentId = checkParam(params, 'agentId', AgentIdSchema);
        if (!agentId.ok) return agentId.response;
        const agent = await loadAgent(agentId.value);
        if (agent === undefined) return agentNotFound(agentId.value);
        const accounting = agent.lanes.map(summarizeLane);
        const body: AgentDetailResponse = {
          ...toAgentSummary(agentId.value, agent.record, deps.now(), thresholds),
          accounting,
          totals: accountingTotals(accounting),
        };
        return ok(body);
      },
    },
    {
      method: 'GET',
      path: '/api/agents/:agentId/devices',
      async handle({ params }) {
        const agentId = checkParam(params, 'agentId', AgentIdSchema);
        if (!agentId.ok) return agentId.response;
        const agent = await loadAgent(agentId.value);
        if (agent === undefined) return agentNotFound(agentId.value);
        const body: DeviceListResponse = { agentId: agentId.value, devices: deviceSummaries(agent.lanes) };
        return ok(body);
      },
    },
    {
      method: 'GET',
      path: '/api/agents/:agentId/devices/:deviceId',
      async handle({ params }) {
        const agentId = checkParam(params, 'agentId', AgentIdSchema);
        if (!agentId.ok) return agentId.response;
        const deviceId = checkParam(params, 'deviceId', DeviceIdSchema);
        if (!deviceId.ok) return deviceId.response;
        const agent = await loadAgent(agentId.value);
        if (agent === undefined) return agentNotFound(agentId.value);
        const detail = deviceDetail(agentId.value, agent.lanes, deviceId.value);
        if (detail === undefined) {
          return apiError(404, ErrorCode.DEVICE_NOT_FOUND, `agent ${agentId.value} sent nothing of device ${JSON.stringify(deviceId.value)}`, {
            agentId: agentId.value,
            deviceId: deviceId.value,
          });
        }
        return ok(detail);
      },
    },
  ];
}

export function routeNotFound(method: string, url: string): HttpResponse {
  return apiError(404, ErrorCode.ROUTE_NOT_FOUND, `no route ${method} ${url.split('?')[0]}`);
}

export function requestFailed(logger: Logger): (error: unknown, statusCode: number | undefined) => HttpResponse {
  return (error, statusCode) => {
    if (statusCode !== undefined) return apiError(statusCode, ErrorCode.REQUEST_INVALID, (error as Error).message);
    logger.error({ err: error }, 'API request failed');
    return apiError(500, ErrorCode.INTERNAL_ERROR, 'internal error; see the control plane log');
  };
}
