// The control plane's HTTP API against a real nats-server: every route, operator auth, bad
// input with its documented error code, the dashboard's files, the OpenAPI document kept in
// sync with the registered routes and error codes, and the API's own metrics.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentDetailResponseSchema,
  AgentListResponseSchema,
  AnomalyListResponseSchema,
  ApiErrorCodeSchema,
  ApiErrorResponseSchema,
  DeviceDetailResponseSchema,
  DeviceListResponseSchema,
  HealthResponseSchema,
  SeriesResponseSchema,
  type ApiErrorCode,
  type ControlPlaneConfigInput,
} from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import {
  connectFakeAgent,
  openEventStream,
  operatorAuth,
  startInProcessControlPlane,
  telemetryRecord,
  testControlPlaneConfig,
  type FakeAgent,
} from '../harness/control-plane-process.js';
import { metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const TOKEN = 'test-token-5pO0w1fJ8cQ';
const silent = pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' });

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function nats(): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return server;
}

/** No dashboard unless a test gives one: what the build left in control-plane/dist must not change answers. */
const NO_DASHBOARD = '/nonexistent/outpost-dashboard';

async function controlPlane(server: NatsServer, overrides: Partial<ControlPlaneConfigInput> = {}): Promise<ControlPlane> {
  const http = { host: '127.0.0.1', port: 0, dashboardDir: NO_DASHBOARD, ...overrides.http };
  const cp = await startInProcessControlPlane(testControlPlaneConfig(server.url, { ...overrides, http }), silent);
  cleanups.push(() => cp.close());
  return cp;
}

async function fakeAgent(server: NatsServer, agentId: string): Promise<FakeAgent> {
  const agent = await connectFakeAgent(server.url, agentId);
  cleanups.push(() => agent.close());
  return agent;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

async function request(cp: ControlPlane, path: string, init: { token?: string; authorization?: string; method?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers['authorization'] = `Bearer ${init.token}`;
  if (init.authorization !== undefined) headers['authorization'] = init.authorization;
  const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, { headers, method: init.method ?? 'GET' });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, text, body };
}

/** Asserts an error answer: status, code, and that the body is a valid ApiErrorResponse. */
function expectError(answer: Answer, status: number, code: ApiErrorCode): Record<string, unknown> {
  expect({ status: answer.status, code: (answer.body as { error?: { code?: string } } | undefined)?.error?.code }, answer.text).toEqual({ status, code });
  return ApiErrorResponseSchema.parse(answer.body).error.details ?? {};
}

/** Data of gw-1: a heartbeat and one batch of two devices, read back through the API. */
async function seed(server: NatsServer, cp: ControlPlane, token?: string): Promise<void> {
  const agent = await fakeAgent(server, 'gw-1');
  await agent.heartbeat();
  const t0 = Date.now();
  await agent.publishBatch(agent.batch('telemetry', 1, [telemetryRecord('d1', t0, { temp: 20 }, 1), telemetryRecord('d2', t0, { temp: 30 }, 1)]));
  await waitFor(
    async () => {
      const answer = await request(cp, '/api/agents/gw-1', token === undefined ? {} : { token });
      return answer.status === 200 && AgentDetailResponseSchema.parse(answer.body).totals.received === 2 && AgentDetailResponseSchema.parse(answer.body).status === 'online';
    },
    { what: 'gw-1 online with 2 records' },
  );
}

/** Every operator route, with real ids (so a 401 is not a 404 in disguise). */
const OPERATOR_PATHS = [
  '/api/agents',
  '/api/agents/gw-1',
  '/api/agents/gw-1/devices',
  '/api/agents/gw-1/devices/d1',
  '/api/agents/gw-1/devices/d1/series',
  '/api/anomalies',
  '/api/events',
];

