// Bridge mode with inference against a real mosquitto: the results go to the site broker's
// devices/{id}/inference, where any subscriber of the site sees them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { generateSigningKey, InferenceResultSchema, Lane, type InferenceResult } from '@outpost/shared';
import { signedConstantModel, startInProcessAgent, testAgentConfig, testInferenceConfig, writeModelFiles } from '../harness/agent-process.js';
import { connectDevice, publish } from '../harness/devices.js';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const BRIDGE_CLIENT_ID = 'outpost-bridge-inference';
const key = generateSigningKey('bridge-key');

let dir: TempDir;
let mosquitto: Mosquitto;
beforeAll(async () => {
  dir = await createTempDir('outpost-inference-bridge-');
  mosquitto = await startMosquitto({ configLines: ['log_type subscribe'] });
});
afterAll(async () => {
  await mosquitto.stop();
  await dir.remove();
});

describe('inference in bridge mode', () => {
  it('publishes each result to the site broker and stores it in the outbox', async () => {
    const model = signedConstantModel(4, '1.0.0', key, { threshold: 3 });
    const files = await writeModelFiles(dir.path, 'bridge', model.onnx, model.signed);
    const subscribed = (): number => mosquitto.logs().split('\n').filter((l) => l.endsWith(`: ${BRIDGE_CLIENT_ID} 1 devices/+/telemetry`)).length;
    const before = subscribed();
    await using agent = await startInProcessAgent(
      testAgentConfig(join(dir.path, 'data'), {
        agentId: 'bridge-inference',
        broker: { mode: 'bridge', url: mosquitto.url, clientId: BRIDGE_CLIENT_ID, topics: ['devices/+/telemetry'] },
        log: { level: 'error' },
        // Every score upstream: the test counts the stored results.
        inference: testInferenceConfig(files, [key.trustedKey], { upstream: 'every-score' }),
      }),
    );
    await waitFor(() => subscribed() > before, { what: 'the bridge subscription' });

    // Any site client may watch every device's results (the site broker has no Outpost ACL).
    const watcher = await connectDevice(mosquitto.url, { clientId: 'site-watcher' });
    const device = await connectDevice(mosquitto.url, { clientId: 'site-device' });
    const received: { topic: string; result: InferenceResult }[] = [];
    watcher.on('message', (topic, payload) => received.push({ topic, result: InferenceResultSchema.parse(JSON.parse(payload.toString('utf8'))) }));
    await watcher.subscribeAsync('devices/+/inference', { qos: 0 });
    try {
      for (let seq = 0; seq < 5; seq++) {
        await publish(device, 'devices/b-1/telemetry', JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, metrics: { temperature: 20 + seq } }));
      }
      await waitFor(() => received.length >= 5, { what: 'five results on the site broker' });
      expect(received.map((r) => r.topic)).toEqual(Array(5).fill('devices/b-1/inference'));
      expect(received.map((r) => r.result.ts)).toEqual([0, 1, 2, 3, 4].map((s) => 1_700_000_000_000 + s));
      expect(received.every((r) => r.result.score === 4 && r.result.anomaly && r.result.model.version === '1.0.0')).toBe(true);

      const stored = await waitFor(
        async () => {
          const [telemetry, events] = await Promise.all([agent.outbox.read(Lane.telemetry, 0, 100), agent.outbox.read(Lane.events, 0, 100)]);
          const inference = telemetry.filter((r) => r.kind === 'inference');
          return inference.length >= 5 && events.length >= 1 ? { inference, events } : false;
        },
        { what: 'the results in the outbox' },
      );
      expect(stored.inference.map((r) => r.deviceSeq)).toEqual([0, 1, 2, 3, 4]);
      // Every score is above the threshold: one anomaly episode, opened by the first result and still open.
      expect(stored.events.map((r) => [r.kind, r.deviceId, r.deviceSeq])).toEqual([['anomaly-opened', 'b-1', 0]]);
      // The bridge does not take its own results for telemetry.
      expect((await agent.outbox.read(Lane.telemetry, 0, 100)).filter((r) => r.kind === 'telemetry')).toHaveLength(5);
    } finally {
      watcher.end(true);
      device.end(true);
    }
  });
});
