import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import type { Agent, StoredRecord } from '@outpost/agent';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { connectDevice, nextMessage, publish, telemetryPayload } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

// Bridge mode against a real mosquitto 2: devices talk to the site broker, the agent is one
// more client of it (persistent session, fixed ClientId) and copies telemetry into its outbox.

const BRIDGE_CLIENT_ID = 'outpost-bridge';
const TELEMETRY_FILTER = 'devices/+/telemetry';

let dir: TempDir;
let mosquitto: Mosquitto;
let agent: Agent | undefined;
const devices: MqttClient[] = [];

function bridgeConfig(overrides: Partial<AgentConfigInput> = {}): AgentConfigInput {
  return testAgentConfig(join(dir.path, 'data'), {
    broker: { mode: 'bridge', url: mosquitto.url, clientId: BRIDGE_CLIENT_ID, topics: [TELEMETRY_FILTER] },
    ...overrides,
  });
}

/** Counts the broker's "<clientId> <qos> <filter>" subscribe log lines (`log_type subscribe`). */
function bridgeSubscriptions(): number {
  return mosquitto.logs().split('\n').filter((line) => line.endsWith(`: ${BRIDGE_CLIENT_ID} 1 ${TELEMETRY_FILTER}`)).length;
}

/**
 * Starts the agent and waits until mosquitto has registered one more subscription of the
 * bridge: from then on a device publish is routed to the agent's session.
 */
async function startBridgeAgent(overrides: Partial<AgentConfigInput> = {}): Promise<Agent> {
  const before = bridgeSubscriptions();
  agent = await startInProcessAgent(bridgeConfig(overrides));
  await waitFor(() => bridgeSubscriptions() > before, { what: 'mosquitto to register the bridge subscription' });
  return agent;
}

async function device(clientId: string): Promise<MqttClient> {
  const client = await connectDevice(mosquitto.url, { clientId });
  devices.push(client);
  return client;
}

/** Waits until the telemetry lane holds `count` records and returns them (oldest first). */
function telemetryRecords(a: Agent, count: number): Promise<StoredRecord[]> {
  return waitFor(
    async () => {
      const records = await a.outbox.read(Lane.telemetry, 0, count + 100);
      return records.length >= count ? records : undefined;
    },
    { what: `${count} telemetry records in the agent outbox` },
  );
}

beforeEach(async () => {
  dir = await createTempDir('outpost-bridge-');
  mosquitto = await startMosquitto({ configLines: ['log_type subscribe'] });
});

afterEach(async () => {
  for (const client of devices.splice(0)) client.end(true);
  await agent?.close();
  agent = undefined;
  await mosquitto.stop();
  await dir.remove();
});

