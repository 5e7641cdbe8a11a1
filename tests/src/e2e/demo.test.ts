import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { AgentConfigSchema, AgentListResponseSchema, DeviceListResponseSchema, generateSigningKey, publicKeyFromPem, verifySignedManifest } from '@outpost/shared';
import { listDemoSecrets } from '../demo/demo-secrets.js';
import { DemoSetupError, waitForAgentInference } from '../demo/demo-stack.js';
import { startDemoProcess, type StartedDemoProcess } from '../demo/processes.js';
import { agentConfig, BINARIES, DEV_SIGNING_KEY_FILE, demoPaths, generateDevicePasswords, MANUAL_DEVICE_ID, planDemoAgents, prepareDemoModel } from '../demo/stack-config.js';
import { isStillRunning, listDescendants } from '../harness/process-tree.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { spawnOwned, waitFor, type OwnedProcess } from '../harness/wait.js';

const DEMO_MAIN = fileURLToPath(new URL('../../dist/demo/main.js', import.meta.url));
const DEVICES = 20;
const MODEL = 'anomaly-pca@1.0.0';

interface DemoReady {
  event: 'demo-ready';
  dashboardUrl: string;
  apiUrl: string;
  tokenFile: string;
  natsUrl: string;
  security: { mode: string; caFile: string; authDir: string; bundles: Record<string, string> } | null;
  agents: { agentId: string; mqttUrl: string; labels: Record<string, string>; devices: string[]; model: string | null }[];
  model: { name: string; version: string; onnxPath: string; signedManifestPath: string; keyFile: string; keyId: string; keyGenerated: boolean } | null;
  ratePerS: number;
  device: { username: string; password: string };
  pid: number;
}

let dir: TempDir | undefined;
let demo: OwnedProcess | undefined;
let agent: StartedDemoProcess | undefined;
afterEach(async () => {
  await demo?.kill();
  demo = undefined;
  await agent?.stop(1_000);
  agent = undefined;
  await dir?.remove();
});

/** GET a JSON API path with the operator token the demo printed. */
async function getJson(url: string, token: string): Promise<unknown> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return response.json();
}

