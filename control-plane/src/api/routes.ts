// The HTTP API (DESIGN section 6): fleet, per-device accounting, the recent window of a device,
// anomalies, a live event stream (all for any token, viewer or operator), health, metrics and
// this API's own OpenAPI document. Each route is one definition (./route-spec.ts): parameters
// validated with the shared schemas, errors as `{ "error": { "code", "message" } }` with a
// stable code.
import {
  AgentParamsSchema,
  AnomaliesQuerySchema,
  DEFAULT_ANOMALIES_LIMIT,
  DEFAULT_ANOMALIES_SINCE_MS,
  DeviceParamsSchema,
  ErrorCode,
  EventsQuerySchema,
  SeriesQuerySchema,
  type AgentDetailResponse,
  type AgentListResponse,
  type AnomalyListResponse,
  type DeviceListResponse,
  type HealthResponse,
  type SeriesResponse,
} from '@outpost/shared';
import type { Registry } from 'prom-client';
import type { FleetRegistry } from '../fleet/fleet-registry.js';
import { toAgentSummary, type StatusThresholds } from '../fleet/fleet-record.js';
import type { AgentAccounting } from '../ingest/accounting-ingest.js';
import { summarizeLane } from '../ingest/accounting.js';
import type { AnomalyLog } from '../live/anomaly-log.js';
import type { EventHub } from '../live/event-hub.js';
import type { RecentWindow } from '../live/recent-window.js';
import { apiError } from './errors.js';
import type { HttpResponse } from './http-server.js';
import { buildOpenApiDocument } from './openapi.js';
import { defineRoute, type ApiRoute, type RouteDoc } from './route-spec.js';
import { CONTROL_PLANE_VERSION } from './version.js';
import { accountingTotals, deviceDetail, deviceSummaries } from './views.js';

export interface HealthCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ApiDeps {
  fleet: FleetRegistry;
  /** Every (epoch, lane) accounting of an agent. */
  readAccounting(agentId: string): Promise<AgentAccounting>;
  thresholds: StatusThresholds;
  registry: Registry;
  health(): HealthCheck[];
  window: RecentWindow;
  /** The recent window's length, ms. */
  recentWindowMs: number;
  anomalies: AnomalyLog;
  events: EventHub;
  now(): number;
}

const ok = (body: unknown): HttpResponse => ({ status: 200, body });

const agentNotFound = (agentId: string): HttpResponse => apiError(404, ErrorCode.AGENT_NOT_FOUND, `no agent ${JSON.stringify(agentId)} is known`, { agentId });
const deviceNotFound = (agentId: string, deviceId: string): HttpResponse =>
  apiError(404, ErrorCode.DEVICE_NOT_FOUND, `agent ${agentId} sent nothing of device ${JSON.stringify(deviceId)}`, { agentId, deviceId });

const AGENT_NOT_FOUND = { status: 404, code: ErrorCode.AGENT_NOT_FOUND, when: 'the agent never sent a heartbeat nor data' } as const;
const DEVICE_NOT_FOUND = { status: 404, code: ErrorCode.DEVICE_NOT_FOUND, when: 'the agent never sent anything of the device' } as const;

/** The dashboard at `/`: registered by the HTTP adapter (it serves files), documented here. */
export const DASHBOARD_ROUTE_DOC: RouteDoc = {
  method: 'GET',
  path: '/',
  access: 'dashboard',
  summary: 'The web dashboard',
  description: 'The built dashboard (index.html; other paths outside /api, /healthz and /metrics are its files or its client-side routes). A short plain-text note when it was not built.',
  response: { description: 'The dashboard page', contentType: 'text/html' },
  errors: [],
};

/**
 * `GET /api/openapi.json`: the document of `documented()`, every route the server registers
 * (read at the first request, so it covers routes of every module, this one included).
 */
