// Several models side by side: an agent in the test process loads the shipped per-kind models
// (anomaly-machine@2.0.0 and anomaly-env-sensor@2.0.0, signed here) from its config, each in an
// inference child of its own (real onnxruntime), and routes each device to the model of its kind
// by the metrics it sends. A new version of one kind swaps in beside the other; a refused model
// leaves both serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { generateSigningKey, InferenceResultSchema, parseModelManifest, signManifest, type InferenceResult, type ModelManifest } from '@outpost/shared';
import { startInProcessAgent, testAgentConfig, testInferenceConfig, writeModelFiles } from '../harness/agent-process.js';
import { connectDevice, publish } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const ARTIFACTS = fileURLToPath(new URL('../../../models/artifacts/', import.meta.url));
const key = generateSigningKey('kinds-key');

let dir: TempDir;
beforeAll(async () => {
  dir = await createTempDir('outpost-inference-kinds-');
});
afterAll(async () => {
  await dir.remove();
});

async function shipped(name: string): Promise<{ onnx: Uint8Array; manifest: ModelManifest }> {
  const manifest = parseModelManifest(JSON.parse(await readFile(join(ARTIFACTS, `${name}.manifest.json`), 'utf8')));
  return { onnx: await readFile(join(ARTIFACTS, `${name}.onnx`)), manifest };
}

/** What each device sends: a machine, an environment sensor, and a device no model reads. */
const DEVICES = {
  'press-1': (i: number) => ({ temperature: 60 + Math.sin(i / 7), vibration: 2 + 0.1 * Math.cos(i / 3), pressure: 5 + 0.01 * (i % 5), current: 12 + 0.2 * Math.sin(i / 11), rpm: 1500 }),
  'env-1': (i: number) => ({ temperature: 21 + 0.1 * Math.sin(i / 5), humidity: 45 + 0.3 * Math.cos(i / 9) }),
  'odd-1': (i: number) => ({ rpm: 1000 + i }),
} as const;
type DeviceId = keyof typeof DEVICES;

