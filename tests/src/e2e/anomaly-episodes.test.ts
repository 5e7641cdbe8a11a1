// Anomaly episodes end to end, as an operator sees them: a machine (the simulator's machine
// profile) sends normal readings with two scripted faults far apart, a stuck vibration sensor
// and later a stuck pressure sensor, to an agent process scoring with the shipped per-kind model
// (anomaly-machine@2.0.0, signed here) in its real onnxruntime inference child. The control
// plane's /api/anomalies must list exactly one episode per fault, opened and closed, naming
// the stuck metric, and its accounting must have counted each episode record once. Real
// processes and parts throughout: nats-server (secured like production), the agent, SQLite,
// onnxruntime, the control plane.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AnomalyListResponseSchema,
  DeviceDetailResponseSchema,
  generateSigningKey,
  parseModelManifest,
  signManifest,
  type Anomaly,
  type ModelManifest,
} from '@outpost/shared';
import { createDeviceGenerator, parseScenario } from '@outpost/simulators';
import { startAgentProcess, testAgentConfig, testInferenceConfig, testUplinkConfig, writeModelFiles, type AgentProcess } from '../harness/agent-process.js';
import { controlPlaneApi, startInProcessControlPlane, testControlPlaneConfig } from '../harness/control-plane-process.js';
import { connectDevice, publish } from '../harness/devices.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const ARTIFACTS = fileURLToPath(new URL('../../../models/artifacts/', import.meta.url));
const MODEL = 'anomaly-machine-2.0.0';
const DEVICE = 'press-1';
/** Samples the device sends, one per simulated second. */
const SAMPLES = 1_400;
/**
 * The scripted faults, [first, end) sample: each metric repeats its value at the first sample.
 * The first starts after the model's 600-sample noise warm-up; they are 260 samples apart, far
 * more than the 3 clean windows (12 samples) that close an episode.
 */
const FAULTS = [
  { metric: 'vibration', from: 800, to: 840 },
  { metric: 'pressure', from: 1_100, to: 1_130 },
] as const;
/** Samples of the window the agent scores after a fault ended may still hold it (window 32, hop 4). */
const WINDOW_SAMPLES = 32;

let dir: TempDir;
let nats: NatsServer;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await createTempDir('outpost-episodes-');
  nats = await startNatsServer({ secure: true });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await nats.stop();
  await dir.remove();
});

interface Fault {
  metric: string;
  from: number;
  to: number;
}

/** A device's readings: the profile's (seed fixed; the physics follow the device id, press-1 or env-1), with the faults applied. */
function readings(faults: readonly Fault[] = FAULTS, profile: 'machine' | 'env-sensor' = 'machine'): Record<string, number>[] {
  const scenario = parseScenario({ seed: 11, devices: [{ count: 1, prefix: profile === 'machine' ? 'press-' : 'env-', profile }] });
  const generator = createDeviceGenerator(scenario, scenario.devices[0]!);
  const out: Record<string, number>[] = [];
  const held = new Map<string, number>();
  for (let i = 0; i < SAMPLES; i++) {
    const metrics = { ...generator.next(i * 1_000).metrics };
    for (const fault of faults) {
      if (i === fault.from) held.set(fault.metric, metrics[fault.metric]!);
      if (i >= fault.from && i < fault.to) metrics[fault.metric] = held.get(fault.metric)!;
    }
    out.push(metrics);
  }
  return out;
}

/** Publishes the readings as the device, one simulated second apart from `t0`, each acknowledged. */
async function sendReadings(agent: AgentProcess, t0: number, values: readonly Record<string, number>[], deviceId = DEVICE): Promise<void> {
  const device = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId });
  try {
    for (let i = 0; i < values.length; i++) await publish(device, `devices/${deviceId}/telemetry`, JSON.stringify({ ts: t0 + i * 1_000, seq: i, metrics: values[i] }));
  } finally {
    await device.endAsync();
  }
}

/**
 * The shipped machine model (and `more` shipped models beside it), signed with a key of the
 * test, as the agent's inference config.
 */
async function machineInference(more: readonly string[] = []): Promise<{ inference: ReturnType<typeof testInferenceConfig>; manifest: ModelManifest }> {
  const key = generateSigningKey('episodes-key');
  const signed = async (name: string) => {
    const manifest = parseModelManifest(JSON.parse(await readFile(join(ARTIFACTS, `${name}.manifest.json`), 'utf8')));
    return { manifest, files: await writeModelFiles(dir.path, name, await readFile(join(ARTIFACTS, `${name}.onnx`)), signManifest(manifest, key.privateKeyPem, key.keyId)) };
  };
  const machine = await signed(MODEL);
  const others = await Promise.all(more.map(signed));
  return { inference: testInferenceConfig(machine.files, [key.trustedKey], { models: others.map((o) => o.files) }), manifest: machine.manifest };
}