describe('every route', () => {
  it('answers with its documented body', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    await seed(server, cp);

    expect(AgentListResponseSchema.parse((await request(cp, '/api/agents')).body).agents.map((a) => [a.agentId, a.status])).toEqual([['gw-1', 'online']]);
    expect(AgentDetailResponseSchema.parse((await request(cp, '/api/agents/gw-1')).body)).toMatchObject({ agentId: 'gw-1', labels: { site: 'lab' } });
    const devices = DeviceListResponseSchema.parse((await request(cp, '/api/agents/gw-1/devices')).body);
    expect(devices.devices.map((d) => [d.deviceId, d.received, d.kinds])).toEqual([
      ['d1', 1, { telemetry: 1 }],
      ['d2', 1, { telemetry: 1 }],
    ]);
    expect(DeviceDetailResponseSchema.parse((await request(cp, '/api/agents/gw-1/devices/d2')).body)).toMatchObject({ deviceId: 'd2', latest: { metrics: { temp: 30 } } });
    const series = await waitFor(
      async () => {
        const s = SeriesResponseSchema.parse((await request(cp, '/api/agents/gw-1/devices/d1/series')).body);
        return s.points.length === 1 ? s : undefined;
      },
      { what: 'the point of d1 in its series' },
    );
    expect(series).toMatchObject({ agentId: 'gw-1', deviceId: 'd1', points: [{ metrics: { temp: 20 } }], inference: [] });
    expect(AnomalyListResponseSchema.parse((await request(cp, '/api/anomalies')).body)).toEqual({ anomalies: [] });
    const health = await request(cp, '/healthz');
    expect(health.status).toBe(200);
    expect(HealthResponseSchema.parse(health.body).status).toBe('ok');
    const metrics = await request(cp, '/metrics');
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.text).toContain('outpost_cp_uplink_records_total');
    const openapi = await request(cp, '/api/openapi.json');
    expect(openapi.body).toMatchObject({ openapi: '3.1.0' });
    const events = await openEventStream(cp.httpPort);
    cleanups.push(async () => events.close());
    expect([events.status, events.contentType]).toEqual([200, 'text/event-stream; charset=utf-8']);
    await events.next((e) => e.type === 'agents' && e.data.agents.some((a) => a.agentId === 'gw-1'), 'the agents event on connect');
  });
});

describe('operator auth', () => {
  it('refuses a missing, malformed or unknown token on every operator route and takes the right one', async () => {
    const server = await nats();
    const cp = await controlPlane(server, { http: { auth: operatorAuth(TOKEN) } });
    await seed(server, cp, TOKEN);

    for (const path of OPERATOR_PATHS) {
      const missing = await request(cp, path);
      expectError(missing, 401, 'AUTH_REQUIRED');
      expect(missing.headers.get('www-authenticate'), path).toMatch(/^Bearer realm="outpost"/);
      for (const malformed of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer two words', TOKEN]) {
        const answer = await request(cp, path, { authorization: malformed });
        expectError(answer, 401, 'AUTH_REQUIRED');
        expect(answer.headers.get('www-authenticate')).toContain('error="invalid_request"');
      }
      const wrong = await request(cp, path, { token: `${TOKEN}x` });
      expectError(wrong, 401, 'AUTH_INVALID');
      expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    for (const path of OPERATOR_PATHS.filter((p) => p !== '/api/events')) {
      expect((await request(cp, path, { token: TOKEN })).status, path).toBe(200);
      // The scheme name is case-insensitive (RFC 7235 section 2.1).
      expect((await request(cp, path, { authorization: `bearer ${TOKEN}` })).status, path).toBe(200);
    }
    const events = await openEventStream(cp.httpPort, { token: TOKEN });
    cleanups.push(async () => events.close());
    expect(events.status).toBe(200);
    const refused = await openEventStream(cp.httpPort, { token: 'nope' });
    expect(refused.status).toBe(401);
    // HEAD answers the headers and ends (no stream held open for it).
    const head = await request(cp, '/api/events', { token: TOKEN, method: 'HEAD' });
    expect([head.status, head.headers.get('content-type'), head.text]).toEqual([200, 'text/event-stream; charset=utf-8', '']);
  });

  it('keeps /healthz, /metrics, the OpenAPI document and the dashboard public by default, and each can be closed', async () => {
    const server = await nats();
    const dir = await createTempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'index.html'), '<!doctype html>');
    const open = await controlPlane(server, { http: { dashboardDir: dir.path, auth: operatorAuth(TOKEN) } });
    for (const path of ['/healthz', '/metrics', '/api/openapi.json', '/', '/some/dashboard/page']) {
      expect((await request(open, path)).status, path).toBe(200);
    }
    const closed = await controlPlane(server, {
      http: { dashboardDir: dir.path, auth: operatorAuth(TOKEN, 'ops', { healthz: false, metrics: false, dashboard: false, openapi: false }) },
    });
    for (const path of ['/healthz', '/metrics', '/api/openapi.json', '/', '/some/dashboard/page']) {
      expectError(await request(closed, path), 401, 'AUTH_REQUIRED');
      expect((await request(closed, path, { token: TOKEN })).status, path).toBe(200);
    }
  });

  it('answers everyone when no token is configured', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    expect((await request(cp, '/api/agents')).status).toBe(200);
    expect((await request(cp, '/api/agents', { token: 'anything' })).status).toBe(200);
  });
});

