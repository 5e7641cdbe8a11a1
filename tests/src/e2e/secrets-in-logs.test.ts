import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnrollmentBundleSchema, type EnrollmentBundle } from '@outpost/shared';
import { hashPassword } from '@outpost/agent';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { CONTROL_PLANE_MAIN, operatorTokenSha256, startControlPlaneProcess, testControlPlaneConfig, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

// Nothing secret in what our processes print (DESIGN section 4): a control plane and an agent,
// both at debug level, go through enrolment, a refused and an accepted API token, a refused and
// an accepted device password, a bad bundle file, data, and revocation; then every line they
// wrote is searched for every secret this test generated.

const run = promisify(execFile);
const OPERATOR = `op-${Math.random().toString(36).slice(2)}-token`;
const VIEWER = `view-${Math.random().toString(36).slice(2)}-token`;
const WRONG_TOKEN = `wrong-${Math.random().toString(36).slice(2)}-token`;
const DEVICE_PASSWORD = `pw-${Math.random().toString(36).slice(2)}`;
const WRONG_PASSWORD = `bad-${Math.random().toString(36).slice(2)}`;

let dir: TempDir;
let nats: NatsServer;
let cp: ControlPlaneProcess;
let agent: AgentProcess;
/** Every secret, by what it is. */
const secrets = new Map<string, string>();
/** Everything our processes and commands printed. */
const printed: string[] = [];

async function api(method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: await response.json() };
}

/** The secret parts of a creds file: the seed and the JWT (together, a NATS identity). */
function addCreds(what: string, creds: string): void {
  secrets.set(`${what} seed`, /S[UAO][A-Z2-7]{50,}/.exec(creds)![0]);
  secrets.set(`${what} JWT`, /eyJ[\w-]+\.[\w-]+\.[\w-]+/.exec(creds)![0]);
}

/** The base64 body of a PEM private key (its longest line is enough to find it). */
function addPrivateKey(what: string, pem: string): void {
  const lines = pem.split('\n').filter((l) => !l.startsWith('-----') && l.length > 20);
  secrets.set(what, lines.sort((a, b) => b.length - a.length)[0]!);
}

