import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Lane } from '@outpost/shared';
import { openOutbox } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startAgentProcess, testAgentConfig } from '../harness/agent-process.js';
import { connectDevice, startSteadyLoad } from '../harness/devices.js';
import { seededRandom } from '../harness/random.js';

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

describe('kill -9 of the agent during QoS 1 ingest', () => {
  it(`keeps every PUBACKed message across ${KILLS} kills at random points`, async () => {
    const dataDir = join(dir.path, 'data');
    const config = testAgentConfig(dataDir, { agentId: 'kill9', ingest: { rateLimitMsgsPerS: 0 } });
    const acked = new Set<string>();
    const nextSeq = new Map<string, number>();
    let epoch: string | undefined;
    const rates: number[] = [];
    const killPoints = seededRandom('kill -9 points');

    for (let round = 0; round < KILLS; round++) {
      const agent = await startAgentProcess(config);
      epoch ??= agent.epoch;
      expect(agent.epoch).toBe(epoch); // the same database, reopened
      const devices = await Promise.all(
        Array.from({ length: DEVICES }, async (_, d) => {
          const client = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: `dev-${d}` });
          client.on('error', () => undefined);
          return { deviceId: `dev-${d}`, client };
        }),
      );
      const load = startSteadyLoad(devices, RATE_PER_DEVICE_PER_S, nextSeq);
      // A random point: after a random number of acknowledged messages in this round.
      const startedAt = performance.now();
      await load.whenAcked(killPoints.int(200, 1699));
      rates.push((load.ackedCount() * 1000) / (performance.now() - startedAt));
      await agent.kill9();
      load.stop();
      for (const d of devices) d.client.end(true);
      for (const [deviceId, seqs] of load.acked) for (const seq of seqs) acked.add(`${deviceId}:${seq}`);

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
    // Offered load is 2,400 msg/s; the acknowledged rate is printed, not asserted (no timing in tests).
    const medianRate = [...rates].sort((x, y) => x - y)[Math.floor(rates.length / 2)]!;
    console.log(`kill -9 x${KILLS}: ${acked.size} acknowledged messages all kept; median acked rate ${medianRate.toFixed(0)} msg/s`);
  });
});