describe('bad input', () => {
  it('answers unknown agents, devices and routes with 404 and their code', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    await seed(server, cp);
    for (const path of ['/api/agents/gw-9', '/api/agents/gw-9/devices', '/api/agents/gw-9/devices/d1', '/api/agents/gw-9/devices/d1/series']) {
      expect(expectError(await request(cp, path), 404, 'AGENT_NOT_FOUND')).toEqual({ agentId: 'gw-9' });
    }
    for (const path of ['/api/agents/gw-1/devices/d9', '/api/agents/gw-1/devices/d9/series']) {
      expect(expectError(await request(cp, path), 404, 'DEVICE_NOT_FOUND')).toEqual({ agentId: 'gw-1', deviceId: 'd9' });
    }
    for (const path of ['/api/nope', '/api', '/api/agents/gw-1/devices/d1/series/extra', '/metricsx']) {
      expectError(await request(cp, path), 404, 'ROUTE_NOT_FOUND');
    }
    expectError(await request(cp, '/api/agents', { method: 'POST' }), 404, 'ROUTE_NOT_FOUND');
    expectError(await request(cp, '/api/agents', { method: 'DELETE' }), 404, 'ROUTE_NOT_FOUND');
  });

  it('answers a malformed parameter with 400 REQUEST_INVALID naming it', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const cases: [path: string, param: string][] = [
      ['/api/agents/bad%20id', 'agentId'],
      [`/api/agents/${'a'.repeat(65)}`, 'agentId'],
      [`/api/agents/${'a'.repeat(900)}/devices`, 'agentId'],
      ['/api/agents/gw.1', 'agentId'],
      [`/api/agents/gw-1/devices/${'d'.repeat(65)}`, 'deviceId'],
      ['/api/agents/gw-1/devices/d%2F1', 'deviceId'],
      ['/api/agents/gw-1/devices/d1/series?sinceMs=abc', 'sinceMs'],
      ['/api/agents/gw-1/devices/d1/series?sinceMs=-5', 'sinceMs'],
      ['/api/agents/gw-1/devices/d1/series?sinceMs=99999999999999999', 'sinceMs'],
      ['/api/anomalies?limit=abc', 'limit'],
      ['/api/anomalies?limit=0', 'limit'],
      ['/api/anomalies?limit=1001', 'limit'],
      ['/api/anomalies?limit=1.5', 'limit'],
      ['/api/anomalies?limit=1&limit=2', 'limit'],
      ['/api/anomalies?since=garbage', 'since'],
      ['/api/anomalies?since=2026-13-45', 'since'],
      ['/api/anomalies?since=', 'since'],
      ['/api/anomalies?since=%00', 'since'],
      ['/api/anomalies?limit=%ZZ', 'limit'],
      ['/api/anomalies?agentId=no%20spaces', 'agentId'],
      [`/api/anomalies?deviceId=${'x'.repeat(65)}`, 'deviceId'],
      ['/api/events?agentId=%24bad', 'agentId'],
    ];
    for (const [path, param] of cases) {
      const answer = await request(cp, path);
      const details = expectError(answer, 400, 'REQUEST_INVALID');
      expect(details['param'], path).toBe(param);
      expect((answer.body as { error: { message: string } }).error.message, path).toMatch(new RegExp(`^${param}: `));
    }
    // Cannot be decoded at all: refused before routing, still with the API's error body.
    expectError(await request(cp, '/api/agents/%E0%A4%A'), 400, 'REQUEST_INVALID');
    // Valid values of the same parameters pass.
    expect((await request(cp, '/api/anomalies?limit=1000&since=2026-01-01T00:00:00Z')).status).toBe(200);
    expect((await request(cp, `/api/anomalies?since=${Date.now()}&agentId=gw-1&deviceId=d.1`)).status).toBe(200);
  });
});

