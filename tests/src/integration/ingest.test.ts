import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import { hashPassword, type Agent } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { closed, connectDevice, nextMessage, publish, telemetryPayload } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { waitFor } from '../harness/wait.js';

let dir: TempDir;
let agent: Agent | undefined;
const url = (): string => `mqtt://127.0.0.1:${agent?.mqttPort}`;

async function start(overrides: Partial<AgentConfigInput> = {}): Promise<Agent> {
  agent = await startInProcessAgent(testAgentConfig(join(dir.path, 'data'), overrides));
  return agent;
}

async function allTelemetry(a: Agent) {
  return a.outbox.read(Lane.telemetry, 0, 1_000_000);
}

beforeEach(async () => {
  dir = await createTempDir('outpost-ingest-');
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await dir.remove();
});

describe('ingest into the outbox', () => {
  it('commits a QoS 1 publish before its PUBACK and normalises the body', async () => {
    const a = await start();
    const device = await connectDevice(url(), { clientId: 'd1' });
    await publish(device, 'devices/d1/telemetry', JSON.stringify({ ts: 1700000000000, seq: 7, metrics: { t: 21.5 }, extra: 'dropped' }));
    // The PUBACK arrived, so the record is already committed: no waiting.
    const records = await allTelemetry(a);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ deviceId: 'd1', ts: 1700000000000, deviceSeq: 7, kind: 'telemetry', lane: 'telemetry' });
    expect(JSON.parse(records[0]!.body)).toEqual({ ts: 1700000000000, seq: 7, metrics: { t: 21.5 } });
    device.end(true);
  });

  it.each([
    ['not JSON', Buffer.from('{"ts": 1,'), 'invalid-json'],
    ['not UTF-8', Buffer.from([0xff, 0xfe, 0x7b]), 'not-utf8'],
    ['a string metric', Buffer.from(JSON.stringify({ ts: 1, metrics: { t: 'hot' } })), 'invalid-payload'],
    ['no metrics', Buffer.from(JSON.stringify({ ts: 1, metrics: {} })), 'invalid-payload'],
    ['a negative ts', Buffer.from(JSON.stringify({ ts: -5, metrics: { t: 1 } })), 'invalid-payload'],
  ])('dead-letters %s, answers on devices/{id}/errors, and keeps the connection', async (_name, payload, reason) => {
    const a = await start();
    const device = await connectDevice(url(), { clientId: 'd1' });
    const answer = nextMessage(device, 'devices/d1/errors');
    await publish(device, 'devices/d1/telemetry', payload);
    const error = JSON.parse((await answer).toString()) as { reason: string; topic: string; detail: string };
    expect(error).toMatchObject({ reason, topic: 'devices/d1/telemetry' });
    expect(error.detail.length).toBeGreaterThan(0);
    const letters = await a.outbox.deadLetters(10);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ deviceId: 'd1', reason, topic: 'devices/d1/telemetry' });
    expect(await allTelemetry(a)).toHaveLength(0);
    // Still connected and still ingesting.
    await publish(device, 'devices/d1/telemetry', telemetryPayload(1));
    expect(await allTelemetry(a)).toHaveLength(1);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_ingest_rejected_total', { reason })).toBeDefined();
    device.end(true);
  });

  it('does not route a rejected payload to local subscribers, only valid ones', async () => {
    await start();
    const device = await connectDevice(url(), { clientId: 'd1' });
    const seen: string[] = [];
    device.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await device.subscribeAsync('devices/d1/#', { qos: 1 });
    await publish(device, 'devices/d1/telemetry', 'garbage');
    await publish(device, 'devices/d1/telemetry', telemetryPayload(2, 5));
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (seen.some((s) => s.startsWith('devices/d1/telemetry'))) resolve();
      };
      device.on('message', check);
      check();
    });
    expect(seen.filter((s) => s.startsWith('devices/d1/telemetry'))).toEqual([`devices/d1/telemetry ${telemetryPayload(2, 5)}`]);
    expect(seen.some((s) => s.startsWith('devices/d1/errors'))).toBe(true);
    device.end(true);
  });

  it('reads a device over its rate more slowly instead of refusing it: every QoS 1 publish acknowledged once, no disconnect', async () => {
    const a = await start({ ingest: { rateLimitMsgsPerS: 20, rateLimitBurst: 3 } });
    const device = await connectDevice(url(), { clientId: 'd1', reconnectPeriod: 50, clean: false });
    let disconnects = 0;
    device.on('close', () => disconnects++);
    await Promise.all(Array.from({ length: 12 }, (_, i) => publish(device, 'devices/d1/telemetry', telemetryPayload(i))));
    expect(disconnects).toBe(0);
    expect((await allTelemetry(a)).map((r) => r.deviceSeq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const metrics = await a.metrics.registry.metrics();
    expect(metricValue(metrics, 'outpost_ingest_rate_limit_pauses_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'outpost_ingest_rejected_total', { reason: 'rate-limited' }) ?? 0).toBe(0);
    device.end(true);
  });

  it('answers a QoS 0 publish over the rate on devices/{id}/errors and keeps the connection', async () => {
    const a = await start({ ingest: { rateLimitMsgsPerS: 1, rateLimitBurst: 1 } });
    const device = await connectDevice(url(), { clientId: 'd1' });
    const answer = nextMessage(device, 'devices/d1/errors');
    await publish(device, 'devices/d1/telemetry', telemetryPayload(1), 0);
    await publish(device, 'devices/d1/telemetry', telemetryPayload(2), 0);
    expect(JSON.parse((await answer).toString())).toMatchObject({ reason: 'rate-limited', topic: 'devices/d1/telemetry' });
    // QoS 0 has no PUBACK to wait for: the first message is committed by the group commit it
    // joined, which may land after the second one's answer.
    const stored = await waitFor(async () => {
      const records = await allTelemetry(a);
      return records.length > 0 && records;
    }, { what: 'the first QoS 0 message in the outbox' });
    expect(stored.map((r) => r.deviceSeq)).toEqual([1]);
    expect(device.connected).toBe(true);
    device.end(true);
  });

  it('closes only the connection that declares an oversize packet', async () => {
    const a = await start({ broker: { mode: 'embedded', port: 0, allowAnonymous: true, maxPacketBytes: 4096 } });
    const good = await connectDevice(url(), { clientId: 'good' });
    const bad = await connectDevice(url(), { clientId: 'bad' });
    const badClosed = closed(bad);
    bad.publish('devices/bad/telemetry', Buffer.alloc(64 * 1024, 0x20), { qos: 1 });
    await badClosed;
    await publish(good, 'devices/good/telemetry', telemetryPayload(1));
    expect((await allTelemetry(a)).map((r) => r.deviceId)).toEqual(['good']);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_packet_guard_closed_total', { reason: 'packet-too-large' })).toBeDefined();
    good.end(true);
    bad.end(true);
  });

  it('survives garbage bytes on a raw socket while a device keeps flowing', async () => {
    const a = await start();
    const good = await connectDevice(url(), { clientId: 'good' });
    const garbage = [
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), // malformed remaining length
      Buffer.from([0x30, 0x05, 0x00, 0x09, 0x61]), // publish before connect, truncated topic
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]), // CONNECT, empty ClientId
    ];
    for (const bytes of garbage) {
      const socket = net.connect(a.mqttPort!, '127.0.0.1');
      const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => undefined);
      socket.resume(); // read what the broker answers, or 'close' never fires
      socket.end(bytes);
      await done;
    }
    await publish(good, 'devices/good/telemetry', telemetryPayload(1));
    expect(await allTelemetry(a)).toHaveLength(1);
    good.end(true);
  });

  // A device that sends CONNECT and two PINGREQs and goes away at once: its socket is closed
  // while the agent still checks its password, and aedes reads nothing more (not even the end
  // of the stream) until it has answered each packet it read. Its PINGRESPs go into the closed
  // socket: that must close the client, not leave it waiting for a 'drain' that never comes.
  it('lets go of a device that ended before its CONNECT was accepted', async () => {
    const a = await start({
      broker: {
        mode: 'embedded',
        port: 0,
        allowAnonymous: false,
        devices: [
          { id: 'good', passwordHash: await hashPassword('good-pw', { costLog2: 10 }) },
          // A costly hash, so that the check outlasts the connection by far.
          { id: 'late', passwordHash: await hashPassword('late-pw', { costLog2: 16 }) },
        ],
      },
    });
    const good = await connectDevice(url(), { clientId: 'good', username: 'good', password: 'good-pw' });
    const raw = net.connect(a.mqttPort!, '127.0.0.1');
    raw.on('error', () => undefined);
    const answered: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => answered.push(chunk));
    const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    await once(raw, 'connect');
    const will = { topic: 'devices/late/telemetry', payload: Buffer.from(telemetryPayload(1)), qos: 1 as const, retain: false };
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'late', clean: true, keepalive: 0, username: 'late', password: Buffer.from('late-pw'), will });
    const pingreq = mqttPacket.generate({ cmd: 'pingreq' });
    raw.write(Buffer.concat([connect, pingreq, pingreq]));
    // A round trip through the same agent process: by its SUBACK the agent has read the packets.
    await good.subscribeAsync('devices/good/errors');
    raw.end();
    await rawClosed;
    expect(Buffer.concat(answered), 'nothing answered before the connection closed').toHaveLength(0);
    // The will is published when aedes closes the client, so it shows that the agent let go.
    await waitFor(async () => (await allTelemetry(a)).some((r) => r.deviceId === 'late'), { what: "the will of the device that went away, published as aedes closes its client" });
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_clients_connected')).toBe(1);
    good.end(true);
  });
});

