// API token roles and the audit log against a real nats-server, the control plane in process:
// a viewer token reads everything and is refused (403 FORBIDDEN) on every operator route, an
// operator token changes things; every call to an operator route, done, failed or refused, is
// in GET /api/audit with the token's name and the outcome; the log lives in NATS (it outlives
// the control plane and every replica lists it); no token value reaches an answer, an audit
// entry or a log line.
import { Writable } from 'node:stream';
import { DiscardPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AUDIT_STREAM,
  AuditListResponseSchema,
  generateSigningKey,
  ModelListResponseSchema,
  type AuditListEntry,
  type ControlPlaneConfigInput,
  type RolloutView,
} from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import { signedConstantModel } from '../harness/agent-process.js';
import {
  connectFakeAgent,
  openEventStream,
  operatorTokenSha256,
  startInProcessControlPlane,
  telemetryRecord,
  testControlPlaneConfig,
} from '../harness/control-plane-process.js';
import { metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { waitFor } from '../harness/wait.js';

const OPERATOR = { name: 'ops-alice', token: 'operator-token-Zq81mW4xT0pLr7' };
const VIEWER = { name: 'view-bob', token: 'viewer-token-Hc62nB9sK3vYe5' };
const UNKNOWN_TOKEN = 'unknown-token-Ua55pQ0dJ2wXg9';
const SECRETS = [OPERATOR.token, VIEWER.token, UNKNOWN_TOKEN];
const key = generateSigningKey('audit-test-key');
const MODEL = signedConstantModel(0.2, '2.0.0', key, { threshold: 0.5 });

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function nats(): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return server;
}

/** Every log line of every control plane of the test (all levels), to search for secrets. */
const logLines: string[] = [];

function auth(): NonNullable<NonNullable<ControlPlaneConfigInput['http']>['auth']> {
  return {
    tokens: [
      // No role: an operator, as configs written before roles read.
      { name: OPERATOR.name, sha256: operatorTokenSha256(OPERATOR.token) },
      { name: VIEWER.name, sha256: operatorTokenSha256(VIEWER.token), role: 'viewer' },
    ],
  };
}

async function controlPlane(server: NatsServer, overrides: Partial<ControlPlaneConfigInput> = {}): Promise<ControlPlane> {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      done();
    },
  });
  const config = testControlPlaneConfig(server.url, {
    http: { host: '127.0.0.1', port: 0, dashboardDir: '/nonexistent/outpost-dashboard', auth: auth() },
    rollouts: { tickMs: 100 },
    ...overrides,
  });
  const cp = await startInProcessControlPlane(config, pino({ level: 'trace' }, sink));
  cleanups.push(() => cp.close());
  return cp;
}

interface Answer {
  status: number;
  text: string;
  body: unknown;
}

/** Every answer's text, to search for secrets. */
const answers: string[] = [];

