import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import type { Agent } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { waitFor } from '../harness/wait.js';

let dir: TempDir;
let agent: Agent | undefined;

async function start(overrides: Partial<AgentConfigInput>): Promise<Agent> {
  agent = await startInProcessAgent(testAgentConfig(join(dir.path, 'data'), { ingest: { rateLimitMsgsPerS: 0 }, ...overrides }));
  return agent;
}

beforeEach(async () => {
  dir = await createTempDir('outpost-limits-');
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await dir.remove();
});

describe('a full outbox', () => {
  it('evicts the oldest telemetry, counts every evicted record, and keeps ingesting', async () => {
    const a = await start({
      broker: { mode: 'embedded', port: 0, allowAnonymous: true, maxPacketBytes: 16 * 1024 },
      outbox: { maxBytes: 64 * 1024 },
    });
    const devices = await Promise.all(['d0', 'd1'].map((id) => connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, { clientId: id })));
    const sent = 1_500;
    for (let i = 0; i < sent; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => publish(devices[(i + k) % 2]!, `devices/d${(i + k) % 2}/telemetry`, telemetryPayload(i + k))));
    }
    const kept = await a.outbox.read(Lane.telemetry, 0, 1_000_000);
    const stats = a.outbox.stats();
    expect(stats.evicted.telemetry).toBeGreaterThan(0);
    // Nothing vanished silently: kept + evicted = acknowledged.
    expect(kept.length + stats.evicted.telemetry).toBe(sent);
    // The evicted ones are exactly the oldest, and the eviction rows name them all.
    const evictions = await a.outbox.evictions();
    const evictedSeqs = new Set(evictions.flatMap((e) => Array.from({ length: e.lastSeq - e.firstSeq + 1 }, (_, k) => e.firstSeq + k)));
    expect(evictedSeqs.size).toBe(stats.evicted.telemetry);
    expect(Math.min(...kept.map((r) => r.seq))).toBe(Math.max(...evictedSeqs) + 1);
    const byDevice = evictions.reduce<Record<string, number>>((acc, e) => {
      for (const [d, n] of Object.entries(e.byDevice)) acc[d] = (acc[d] ?? 0) + n;
      return acc;
    }, {});
    for (const d of ['d0', 'd1']) {
      expect((byDevice[d] ?? 0) + kept.filter((r) => r.deviceId === d).length, d).toBe(sent / 2);
    }
    expect(stats.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_outbox_evicted_records', { lane: 'telemetry' })).toBe(stats.evicted.telemetry);
    // Ingest goes on.
    await publish(devices[0]!, 'devices/d0/telemetry', telemetryPayload(99_999));
    expect((await a.outbox.read(Lane.telemetry, 0, 1_000_000)).some((r) => r.deviceSeq === 99_999)).toBe(true);
    for (const d of devices) d.end(true);
  });
});

describe('a full disk', () => {
  it('leaves publishes unacknowledged instead of losing them, reports it, and recovers when space is freed', async () => {
    const maxFileBytes = 256 * 1024;
    const a = await start({ outbox: { maxBytes: 64 * 1024 * 1024, maxFileBytes } });
    // No automatic reconnect: a device that reconnects at once resends its unacknowledged
    // message while the test looks, and at the file cap a single row can still fit where the
    // batch did not, so that resend may commit (and be acknowledged, and turn /healthz back
    // to 200) between any two of the checks below. The device reconnects when the test says so.
    const device = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, { clientId: 'd0', clean: false, reconnectPeriod: 0 });
    device.on('error', () => undefined);
    const acked = new Set<number>();
    let dropped = false;
    const connectionDropped = new Promise<void>((resolve) => device.once('close', () => resolve()));
    void connectionDropped.then(() => (dropped = true));
    // One publish at a time until the file cap makes a commit fail and the agent drops the
    // connection: the failed commit is then the agent's last one (nothing else is in flight),
    // so what was acknowledged and what is stored can be compared exactly.
    // More bodies than this cannot be in a file of maxFileBytes: by then a commit must have failed.
    const moreThanFit = Math.ceil(maxFileBytes / Buffer.byteLength(telemetryPayload(0)));
    let seq = 0;
    while (!dropped && seq <= moreThanFit) {
      const s = seq++;
      await Promise.race([publish(device, 'devices/d0/telemetry', telemetryPayload(s)).then(() => acked.add(s)), connectionDropped]);
    }
    expect(dropped, 'the agent drops the connection of a publish it could not commit').toBe(true);
    const health = await fetch(`http://127.0.0.1:${a.httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_ingest_storage_failures_total')).toBeGreaterThanOrEqual(1);
    // Every acknowledged message is stored; the one whose commit failed is still pending at the device.
    const stored = await a.outbox.read(Lane.telemetry, 0, 1_000_000);
    expect(new Set(stored.map((r) => r.deviceSeq))).toEqual(acked);
    expect(acked.size).toBe(seq - 1);

    // The uplink drains (here: by hand), the file has room again, and the device's resend lands:
    // every message not drained is in the outbox exactly once.
    await a.outbox.deleteThrough(Lane.telemetry, stored.at(-1)!.seq);
    // The same stores, so the unacknowledged publish is resent (reconnect() alone starts empty ones).
    device.reconnect({ incomingStore: device.incomingStore, outgoingStore: device.outgoingStore });
    await waitFor(() => acked.size === seq, { what: 'every resent publish to be acknowledged', timeoutMs: 30_000 });
    const drained = new Set(stored.map((r) => r.deviceSeq));
    const after = (await a.outbox.read(Lane.telemetry, 0, 1_000_000)).map((r) => r.deviceSeq ?? -1).sort((x, y) => x - y);
    expect(after).toEqual(Array.from({ length: seq }, (_, s) => s).filter((s) => !drained.has(s)));
    expect((await fetch(`http://127.0.0.1:${a.httpPort}/healthz`)).status).toBe(200);
    device.end(true);
  });
});