describe('device authentication and ACL', () => {
  const devices = async () => [
    { id: 'alice', passwordHash: await hashPassword('alice-pw', { costLog2: 10 }) },
    { id: 'bob', passwordHash: await hashPassword('bob-pw', { costLog2: 10 }) },
  ];
  const authConfig = async (): Promise<Partial<AgentConfigInput>> => ({ broker: { mode: 'embedded', port: 0, allowAnonymous: false, devices: await devices() } });

  it('accepts the right password and refuses a wrong one, an unknown user and anonymous', async () => {
    await start(await authConfig());
    const ok = await connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'alice-pw' });
    ok.end(true);
    await expect(connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'nope' })).rejects.toThrow(/Bad username or password/);
    await expect(connectDevice(url(), { clientId: 'eve', username: 'eve', password: 'x' })).rejects.toThrow(/Bad username or password/);
    await expect(connectDevice(url(), { clientId: 'eve' })).rejects.toThrow(/Not authorized/);
  });

  it('binds the ClientId to the identity and refuses an empty one', async () => {
    await start(await authConfig());
    await expect(connectDevice(url(), { clientId: 'bob', username: 'alice', password: 'alice-pw' })).rejects.toThrow(/Identifier rejected/);
    await expect(connectDevice(url(), { clientId: '', clean: true, username: 'alice', password: 'alice-pw' })).rejects.toThrow(/Identifier rejected/);
  });

  it('refuses a will outside the device prefix', async () => {
    await start(await authConfig());
    await expect(
      connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'alice-pw', will: { topic: 'devices/bob/telemetry', payload: Buffer.from('x'), qos: 0, retain: false } }),
    ).rejects.toThrow(/Not authorized/);
    const ok = await connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'alice-pw', will: { topic: 'devices/alice/status', payload: Buffer.from('gone'), qos: 0, retain: false } });
    ok.end(true);
  });

  it('lets device A neither publish nor subscribe as device B', async () => {
    const a = await start(await authConfig());
    const alice = await connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'alice-pw' });
    // A refused filter gets SUBACK 0x80 (mqtt.js rejects on it); the connection stays.
    for (const filter of ['devices/bob/#', 'devices/+/telemetry', '#', '$SYS/#']) {
      await expect(alice.subscribeAsync(filter), filter).rejects.toThrow(/Subscribe error/);
    }
    expect((await alice.subscribeAsync('devices/alice/#')).map((g) => g.qos)).toEqual([0]);
    const aliceClosed = closed(alice);
    alice.publish('devices/bob/telemetry', telemetryPayload(1), { qos: 1 });
    await aliceClosed;
    expect(await allTelemetry(a)).toHaveLength(0);
    // A device may not spoof the agent's own inference or error topics either.
    const again = await connectDevice(url(), { clientId: 'alice', username: 'alice', password: 'alice-pw' });
    const againClosed = closed(again);
    again.publish('devices/alice/inference', '{}', { qos: 1 });
    await againClosed;
    alice.end(true);
    again.end(true);
  });
});