describe('dashboard files', () => {
  it('serves the built files at / with index.html for client-side routes, never for API paths', async () => {
    const server = await nats();
    const dir = await createTempDir();
    cleanups.push(() => dir.remove());
    await mkdir(join(dir.path, 'assets'));
    await writeFile(join(dir.path, 'index.html'), '<!doctype html><title>Outpost</title><div id="app"></div>');
    await writeFile(join(dir.path, 'assets', 'app.js'), 'console.log("outpost");');
    const cp = await controlPlane(server, { http: { dashboardDir: dir.path, auth: operatorAuth(TOKEN) } });
    expect(cp.dashboardServed).toBe(true);

    for (const path of ['/', '/agents/gw-1', '/agents/gw-1/devices/d1?tab=chart']) {
      const page = await request(cp, path);
      expect([page.status, page.headers.get('content-type')], path).toEqual([200, 'text/html; charset=utf-8']);
      expect(page.text).toContain('<title>Outpost</title>');
    }
    const asset = await request(cp, '/assets/app.js');
    expect([asset.status, asset.headers.get('content-type'), asset.text]).toEqual([200, 'application/javascript; charset=utf-8', 'console.log("outpost");']);
    expectError(await request(cp, '/api/nope'), 404, 'ROUTE_NOT_FOUND');
    expectError(await request(cp, '/api/agents', { method: 'POST' }), 404, 'ROUTE_NOT_FOUND');
    // Path traversal out of the folder is refused by the static handler.
    expect((await request(cp, '/..%2f..%2fetc%2fpasswd')).text).not.toContain('root:');
  });

  it('answers / with a short note when the dashboard was not built', async () => {
    const server = await nats();
    const cp = await controlPlane(server, { http: { dashboardDir: NO_DASHBOARD } });
    expect(cp.dashboardServed).toBe(false);
    const root = await request(cp, '/');
    expect([root.status, root.headers.get('content-type')]).toEqual([200, 'text/plain; charset=utf-8']);
    expect(root.text).toMatch(/dashboard was not built/);
    expectError(await request(cp, '/agents/gw-1'), 404, 'ROUTE_NOT_FOUND');
  });
});

interface OpenApiOperation {
  security: Record<string, string[]>[];
  'x-outpost-role'?: string;
  parameters: { name: string; in: string; required: boolean }[];
  responses: Record<string, { content?: Record<string, { examples?: Record<string, { value: { error: { code: string } } }> }> }>;
}
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme: string }> };
  'x-outpost-error-codes': { code: string; status: number }[];
}