describe('models of several device kinds', () => {
  it('routes each device to the model of its kind, counts a device no model reads, and swaps one kind while the other serves', async () => {
    const machine = await shipped('anomaly-machine-2.0.0');
    const env = await shipped('anomaly-env-sensor-2.0.0');
    const machineFiles = await writeModelFiles(dir.path, 'machine', machine.onnx, signManifest(machine.manifest, key.privateKeyPem, key.keyId));
    const envFiles = await writeModelFiles(dir.path, 'env', env.onnx, signManifest(env.manifest, key.privateKeyPem, key.keyId));
    await using agent = await startInProcessAgent(
      testAgentConfig(join(dir.path, 'data'), {
        agentId: 'kinds',
        ingest: { rateLimitMsgsPerS: 0 },
        log: { level: 'error' },
        inference: testInferenceConfig(machineFiles, [key.trustedKey], { models: [envFiles] }),
      }),
    );
    const inference = agent.inference!;
    expect(inference.status()).toMatchObject({ up: true, models: [machine.manifest, env.manifest].map((m) => ({ name: m.name, version: m.version })) });

    const received = new Map<DeviceId, InferenceResult[]>();
    const clients = new Map<DeviceId, MqttClient>();
    for (const deviceId of Object.keys(DEVICES) as DeviceId[]) {
      const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId });
      const results: InferenceResult[] = [];
      client.on('message', (_topic, payload) => results.push(InferenceResultSchema.parse(JSON.parse(payload.toString('utf8')))));
      await client.subscribeAsync(`devices/${deviceId}/inference`, { qos: 0 });
      received.set(deviceId, results);
      clients.set(deviceId, client);
    }
    const t0 = Date.now() - 3_600_000;
    let sent = 0;
    /** Each device sends `count` more messages, one simulated second apart. */
    const send = async (count: number): Promise<void> => {
      for (let i = sent; i < sent + count; i++) {
        await Promise.all(
          (Object.keys(DEVICES) as DeviceId[]).map((deviceId) =>
            publish(clients.get(deviceId)!, `devices/${deviceId}/telemetry`, JSON.stringify({ ts: t0 + i * 1_000, seq: i, metrics: DEVICES[deviceId](i) })),
          ),
        );
      }
      sent += count;
    };
    // Both shipped models: window 32, hop 4.
    const due = (messages: number): number => Math.floor((messages - 32) / 4) + 1;
    try {
      await send(40);
      await waitFor(() => received.get('press-1')!.length >= due(40) && received.get('env-1')!.length >= due(40), { what: 'results for both kinds' });
      const models = (deviceId: DeviceId) => new Set(received.get(deviceId)!.map((r) => `${r.model.name}@${r.model.version}`));
      expect(models('press-1')).toEqual(new Set(['anomaly-machine@2.0.0']));
      expect(models('env-1')).toEqual(new Set(['anomaly-env-sensor@2.0.0']));
      expect(received.get('odd-1')).toEqual([]);
      const text = await agent.metrics.registry.metrics();
      expect(metricValue(text, 'outpost_inference_unscored_rows_total', { reason: 'unrouted' })).toBe(40);
      expect(metricValue(text, 'outpost_inference_model_info', { name: 'anomaly-machine', version: '2.0.0' })).toBe(1);
      expect(metricValue(text, 'outpost_inference_model_info', { name: 'anomaly-env-sensor', version: '2.0.0' })).toBe(1);

      // A new version of the env-sensor kind (same graph, its own signed manifest) swaps in; the machine model keeps serving.
      const next = signManifest({ ...env.manifest, version: '2.0.1' }, key.privateKeyPem, key.keyId);
      const installed = await inference.swapModel({ signedManifest: next, onnxBytes: env.onnx });
      expect(installed).toMatchObject({ model: { name: 'anomaly-env-sensor', version: '2.0.1' }, previous: { name: 'anomaly-env-sensor', version: '2.0.0' }, windowsReset: false });
      expect(inference.status()).toMatchObject({ up: true, model: { version: '2.0.1' }, models: [{ name: 'anomaly-machine', version: '2.0.0' }, { name: 'anomaly-env-sensor', version: '2.0.1' }] });
      // A model that fails verification changes nothing: a forged signature on a machine model.
      const forged = signManifest({ ...machine.manifest, version: '2.0.2' }, generateSigningKey('kinds-key').privateKeyPem, key.keyId);
      await expect(inference.swapModel({ signedManifest: forged, onnxBytes: machine.onnx })).rejects.toMatchObject({ code: 'MODEL_SIGNATURE_INVALID' });

      const before = { press: received.get('press-1')!.length, env: received.get('env-1')!.length };
      await send(8);
      await waitFor(() => received.get('press-1')!.length >= before.press + 2 && received.get('env-1')!.length >= before.env + 2, { what: 'results after the swap' });
      expect(received.get('press-1')!.slice(before.press).map((r) => r.model.version)).toEqual(['2.0.0', '2.0.0']);
      expect(received.get('env-1')!.slice(before.env).map((r) => r.model.version)).toEqual(['2.0.1', '2.0.1']);
      expect(inference.status().models).toEqual([
        { name: 'anomaly-machine', version: '2.0.0' },
        { name: 'anomaly-env-sensor', version: '2.0.1' },
      ]);
      const after = await agent.metrics.registry.metrics();
      expect(metricValue(after, 'outpost_inference_model_info', { name: 'anomaly-env-sensor', version: '2.0.0' })).toBeUndefined();
      expect(metricValue(after, 'outpost_inference_model_info', { name: 'anomaly-env-sensor', version: '2.0.1' })).toBe(1);
      expect(metricValue(after, 'outpost_inference_unscored_rows_total', { reason: 'unrouted' })).toBe(48);
    } finally {
      for (const client of clients.values()) client.end(true);
    }
  });
});