describe('bridge mode', () => {
  it('copies every QoS 1 device publish into the outbox, normalised, device id from the topic', async () => {
    const a = await startBridgeAgent();
    expect(a.mqttPort).toBeUndefined();
    const d1 = await device('site-d1');
    const d2 = await device('site-d2');
    const perDevice = 20;
    for (let seq = 0; seq < perDevice; seq++) {
      await publish(d1, 'devices/d1/telemetry', telemetryPayload(seq, 1_700_000_000_000 + seq));
      await publish(d2, 'devices/d2/telemetry', telemetryPayload(seq, 1_700_000_000_000 + seq));
    }
    // Extra fields are dropped, the contract's fields kept in a fixed order.
    await publish(d1, 'devices/d1/telemetry', JSON.stringify({ metrics: { t: 21.5 }, extra: 'dropped', seq: 999, ts: 1_700_000_001_000 }));

    const records = await telemetryRecords(a, 2 * perDevice + 1);
    expect(records).toHaveLength(2 * perDevice + 1);
    const seqsOf = (deviceId: string): (number | undefined)[] => records.filter((r) => r.deviceId === deviceId).map((r) => r.deviceSeq);
    const expected = Array.from({ length: perDevice }, (_, i) => i);
    expect(seqsOf('d1')).toEqual([...expected, 999]);
    expect(seqsOf('d2')).toEqual(expected);
    // The outbox seq is the agent's own, strictly increasing.
    expect(records.map((r) => r.seq)).toEqual([...records.map((r) => r.seq)].sort((x, y) => x - y));
    expect(new Set(records.map((r) => r.seq)).size).toBe(records.length);

    expect(records[0]).toMatchObject({ lane: 'telemetry', kind: 'telemetry', ts: 1_700_000_000_000, deviceSeq: 0 });
    expect(JSON.parse(records[0]!.body)).toEqual(JSON.parse(telemetryPayload(0, 1_700_000_000_000)));
    const last = records.at(-1)!;
    expect(last).toMatchObject({ deviceId: 'd1', ts: 1_700_000_001_000, deviceSeq: 999 });
    expect(last.body).toBe(JSON.stringify({ ts: 1_700_000_001_000, seq: 999, metrics: { t: 21.5 } }));

    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_ingest_accepted_total')).toBe(2 * perDevice + 1);
  });

  it('dead-letters an invalid payload and answers on the site broker at devices/{id}/errors', async () => {
    const a = await startBridgeAgent();
    const d1 = await device('site-d1');
    // The device subscribes on the connection it publishes on, so mosquitto has the
    // subscription before the publish that causes the answer.
    const answer = nextMessage(d1, 'devices/d1/errors');

    await publish(d1, 'devices/d1/telemetry', JSON.stringify({ ts: 1, metrics: { t: 'hot' } }));
    const error = JSON.parse((await answer).toString()) as { ts: number; reason: string; topic: string };
    expect(error).toMatchObject({ reason: 'invalid-payload', topic: 'devices/d1/telemetry' });
    expect(typeof error.ts).toBe('number');

    const letters = await a.outbox.deadLetters(10);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ deviceId: 'd1', reason: 'invalid-payload', topic: 'devices/d1/telemetry' });

    // Not JSON at all: a second dead letter, and the bridge keeps ingesting afterwards.
    const second = nextMessage(d1, 'devices/d1/errors');
    await publish(d1, 'devices/d1/telemetry', '{"ts": 1,');
    expect(JSON.parse((await second).toString())).toMatchObject({ reason: 'invalid-json', topic: 'devices/d1/telemetry' });
    await publish(d1, 'devices/d1/telemetry', telemetryPayload(1));
    const records = await telemetryRecords(a, 1);
    expect(records.map((r) => [r.deviceId, r.deviceSeq])).toEqual([['d1', 1]]);
    expect(await a.outbox.deadLetters(10)).toHaveLength(2);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_ingest_rejected_total', { reason: 'invalid-payload' })).toBe(1);
  });

  it('applies no per-device rate limit: refusing on a shared connection could only drop acknowledged data', async () => {
    const a = await startBridgeAgent({ ingest: { rateLimitMsgsPerS: 0.001, rateLimitBurst: 1 } });
    const d1 = await device('site-d1');
    for (let seq = 0; seq < 5; seq++) await publish(d1, 'devices/d1/telemetry', telemetryPayload(seq));
    const records = await telemetryRecords(a, 5);
    expect(records.map((r) => r.deviceSeq)).toEqual([0, 1, 2, 3, 4]);
  });

  it('keeps its persistent session: messages published while the agent is down arrive after its restart', async () => {
    const first = await startBridgeAgent();
    const d1 = await device('site-d1');
    for (let seq = 0; seq < 5; seq++) await publish(d1, 'devices/d1/telemetry', telemetryPayload(seq));
    const before = await telemetryRecords(first, 5);
    expect(before.map((r) => r.deviceSeq)).toEqual([0, 1, 2, 3, 4]);
    const epoch = first.epoch;

    await first.close();
    agent = undefined;
    // Nobody is connected for the bridge now: mosquitto queues these QoS 1 messages in the
    // bridge's session (clean: false, same ClientId) and acknowledges them to the device.
    for (let seq = 5; seq < 15; seq++) await publish(d1, 'devices/d1/telemetry', telemetryPayload(seq));

    agent = await startInProcessAgent(bridgeConfig());
    expect(agent.epoch).toBe(epoch);
    const after = await telemetryRecords(agent, 15);
    expect(after.map((r) => r.deviceSeq)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(after.slice(0, 5)).toEqual(before);
    expect(after[5]!.seq).toBeGreaterThan(before[4]!.seq);

    // Live traffic still flows over the resumed session.
    await publish(d1, 'devices/d1/telemetry', telemetryPayload(15));
    expect((await telemetryRecords(agent, 16)).at(-1)!.deviceSeq).toBe(15);
  });
});