describe('OpenAPI document', () => {
  it('lists exactly the registered routes, with their parameters, security and every API error code', async () => {
    const server = await nats();
    const dir = await createTempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'index.html'), '<!doctype html>');
    const cp = await controlPlane(server, { http: { dashboardDir: dir.path, auth: operatorAuth(TOKEN) } });
    const doc = (await request(cp, '/api/openapi.json')).body as OpenApiDocument;
    expect(doc.openapi).toBe('3.1.0');

    const toOpenApi = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    // The static handler's wildcard (`/*`) serves the dashboard's files; it is no API route.
    const registered = cp
      .httpRoutes()
      .filter((r) => r.path !== '/*')
      .map((r) => `${r.method} ${toOpenApi(r.path)}`)
      .sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(registered);
    expect(registered).toEqual(expect.arrayContaining(['GET /api/agents/{agentId}/devices/{deviceId}/series', 'GET /api/anomalies', 'GET /api/events', 'GET /']));

    expect(doc.components.securitySchemes['apiToken']).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    const codes = new Set(ApiErrorCodeSchema.options);
    const used = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method} ${path}`;
        // Path parameters: exactly the template's, all required.
        const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
        expect(op.parameters.filter((p) => p.in === 'path').map((p) => [p.name, p.required]), where).toEqual(templated.map((n) => [n, true]));
        for (const [status, response] of Object.entries(op.responses)) {
          for (const [code, example] of Object.entries(response.content?.['application/json']?.examples ?? {})) {
            expect(codes.has(code as ApiErrorCode), `${where} ${status} ${code}`).toBe(true);
            expect(example.value.error.code).toBe(code);
            used.add(code);
          }
        }
        // Every /api route but this document needs a token: a read any token's (viewer), a change an operator's.
        const needsToken = path.startsWith('/api/') && path !== '/api/openapi.json';
        const role = !needsToken ? undefined : method === 'get' ? 'viewer' : 'operator';
        expect(op['x-outpost-role'], where).toBe(role);
        expect(op.security, where).toEqual(role === undefined ? [{}, { apiToken: [] }] : [{ apiToken: role === 'operator' ? ['operator'] : [] }]);
        if (needsToken) expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['200', '401', '500', ...(role === 'operator' ? ['403'] : [])]));
      }
    }
    const listed = doc['x-outpost-error-codes'].map((e) => e.code).sort();
    expect(listed).toEqual([...codes].sort());
    expect([...used, 'ROUTE_NOT_FOUND'].sort()).toEqual([...codes].sort());
    expect(doc.paths['/api/anomalies']!['get']!.parameters.map((p) => p.name)).toEqual(['since', 'agentId', 'deviceId', 'limit']);
    // Every schema a response names is in the components.
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const ref of JSON.stringify(op).matchAll(/"#\/components\/schemas\/([A-Za-z]+)"/g)) expect(doc.components.schemas).toHaveProperty(ref[1]!);
      }
    }
  });
});

describe('API metrics', () => {
  it('counts requests by route and status, open event streams, agents by status and consumer lag', async () => {
    const server = await nats();
    const cp = await controlPlane(server, { ingest: { lagPollIntervalMs: 100 } });
    await seed(server, cp);
    // seed() polls /api/agents/gw-1 until the agent shows up (a 404 first on a slow machine):
    // count from here on.
    const before = (await request(cp, '/metrics')).text;
    await request(cp, '/api/agents/gw-1/devices/d1');
    await request(cp, '/api/agents/gw-9');
    await request(cp, '/api/anomalies?limit=abc');
    await request(cp, '/nope/nothing');
    const events = await openEventStream(cp.httpPort);
    cleanups.push(async () => events.close());
    await events.next((e) => e.type === 'agents', 'the agents event');

    const text = (await request(cp, '/metrics')).text;
    const count = (route: string, status: number) => {
      const labels = { method: 'GET', route, status: String(status) };
      return (metricValue(text, 'outpost_cp_http_request_duration_seconds_count', labels) ?? 0) - (metricValue(before, 'outpost_cp_http_request_duration_seconds_count', labels) ?? 0);
    };
    expect(count('/api/agents/:agentId/devices/:deviceId', 200)).toBe(1);
    expect(count('/api/agents/:agentId', 404)).toBe(1);
    expect(count('/api/anomalies', 400)).toBe(1);
    expect(count('unmatched', 404)).toBe(1);
    expect(count('/api/events', 200)).toBe(1);
    expect(metricValue(text, 'outpost_cp_sse_clients')).toBe(1);
    expect(metricValue(text, 'outpost_cp_sse_dropped_clients_total', { reason: 'slow' }) ?? 0).toBe(0);
    expect(metricValue(text, 'outpost_cp_agents', { status: 'online' })).toBe(1);
    expect(metricValue(text, 'outpost_cp_live_records_total', { kind: 'telemetry' })).toBe(2);
    expect(metricValue(text, 'outpost_cp_consumer_pending_messages', { consumer: 'cp-uplink', state: 'pending' })).toBe(0);

    events.close();
    await waitFor(async () => (metricValue((await request(cp, '/metrics')).text, 'outpost_cp_sse_clients') ?? 0) === 0, { what: 'the closed stream to be gone' });
  });
});