export function createOpenApiRoute(documented: () => readonly RouteDoc[]): ApiRoute {
  let openApi: unknown;
  return defineRoute({
    method: 'GET',
    path: '/api/openapi.json',
    access: 'openapi',
    summary: 'This document',
    response: { description: 'The OpenAPI 3.1 document of the API', contentType: 'application/json' },
    async handle() {
      openApi ??= buildOpenApiDocument([...documented(), DASHBOARD_ROUTE_DOC], { version: CONTROL_PLANE_VERSION });
      return ok(openApi);
    },
  });
}

/** The fleet, device, live-data, health and metrics routes (the dashboard's `/` is the adapter's), each documented for the OpenAPI document. */
export function createApiRoutes(deps: ApiDeps): ApiRoute[] {
  const { fleet, thresholds } = deps;

  /** The agent's fleet record and accounting; undefined when neither exists. */
  const loadAgent = async (agentId: string) => {
    const [record, { lanes, problems }] = await Promise.all([fleet.get(agentId), deps.readAccounting(agentId)]);
    if (record === undefined && lanes.length === 0 && problems.length === 0) return undefined;
    return { record, lanes, problems };
  };

  const agentList = (): AgentListResponse => {
    const nowMs = deps.now();
    return { agents: fleet.list().map((r) => toAgentSummary(r.agentId, r, nowMs, thresholds)) };
  };

  const routes: ApiRoute[] = [
    defineRoute({
      method: 'GET',
      path: '/healthz',
      access: 'healthz',
      summary: 'Health of this replica',
      description: '200 when every check passes, 503 (same body) when one fails.',
      response: { description: 'Healthy (503 with the same body when not)', contentType: 'application/json', schemaName: 'Health' },
      async handle() {
        const checks = deps.health();
        const healthy = checks.every((c) => c.ok);
        const body: HealthResponse = { status: healthy ? 'ok' : 'degraded', checks };
        return { status: healthy ? 200 : 503, body };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/metrics',
      access: 'metrics',
      summary: 'Prometheus metrics of this replica',
      response: { description: 'Prometheus text exposition format', contentType: 'text/plain' },
      async handle() {
        return { status: 200, body: await deps.registry.metrics(), contentType: deps.registry.contentType };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents',
      access: 'viewer',
      summary: 'The fleet',
      description: 'Every agent that sent a heartbeat, by agent id, with its status at request time.',
      response: { description: 'The agents', contentType: 'application/json', schemaName: 'AgentList' },
      async handle() {
        return ok(agentList());
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId',
      access: 'viewer',
      summary: 'One agent with its accounting per epoch and lane',
      params: AgentParamsSchema,
      errors: [AGENT_NOT_FOUND],
      response: { description: 'The agent', contentType: 'application/json', schemaName: 'AgentDetail' },
      async handle({ params: { agentId } }) {
        const agent = await loadAgent(agentId);
        if (agent === undefined) return agentNotFound(agentId);
        const accounting = agent.lanes.map(summarizeLane);
        const body: AgentDetailResponse = {
          ...toAgentSummary(agentId, agent.record, deps.now(), thresholds),
          accounting,
          totals: accountingTotals(accounting),
          accountingProblems: agent.problems,
        };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/devices',
      access: 'viewer',
      summary: 'The devices of an agent: counts received, duplicates, gaps, latest values',
      params: AgentParamsSchema,
      errors: [AGENT_NOT_FOUND],
      response: { description: 'The devices', contentType: 'application/json', schemaName: 'DeviceList' },
      async handle({ params: { agentId } }) {
        const agent = await loadAgent(agentId);
        if (agent === undefined) return agentNotFound(agentId);
        const body: DeviceListResponse = { agentId, devices: deviceSummaries(agent.lanes) };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/devices/:deviceId',
      access: 'viewer',
      summary: 'One device: counts, device-seq gaps, per epoch and lane',
      params: DeviceParamsSchema,
      errors: [AGENT_NOT_FOUND, DEVICE_NOT_FOUND],
      response: { description: 'The device', contentType: 'application/json', schemaName: 'DeviceDetail' },
      async handle({ params: { agentId, deviceId } }) {
        const agent = await loadAgent(agentId);
        if (agent === undefined) return agentNotFound(agentId);
        const detail = deviceDetail(agentId, agent.lanes, deviceId);
        return detail === undefined ? deviceNotFound(agentId, deviceId) : ok(detail);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/devices/:deviceId/series',
      access: 'viewer',
      summary: "A device's recent telemetry and inference results",
      description:
        'From the recent window this replica keeps (`live.recentWindowMs`, default 10 minutes), by ts ascending. A device the control plane knows but without recent data has empty arrays.',
      params: DeviceParamsSchema,
      query: SeriesQuerySchema,
      errors: [AGENT_NOT_FOUND, DEVICE_NOT_FOUND],
      response: { description: 'The recent window of the device', contentType: 'application/json', schemaName: 'Series' },
      async handle({ params: { agentId, deviceId }, query: { sinceMs } }) {
        const series = deps.window.series(agentId, deviceId, sinceMs);
        if (series === undefined) {
          const agent = await loadAgent(agentId);
          if (agent === undefined) return agentNotFound(agentId);
          if (deviceDetail(agentId, agent.lanes, deviceId) === undefined) return deviceNotFound(agentId, deviceId);
        }
        const nowMs = deps.now();
        const body: SeriesResponse = {
          agentId,
          deviceId,
          fromMs: Math.max(sinceMs ?? Number.NEGATIVE_INFINITY, nowMs - deps.recentWindowMs),
          toMs: nowMs,
          points: series?.points ?? [],
          inference: series?.inference ?? [],
        };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/anomalies',
      access: 'viewer',
      summary: 'Anomalies, newest first',
      description: [
        'Anomaly episodes: the consecutive flagged windows of a device are one entry (`episode` set: open, or closed with its end, window count, reason and the metrics that contributed most), however long it lasted.',
        'Agents from before episodes report each flagged window: such an entry has no `episode`. `since` keeps entries active at or after it (an open episode always).',
        'Kept by this replica for `live.anomalyRetentionMs` (default 24 h, at most `live.maxAnomalies`).',
      ].join(' '),
      query: AnomaliesQuerySchema,
      response: { description: 'The anomalies', contentType: 'application/json', schemaName: 'AnomalyList' },
      async handle({ query }) {
        const body: AnomalyListResponse = {
          anomalies: deps.anomalies.query({
            sinceMs: query.since ?? deps.now() - DEFAULT_ANOMALIES_SINCE_MS,
            agentId: query.agentId,
            deviceId: query.deviceId,
            limit: query.limit ?? DEFAULT_ANOMALIES_LIMIT,
          }),
        };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api/events',
      access: 'viewer',
      summary: 'Live events (server-sent events)',
      description: [
        'A text/event-stream that never ends by itself. Events: `agents` (data: AgentList) on connect and whenever the fleet changes, at most once per second;',
        '`telemetry` (data: TelemetryEvent) and `inference` (data: InferenceEvent) as records arrive, restricted by `agentId`/`deviceId` when given;',
        '`anomaly` (data: InferenceEvent; of an episode, its start and peak score so far) when an episode opens or closes, or an older agent reports a flagged window; `rollout` (data: RolloutSummary) whenever a rollout changes. `types` keeps only the types named. A comment line every 15 s keeps the connection open.',
        'A client that does not keep up is disconnected; reconnect and fetch /series to fill the hole. Send the token in the Authorization header (read the stream with fetch, not EventSource).',
      ].join(' '),
      query: EventsQuerySchema,
      errors: [{ status: 429, code: ErrorCode.RATE_LIMITED, when: 'this replica already serves `http.sse.maxClients` event streams' }],
      response: { description: 'The event stream', contentType: 'text/event-stream' },
      async handle({ query }) {
        // Checked before the headers go out, so a refused client gets a proper 429.
        if (deps.events.isFull()) return apiError(429, ErrorCode.RATE_LIMITED, 'too many event streams on this replica; try again later');
        const filter = { agentId: query.agentId, deviceId: query.deviceId, types: query.types === undefined ? undefined : new Set(query.types) };
        return {
          status: 200,
          stream: (sink) => {
            if (!deps.events.connect(sink, filter)) sink.end();
          },
        };
      },
    }),
  ];
  return routes;
}
