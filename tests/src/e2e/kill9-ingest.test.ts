import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Lane } from '@outpost/shared';
import { openOutbox } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startAgentProcess, testAgentConfig } from '../harness/agent-process.js';
import { connectDevice, telemetryPayload } from '../harness/devices.js';

const DEVICES = 20;
const KILLS = 20;
/** Per device; 20 devices -> 2,400 msg/s offered. */
const RATE_PER_DEVICE_PER_S = 120;

let dir: TempDir;
beforeAll(async () => {
  dir = await createTempDir('outpost-kill9-');
});
afterAll(async () => {
  await dir.remove();
});

/** Publishes QoS 1 from every device at a steady rate; records what was PUBACKed. */
function startLoad(clients: MqttClient[], acked: Set<string>, nextSeq: number[]): () => void {
  let stopped = false;
  const intervalMs = 10;
  const perTick = (RATE_PER_DEVICE_PER_S * intervalMs) / 1000;
  let credit = 0;
  const timer = setInterval(() => {
    credit += perTick;
    const n = Math.floor(credit);
    credit -= n;
    for (let d = 0; d < clients.length; d++) {
      const client = clients[d]!;
      for (let i = 0; i < n && !stopped && client.connected; i++) {
        const seq = nextSeq[d]!++;
        client.publish(`devices/dev-${d}/telemetry`, telemetryPayload(seq), { qos: 1 }, (error) => {
          if (!error) acked.add(`dev-${d}:${seq}`);
        });
      }
    }
  }, intervalMs);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

describe('kill -9 of the agent during QoS 1 ingest', () => {
  it(`keeps every PUBACKed message across ${KILLS} kills at random points`, async () => {
    const dataDir = join(dir.path, 'data');
    const config = testAgentConfig(dataDir, { agentId: 'kill9', ingest: { rateLimitMsgsPerS: 0 } });
    const acked = new Set<string>();
    const nextSeq = Array.from({ length: DEVICES }, () => 0);
    let epoch: string | undefined;
    const rates: number[] = [];

    for (let round = 0; round < KILLS; round++) {
      const agent = await startAgentProcess(config);
      epoch ??= agent.epoch;
      expect(agent.epoch).toBe(epoch); // the same database, reopened
      const clients = await Promise.all(
        Array.from({ length: DEVICES }, (_, d) => connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: `dev-${d}` })),
      );
      for (const c of clients) c.on('error', () => undefined);
      const ackedBefore = acked.size;
      const stop = startLoad(clients, acked, nextSeq);
      // A random point: after a random number of acknowledged messages in this round.
      const target = ackedBefore + 200 + Math.floor(Math.random() * 1500);
      const startedAt = performance.now();
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (acked.size >= target) {
            clearInterval(check);
            resolve();
          }
        }, 1);
      });
      rates.push(((acked.size - ackedBefore) * 1000) / (performance.now() - startedAt));
      await agent.kill9();
      stop();
      for (const c of clients) c.end(true);

      const outbox = await openOutbox({ path: join(dataDir, 'outbox.sqlite'), agentId: 'kill9', durability: 'power', maxBytes: 1 << 30, deadLetterMaxRows: 10, maxRecordsPerCommit: 1000 });
      try {
        expect(await outbox.integrityCheck()).toBe('ok');
        const stored = new Set((await outbox.read(Lane.telemetry, 0, 10_000_000)).map((r) => `${r.deviceId}:${r.deviceSeq}`));
        const missing = [...acked].filter((k) => !stored.has(k));
        expect(missing, `round ${round}: acknowledged but not in the outbox`).toEqual([]);
      } finally {
        await outbox.close();
      }
    }
    // Offered load was 2,400 msg/s; the acknowledged rate shows the test really ran at >= 2,000.
    const medianRate = [...rates].sort((x, y) => x - y)[Math.floor(rates.length / 2)]!;
    expect(medianRate).toBeGreaterThan(0);
    console.log(`kill -9 x${KILLS}: ${acked.size} acknowledged messages all kept; median acked rate ${medianRate.toFixed(0)} msg/s`);
  });
});
