// Local inference in an agent running in the test process, with real onnxruntime-node in its
// inference child (the built agent/dist/inference/inference-child.js: build first), real
// mqtt.js devices and the real SQLite outbox.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { buildExternalDataModel, createManifest, flaggedRuns, makeTestModel, scorePcaReference, TEST_FEATURE_SPEC } from '@outpost/models';
import {
  computeFeatures,
  EPISODE_CLOSE_AFTER_CLEAN_WINDOWS,
  EpisodeClosedSchema,
  EpisodeOpenedSchema,
  generateSigningKey,
  InferenceResultSchema,
  InferenceSummarySchema,
  Lane,
  signManifest,
  type InferenceResult,
  type MetricValues,
  type SignedManifest,
} from '@outpost/shared';
import type { Agent } from '@outpost/agent';
import { signedConstantModel, startInProcessAgent, testAgentConfig, testInferenceConfig, writeModelFiles } from '../harness/agent-process.js';
import { connectDevice, publish, startSteadyLoad } from '../harness/devices.js';
import { metricSamples, metricValue } from '../harness/metrics.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const key = generateSigningKey('test-key');
const otherKey = generateSigningKey('other-key');
/** The same keyId as the trusted key, another key pair: a forged signature. */
const forgedKey = generateSigningKey('test-key');

let dir: TempDir;
beforeAll(async () => {
  dir = await createTempDir('outpost-inference-');
});
afterAll(async () => {
  await dir.remove();
});

interface StoredResult {
  deviceId: string;
  deviceSeq: number | undefined;
  result: InferenceResult;
}

async function storedResults(agent: Agent, lane: Lane = Lane.telemetry, kind = 'inference'): Promise<StoredResult[]> {
  const records = await agent.outbox.read(lane, 0, 1_000_000);
  return records
    .filter((r) => r.kind === kind)
    .map((r) => ({ deviceId: r.deviceId, deviceSeq: r.deviceSeq, result: InferenceResultSchema.parse(JSON.parse(r.body)) }));
}

/**
 * Checks the agent's episode records against the scored results: per device, one `anomaly-opened`
 * per alarm event of the evaluation's rule (flaggedRuns), at its first flagged window and tied
 * to that window's device seq, and one `anomaly-closed` for each event followed by enough clean
 * windows, ended at the first of them. The test models give no evidence: no contributors.
 */
async function expectEpisodes(agent: Agent, results: readonly StoredResult[], threshold: number): Promise<void> {
  const opened: string[] = [];
  const closed: string[] = [];
  for (const deviceId of new Set(results.map((r) => r.deviceId))) {
    const windows = results.filter((r) => r.deviceId === deviceId).sort((a, b) => a.result.ts - b.result.ts);
    for (const [first, last] of flaggedRuns(windows.map((w) => w.result), threshold)) {
      opened.push(`${deviceId}:${windows[first]!.deviceSeq}:${windows[first]!.result.ts}`);
      const peak = Math.max(...windows.slice(first, last + 1).map((w) => (w.result.anomaly ? w.result.score : -Infinity)));
      if (windows.length - 1 - last >= EPISODE_CLOSE_AFTER_CLEAN_WINDOWS) closed.push(`${deviceId}:${windows[first]!.result.ts}-${windows[last]!.result.ts}-${windows[last + 1]!.result.ts}:${peak.toFixed(4)}`);
    }
  }
  expect(opened.length).toBeGreaterThan(0);
  const events = await waitFor(
    async () => {
      const records = await agent.outbox.read(Lane.events, 0, 1_000_000);
      const count = (kind: string): number => records.filter((r) => r.kind === kind).length;
      return count('anomaly-opened') >= opened.length && count('anomaly-closed') >= closed.length ? records : false;
    },
    { what: 'the episodes in the outbox' },
  );
  expect(events.filter((r) => r.kind === 'anomaly'), 'no record per flagged window').toEqual([]);
  const openedBodies = events.filter((r) => r.kind === 'anomaly-opened').map((r) => ({ r, body: EpisodeOpenedSchema.parse(JSON.parse(r.body)) }));
  expect(openedBodies.map(({ r, body }) => `${r.deviceId}:${r.deviceSeq}:${body.startTs}`).sort()).toEqual(opened.sort());
  const closedBodies = events.filter((r) => r.kind === 'anomaly-closed').map((r) => ({ r, body: EpisodeClosedSchema.parse(JSON.parse(r.body)) }));
  expect(closedBodies.map(({ r, body }) => `${r.deviceId}:${body.startTs}-${body.lastSeenTs}-${body.endTs}:${body.peakScore.toFixed(4)}`).sort()).toEqual(closed.sort());
  for (const { body } of [...openedBodies, ...closedBodies]) expect(body.contributors).toEqual([]);
  // Each closed episode is one that opened.
  const ids = new Set(openedBodies.map(({ body }) => body.episodeId));
  expect(closedBodies.every(({ body }) => ids.has(body.episodeId) && body.reason === 'recovered')).toBe(true);
}

