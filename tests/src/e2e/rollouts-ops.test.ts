// Config rollouts and rollouts under trouble, end to end: a new device credential and a lower
// rate limit applied live without dropping a device connection; an invalid config refused by
// every agent of the first wave with the path of the bad key; an agent offline through its
// wave; two control-plane replicas, one killed with SIGKILL again and again mid-rollout;
// outpostctl pausing, resuming, aborting and rolling back mid-rollout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword } from '@outpost/agent';
import { generateSigningKey, type AgentListResponse } from '@outpost/shared';
import { controlPlaneApi, runOutpostctl, startControlPlaneProcess, testControlPlaneConfig, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { rolloutApi, startTestFleet, type TestFleet } from '../harness/rollout-fleet.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const key = generateSigningKey('ops-key');
let dir: TempDir;
let nats: NatsServer;
let replicas: ControlPlaneProcess[];
let fleet: TestFleet;
let disconnects = 0;

const cpConfig = () => testControlPlaneConfig(nats, { rollouts: { tickMs: 200 }, fleet: { offlineAfterMs: 3_000 } });

beforeAll(async () => {
  dir = await createTempDir('outpost-rollout-ops-');
  nats = await startNatsServer({ secure: true });
  replicas = await Promise.all([startControlPlaneProcess(cpConfig(), dir.path), startControlPlaneProcess(cpConfig(), dir.path)]);
  fleet = await startTestFleet({ dir: dir.path, nats, key, count: 6, ratePerDevicePerS: 10 });
  for (const d of fleet.agents.flatMap((a) => a.devices)) d.client.on('close', () => disconnects++);
  await waitFor(async () => (await agents()).length === 6, { what: 'six agents known', timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await fleet?.close();
  await Promise.all((replicas ?? []).map((r) => r.kill9()));
  await nats?.stop();
  await dir?.remove();
});

/** The agent reports it applied the change of rollout `id` (its config version is that of its own merged patches). */
function appliedBy(agent: AgentListResponse['agents'][number] | undefined, id: string): boolean {
  return agent?.desired?.status === 'applied' && agent.desired.origin?.rolloutId === id && agent.desired.origin.action === 'apply';
}

async function agents(port = replicas[0]!.httpPort): Promise<AgentListResponse['agents']> {
  return (await controlPlaneApi(port).get<AgentListResponse>('/api/agents')).body.agents;
}

describe('config rollouts', () => {
  it('a new device credential and a lower rate limit apply without dropping any device connection', async () => {
    const api = rolloutApi(replicas[0]!.httpPort);
    const passwordHash = await hashPassword('new-device-pw', { costLog2: 10 });
    const created = await api.create({
      id: 'new-credential',
      name: 'a new device and a lower rate limit',
      change: { config: { broker: { devices: [{ id: 'new-dev', passwordHash }] }, ingest: { rateLimitMsgsPerS: 500 } } },
      strategy: { waves: [2, 4], soak: '1s', waveDeadline: '30s' },
    });
    expect(created.status).toBe(201);
    const done = await api.waitFor('new-credential', ['succeeded', 'paused', 'rolled-back']);
    expect(done.status, done.reason).toBe('succeeded');
    expect(disconnects).toBe(0);
    const version = done.configVersion!;
    await waitFor(async () => (await agents()).every((a) => a.versions?.config === version), { what: `every agent on config ${version}` });
    // The credential works on every agent: the new device connects with its password and publishes.
    for (const agent of fleet.agents) {
      const device = await connectDevice(`mqtt://127.0.0.1:${agent.process.mqttPort}`, { clientId: 'new-dev', username: 'new-dev', password: 'new-device-pw' });
      await publish(device, 'devices/new-dev/telemetry', telemetryPayload(1));
      device.end(true);
    }
    expect(disconnects).toBe(0);
  }, 120_000);

  it('an invalid config is refused by every agent of the first wave with the path of the bad key, and the rollout stops there', async () => {
    const api = rolloutApi(replicas[0]!.httpPort);
    const created = await api.create({
      id: 'bad-config',
      name: 'a negative rate limit',
      change: { config: { ingest: { rateLimitMsgsPerS: -5 } } },
      strategy: { waves: [2, 4], soak: '1s', waveDeadline: '30s' },
      onFailure: 'pause',
    });
    expect(created.status).toBe(201);
    const stopped = await api.waitFor('bad-config', ['paused', 'succeeded', 'rolled-back']);
    expect(stopped.status).toBe('paused');
    expect(stopped.targets).toHaveLength(2);
    expect(stopped.waves[0]!.failed).toHaveLength(2);
    for (const failed of stopped.waves[0]!.failed) expect(failed.reason).toMatch(/^refused: CONFIG_INVALID ingest\.rateLimitMsgsPerS: /);
    const refused = (await agents()).filter((a) => a.desired?.origin?.rolloutId === 'bad-config');
    expect(refused.map((a) => a.agentId).sort()).toEqual(stopped.targets.map((t) => t.agentId).sort());
    for (const a of refused) expect(a.desired).toMatchObject({ status: 'refused', code: 'CONFIG_INVALID' });
    // Nothing changed on them: they still run the previous config.
    const previous = (await api.get('new-credential')).body.configVersion;
    for (const a of refused) expect(a.versions?.config).toBe(previous);
    expect((await api.act('bad-config', 'abort')).body.status).toBe('aborted');
  }, 120_000);

  it('an agent offline through its wave counts against the failure budget after the deadline, and converges within 30 s of coming back', async () => {
    const api = rolloutApi(replicas[0]!.httpPort);
    const offline = fleet.agents[5]!;
    await offline.process.kill9();
    await waitFor(async () => (await agents()).find((a) => a.agentId === offline.agentId)?.status === 'offline', { what: `${offline.agentId} offline` });
    const created = await api.create({
      id: 'while-offline',
      name: 'heartbeat every 400 ms',
      change: { config: { uplink: { heartbeatIntervalMs: 400 } } },
      strategy: { waves: ['100%'], soak: '1s', waveDeadline: '8s', failureBudget: 1 },
    });
    expect(created.status).toBe(201);
    const done = await api.waitFor('while-offline', ['succeeded', 'paused', 'rolled-back']);
    expect(done.status, done.reason).toBe('succeeded');
    expect(done.waves[0]!.failed).toEqual([{ agentId: offline.agentId, reason: 'no answer before the wave deadline' }]);
    expect(done.waves[0]!.settledAtMs! - done.waves[0]!.startedAtMs!).toBeGreaterThanOrEqual(8_000);
    const backAt = Date.now();
    await fleet.restart(offline.agentId);
    await waitFor(async () => appliedBy((await agents()).find((a) => a.agentId === offline.agentId), 'while-offline'), {
      what: `${offline.agentId} on the rollout's config after it came back`,
      timeoutMs: 30_000,
    });
    console.log(`offline agent converged ${Date.now() - backAt} ms after its restart`);
  }, 120_000);
});

describe('two control-plane replicas', () => {
  it('one killed with SIGKILL at several points mid-rollout: the rollout completes, no step lost or repeated', async () => {
    const api = (i: number) => rolloutApi(replicas[i]!.httpPort);
    const created = await api(0).create({
      id: 'through-kills',
      name: 'heartbeat every 450 ms',
      change: { config: { uplink: { heartbeatIntervalMs: 450 } } },
      // A soak long enough that every kill below lands while the rollout is still in motion.
      strategy: { waves: [1, 1, 1, 1, 2], soak: '5s', waveDeadline: '30s' },
    });
    expect(created.status).toBe(201);
    // Kill the replica a step was just written by, alternating, each time the history grows.
    const kills: string[] = [];
    for (const atStep of [2, 3, 5, 7, 9]) {
      const victim = kills.length % 2;
      const seen = await waitFor(
        async () => {
          const view = (await api(1 - victim).get('through-kills')).body;
          return view.history.length >= atStep ? view : undefined;
        },
        { what: `step ${atStep}`, timeoutMs: 60_000, intervalMs: 50 },
      );
      await replicas[victim]!.kill9();
      kills.push(`replica ${victim} at step ${seen.history.length} (${seen.history.at(-1)!.action})`);
      replicas[victim] = await startControlPlaneProcess(cpConfig(), dir.path);
    }
    const done = await api(0).waitFor('through-kills', ['succeeded', 'paused', 'rolled-back']);
    console.log(`kills: ${kills.join('; ')}`);
    expect(kills.filter((k) => !k.endsWith('(succeeded)'))).toHaveLength(5);
    expect(done.status, done.reason).toBe('succeeded');
    expect(done.history.map((h) => h.seq)).toEqual(done.history.map((_, i) => i + 1));
    expect(done.history.map((h) => [h.action, h.wave])).toEqual([
      ['created', undefined],
      ['wave-started', 0],
      ['wave-passed', 0],
      ['wave-started', 1],
      ['wave-passed', 1],
      ['wave-started', 2],
      ['wave-passed', 2],
      ['wave-started', 3],
      ['wave-passed', 3],
      ['wave-started', 4],
      ['succeeded', 4],
    ]);
    expect(new Set(done.targets.map((t) => t.agentId)).size).toBe(6);
    await waitFor(async () => (await agents(replicas[1]!.httpPort)).every((a) => appliedBy(a, 'through-kills')), { what: 'every agent on the config' });
  }, 180_000);
});

describe('outpostctl on a real fleet', () => {
  const ctl = (...args: string[]) => runOutpostctl(args, { env: { OUTPOST_URL: `http://127.0.0.1:${replicas[0]!.httpPort}` } });
  /** Writes a rollout spec for `outpostctl rollout create -f`. */
  async function specFile(name: string, spec: unknown): Promise<string> {
    const file = join(dir.path, `${name}.json`);
    await writeFile(file, JSON.stringify(spec));
    return file;
  }
  const configOf = async (): Promise<Map<string, string | undefined>> => new Map((await agents()).map((a) => [a.agentId, a.versions?.config]));

  it('pause holds a rollout past its soak, resume goes on, rollback brings every agent back to what it had', async () => {
    const api = rolloutApi(replicas[0]!.httpPort);
    const before = await configOf();
    const created = await ctl('rollout', 'create', '-f', await specFile('steered', {
      id: 'steered',
      name: 'heartbeat every 420 ms',
      change: { config: { uplink: { heartbeatIntervalMs: 420 } } },
      // A soak long enough that the pause (a CLI process start on busy cores) lands inside wave 1.
      strategy: { waves: [1, 2, 3], soak: '12s', waveDeadline: '30s' },
    }));
    expect(created.code, created.stderr).toBe(0);
    // Paused in wave 1, once its agent applied the change.
    await waitFor(async () => (await agents()).some((a) => appliedBy(a, 'steered')), { what: 'wave 1 applied' });
    const paused = await ctl('rollout', 'pause', 'steered');
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toContain('paused');
    const held = (await api.get('steered')).body;
    expect(held.status).toBe('paused');
    expect(held.wave).toBe(0);
    // Past the end of wave 1's soak (and a few controller ticks), nothing moved.
    const soakEnds = (held.waves[0]!.settledAtMs ?? Date.now()) + 12_000 + 1_000;
    await waitFor(() => Date.now() > soakEnds, { what: "the end of wave 1's soak", timeoutMs: 30_000, intervalMs: 100 });
    const stillHeld = (await api.get('steered')).body;
    expect(stillHeld.status).toBe('paused');
    expect(stillHeld.wave).toBe(held.wave);
    expect((await agents()).filter((a) => appliedBy(a, 'steered'))).toHaveLength(1);

    const resumed = await ctl('rollout', 'resume', 'steered');
    expect(resumed.code, resumed.stderr).toBe(0);
    await waitFor(async () => (await agents()).filter((a) => appliedBy(a, 'steered')).length >= 3, { what: 'wave 2 applied after the resume', timeoutMs: 60_000 });

    const rolledBack = await ctl('rollout', 'rollback', 'steered');
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect((await api.get('steered')).body.status).toBe('rolled-back');
    await waitFor(async () => {
      const now = await configOf();
      return [...before].every(([agentId, version]) => now.get(agentId) === version);
    }, { what: 'every agent back on the config it had before', timeoutMs: 60_000 });
  }, 180_000);

  it('abort in wave 1 keeps the change where it was applied; no other agent ever gets it', async () => {
    const api = rolloutApi(replicas[0]!.httpPort);
    const created = await ctl('rollout', 'create', '-f', await specFile('stopped', {
      id: 'stopped',
      name: 'heartbeat every 430 ms',
      change: { config: { uplink: { heartbeatIntervalMs: 430 } } },
      strategy: { waves: [1, 5], soak: '60s', waveDeadline: '30s' },
    }));
    expect(created.code, created.stderr).toBe(0);
    await waitFor(async () => (await agents()).some((a) => appliedBy(a, 'stopped')), { what: 'wave 1 applied' });
    const aborted = await ctl('rollout', 'abort', 'stopped');
    expect(aborted.code, aborted.stderr).toBe(0);
    const view = (await api.get('stopped')).body;
    expect(view.status).toBe('aborted');
    expect(view.targets).toHaveLength(1);
    const again = await ctl('rollout', 'resume', 'stopped');
    expect(again.code).toBe(6); // 409: an aborted rollout does not resume
    const applied = (await agents()).filter((a) => a.desired?.origin?.rolloutId === 'stopped');
    expect(applied.map((a) => a.agentId)).toEqual([view.targets[0]!.agentId]);
  }, 120_000);
});