beforeAll(async () => {
  dir = await createTempDir('outpost-secrets-');
  nats = await startNatsServer({ secure: true });
  const security = nats.security!;
  cp = await startControlPlaneProcess(
    testControlPlaneConfig(nats, {
      log: { level: 'debug' },
      http: {
        host: '127.0.0.1',
        port: 0,
        dashboardDir: '/nonexistent',
        auth: { tokens: [{ name: 'ops', sha256: operatorTokenSha256(OPERATOR), role: 'operator' }, { name: 'view', sha256: operatorTokenSha256(VIEWER), role: 'viewer' }] },
      },
    }),
    dir.path,
  );
  expect((await api('POST', '/api/agents/gw-s/enroll', WRONG_TOKEN, {})).status).toBe(401);
  expect((await api('POST', '/api/agents/gw-s/enroll', VIEWER, {})).status).toBe(403);
  const enrolled = await api('POST', '/api/agents/gw-s/enroll', OPERATOR, { labels: { site: 'secret-test' } });
  expect(enrolled.status).toBe(201);
  const bundle: EnrollmentBundle = EnrollmentBundleSchema.parse(enrolled.body);
  const bundleFile = join(dir.path, 'gw-s.bundle.json');
  await writeFile(bundleFile, JSON.stringify(bundle), { mode: 0o600 });

  // A bundle others may read: refused at start, and the refusal quotes nothing of it.
  const looseFile = join(dir.path, 'gw-s.loose.json');
  await writeFile(looseFile, JSON.stringify(bundle));
  await chmod(looseFile, 0o644);
  const refused = await startAgentProcess(testAgentConfig(join(dir.path, 'gw-loose'), { agentId: 'gw-s', uplink: { enrollmentFile: looseFile } }), { timeoutMs: 20_000 }).then(
    async (a) => {
      await a.kill9();
      return 'started';
    },
    (err: unknown) => String(err),
  );
  expect(refused).toContain('SECRET_FILE_UNSAFE');
  printed.push(refused);

  agent = await startAgentProcess(
    testAgentConfig(join(dir.path, 'gw-s'), {
      agentId: 'gw-s',
      log: { level: 'debug' },
      broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices: [{ id: 'dev-1', passwordHash: await hashPassword(DEVICE_PASSWORD, { costLog2: 10 }) }] },
      uplink: { enrollmentFile: bundleFile, heartbeatIntervalMs: 500 },
    }),
  );
  const url = `mqtt://127.0.0.1:${agent.mqttPort}`;
  await expect(connectDevice(url, { clientId: 'dev-1', username: 'dev-1', password: WRONG_PASSWORD })).rejects.toMatchObject({ code: 4 });
  const device = await connectDevice(url, { clientId: 'dev-1', username: 'dev-1', password: DEVICE_PASSWORD });
  for (let seq = 1; seq <= 5; seq++) await publish(device, 'devices/dev-1/telemetry', telemetryPayload(seq));
  device.end(true);
  await waitFor(async () => ((await api('GET', '/api/agents/gw-s', VIEWER)).body as { devices?: number }) !== undefined && (await api('GET', '/api/agents/gw-s/devices/dev-1', VIEWER)).status === 200, {
    what: 'dev-1 at the control plane',
    timeoutMs: 30_000,
  });
  expect((await api('POST', '/api/agents/gw-s/revoke', OPERATOR)).status).toBe(200);
  await waitFor(async () => metricValue(await fetchMetrics(agent.httpPort), 'outpost_uplink_connected') === 0, { what: 'gw-s dropped', timeoutMs: 30_000 });
  // The agent tries again with its revoked key for a while: those refusals are logged too.
  await waitFor(() => agent.output().includes('uplink'), { what: 'uplink lines in the agent log', timeoutMs: 10_000 });

  // `outpost-control-plane setup` prints where it wrote things, nothing of them.
  const setupOut = join(dir.path, 'setup');
  const setup = await run(process.execPath, [CONTROL_PLANE_MAIN, 'setup', '--out', setupOut]);
  printed.push(setup.stdout, setup.stderr);

  // What this test generated: tokens, passwords, the agent's identity, every key and creds file.
  secrets.set('operator token', OPERATOR);
  secrets.set('viewer token', VIEWER);
  secrets.set('a wrong token', WRONG_TOKEN);
  secrets.set('device password', DEVICE_PASSWORD);
  secrets.set('a wrong device password', WRONG_PASSWORD);
  addCreds('agent creds', bundle.creds);
  for (const [what, files] of [
    ['harness setup', security.files],
    ['setup command', { controlPlaneCredsFile: join(setupOut, 'control-plane.creds'), systemCredsFile: join(setupOut, 'system.creds'), agentsSigningKeyFile: join(setupOut, 'agents-signing.nk'), operatorSigningKeyFile: join(setupOut, 'operator-signing.nk') }],
  ] as const) {
    addCreds(`${what} control-plane creds`, await readFile(files.controlPlaneCredsFile, 'utf8'));
    addCreds(`${what} system creds`, await readFile(files.systemCredsFile, 'utf8'));
    secrets.set(`${what} agents signing seed`, (await readFile(files.agentsSigningKeyFile, 'utf8')).trim());
    secrets.set(`${what} operator signing seed`, (await readFile(files.operatorSigningKeyFile, 'utf8')).trim());
  }
  const pkiDir = join(nats.configFile, '..', 'pki');
  for (const name of (await readdir(pkiDir)).filter((f) => f.endsWith('.key'))) addPrivateKey(`TLS private key ${name}`, await readFile(join(pkiDir, name), 'utf8'));
}, 180_000);

afterAll(async () => {
  await agent?.kill9();
  await cp?.kill9();
  await nats?.stop();
  await dir?.remove();
});

describe('secrets in logs', () => {
  it('the control plane, the agent and the setup command print none of the secrets the test generated', () => {
    const everything = [cp.output(), agent.output(), ...printed].join('\n');
    // The logs are there and say what happened: the search below is over real lines.
    expect(cp.output()).toContain('agent enrolled');
    expect(cp.output()).toContain('agent revoked');
    expect(agent.output()).toContain('uplink connected');
    expect(secrets.size).toBeGreaterThanOrEqual(20);
    const found = [...secrets].filter(([, secret]) => everything.includes(secret)).map(([what]) => what);
    expect(found).toEqual([]);
  });
});