describe('npm run demo', () => {
  it(`starts the stack secured (NATS JWT + TLS, agents enrolled) with local inference, delivers telemetry and inference results of all ${DEVICES} devices to the control plane, stops cleanly on SIGINT, and prints none of its secrets`, async () => {
    expect(existsSync(DEMO_MAIN), `${DEMO_MAIN} missing: run npm run build first`).toBe(true);
    dir = await createTempDir('outpost-demo-e2e-');
    demo = await spawnOwned(process.execPath, [DEMO_MAIN, '--devices', String(DEVICES), '--http-port', '0', '--data-dir', join(dir.path, 'demo')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { child } = demo;
    let stderr = '';
    let stdout = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const stdoutClosed = new Promise<void>((resolve) => child.stdout!.once('close', resolve));
    const startedAt = performance.now();

    const ready = await new Promise<DemoReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no demo-ready line within 120 s; stderr:\n${stderr}`)), 120_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        stdout += `${line}\n`;
        if (!line.startsWith('{')) return;
        const entry = JSON.parse(line) as { event?: string };
        if (entry.event === 'demo-ready') {
          clearTimeout(timer);
          resolve(entry as DemoReady);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`demo exited before ready (code ${code}, signal ${signal}); stderr:\n${stderr}`));
      });
    });
    const startMs = performance.now() - startedAt;
    const token = (await readFile(ready.tokenFile, 'utf8')).trim();
    expect((await stat(ready.tokenFile)).mode & 0o777).toBe(0o600);
    expect(ready.agents).toHaveLength(3);
    expect(new Set(ready.agents.map((a) => JSON.stringify(a.labels))).size).toBe(3);
    expect(new Set(ready.agents.map((a) => a.mqttUrl)).size).toBe(3);
    for (const a of ready.agents) expect(a.mqttUrl).not.toMatch(/:1883$/);
    expect(ready.natsUrl).not.toMatch(/:4222$/);
    expect(ready.device.password.length).toBeGreaterThan(8);
    expect((await fetch(ready.dashboardUrl)).status).toBe(200);
    // The API is closed to anyone without the demo's operator token, which the demo does not print.
    expect((await fetch(`${ready.apiUrl}/agents`)).status).toBe(401);
    expect(ready.dashboardUrl).not.toContain(token);
    expect(stdout).toContain(`export OUTPOST_URL=${new URL(ready.apiUrl).origin} OUTPOST_TOKEN=$(cat ${ready.tokenFile})`);

    // NATS secured as in production: TLS with the demo's CA, JWT auth, agents enrolled through the API.
    const dataDir = join(dir.path, 'demo');
    const paths = demoPaths(dataDir);
    expect(ready.natsUrl).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.security).toMatchObject({ mode: 'jwt+tls', caFile: join(paths.natsTls, 'outpost-demo-ca.crt'), authDir: paths.natsAuth });
    expect(stderr).toContain('JWT auth + TLS');
    // A client the server's certificate satisfies, but without credentials, is refused.
    const anonymous = await connect({ servers: ready.natsUrl, tls: { caFile: ready.security!.caFile }, reconnect: false, timeout: 10_000 }).then(
      async (nc) => {
        await nc.close();
        return 'connected';
      },
      (error: unknown) => String(error),
    );
    expect(anonymous).toMatch(/Authorization|authentication|auth/i);
    // Without TLS, no connection either.
    const plaintext = await connect({ servers: ready.natsUrl.replace('tls://', 'nats://'), reconnect: false, timeout: 10_000 }).then(
      async (nc) => {
        await nc.close();
        return 'connected';
      },
      (error: unknown) => String(error),
    );
    expect(plaintext).not.toBe('connected');
    for (const a of ready.agents) {
      const bundle = ready.security!.bundles[a.agentId]!;
      expect(bundle).toBe(paths.agentBundle(a.agentId));
      expect((await stat(bundle)).mode & 0o777, bundle).toBe(0o600);
      // The config points at the bundle: servers, creds, CA, labels and the model key come from it.
      const config = AgentConfigSchema.parse(JSON.parse(await readFile(paths.agentConfig(a.agentId), 'utf8')));
      expect(config.uplink).toMatchObject({ enrollmentFile: bundle });
      expect(config.uplink!.servers).toBeUndefined();
      expect(config.labels).toEqual({});
      expect(config.inference.trustedKeys).toEqual([]);
    }
    for (const name of (await readdir(paths.natsAuth)).filter((f) => f.endsWith('.creds') || f.endsWith('.nk'))) {
      expect((await stat(join(paths.natsAuth, name))).mode & 0o777, name).toBe(0o600);
    }
    for (const name of (await readdir(paths.natsTls)).filter((f) => f.endsWith('.key'))) {
      expect((await stat(join(paths.natsTls, name))).mode & 0o777, name).toBe(0o600);
    }

    // Every agent reports serving the shipped model, whose manifest the demo signed with the
    // repository's dev key into its data dir; the signature verifies with that key.
    expect(ready.agents.map((a) => a.model)).toEqual([MODEL, MODEL, MODEL]);
    expect(ready.model).toMatchObject({ name: 'anomaly-pca', version: '1.0.0', keyFile: DEV_SIGNING_KEY_FILE, keyId: 'dev-signing-key' });
    const model = ready.model!;
    expect(model.signedManifestPath.startsWith(join(dir.path, 'demo'))).toBe(true);
    // A key made by this start is private; one made earlier (by a demo or `models sign`) is the user's to keep.
    if (model.keyGenerated) expect((await stat(DEV_SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600);
    const trustedKey = { keyId: model.keyId, publicKey: publicKeyFromPem(await readFile(DEV_SIGNING_KEY_FILE, 'utf8')) };
    const signed: unknown = JSON.parse(await readFile(model.signedManifestPath, 'utf8'));
    expect(verifySignedManifest(signed, [trustedKey], Date.now())).toMatchObject({ name: 'anomaly-pca', version: '1.0.0' });

    // Where the operator looks: every device of every agent, with telemetry and inference
    // results received (the first after 32 messages, 16 s at the default rate).
    const expected = Array.from({ length: DEVICES }, (_, i) => `dev-${String(i + 1).padStart(4, '0')}`);
    const seen = await waitFor(
      async () => {
        const { agents } = AgentListResponseSchema.parse(await getJson(`${ready.apiUrl}/agents`, token));
        const telemetry = new Set<string>();
        const inference = new Set<string>();
        for (const a of agents) {
          const { devices } = DeviceListResponseSchema.parse(await getJson(`${ready.apiUrl}/agents/${a.agentId}/devices`, token));
          for (const d of devices) {
            if ((d.kinds['telemetry'] ?? 0) > 0) telemetry.add(d.deviceId);
            // The demo's agents send score summaries upstream (inference.upstream's default), not every score.
            if ((d.kinds['inference-summary'] ?? 0) + (d.kinds['inference'] ?? 0) > 0) inference.add(d.deviceId);
          }
        }
        return expected.every((id) => telemetry.has(id) && inference.has(id)) ? { telemetry, inference } : undefined;
      },
      { what: `telemetry and inference results from all ${DEVICES} simulated devices in the control-plane API`, timeoutMs: 120_000, intervalMs: 500 },
    );
    expect([...seen.telemetry].filter((id) => id.startsWith('dev-')).sort()).toEqual(expected);
    expect([...seen.inference].filter((id) => id.startsWith('dev-')).sort()).toEqual(expected);
    // The agents' heartbeats say the same: inference up with the shipped model; and their labels, which only their bundles hold.
    const { agents } = AgentListResponseSchema.parse(await getJson(`${ready.apiUrl}/agents`, token));
    expect(agents.map((a) => ({ agentId: a.agentId, labels: a.labels, inference: a.inference && { up: a.inference.up, model: a.inference.model } })).sort((x, y) => x.agentId.localeCompare(y.agentId))).toEqual(
      ready.agents.map((a) => ({ agentId: a.agentId, labels: a.labels, inference: { up: true, model: MODEL } })),
    );

    const children = listDescendants(child.pid!);
    // nats-server, the control plane, 3 agents, 3 simulators.
    expect(children.filter((p) => p.ppid === child.pid).length).toBeGreaterThanOrEqual(8);
    child.kill('SIGINT');
    expect(await exited, stderr).toEqual({ code: 0, signal: null });
    const left = children.filter(isStillRunning);
    expect(left.map((p) => `${p.pid} ${p.command}`)).toEqual([]);
    expect(stderr).toContain('demo: stopped');

    // Nothing the demo printed, nor any log of its processes, holds a secret of its data dir.
    await stdoutClosed;
    const logs = await Promise.all((await readdir(paths.logs)).map(async (name) => ({ name, text: await readFile(join(paths.logs, name), 'utf8') })));
    expect(logs.map((l) => l.name).sort()).toEqual(['control-plane.log', 'demo-agent-1.log', 'demo-agent-2.log', 'demo-agent-3.log', 'nats-server.log', 'simulator-demo-agent-1.log', 'simulator-demo-agent-2.log', 'simulator-demo-agent-3.log']);
    // The search is over real output: the banner, the nats-server log, the agents' ready lines.
    expect(stdout).toContain('Outpost demo is running');
    expect(logs.find((l) => l.name === 'nats-server.log')!.text).toContain('Server is ready');
    const secrets = await listDemoSecrets(dataDir);
    // The token, 2 creds and 2 signing keys of setup, 3 bundles, the CA's and the server's TLS keys, 20 device passwords.
    expect(secrets.size).toBe(1 + 2 + 2 + 3 + 2 + DEVICES);
    const printed = [{ name: 'stdout', text: stdout }, { name: 'stderr', text: stderr }, ...logs];
    const found = [...secrets].flatMap(([what, secret]) => printed.filter((p) => p.text.includes(secret)).map((p) => `${what} in ${p.name}`));
    expect(found).toEqual([]);
    console.log(`demo e2e: secured demo ready ${(startMs / 1000).toFixed(1)} s after spawn; ${secrets.size} secrets searched in ${printed.length} outputs (${printed.reduce((n, p) => n + p.text.length, 0)} chars)`);
  });

  it("stops with the agent's own reason when an agent refuses the demo's model", async () => {
    expect(existsSync(BINARIES.agent), `${BINARIES.agent} missing: run npm run build first`).toBe(true);
    dir = await createTempDir('outpost-demo-e2e-');
    const dataDir = join(dir.path, 'demo');
    await mkdir(demoPaths(dataDir).agents, { recursive: true });
    // Signed with a key of this test; the agent trusts another key under the same id.
    const model = await prepareDemoModel(dataDir, join(dir.path, 'keys', 'dev-signing-key.pem'));
    const impostor = generateSigningKey(model.trustedKey.keyId).trustedKey;
    const [plan] = planDemoAgents({ agents: 1, devices: 1, sim: true });
    // No uplink (dropped below, the URL only fills the config): this agent only has to load (and refuse) its model.
    const config = await agentConfig(plan!, { servers: ['nats://uplink.invalid'] }, dataDir, generateDevicePasswords([...plan!.deviceIds, MANUAL_DEVICE_ID]), { ...model, trustedKey: impostor });
    const file = demoPaths(dataDir).agentConfig(plan!.agentId);
    await writeFile(file, JSON.stringify({ ...config, uplink: undefined }));
    agent = await startDemoProcess({ name: `agent ${plan!.agentId}`, file: process.execPath, args: [BINARIES.agent, '--config', file], readyEvent: 'agent-ready', logFile: join(dir.path, 'agent.log') });

    const refused = await waitForAgentInference(agent, model).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DemoSetupError);
    const message = (refused as DemoSetupError).message;
    expect(message).toContain(`agent ${plan!.agentId} does not run the model anomaly-pca@1.0.0`);
    expect(message).toContain('MODEL_SIGNATURE_INVALID');
    expect(message).toContain('--no-inference');
  });
});
