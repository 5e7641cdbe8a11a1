import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AGENT_EVENTS_STREAM,
  EnrollmentBundleSchema,
  FLEET_BUCKET,
  MODEL_STORE_BUCKET,
  UPLINK_STREAM,
  writeSecretFile,
  type EnrollmentBundle,
} from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import {
  bundleConnectionOptions,
  connectFakeAgent,
  operatorTokenSha256,
  runOutpostctl,
  startInProcessControlPlane,
  telemetryRecord,
  testControlPlaneConfig,
  type FakeAgent,
} from '../harness/control-plane-process.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createPki } from '../harness/pki.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

// What a compromised gateway can do with its own NATS credentials (DESIGN section 4): agents
// live in the AGENTS account, which has no JetStream and imports from the OUTPOST account only
// their own publish subjects, services and notices. Agent A here is a NATS client holding A's
// enrolment bundle, i.e. an attacker with A's keys and arbitrary code, not the agent program.

const OPERATOR = 'iso-operator-token';
const VIEWER = 'iso-viewer-token';

let dir: TempDir;
let nats: NatsServer;
let cp: ControlPlane;
/** The control plane's own view (OUTPOST account). */
let admin: NatsConnection;
let jsm: JetStreamManager;
let bundleA: EnrollmentBundle;
let bundleB: EnrollmentBundle;
let a: FakeAgent;
let b: FakeAgent;

async function api(method: 'GET' | 'POST', path: string, token = OPERATOR, body?: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: await response.json() };
}

async function enroll(agentId: string): Promise<EnrollmentBundle> {
  const { status, body } = await api('POST', `/api/agents/${agentId}/enroll`, OPERATOR, { labels: { site: 'iso' } });
  expect(status).toBe(201);
  return EnrollmentBundleSchema.parse(body);
}

/** Messages in the uplink stream on `subject` (a filter). */
async function streamCount(subject: string): Promise<number> {
  const info = await jsm.streams.info(UPLINK_STREAM, { subjects_filter: subject });
  return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
}

/** The first error the server reports on `nc` for `what` (a permissions violation names its subject). */
function nextServerError(nc: NatsConnection, match: (message: string) => boolean): Promise<string> {
  return (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'error' && match(String(status.error))) return String(status.error);
    }
    return 'connection closed';
  })();
}

beforeAll(async () => {
  dir = await createTempDir('outpost-iso-');
  nats = await startNatsServer({ secure: true });
  cp = await startInProcessControlPlane(
    testControlPlaneConfig(nats, {
      http: {
        host: '127.0.0.1',
        port: 0,
        dashboardDir: '/nonexistent',
        auth: { tokens: [{ name: 'iso-operator', sha256: operatorTokenSha256(OPERATOR), role: 'operator' }, { name: 'iso-viewer', sha256: operatorTokenSha256(VIEWER), role: 'viewer' }] },
      },
    }),
  );
  admin = await connect(nats.clientOptions());
  jsm = await jetstreamManager(admin);
  bundleA = await enroll('gw-a');
  bundleB = await enroll('gw-b');
  a = await connectFakeAgent(bundleConnectionOptions(bundleA), 'gw-a');
  b = await connectFakeAgent(bundleConnectionOptions(bundleB), 'gw-b');
  // Both agents report through their own subjects: data in the stream, a key each in the fleet bucket.
  await a.publishBatch(a.batch('telemetry', 1, [telemetryRecord('dev-a', 1_700_000_000_000, { t: 1 }, 1)]));
  await b.publishBatch(b.batch('telemetry', 1, [telemetryRecord('dev-b', 1_700_000_000_000, { t: 2 }, 1)]));
  await b.heartbeat();
  const fleet = await new Kvm(admin).open(FLEET_BUCKET);
  await waitFor(async () => (await fleet.get('gw-b')) !== null, { what: "gw-b's fleet key", timeoutMs: 20_000 });
}, 120_000);

afterAll(async () => {
  await a?.close().catch(() => undefined);
  await b?.close().catch(() => undefined);
  await admin?.close();
  await cp?.close();
  await nats?.stop();
  await dir?.remove();
});