/** The agent's episodes as /api/anomalies lists them, once `ready` accepts them. */
async function listedEpisodes(api: ReturnType<typeof controlPlaneApi>, agentId: string, what: string, ready: (listed: Anomaly[]) => boolean): Promise<Anomaly[]> {
  return waitFor(
    async () => {
      const { status, body } = await api.get(`/api/anomalies?agentId=${agentId}`);
      if (status !== 200) return false;
      const listed = AnomalyListResponseSchema.parse(body).anomalies;
      return ready(listed) ? listed : false;
    },
    { what, timeoutMs: 60_000 },
  );
}

describe('anomaly episodes', () => {
  it('lists exactly one episode per injected fault at the control plane, opened and closed, with the stuck metric as its contributor', async () => {
    const { inference, manifest } = await machineInference();
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    const agentId = 'gw-episodes';
    const agent: AgentProcess = await startAgentProcess(
      testAgentConfig(join(dir.path, agentId), { agentId, ingest: { rateLimitMsgsPerS: 0 }, uplink: await testUplinkConfig(nats, agentId, { heartbeatIntervalMs: 1_000 }), inference }),
    );
    cleanups.push(() => agent.kill9());

    // Device time: the last sample is now, so the API's default look-back (1 h) covers everything.
    const t0 = Date.now() - SAMPLES * 1_000;
    await sendReadings(agent, t0, readings());

    const api = controlPlaneApi(cp.httpPort);
    // Wait for the event that matters: every fault's episode closed at the control plane.
    const episodes = await listedEpisodes(api, agentId, 'an episode closed per fault at the control plane', (listed) => listed.filter((a) => a.episode?.state === 'closed').length >= FAULTS.length);

    // Oldest first: one entry per fault and nothing else (no window spam, no false alarm).
    const byStart: Anomaly[] = [...episodes].sort((a, b) => a.ts - b.ts);
    expect(byStart).toHaveLength(FAULTS.length);
    byStart.forEach((anomaly, k) => {
      const fault = FAULTS[k]!;
      const episode = anomaly.episode!;
      expect(anomaly).toMatchObject({ agentId, deviceId: DEVICE, model: { name: 'anomaly-machine', version: '2.0.0' }, threshold: manifest.threshold });
      expect(episode.state).toBe('closed');
      expect(episode.reason).toBe('recovered');
      // Flagged while the fault was going on, and over once the windows no longer held it.
      expect(episode.startTs).toBeGreaterThanOrEqual(t0 + fault.from * 1_000);
      expect(episode.startTs).toBeLessThan(t0 + fault.to * 1_000);
      expect(episode.lastSeenTs).toBeGreaterThanOrEqual(episode.startTs);
      expect(episode.lastSeenTs).toBeLessThan(t0 + (fault.to + WINDOW_SAMPLES) * 1_000);
      expect(episode.endTs!).toBeGreaterThan(episode.lastSeenTs);
      expect(episode.windows).toBeGreaterThan(1);
      expect(anomaly.score).toBeGreaterThan(manifest.threshold);
      // The model's evidence output names the stuck sensor and the detector that saw it.
      expect(episode.contributors[0]).toMatchObject({ metric: fault.metric, detector: 'run' });
      expect(episode.contributors[0]!.evidence).toBe(anomaly.score);
    });
    expect(new Set(byStart.map((a) => a.episode!.episodeId)).size).toBe(FAULTS.length);

    // Through the exactly-once path: the accounting counted each episode record once (it may
    // trail the live view by a KV write, and telemetry drains after the events lane).
    const detail = await waitFor(
      async () => {
        const { status, body } = await api.device(agentId, DEVICE);
        if (status !== 200) return false;
        const parsed = DeviceDetailResponseSchema.parse(body);
        return (parsed.kinds['anomaly-closed'] ?? 0) >= FAULTS.length && (parsed.kinds['telemetry'] ?? 0) >= SAMPLES ? parsed : false;
      },
      { what: 'the accounting of every record' },
    );
    expect(detail.kinds).toMatchObject({ 'anomaly-opened': FAULTS.length, 'anomaly-closed': FAULTS.length, telemetry: SAMPLES });
    expect(detail.kinds['anomaly']).toBeUndefined();
    expect(detail.duplicates).toBe(0);
    const metrics = await fetchMetrics(agent.httpPort);
    expect(metricValue(metrics, 'outpost_inference_episodes_total', { event: 'opened' })).toBe(FAULTS.length);
    expect(metricValue(metrics, 'outpost_inference_episodes_total', { event: 'closed' })).toBe(FAULTS.length);
    expect(metricValue(metrics, 'outpost_inference_open_episodes')).toBe(0);
    expect(await agent.stop()).toBe(0);
  }, 180_000);

  it('closes an episode still open when the agent stops (reason shutdown), and its closed record reaches the control plane after a restart, once', async () => {
    const { inference } = await machineInference();
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    const agentId = 'gw-episodes-stop';
    const config = testAgentConfig(join(dir.path, agentId), { agentId, ingest: { rateLimitMsgsPerS: 0 }, uplink: await testUplinkConfig(nats, agentId, { heartbeatIntervalMs: 1_000 }), inference });
    const first = await startAgentProcess(config);
    cleanups.push(() => first.kill9());
    // The vibration sensor sticks at sample 800 and stays stuck until the last one.
    const t0 = Date.now() - 900 * 1_000;
    await sendReadings(first, t0, readings([{ metric: 'vibration', from: 800, to: 900 }]).slice(0, 900));
    const api = controlPlaneApi(cp.httpPort);
    const [opened] = await listedEpisodes(api, agentId, 'the episode open at the control plane', (listed) => listed.length > 0);
    expect(opened!.episode).toMatchObject({ state: 'open', endTs: null });

    // A graceful stop closes it into the outbox after the uplink stopped: it goes up with the next start.
    expect(await first.stop()).toBe(0);
    const second = await startAgentProcess(config);
    cleanups.push(() => second.kill9());
    const [closed, ...others] = await listedEpisodes(api, agentId, 'the episode closed after the restart', (listed) => listed.some((a) => a.episode?.state === 'closed'));
    expect(others).toEqual([]);
    expect(closed!.episode).toMatchObject({ episodeId: opened!.episode!.episodeId, state: 'closed', reason: 'shutdown', startTs: opened!.episode!.startTs });
    expect(closed!.episode!.contributors[0]).toMatchObject({ metric: 'vibration', detector: 'run' });
    const detail = await waitFor(
      async () => {
        const parsed = DeviceDetailResponseSchema.parse((await api.device(agentId, DEVICE)).body);
        return (parsed.kinds['anomaly-closed'] ?? 0) >= 1 ? parsed : false;
      },
      { what: 'the closed record accounted' },
    );
    expect(detail.kinds).toMatchObject({ 'anomaly-opened': 1, 'anomaly-closed': 1 });
    expect(detail.duplicates).toBe(0);
    expect(await second.stop()).toBe(0);
  }, 180_000);

  it('runs the machine and the env-sensor models side by side: a fault on each kind of device is one episode, from the model of its kind', async () => {
    const { inference } = await machineInference(['anomaly-env-sensor-2.0.0']);
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    const agentId = 'gw-episodes-kinds';
    const agent = await startAgentProcess(
      testAgentConfig(join(dir.path, agentId), { agentId, ingest: { rateLimitMsgsPerS: 0 }, uplink: await testUplinkConfig(nats, agentId, { heartbeatIntervalMs: 1_000 }), inference }),
    );
    cleanups.push(() => agent.kill9());
    const samples = 1_000;
    const t0 = Date.now() - samples * 1_000;
    await sendReadings(agent, t0, readings([{ metric: 'vibration', from: 800, to: 840 }]).slice(0, samples), 'press-1');
    await sendReadings(agent, t0, readings([{ metric: 'humidity', from: 800, to: 840 }], 'env-sensor').slice(0, samples), 'env-1');
    const api = controlPlaneApi(cp.httpPort);
    const listed = await listedEpisodes(api, agentId, 'an episode closed per device', (all) => all.filter((a) => a.episode?.state === 'closed').length >= 2);
    const summary = listed.map((a) => [a.deviceId, a.model.name, a.episode?.state, a.episode?.reason, a.episode?.contributors[0]?.metric]).sort();
    expect(summary).toEqual([
      ['env-1', 'anomaly-env-sensor', 'closed', 'recovered', 'humidity'],
      ['press-1', 'anomaly-machine', 'closed', 'recovered', 'vibration'],
    ]);
    const metrics = await fetchMetrics(agent.httpPort);
    expect(metricValue(metrics, 'outpost_inference_model_info', { name: 'anomaly-machine', version: '2.0.0' })).toBe(1);
    expect(metricValue(metrics, 'outpost_inference_model_info', { name: 'anomaly-env-sensor', version: '2.0.0' })).toBe(1);
    expect(metricValue(metrics, 'outpost_inference_unscored_rows_total', { reason: 'unrouted' }) ?? 0).toBe(0);
    expect(await agent.stop()).toBe(0);
  }, 180_000);
});