/** Collects every result a client receives on its own `devices/{id}/inference`. */
async function collectInference(client: MqttClient, deviceId: string): Promise<InferenceResult[]> {
  const received: InferenceResult[] = [];
  client.on('message', (topic, payload) => {
    if (topic === `devices/${deviceId}/inference`) received.push(InferenceResultSchema.parse(JSON.parse(payload.toString('utf8'))));
  });
  await client.subscribeAsync(`devices/${deviceId}/inference`, { qos: 0 });
  return received;
}

async function agentWithModel(name: string, onnx: Uint8Array, signed: SignedManifest, inference: Record<string, unknown> = {}): Promise<Agent> {
  const files = await writeModelFiles(dir.path, name, onnx, signed);
  return startInProcessAgent(
    testAgentConfig(join(dir.path, name), {
      agentId: name,
      ingest: { rateLimitMsgsPerS: 0 },
      // Refusals are expected here and logged at warn.
      log: { level: 'error' },
      inference: testInferenceConfig(files, [key.trustedKey], inference),
    }),
  );
}

describe('agent inference with onnxruntime-node', () => {
  it('scores equal the JavaScript reference within 1e-5, end to end (MQTT -> agent -> outbox and devices/{id}/inference)', async () => {
    const model = makeTestModel({ threshold: 1 });
    // Every score upstream, so each stored result can be checked against the reference.
    await using agent = await agentWithModel('reference', model.onnx, signManifest(model.manifest, key.privateKeyPem, key.keyId), { upstream: 'every-score' });
    expect(agent.inference?.status()).toMatchObject({ up: true, model: { name: 'anomaly-pca', version: '1.0.0-test' } });

    const devices = ['sensor-a', 'sensor-b'];
    const messages = 60;
    const baseTs = 1_800_000_000_000;
    // Deterministic readings around the spec's centre, with a spike that must be flagged.
    const sample = (d: number, i: number): MetricValues => ({
      temperature: 60 + 4 * Math.sin(i / 3 + d) + (i === 40 ? 40 : 0),
      vibration: 0.5 + 0.2 * Math.cos(i / 5 + d),
      humidity: 40,
    });
    const expected = new Map<string, number>();
    devices.forEach((deviceId, d) => {
      const samples = Array.from({ length: messages }, (_, i) => sample(d, i));
      for (let i = TEST_FEATURE_SPEC.windowSize - 1; i < messages; i += TEST_FEATURE_SPEC.hopSize) {
        const { row } = computeFeatures(samples.slice(0, i + 1), TEST_FEATURE_SPEC);
        expected.set(`${deviceId}:${i}`, scorePcaReference(row, model.components));
      }
    });

    const received = new Map<string, InferenceResult[]>();
    const clients = await Promise.all(
      devices.map(async (deviceId) => {
        const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId });
        received.set(deviceId, await collectInference(client, deviceId));
        return client;
      }),
    );
    try {
      for (let i = 0; i < messages; i++) {
        await Promise.all(
          devices.map((deviceId, d) =>
            publish(clients[d]!, `devices/${deviceId}/telemetry`, JSON.stringify({ ts: baseTs + i * 1000, seq: i, metrics: sample(d, i) })),
          ),
        );
      }
      const perDevice = expected.size / devices.length;
      await waitFor(() => devices.every((id) => received.get(id)!.length >= perDevice), { what: 'every inference result over MQTT' });
      const stored = await waitFor(
        async () => {
          const rows = await storedResults(agent);
          return rows.length >= expected.size ? rows : false;
        },
        { what: 'every inference result in the outbox' },
      );

      // Outbox: one record per due window, tied to the device seq that completed it.
      expect(stored).toHaveLength(expected.size);
      for (const { deviceId, deviceSeq, result } of stored) {
        const want = expected.get(`${deviceId}:${deviceSeq}`);
        expect(want, `${deviceId}:${deviceSeq} was not due`).toBeDefined();
        expect(Math.abs(result.score - want!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want!)));
        expect(result.ts).toBe(baseTs + deviceSeq! * 1000);
        expect(result.model).toEqual({ name: 'anomaly-pca', version: '1.0.0-test' });
        expect(result.anomaly).toBe(result.score > 1);
      }
      // MQTT: the same results, matched by the device time of the window's newest sample.
      for (const deviceId of devices) {
        const results = received.get(deviceId)!;
        expect(results).toHaveLength(perDevice);
        for (const result of results) {
          const want = expected.get(`${deviceId}:${(result.ts - baseTs) / 1000}`)!;
          expect(Math.abs(result.score - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
        }
      }
      // Anomalies as episodes in the events lane: one per run of flagged windows (the evaluation's
      // rule), opened at its first window, closed once enough clean windows followed; the spike is in one.
      const flagged = stored.filter((s) => s.result.anomaly);
      expect(flagged.map((f) => f.deviceSeq)).toContain(41);
      await expectEpisodes(agent, stored, 1);

      const metrics = await agent.metrics.registry.metrics();
      expect(metricValue(metrics, 'outpost_inference_rows_scored_total') ?? 0).toBe(expected.size);
      expect(metricValue(metrics, 'outpost_inference_model_info', { name: 'anomaly-pca', version: '1.0.0-test' })).toBe(1);
    } finally {
      for (const c of clients) c.end(true);
    }
  });

  it('by default sends upstream only the anomalies and per-device summaries (count, mean, max, model) of the scores every device still gets locally', async () => {
    const model = makeTestModel({ threshold: 1 });
    await using agent = await agentWithModel('summaries', model.onnx, signManifest(model.manifest, key.privateKeyPem, key.keyId), { summaryIntervalMs: 200 });
    const devices = ['sensor-a', 'sensor-b'];
    const messages = 60;
    const baseTs = 1_800_000_000_000;
    const sample = (d: number, i: number): MetricValues => ({ temperature: 60 + 4 * Math.sin(i / 3 + d) + (i === 40 ? 40 : 0), vibration: 0.5, humidity: 40 });
    const received = new Map<string, InferenceResult[]>();
    const clients = await Promise.all(
      devices.map(async (deviceId) => {
        const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId });
        received.set(deviceId, await collectInference(client, deviceId));
        return client;
      }),
    );
    try {
      for (let i = 0; i < messages; i++) {
        await Promise.all(devices.map((deviceId, d) => publish(clients[d]!, `devices/${deviceId}/telemetry`, JSON.stringify({ ts: baseTs + i * 1000, seq: i, metrics: sample(d, i) }))));
      }
      const due = Math.floor((messages - TEST_FEATURE_SPEC.windowSize) / TEST_FEATURE_SPEC.hopSize) + 1;
      await waitFor(() => devices.every((id) => received.get(id)!.length >= due), { what: 'every inference result over MQTT' });
      const summaries = await waitFor(
        async () => {
          const rows = (await agent.outbox.read(Lane.telemetry, 0, 1_000_000)).filter((r) => r.kind === 'inference-summary');
          const parsed = rows.map((r) => ({ deviceId: r.deviceId, deviceSeq: r.deviceSeq, ts: r.ts, summary: InferenceSummarySchema.parse(JSON.parse(r.body)) }));
          return devices.every((id) => parsed.filter((p) => p.deviceId === id).reduce((n, p) => n + p.summary.count, 0) >= due) ? parsed : false;
        },
        { what: 'summaries of every scored row in the outbox' },
      );
      const telemetryLane = await agent.outbox.read(Lane.telemetry, 0, 1_000_000);
      expect(telemetryLane.filter((r) => r.kind === 'inference'), 'no single score upstream by default').toEqual([]);
      for (const deviceId of devices) {
        const scores = received.get(deviceId)!;
        const mine = summaries.filter((s) => s.deviceId === deviceId);
        // Together the device's summaries hold each of its scores once: count, sum, max and anomalies add up.
        expect(mine.reduce((n, s) => n + s.summary.count, 0)).toBe(scores.length);
        const sum = scores.reduce((n, r) => n + r.score, 0);
        expect(mine.reduce((n, s) => n + s.summary.mean * s.summary.count, 0)).toBeCloseTo(sum, 6);
        expect(Math.max(...mine.map((s) => s.summary.max))).toBe(Math.max(...scores.map((r) => r.score)));
        expect(mine.reduce((n, s) => n + s.summary.anomalies, 0)).toBe(scores.filter((r) => r.anomaly).length);
        for (const s of mine) {
          expect(s.summary.model).toEqual({ name: 'anomaly-pca', version: '1.0.0-test' });
          expect(s.summary.threshold).toBe(1);
          expect(s.deviceSeq).toBeUndefined();
          expect(s.ts).toBe(s.summary.toTs);
          expect(s.summary.fromTs).toBeLessThanOrEqual(s.summary.toTs);
        }
      }
      // The anomalies still go as events: one episode per run of flagged windows, not one per window.
      const scored = devices.flatMap((deviceId) => received.get(deviceId)!.map((result) => ({ deviceId, deviceSeq: (result.ts - baseTs) / 1000, result })));
      expect(scored.filter((r) => r.result.anomaly).length).toBeGreaterThan(1);
      await expectEpisodes(agent, scored, 1);
    } finally {
      for (const c of clients) c.end(true);
    }
  });

  it('refuses tampered bytes, an untrusted or forged key, a missing signature, an expired manifest, an external-data model and a failing self-test; the old model keeps serving', async () => {
    const serving = signedConstantModel(1, '1.0.0', key);
    await using agent = await agentWithModel('refusals', serving.onnx, serving.signed);
    const inference = agent.inference!;

    const candidate = signedConstantModel(2, '2.0.0', key);
    const tampered = Uint8Array.from(candidate.onnx);
    tampered[tampered.length - 1] = tampered.at(-1)! ^ 0xff;
    const untrusted = signedConstantModel(2, '2.0.0', otherKey);
    const forged = signedConstantModel(2, '2.0.0', forgedKey);
    const expired = signedConstantModel(2, '2.0.0', key, { expiresAt: '2026-01-02T00:00:00.000Z' });
    const externalOnnx = buildExternalDataModel(1);
    const external = signManifest(
      createManifest({ name: 'constant', version: '2.0.0', createdAt: '2026-01-01T00:00:00.000Z', onnx: externalOnnx, featureSpec: candidate.signed.manifest.featureSpec, threshold: 1, testVectors: [{ input: [1], expectedScore: 0 }] }),
      key.privateKeyPem,
      key.keyId,
    );
    const badSelfTest = signManifest({ ...candidate.signed.manifest, testVectors: [{ input: [1], expectedScore: 3 }] }, key.privateKeyPem, key.keyId);

    const cases: [string, Parameters<typeof inference.swapModel>[0], string][] = [
      ['tampered bytes', { onnxBytes: tampered, signedManifest: candidate.signed }, 'MODEL_DIGEST_MISMATCH'],
      ['untrusted key', { onnxBytes: untrusted.onnx, signedManifest: untrusted.signed }, 'MODEL_KEY_UNTRUSTED'],
      ['forged signature', { onnxBytes: forged.onnx, signedManifest: forged.signed }, 'MODEL_SIGNATURE_INVALID'],
      ['missing signature', { onnxBytes: candidate.onnx, signedManifest: { manifest: candidate.signed.manifest } }, 'MODEL_SIGNATURE_INVALID'],
      ['manifest changed after signing', { onnxBytes: candidate.onnx, signedManifest: { ...candidate.signed, manifest: { ...candidate.signed.manifest, threshold: 0 } } }, 'MODEL_SIGNATURE_INVALID'],
      ['expired manifest', { onnxBytes: expired.onnx, signedManifest: expired.signed }, 'MODEL_EXPIRED'],
      ['external-data model', { onnxBytes: externalOnnx, signedManifest: external }, 'MODEL_EXTERNAL_DATA'],
      ['failing self-test', { onnxBytes: candidate.onnx, signedManifest: badSelfTest }, 'MODEL_SELF_TEST_FAILED'],
    ];

    const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: 'dev-1' });
    const received = await collectInference(client, 'dev-1');
    let seq = 0;
    const publishOne = (): Promise<void> => publish(client, 'devices/dev-1/telemetry', JSON.stringify({ ts: Date.now(), seq: seq++, metrics: { temperature: 20 } }));
    try {
      for (const [name, input, code] of cases) {
        await expect(inference.swapModel(input), name).rejects.toMatchObject({ code });
        // Still serving, with the old model: a fresh message gets a result from 1.0.0.
        const before = received.length;
        await publishOne();
        await waitFor(() => received.length > before, { what: `a result after the refused ${name}` });
        expect(received.at(-1)!.model.version, name).toBe('1.0.0');
        expect(received.at(-1)!.score).toBe(1);
        expect(inference.status()).toMatchObject({ up: true, model: { version: '1.0.0' } });
      }
      const metrics = await agent.metrics.registry.metrics();
      for (const code of new Set(cases.map(([, , c]) => c))) {
        expect(metricValue(metrics, 'outpost_inference_swap_refusals_total', { code }) ?? 0, code).toBe(cases.filter(([, , c]) => c === code).length);
      }
      expect(metricValue(metrics, 'outpost_inference_swaps_total') ?? 0).toBe(0);

      // And the good candidate is accepted afterwards: the refusals left nothing behind.
      await expect(inference.swapModel({ onnxBytes: candidate.onnx, signedManifest: candidate.signed })).resolves.toMatchObject({ model: { version: '2.0.0' }, previous: { version: '1.0.0' } });
      const before = received.length;
      await publishOne();
      await waitFor(() => received.length > before, { what: 'a result from the new model' });
      expect(received.at(-1)).toMatchObject({ model: { version: '2.0.0' }, score: 2 });
    } finally {
      client.end(true);
    }
  });

  it('a swap to another feature spec starts every device window afresh', async () => {
    const first = signedConstantModel(1, '1.0.0', key);
    await using agent = await agentWithModel('spec-change', first.onnx, first.signed, { upstream: 'every-score' });
    const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: 'dev-w' });
    const received = await collectInference(client, 'dev-w');
    let seq = 0;
    const publishOne = (): Promise<void> => publish(client, 'devices/dev-w/telemetry', JSON.stringify({ ts: 1_800_000_000_000 + seq, seq: seq++, metrics: { temperature: 60, vibration: 0.5 } }));
    try {
      for (let i = 0; i < 5; i++) await publishOne();
      await waitFor(() => received.length >= 5, { what: 'five results from the window-1 model' });
      // makeTestModel's spec: window 8, hop 2, two metrics: a row only after 8 new samples.
      const next = makeTestModel({ version: '2.0.0' });
      await expect(agent.inference!.swapModel({ onnxBytes: next.onnx, signedManifest: signManifest(next.manifest, key.privateKeyPem, key.keyId) })).resolves.toMatchObject({
        model: { name: 'anomaly-pca', version: '2.0.0' },
        windowsReset: true,
      });
      const swappedAt = seq;
      for (let i = 0; i < 12; i++) await publishOne();
      await waitFor(() => received.length >= 5 + 3, { what: 'results of the new model' });
      const stored = await waitFor(
        async () => {
          const rows = await storedResults(agent);
          return rows.length >= 8 ? rows : false;
        },
        { what: 'eight results in the outbox' },
      );
      expect(stored.map((r) => [r.deviceSeq, r.result.model.version])).toEqual([
        ...[0, 1, 2, 3, 4].map((s) => [s, '1.0.0']),
        // First row once 8 samples arrived after the swap, then every 2.
        ...[7, 9, 11].map((k) => [swappedAt + k, '2.0.0']),
      ]);
    } finally {
      client.end(true);
    }
  });

  it('restarts a kill -9ed inference process; PUBACKs keep coming during the outage and every message is scored exactly once', async () => {
    const serving = signedConstantModel(7, '1.0.0', key);
    // A long first restart delay makes the outage long enough to see ingest go on through it.
    await using agent = await agentWithModel('kill9-child', serving.onnx, serving.signed, { restartInitialDelayMs: 1_500, upstream: 'every-score' });
    const inference = agent.inference!;
    const devices = await Promise.all(
      ['k-1', 'k-2', 'k-3', 'k-4'].map(async (deviceId) => ({ deviceId, client: await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId }) })),
    );
    const load = startSteadyLoad(devices, 100);
    try {
      await load.whenAcked(200);
      const pid = inference.status().pid!;
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGKILL');
      await waitFor(() => !inference.status().up, { what: 'the agent noticing the dead inference process' });
      const ackedAtDown = load.ackedCount();
      const upAgain = await waitFor(() => (inference.status().up ? inference.status() : false), { what: 'the restarted inference process', timeoutMs: 20_000 });
      const ackedDuringOutage = load.ackedCount() - ackedAtDown;
      expect(upAgain.pid).not.toBe(pid);
      expect(ackedDuringOutage, 'PUBACKs while no inference process was up').toBeGreaterThan(0);
      const ackedAtUp = load.ackedCount();
      await load.whenAcked(ackedAtUp + 200);
    } finally {
      load.stop();
    }
    // Every acknowledged message (one row each) has exactly one result: rows queued during the
    // outage, and the batch in flight at the kill, were scored by the new process. (Publishes
    // still in flight at stop() may be acknowledged and scored later: they count once too.)
    const acked = [...load.acked].flatMap(([deviceId, seqs]) => seqs.map((s) => `${deviceId}:${s}`));
    const results = await waitFor(
      async () => {
        const rows = await storedResults(agent);
        const have = new Set(rows.map((r) => `${r.deviceId}:${r.deviceSeq}`));
        return acked.every((k) => have.has(k)) ? rows : false;
      },
      { what: 'a result for every acknowledged message', timeoutMs: 20_000 },
    );
    const keys = results.map((r) => `${r.deviceId}:${r.deviceSeq}`);
    expect(new Set(keys).size, 'no message scored twice').toBe(keys.length);
    expect(results.every((r) => r.result.score === 7)).toBe(true);
    const metrics = await agent.metrics.registry.metrics();
    expect(metricValue(metrics, 'outpost_inference_process_restarts_total', { reason: 'SIGKILL' })).toBe(1);
    expect(metricSamples(metrics, 'outpost_inference_unscored_rows_total')).toEqual([]);
    for (const d of devices) d.client.end(true);
  });
});