describe('agent isolation on NATS', () => {
  it('A publishing as B: the server refuses it and nothing reaches the stream', async () => {
    const before = await streamCount('outpost.uplink.gw-b.>');
    const forged = b.batch('telemetry', 2, [telemetryRecord('dev-b', 1_700_000_000_001, { t: 666 }, 2)]);
    // The batch says gw-b; A sends it on B's subject with A's connection.
    const forger = await connectFakeAgent(bundleConnectionOptions(bundleA), 'gw-b');
    const forgerRefused = nextServerError(forger.connection, (m) => m.includes('Permissions Violation'));
    await expect(forger.publishBatch(forged)).rejects.toThrow();
    expect(await forgerRefused).toMatch(/Permissions Violation for Publish to "outpost\.uplink\.gw-b\.telemetry"/);
    await forger.close();
    expect(await streamCount('outpost.uplink.gw-b.>')).toBe(before);
    // Its own subject still works.
    const own = await a.publishBatch(a.batch('telemetry', 2, [telemetryRecord('dev-a', 1_700_000_000_001, { t: 1 }, 2)]));
    expect(own.stream).toBe(UPLINK_STREAM);
  });

  it.each([
    ["B's desired-state notices", 'outpost.desired.gw-b'],
    ['the whole uplink', 'outpost.uplink.>'],
    ["everyone's replies", '_INBOX.>'],
    ["B's replies", `${'_INBOX_gw-b'}.>`],
  ])('A cannot subscribe to %s (%s)', async (_what, subject) => {
    const sub = a.connection.subscribe(subject);
    const closed = await sub.closed;
    expect(String(closed)).toMatch(new RegExp(`Permissions Violation for Subscription to "${subject.replaceAll('.', '\\.').replaceAll('>', '>')}"`));
  });

  it("A does not hear B's notices; B does", async () => {
    const heardByB = new Promise<string>((resolve) => {
      b.connection.subscribe('outpost.desired.gw-b', { callback: (_err, m) => resolve(m.subject) });
    });
    await b.connection.flush();
    admin.publish('outpost.desired.gw-b', 'rev-1');
    expect(await heardByB).toBe('outpost.desired.gw-b');
  });

  it("A cannot call B's services (desired state, model files) but can call its own", async () => {
    await expect(a.connection.request('outpost.svc.desired.gw-b', '', { timeout: 2_000 })).rejects.toThrow();
    await expect(a.connection.request('outpost.svc.model.gw-b', '{}', { timeout: 2_000 })).rejects.toThrow();
    const own = await a.connection.request('outpost.svc.desired.gw-a', '', { timeout: 10_000 });
    expect(own.data.length).toBeGreaterThan(0);
  });

  it("A has no JetStream API: it cannot create a consumer on the uplink stream, read B's KV key or write to the model store", async () => {
    const consumersBefore = (await jsm.consumers.list(UPLINK_STREAM).next()).map((c) => c.name).sort();
    const jsmA = await jetstreamManager(a.connection, { timeout: 2_000 }).catch((err: unknown) => err);
    // jetstreamManager() asks for the account info first: the account has no JetStream.
    expect(jsmA).toBeInstanceOf(Error);
    // Raw API requests, as an attacker would send them.
    const createConsumer = JSON.stringify({ stream_name: UPLINK_STREAM, config: { durable_name: 'steal', filter_subject: 'outpost.uplink.gw-b.>', ack_policy: 'none', deliver_policy: 'all' } });
    await expect(a.connection.request(`$JS.API.CONSUMER.CREATE.${UPLINK_STREAM}.steal.outpost.uplink.gw-b.>`, createConsumer, { timeout: 2_000 })).rejects.toThrow();
    await expect(a.connection.request(`$JS.API.CONSUMER.DURABLE.CREATE.${UPLINK_STREAM}.steal`, createConsumer, { timeout: 2_000 })).rejects.toThrow();
    expect((await jsm.consumers.list(UPLINK_STREAM).next()).map((c) => c.name).sort()).toEqual(consumersBefore);

    await expect(a.connection.request(`$JS.API.DIRECT.GET.KV_${FLEET_BUCKET}.$KV.${FLEET_BUCKET}.gw-b`, '', { timeout: 2_000 })).rejects.toThrow();
    await expect(a.connection.request(`$JS.API.STREAM.MSG.GET.KV_${FLEET_BUCKET}`, JSON.stringify({ last_by_subj: `$KV.${FLEET_BUCKET}.gw-b` }), { timeout: 2_000 })).rejects.toThrow();

    const objects = await jsm.streams.info(`OBJ_${MODEL_STORE_BUCKET}`).then((i) => i.state.messages).catch(() => 0);
    const refused = nextServerError(a.connection, (m) => m.includes(`$O.${MODEL_STORE_BUCKET}`));
    a.connection.publish(`$O.${MODEL_STORE_BUCKET}.C.evil`, 'not a model');
    expect(await refused).toMatch(/Permissions Violation for Publish/);
    expect(await jsm.streams.info(`OBJ_${MODEL_STORE_BUCKET}`).then((i) => i.state.messages).catch(() => 0)).toBe(objects);
  });

  it('the reply-subject injection (an allowed publish whose reply is a JetStream API or KV subject) purges, deletes and overwrites nothing', async () => {
    const fleet = await new Kvm(admin).open(FLEET_BUCKET);
    const entryBefore = await fleet.get('gw-b');
    const fleetBefore = await jsm.streams.info(`KV_${FLEET_BUCKET}`).then((i) => i.state);
    const uplinkBefore = (await jsm.streams.info(UPLINK_STREAM)).state;
    const eventsBefore = (await jsm.streams.info(AGENT_EVENTS_STREAM)).state;
    const replies = [
      `$JS.API.STREAM.PURGE.${UPLINK_STREAM}`,
      `$JS.API.STREAM.DELETE.${UPLINK_STREAM}`,
      `$JS.API.STREAM.MSG.DELETE.${UPLINK_STREAM}`,
      `$JS.API.STREAM.PURGE.KV_${FLEET_BUCKET}`,
      `$KV.${FLEET_BUCKET}.gw-b`,
      `$O.${MODEL_STORE_BUCKET}.C.evil`,
    ];
    const js = jetstream(a.connection);
    for (const [k, reply] of replies.entries()) {
      const batch = a.batch('telemetry', 10 + k, [telemetryRecord('dev-a', 1_700_000_001_000 + k, { t: k }, 10 + k)]);
      // The stream answers the publish to its reply subject: the injection.
      a.connection.publish(`outpost.uplink.gw-a.telemetry`, new TextEncoder().encode(JSON.stringify(batch)), { reply });
    }
    await a.connection.flush();
    // A request after them on the same connection: when it is answered, the injected ones were handled before it.
    await js.publish('outpost.uplink.gw-a.telemetry', new TextEncoder().encode('{}'));
    const uplinkAfter = (await jsm.streams.info(UPLINK_STREAM)).state;
    expect(uplinkAfter.first_seq).toBe(uplinkBefore.first_seq);
    expect(uplinkAfter.messages).toBe(uplinkBefore.messages + replies.length + 1);
    expect(uplinkAfter.num_deleted ?? 0).toBe(uplinkBefore.num_deleted ?? 0);
    expect((await jsm.streams.info(AGENT_EVENTS_STREAM)).state.messages).toBeGreaterThanOrEqual(eventsBefore.messages);
    const fleetAfter = await jsm.streams.info(`KV_${FLEET_BUCKET}`).then((i) => i.state);
    expect(fleetAfter.first_seq).toBe(fleetBefore.first_seq);
    expect(fleetAfter.messages).toBeGreaterThanOrEqual(fleetBefore.messages);
    const entryAfter = await fleet.get('gw-b');
    expect(entryAfter?.revision).toBe(entryBefore?.revision);
    expect(entryAfter?.string()).toBe(entryBefore?.string());
  });

  it('a viewer token cannot enrol or revoke (403 FORBIDDEN)', async () => {
    for (const path of ['/api/agents/gw-x/enroll', '/api/agents/gw-a/revoke']) {
      const { status, body } = await api('POST', path, VIEWER, path.endsWith('enroll') ? {} : undefined);
      expect(status).toBe(403);
      expect(body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
  });
});

describe('revocation', () => {
  it('drops the live connections of the revoked agent (a raw client and the agent program) within 5 s, refuses its credentials since, and a new enrolment gets a working key', async () => {
    const bundleFile = join(dir.path, 'gw-a.bundle.json');
    await writeSecretFile(bundleFile, JSON.stringify(bundleA));
    const agent: AgentProcess = await startAgentProcess(testAgentConfig(join(dir.path, 'gw-a'), { agentId: 'gw-a', uplink: { enrollmentFile: bundleFile, heartbeatIntervalMs: 500 } }));
    try {
      await waitFor(async () => metricValue(await fetchMetrics(agent.httpPort), 'outpost_uplink_connected') === 1, { what: 'gw-a connected', timeoutMs: 30_000 });
      const rawClosed = a.connection.closed();
      const started = performance.now();
      const { status } = await api('POST', '/api/agents/gw-a/revoke');
      expect(status).toBe(200);
      await rawClosed;
      const rawMs = performance.now() - started;
      await waitFor(async () => metricValue(await fetchMetrics(agent.httpPort), 'outpost_uplink_connected') === 0, { what: 'gw-a disconnected', timeoutMs: 30_000, intervalMs: 50 });
      const agentMs = performance.now() - started;
      console.log(`revocation: raw connection dropped after ${rawMs.toFixed(0)} ms, the agent's after ${agentMs.toFixed(0)} ms`);
      expect(rawMs).toBeLessThan(5_000);
      expect(agentMs).toBeLessThan(5_000);

      await expect(connect({ ...bundleConnectionOptions(bundleA), reconnect: false, timeout: 5_000 })).rejects.toThrow(/Authorization Violation|authorization/i);
      // B is untouched.
      expect(b.connection.isClosed()).toBe(false);
      await b.heartbeat();

      const renewed = await enroll('gw-a');
      expect(renewed.userPublicKey).not.toBe(bundleA.userPublicKey);
      const again = await connect({ ...bundleConnectionOptions(renewed), reconnect: false, timeout: 5_000 });
      await again.close();
      await expect(connect({ ...bundleConnectionOptions(bundleA), reconnect: false, timeout: 5_000 })).rejects.toThrow();
    } finally {
      await agent.kill9();
    }
  });
});

describe('TLS on NATS', () => {
  it('a client trusting another CA gets no connection', async () => {
    const foreign = createPki(dir.path, 'foreign-ca');
    const options = { ...bundleConnectionOptions(bundleB), tls: { caFile: foreign.caCert }, reconnect: false, timeout: 5_000 };
    await expect(connect(options)).rejects.toThrow(/certificate|self.signed|unable to verify/i);
  });

  it('a server whose certificate names another host gets no connection from an agent', async () => {
    await using other = await startNatsServer({ secure: { hosts: ['nats.example.com'] } });
    const otherBundle = EnrollmentBundleSchema.parse(JSON.parse(await readFile(await other.security!.enroll('gw-h'), 'utf8')));
    await expect(connect({ ...bundleConnectionOptions(otherBundle), reconnect: false, timeout: 5_000 })).rejects.toThrow(/altnames|hostname|IP: 127\.0\.0\.1 is not in the cert/i);
    // The control plane's client too.
    await expect(connect({ ...other.clientOptions(), reconnect: false, timeout: 5_000 })).rejects.toThrow(/altnames|hostname|not in the cert/i);
  });

  it('a server that wants client certificates takes an agent with one and refuses one without', async () => {
    await using mtls = await startNatsServer({ secure: { clientCerts: true } });
    const security = mtls.security!;
    const bundleFile = await security.enroll('gw-m');
    const options = bundleConnectionOptions(EnrollmentBundleSchema.parse(JSON.parse(await readFile(bundleFile, 'utf8'))));
    await expect(connect({ ...options, reconnect: false, timeout: 5_000 })).rejects.toThrow();
    const withCert = await connect({ ...options, tls: { ...options.tls, certFile: security.clientCert!.cert, keyFile: security.clientCert!.key }, reconnect: false, timeout: 5_000 });
    await withCert.close();
    // The agent program, with the certificate in its config, drains through it.
    const agent = await startAgentProcess(
      testAgentConfig(join(dir.path, 'gw-m'), { agentId: 'gw-m', uplink: { enrollmentFile: bundleFile, tls: { certFile: security.clientCert!.cert, keyFile: security.clientCert!.key }, heartbeatIntervalMs: 500 } }),
    );
    try {
      await waitFor(async () => metricValue(await fetchMetrics(agent.httpPort), 'outpost_uplink_connected') === 1, { what: 'gw-m connected over mTLS', timeoutMs: 30_000 });
    } finally {
      await agent.kill9();
    }
  });

  it('a plaintext client gets no connection: the server wants TLS first and never answers its PING', async () => {
    const socket = createConnection({ host: '127.0.0.1', port: nats.port });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    await once(socket, 'connect');
    await waitFor(() => received.includes('\r\n'), { what: 'the INFO line', timeoutMs: 10_000 });
    expect(received).toMatch(/^INFO .*"tls_required":true/);
    socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
    await once(socket, 'close');
    expect(received).not.toContain('PONG');
  });
});

describe('outpostctl agents enroll / revoke', () => {
  const ctl = (...args: string[]) => runOutpostctl(args, { env: { OUTPOST_URL: `http://127.0.0.1:${cp.httpPort}`, OUTPOST_TOKEN: OPERATOR } });

  it('writes the bundle 0600 and never prints it; the agent connects with it and carries its labels; revoke drops it', async () => {
    const file = join(dir.path, 'bundles', 'gw-c.json');
    const enrolled = await ctl('agents', 'enroll', 'gw-c', '--labels', 'site=north,line=2', '--labels', 'zone=b', '--out', file);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const bundle = EnrollmentBundleSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    expect(bundle.labels).toEqual({ site: 'north', line: '2', zone: 'b' });
    const seed = /SUA[A-Z2-7]{20,}/.exec(bundle.creds)![0];
    const jwt = /eyJ[\w-]+\.[\w-]+\.[\w-]+/.exec(bundle.creds)![0];
    for (const output of [enrolled.stdout, enrolled.stderr]) {
      expect(output).not.toContain(seed);
      expect(output).not.toContain(jwt);
    }
    expect(enrolled.stdout).toContain(`gw-c enrolled`);
    expect(enrolled.stdout).toContain(bundle.userPublicKey);
    const asJson = await ctl('--json', 'agents', 'enroll', 'gw-c', '--out', file, '--force');
    expect(asJson.code, asJson.stderr).toBe(0);
    expect(asJson.stdout).not.toContain('SUA');
    expect(JSON.parse(asJson.stdout)).toMatchObject({ agentId: 'gw-c', bundleFile: file });
    // The key rotated: the first bundle's user is revoked, the file holds the new one.
    const rotated = EnrollmentBundleSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    expect(rotated.userPublicKey).not.toBe(bundle.userPublicKey);
    await expect(connect({ ...bundleConnectionOptions(bundle), reconnect: false, timeout: 5_000 })).rejects.toThrow();

    const again = await ctl('agents', 'enroll', 'gw-c', '--out', file);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('give --force to overwrite it');

    const agent = await startAgentProcess(testAgentConfig(join(dir.path, 'gw-c'), { agentId: 'gw-c', labels: { zone: 'c' }, uplink: { enrollmentFile: file, heartbeatIntervalMs: 500 } }));
    try {
      const apiGet = async () => (await api('GET', '/api/agents/gw-c', VIEWER)).body as { status?: string; labels?: Record<string, string> };
      await waitFor(async () => (await apiGet()).status === 'online', { what: 'gw-c online', timeoutMs: 30_000 });
      // The bundle's labels, the config's own winning.
      expect((await apiGet()).labels).toEqual({ site: 'north', line: '2', zone: 'c' });
      const revoked = await ctl('agents', 'revoke', 'gw-c');
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toContain(`${rotated.userPublicKey} refused since`);
      await waitFor(async () => metricValue(await fetchMetrics(agent.httpPort), 'outpost_uplink_connected') === 0, { what: 'gw-c dropped', timeoutMs: 30_000 });
    } finally {
      await agent.kill9();
    }
    expect((await ctl('agents', 'revoke', 'gw-never')).code).toBe(3);
    const viewer = await runOutpostctl(['agents', 'revoke', 'gw-a'], { env: { OUTPOST_URL: `http://127.0.0.1:${cp.httpPort}`, OUTPOST_TOKEN: VIEWER } });
    expect(viewer.code).not.toBe(0);
    expect(viewer.stderr).toContain('FORBIDDEN');
  });
});