async function call(cp: ControlPlane, method: 'GET' | 'POST', path: string, token?: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  answers.push(`${[...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, text, body: parsed };
}

const codeOf = (answer: Answer): string | undefined => (answer.body as { error?: { code?: string } } | undefined)?.error?.code;

async function auditLog(cp: ControlPlane, query = '', token = VIEWER.token): Promise<AuditListEntry[]> {
  const answer = await call(cp, 'GET', `/api/audit${query}`, token);
  expect(answer.status, answer.text).toBe(200);
  return AuditListResponseSchema.parse(answer.body).entries;
}

/** What a test compares of an entry: who, which route, what, how it ended, about what. */
const summary = (e: AuditListEntry) =>
  `${e.actor}/${e.role ?? '-'} ${e.method} ${e.route} ${e.action} ${e.outcome.status}${e.outcome.code === undefined ? '' : ` ${e.outcome.code}`}${e.detail === undefined ? '' : ` (${e.detail})`}`;

const modelUpload = (signed: unknown = MODEL.signed) => ({ manifest: signed, onnxBase64: Buffer.from(MODEL.onnx).toString('base64') });
const rolloutSpec = (id: string) => ({ id, name: `constant 2.0.0 to the lab (${id})`, selector: { labels: { site: 'lab' } }, change: { model: { name: 'constant', version: '2.0.0' } } });

/** gw-1 known with one device d1, so every read route has something real to answer. */
async function seedAgent(server: NatsServer, cp: ControlPlane): Promise<void> {
  const agent = await connectFakeAgent(server.url, 'gw-1');
  cleanups.push(() => agent.close());
  await agent.heartbeat();
  await agent.publishBatch(agent.batch('telemetry', 1, [telemetryRecord('d1', Date.now(), { temp: 20 }, 1)]));
  await waitFor(async () => (await call(cp, 'GET', '/api/agents/gw-1/devices/d1', VIEWER.token)).status === 200, { what: 'gw-1 and its device d1' });
}

interface OpenApiDocument {
  paths: Record<string, Record<string, { 'x-outpost-role'?: string; security: unknown; responses: Record<string, unknown> }>>;
}

/** `/api/rollouts/{id}/{action}` with real values, so a refusal is not a 404 in disguise. */
const concrete = (path: string) => path.replace('{agentId}', 'gw-1').replace('{deviceId}', 'd1').replace('{id}', 'r-audit').replace('{action}', 'pause');

describe('API token roles', () => {
  it('lets a viewer read every route and refuses it (403 FORBIDDEN) on every operator route; an operator may do both', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    await seedAgent(server, cp);
    expect((await call(cp, 'POST', '/api/models', OPERATOR.token, modelUpload())).status).toBe(201);
    expect((await call(cp, 'POST', '/api/rollouts', OPERATOR.token, { spec: rolloutSpec('r-audit') })).status).toBe(201);

    const doc = (await call(cp, 'GET', '/api/openapi.json')).body as OpenApiDocument;
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
    const byRole = (role: string) => operations.filter((o) => o.op['x-outpost-role'] === role).map((o) => `${o.method} ${o.path}`);
    // Every mutating route is an operator route (enrolment and revocation too, once they exist); every read a viewer's.
    expect(operations.filter((o) => o.method === 'POST').map((o) => o.op['x-outpost-role'])).toEqual(operations.filter((o) => o.method === 'POST').map(() => 'operator'));
    expect(byRole('operator')).toEqual(expect.arrayContaining(['POST /api/models', 'POST /api/rollouts', 'POST /api/rollouts/{id}/{action}']));
    expect(byRole('viewer').sort()).toEqual(operations.filter((o) => o.method === 'GET' && o.path.startsWith('/api/') && o.path !== '/api/openapi.json').map((o) => `GET ${o.path}`).sort());
    for (const o of operations.filter((x) => x.op['x-outpost-role'] === 'operator')) {
      expect(o.op.security, o.path).toEqual([{ apiToken: ['operator'] }]);
      expect(Object.keys(o.op.responses), o.path).toContain('403');
    }

    // The viewer reads every read route, the event stream included.
    for (const route of byRole('viewer')) {
      const path = concrete(route.slice('GET '.length));
      if (path === '/api/events') continue;
      const answer = await call(cp, 'GET', path, VIEWER.token);
      // The diagnostics routes ask the agent itself over NATS, and gw-1 here is a fake that
      // answers none: the viewer is let through to that question (a real agent answering them
      // is tested in e2e/agent-diag.test.ts).
      if (path.startsWith('/api/agents/gw-1/diag/')) expect([answer.status, codeOf(answer)], `${path}: ${answer.text}`).toEqual([503, 'AGENT_UNREACHABLE']);
      else expect(answer.status, `${path}: ${answer.text}`).toBe(200);
    }
    const events = await openEventStream(cp.httpPort, { token: VIEWER.token });
    cleanups.push(async () => events.close());
    expect(events.status).toBe(200);
    await events.next((e) => e.type === 'agents', 'the agents event for the viewer');

    // ... and is refused on every operator route, with a body that would otherwise be taken.
    const v3 = signedConstantModel(0.3, '3.0.0', key, { threshold: 0.5 });
    const bodies: Record<string, unknown> = {
      'POST /api/models': { manifest: v3.signed, onnxBase64: Buffer.from(v3.onnx).toString('base64') },
      'POST /api/rollouts': { spec: rolloutSpec('r-viewer') },
    };
    const refusedRoutes = byRole('operator');
    for (const route of refusedRoutes) {
      const answer = await call(cp, 'POST', concrete(route.slice('POST '.length)), VIEWER.token, bodies[route] ?? {});
      expect([answer.status, codeOf(answer)], `${route}: ${answer.text}`).toEqual([403, 'FORBIDDEN']);
      expect(answer.text).toContain('needs a token with role operator');
    }
    // Nothing changed: no model 3.0.0, no rollout r-viewer, r-audit not paused.
    expect(ModelListResponseSchema.parse((await call(cp, 'GET', '/api/models', VIEWER.token)).body).models.map((m) => m.version)).toEqual(['2.0.0']);
    expect((await call(cp, 'GET', '/api/rollouts/r-viewer', VIEWER.token)).status).toBe(404);
    expect(((await call(cp, 'GET', '/api/rollouts/r-audit', VIEWER.token)).body as RolloutView).status).not.toBe('paused');

    // A dry run creates nothing: the viewer may plan.
    const plan = await call(cp, 'POST', '/api/rollouts', VIEWER.token, { spec: rolloutSpec('r-plan'), dryRun: true });
    expect(plan.status, plan.text).toBe(200);
    expect(plan.body).toMatchObject({ id: 'r-plan', waves: [{ agents: [{ agentId: 'gw-1' }] }] });

    // The operator token does what the viewer could not.
    expect((await call(cp, 'POST', '/api/rollouts/r-audit/pause', OPERATOR.token)).status).toBe(200);
    expect((await call(cp, 'POST', '/api/models', OPERATOR.token, bodies['POST /api/models'])).status).toBe(201);
    expect((await call(cp, 'POST', '/api/rollouts/r-audit/pause', VIEWER.token)).status).toBe(403);

    // Each refusal is in the audit log under the viewer's name; the dry run is not (it is a read).
    const [last, ...refusals] = await auditLog(cp, `?actor=${VIEWER.name}`);
    expect(summary(last!)).toBe('view-bob/viewer POST /api/rollouts/:id/:action rollout.pause 403 FORBIDDEN (rollout r-audit)');
    const toOpenApi = (route: string) => route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    expect(refusals.map((e) => `${e.method} ${toOpenApi(e.route)}`)).toEqual([...refusedRoutes].reverse());
    for (const e of refusals) expect([e.actor, e.role, e.outcome]).toEqual([VIEWER.name, 'viewer', { status: 403, code: 'FORBIDDEN' }]);
  });
});

describe('the audit log', () => {
  it('holds every call to an operator route, done, failed or refused, newest first, with the token name and the outcome', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    await seedAgent(server, cp);
    const startedAtMs = Date.now();

    const calls: [method: 'POST', path: string, token: string | undefined, body: unknown, status: number][] = [
      ['POST', '/api/models', OPERATOR.token, modelUpload(), 201],
      // The same version with the same bytes again: stored once, answered 200 (already stored).
      ['POST', '/api/models', OPERATOR.token, modelUpload(), 200],
      ['POST', '/api/models', OPERATOR.token, { manifest: { manifest: { name: 'broken', version: '1.0.0' } }, onnxBase64: 'AAAA' }, 400],
      ['POST', '/api/rollouts', OPERATOR.token, { spec: rolloutSpec('r-one') }, 201],
      ['POST', '/api/rollouts', OPERATOR.token, { spec: { ...rolloutSpec('r-two'), change: { model: { name: 'constant', version: '9.9.9' } } } }, 404],
      ['POST', '/api/rollouts', OPERATOR.token, { spec: { name: 'no change' } }, 400],
      ['POST', '/api/rollouts/r-one/pause', OPERATOR.token, undefined, 200],
      ['POST', '/api/rollouts/r-one/resume', OPERATOR.token, undefined, 200],
      ['POST', '/api/rollouts/r-one/abort', OPERATOR.token, undefined, 200],
      ['POST', '/api/rollouts/r-one/abort', OPERATOR.token, undefined, 409],
      ['POST', '/api/rollouts/r-none/pause', OPERATOR.token, undefined, 404],
      ['POST', '/api/rollouts/r-one/explode', OPERATOR.token, undefined, 400],
      ['POST', '/api/rollouts', VIEWER.token, { spec: rolloutSpec('r-three') }, 403],
      ['POST', '/api/models', undefined, modelUpload(), 401],
      ['POST', '/api/rollouts/r-one/rollback', UNKNOWN_TOKEN, undefined, 401],
    ];
    for (const [method, path, token, body, status] of calls) {
      const answer = await call(cp, method, path, token, body);
      expect(answer.status, `${method} ${path}: ${answer.text}`).toBe(status);
    }
    // Reads, and a dry run, are not audited.
    await call(cp, 'GET', '/api/rollouts', OPERATOR.token);
    await call(cp, 'POST', '/api/rollouts', OPERATOR.token, { spec: rolloutSpec('r-plan'), dryRun: true });

    // A 500: the model store's stream is gone, so the publish fails inside the control plane.
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete('OBJ_outpost_models');
    const failed = await call(cp, 'POST', '/api/models', OPERATOR.token, modelUpload());
    expect([failed.status, codeOf(failed)], failed.text).toEqual([500, 'INTERNAL_ERROR']);

    const entries = await auditLog(cp);
    // The controller may start r-one's first wave before the pause or not: resumed, it is pending or running again.
    const resumed = expect.stringMatching(/^ops-alice\/operator POST \/api\/rollouts\/:id\/:action rollout\.resume 200 \(rollout r-one, now (pending|running)\)$/) as unknown as string;
    expect(entries.map(summary)).toEqual(
      [
        'ops-alice/operator POST /api/models model.publish 201 (constant@2.0.0)',
        'ops-alice/operator POST /api/models model.publish 200 (constant@2.0.0)',
        'ops-alice/operator POST /api/models model.publish 400 MODEL_INVALID (broken@1.0.0)',
        'ops-alice/operator POST /api/rollouts rollout.create 201 (rollout r-one)',
        'ops-alice/operator POST /api/rollouts rollout.create 404 MODEL_NOT_FOUND (rollout r-two)',
        'ops-alice/operator POST /api/rollouts rollout.create 400 REQUEST_INVALID',
        'ops-alice/operator POST /api/rollouts/:id/:action rollout.pause 200 (rollout r-one, now paused)',
        resumed,
        'ops-alice/operator POST /api/rollouts/:id/:action rollout.abort 200 (rollout r-one, now aborted)',
        'ops-alice/operator POST /api/rollouts/:id/:action rollout.abort 409 ROLLOUT_STATE_INVALID (rollout r-one)',
        'ops-alice/operator POST /api/rollouts/:id/:action rollout.pause 404 ROLLOUT_NOT_FOUND (rollout r-none)',
        'ops-alice/operator POST /api/rollouts/:id/:action rollout.action 400 REQUEST_INVALID (rollout r-one)',
        'view-bob/viewer POST /api/rollouts rollout.create 403 FORBIDDEN (rollout r-three)',
        'anonymous/- POST /api/models model.publish 401 AUTH_REQUIRED',
        'anonymous/- POST /api/rollouts/:id/:action rollout.rollback 401 AUTH_INVALID (rollout r-one)',
        'ops-alice/operator POST /api/models model.publish 500 INTERNAL_ERROR (constant@2.0.0)',
      ].reverse(),
    );
    // Newest first, by stream sequence; times from the calls; the path parameters as sent.
    expect(entries.map((e) => e.seq)).toEqual([...entries.map((e) => e.seq)].sort((a, b) => b - a));
    for (const e of entries) expect(e.atMs).toBeGreaterThanOrEqual(startedAtMs);
    expect(entries.find((e) => e.action === 'rollout.action')!.params).toEqual({ id: 'r-one', action: 'explode' });
    expect(entries.every((e) => e.remoteAddress === '127.0.0.1')).toBe(true);

    // Filters: by actor, by time, and a limit.
    expect((await auditLog(cp, '?actor=anonymous')).map((e) => e.outcome.status)).toEqual([401, 401]);
    expect((await auditLog(cp, '?limit=2')).map((e) => e.seq)).toEqual(entries.slice(0, 2).map((e) => e.seq));
    const middle = entries[5]!;
    expect((await auditLog(cp, `?since=${middle.atMs}`)).map((e) => e.seq)).toEqual(entries.filter((e) => e.atMs >= middle.atMs).map((e) => e.seq));
    expect((await auditLog(cp, `?since=${Date.now() + 60_000}`)).length).toBe(0);
    expect(codeOf(await call(cp, 'GET', '/api/audit?actor=no%20spaces', VIEWER.token))).toBe('REQUEST_INVALID');
    expect(codeOf(await call(cp, 'GET', '/api/audit'))).toBe('AUTH_REQUIRED');

    const metrics = (await call(cp, 'GET', '/metrics')).text;
    expect(metricValue(metrics, 'outpost_cp_audit_entries_total')).toBe(entries.length);
    expect(metricValue(metrics, 'outpost_cp_audit_write_failures_total')).toBe(0);
  });

  it('lives in NATS: a second replica lists what the first wrote, and it outlives both', async () => {
    const server = await nats();
    const first = await controlPlane(server);
    expect((await call(first, 'POST', '/api/models', OPERATOR.token, modelUpload())).status).toBe(201);
    expect((await call(first, 'POST', '/api/models', VIEWER.token, modelUpload())).status).toBe(403);
    const written = await auditLog(first);
    expect(written.map(summary)).toEqual([
      'view-bob/viewer POST /api/models model.publish 403 FORBIDDEN (constant@2.0.0)',
      'ops-alice/operator POST /api/models model.publish 201 (constant@2.0.0)',
    ]);

    const second = await controlPlane(server);
    expect(await auditLog(second)).toEqual(written);
    // The same version with the same bytes: stored already, 200.
    expect((await call(second, 'POST', '/api/models', OPERATOR.token, modelUpload())).status).toBe(200);
    await first.close();
    await second.close();

    const restarted = await controlPlane(server);
    const after = await auditLog(restarted);
    expect(after.slice(1)).toEqual(written);
    expect(summary(after[0]!)).toBe('ops-alice/operator POST /api/models model.publish 200 (constant@2.0.0)');
  });

  it('logs and counts an entry it cannot store, and the call itself still answers', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    expect((await call(cp, 'POST', '/api/models', OPERATOR.token, modelUpload())).status).toBe(201);
    // The stream takes no more entries: full, and refusing new messages.
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info(AUDIT_STREAM);
    await jsm.streams.update(AUDIT_STREAM, { ...config, max_msgs: 1, discard: DiscardPolicy.New });
    const linesBefore = logLines.length;

    const answer = await call(cp, 'POST', '/api/models', OPERATOR.token, modelUpload());
    expect(answer.status).toBe(200);
    const metrics = (await call(cp, 'GET', '/metrics')).text;
    expect(metricValue(metrics, 'outpost_cp_audit_write_failures_total')).toBe(1);
    const failures = logLines.slice(linesBefore).map((l) => JSON.parse(l) as { level: number; msg: string; audit?: { actor: string; action: string; outcome: { status: number } } }).filter((l) => l.msg.startsWith('audit write failed'));
    expect(failures.map((l) => [l.level, l.audit?.actor, l.audit?.action, l.audit?.outcome.status])).toEqual([[50, OPERATOR.name, 'model.publish', 200]]);
    expect((await auditLog(cp)).length).toBe(1);

    // Room again: the next entry is stored.
    await jsm.streams.update(AUDIT_STREAM, { ...config, max_msgs: -1 });
    expect((await call(cp, 'POST', '/api/rollouts/r-none/pause', OPERATOR.token)).status).toBe(404);
    expect((await auditLog(cp)).map((e) => e.action)).toEqual(['rollout.pause', 'model.publish']);
  });

  it('holds no token value, and neither do the answers nor the logs', async () => {
    const server = await nats();
    logLines.length = 0;
    answers.length = 0;
    const cp = await controlPlane(server);
    await seedAgent(server, cp);
    for (const token of [...SECRETS, undefined]) {
      await call(cp, 'POST', '/api/models', token, modelUpload());
      await call(cp, 'POST', '/api/rollouts', token, { spec: rolloutSpec('r-secret') });
      await call(cp, 'POST', '/api/rollouts/r-secret/pause', token);
      await call(cp, 'GET', '/api/agents', token);
    }
    // Malformed headers carrying a token are refused without echoing it.
    for (const authorization of [`Basic ${OPERATOR.token}`, `Bearer ${OPERATOR.token} extra`, OPERATOR.token]) {
      const response = await fetch(`http://127.0.0.1:${cp.httpPort}/api/rollouts/r-secret/abort`, { method: 'POST', headers: { authorization } });
      answers.push(await response.text());
      expect(response.status).toBe(401);
    }
    // A body that is not JSON is refused without quoting it (it may hold a secret).
    const garbled = await fetch(`http://127.0.0.1:${cp.httpPort}/api/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR.token}`, 'content-type': 'application/json' },
      body: `{"spec": ${UNKNOWN_TOKEN}}`,
    });
    const garbledText = await garbled.text();
    answers.push(garbledText);
    expect([garbled.status, JSON.parse(garbledText)]).toEqual([400, { error: { code: 'REQUEST_INVALID', message: expect.stringMatching(/^the body is not JSON/) as unknown } }]);
    await call(cp, 'GET', '/api/openapi.json');
    await call(cp, 'GET', '/metrics');
    const entries = await auditLog(cp, '?limit=1000');
    // Three tokens and none, three mutating calls each, the three malformed headers, the garbled body.
    expect(entries).toHaveLength(16);
    // The garbled body never reached the route, and is in the log all the same.
    expect(summary(entries[0]!)).toBe('ops-alice/operator POST /api/rollouts rollout.create 400 REQUEST_INVALID');
    expect(new Set(entries.map((e) => e.actor))).toEqual(new Set([OPERATOR.name, VIEWER.name, 'anonymous']));

    // What the stream itself holds, read past the control plane.
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    const consumer = await jetstream(nc).consumers.get(AUDIT_STREAM);
    const stored: string[] = [];
    for await (const m of await consumer.fetch({ max_messages: 16, expires: 2_000 })) {
      stored.push(m.string());
      if (m.info.pending === 0) break;
    }
    expect(stored).toHaveLength(16);

    // The searches can find something: the logs, answers and entries name the tokens' holders.
    expect(logLines.join('\n')).toContain('control plane started');
    expect(stored.join('\n')).toContain(OPERATOR.name);
    expect(answers.join('\n')).toContain(VIEWER.name);
    for (const secret of SECRETS) {
      for (const [where, text] of [
        ['logs', logLines.join('\n')],
        ['answers', answers.join('\n')],
        ['audit listing', JSON.stringify(entries)],
        ['audit stream', stored.join('\n')],
      ] as const) {
        expect(text.includes(secret), `${where} contain a token`).toBe(false);
        // Nor its digest (the config's), which the log or an error message could have carried instead.
        expect(text.includes(operatorTokenSha256(secret)), `${where} contain a token's digest`).toBe(false);
      }
    }
  });
});
