// The control plane in process against a real nats-server per test. The test plays the agents:
// it publishes hand-built gzip batches, heartbeats and eviction reports with the @nats-io
// modules, then reads what an operator would see through the HTTP API and /metrics.
import { gzipSync } from 'node:zlib';
import { jetstream, jetstreamManager, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ACCOUNTING_BUCKET,
  accountingKey,
  AgentDetailResponseSchema,
  AgentListResponseSchema,
  ApiErrorResponseSchema,
  BATCH_ENCODING,
  batchMsgId,
  ControlPlaneConfigSchema,
  DeviceDetailResponseSchema,
  DeviceListResponseSchema,
  ENCODING_HEADER,
  evictionMsgId,
  evictionSubject,
  UPLINK_STREAM,
  heartbeatSubject,
  parseConfig,
  uplinkSubject,
  type AgentDetailResponse,
  type ControlPlaneConfigInput,
  type EvictionReport,
  type Heartbeat,
  type Lane,
  type UplinkBatch,
} from '@outpost/shared';
import { startControlPlane, UPLINK_CONSUMER, type ControlPlane } from '@outpost/control-plane';
import { metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { waitFor } from '../harness/wait.js';

const EPOCH = 'epoch0001';
const T0 = 1_700_000_000_000;
const OFFLINE_AFTER_MS = 1_500;

/** Everything a test started, stopped after it even when an assertion failed midway (reverse order). */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function nats(): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return server;
}

async function controlPlane(server: NatsServer, overrides: Partial<ControlPlaneConfigInput> = {}): Promise<ControlPlane> {
  const config = parseConfig(ControlPlaneConfigSchema, {
    nats: { servers: [server.url], reconnectWaitMs: 100, reconnectJitterMs: 100 },
    http: { host: '127.0.0.1', port: 0 },
    fleet: { offlineAfterMs: OFFLINE_AFTER_MS },
    ...overrides,
  });
  const cp = await startControlPlane(config, { logger: pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' }) });
  cleanups.push(() => cp.close());
  return cp;
}

/** A fake agent: publishes what the real agent's uplink would, with the same subjects and ids. */
class FakeAgent {
  readonly #js: JetStreamClient;
  readonly agentId: string;

  private constructor(nc: NatsConnection, agentId: string) {
    this.#js = jetstream(nc, { timeout: 5_000 });
    this.agentId = agentId;
  }

  static async connect(server: NatsServer, agentId: string): Promise<FakeAgent> {
    const nc = await connect({ servers: [server.url], maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanups.push(() => nc.close());
    return new FakeAgent(nc, agentId);
  }

  /** Records `first..last` of `lane`, device `d{seq % devices}` with its own seq `floor(seq / devices)` (no device-side gaps). */
  batch(first: number, last: number, lane: Lane = 'telemetry', devices = 5): UplinkBatch {
    const records = [];
    for (let seq = first; seq <= last; seq++) {
      const ts = T0 + seq;
      records.push({ seq, deviceId: `d${seq % devices}`, ts, receivedAtMs: ts + 1, deviceSeq: Math.floor(seq / devices), kind: 'telemetry', body: { ts, seq, metrics: { t: seq } } });
    }
    return { agentId: this.agentId, epoch: EPOCH, lane, firstSeq: first, lastSeq: last, records };
  }

  /** `timeoutMs`: give up waiting for the stream's ack after this (default 5 s). */
  publishBatch(batch: UplinkBatch, timeoutMs?: number): Promise<PubAck> {
    const msgId = batchMsgId(batch.agentId, batch.epoch, batch.lane, batch.firstSeq, batch.lastSeq);
    return this.publishRaw(uplinkSubject(batch.agentId, batch.lane), gzipSync(JSON.stringify(batch)), msgId, BATCH_ENCODING, timeoutMs);
  }

  /** `encoding` null: no Outpost-Encoding header. */
  publishRaw(subject: string, payload: Uint8Array, msgId: string, encoding: string | null = BATCH_ENCODING, timeoutMs?: number): Promise<PubAck> {
    const h = natsHeaders();
    if (encoding !== null) h.set(ENCODING_HEADER, encoding);
    return this.#js.publish(subject, payload, { msgID: msgId, headers: h, ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) });
  }

  heartbeat(overrides: Partial<Heartbeat> = {}): Promise<PubAck> {
    const hb: Heartbeat = {
      agentId: this.agentId,
      epoch: EPOCH,
      ts: Date.now(),
      labels: { site: 'lab', tier: 'edge' },
      versions: { agent: '0.1.0' },
      buffer: { records: { events: 0, telemetry: 12 }, bytes: 4096, maxBytes: 1 << 20, evictedRecords: { events: 0, telemetry: 0 } },
      ingest: { accepted: 100, rejected: 0, devicesConnected: 5 },
      ...overrides,
    };
    return this.#js.publish(heartbeatSubject(this.agentId), JSON.stringify(hb));
  }

  eviction(report: Omit<EvictionReport, 'agentId' | 'epoch' | 'atMs'>, msgId = evictionMsgId(this.agentId, EPOCH, report.id)): Promise<PubAck> {
    const full: EvictionReport = { ...report, agentId: this.agentId, epoch: EPOCH, atMs: Date.now() };
    return this.#js.publish(evictionSubject(this.agentId), JSON.stringify(full), { msgID: msgId });
  }
}

async function api(cp: ControlPlane, path: string): Promise<{ status: number; body: unknown; text: string }> {
  const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`);
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text };
}

async function agentDetail(cp: ControlPlane, agentId: string): Promise<AgentDetailResponse | undefined> {
  const { status, body } = await api(cp, `/api/agents/${agentId}`);
  return status === 200 ? AgentDetailResponseSchema.parse(body) : undefined;
}

/** Waits until the agent's totals show `received` records (cheap: one GET per probe). */
function waitForReceived(cp: ControlPlane, agentId: string, received: number, timeoutMs = 20_000): Promise<AgentDetailResponse> {
  return waitFor(
    async () => {
      const detail = await agentDetail(cp, agentId);
      return detail !== undefined && detail.totals.received >= received ? detail : undefined;
    },
    { what: `${agentId} to show ${received} records received`, timeoutMs },
  );
}

describe('control plane accounting', () => {
  it('counts records once: JetStream drops a repeated msg id, a re-cut batch counts as duplicates', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-1');

    expect((await agent.publishBatch(agent.batch(1, 100))).duplicate).toBe(false);
    // The same batch again (the agent missed the ack): same Nats-Msg-Id, dropped by JetStream.
    expect((await agent.publishBatch(agent.batch(1, 100))).duplicate).toBe(true);
    // Re-cut after a restart of the agent: 51..150 overlaps 51..100.
    expect((await agent.publishBatch(agent.batch(51, 150))).duplicate).toBe(false);

    const detail = await waitForReceived(cp, 'gw-1', 150);
    expect(detail.totals).toEqual({ received: 150, duplicates: 50, gaps: 0, explainedByEviction: 0, unexplainedGaps: 0, evicted: 0 });
    expect(detail.accounting).toEqual([expect.objectContaining({ epoch: EPOCH, lane: 'telemetry', received: 150, duplicates: 50, maxSeq: 150, gaps: 0, devices: 5 })]);
    // Data but no heartbeat yet.
    expect(detail).toMatchObject({ status: 'unknown', reasons: ['no-heartbeat'] });

    const devices = DeviceListResponseSchema.parse((await api(cp, '/api/agents/gw-1/devices')).body);
    expect(devices.devices.map((d) => [d.deviceId, d.received, d.duplicates, d.gaps])).toEqual([
      ['d0', 30, 10, 0],
      ['d1', 30, 10, 0],
      ['d2', 30, 10, 0],
      ['d3', 30, 10, 0],
      ['d4', 30, 10, 0],
    ]);
    const d0 = DeviceDetailResponseSchema.parse((await api(cp, '/api/agents/gw-1/devices/d0')).body);
    expect(d0).toMatchObject({ agentId: 'gw-1', deviceId: 'd0', received: 30, latest: { ts: T0 + 150, receivedAtMs: T0 + 151, metrics: { t: 150 } } });

    const metrics = (await api(cp, '/metrics')).text;
    expect(metricValue(metrics, 'outpost_cp_uplink_batches_total')).toBe(2);
    expect(metricValue(metrics, 'outpost_cp_uplink_records_total', { lane: 'telemetry' })).toBe(150);
    expect(metricValue(metrics, 'outpost_cp_uplink_duplicate_records_total', { lane: 'telemetry' })).toBe(50);
  });

  it('reports holes as gaps, explained by eviction reports applied once', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-2');
    await agent.publishBatch(agent.batch(1, 50));
    await agent.publishBatch(agent.batch(81, 100));
    let detail = await waitForReceived(cp, 'gw-2', 70);
    expect(detail.totals).toMatchObject({ received: 70, gaps: 30, explainedByEviction: 0, unexplainedGaps: 30 });

    // The agent evicted 51..70 (4 records of each of 5 devices).
    const report = { id: 1, lane: 'telemetry' as const, firstSeq: 51, lastSeq: 70, records: 20, bytes: 2000, byDevice: { d0: 4, d1: 4, d2: 4, d3: 4, d4: 4 } };
    await agent.eviction(report);
    // Sent again outside JetStream's dedup (another msg id): still applied once, by report id.
    await agent.eviction(report, 'resent-1');
    await agent.eviction({ id: 2, lane: 'telemetry', firstSeq: 71, lastSeq: 72, records: 2, bytes: 200, byDevice: { d1: 1, d2: 1 } });
    detail = await waitFor(
      async () => {
        const d = await agentDetail(cp, 'gw-2');
        return d !== undefined && d.accounting[0]!.evicted.reports === 2 ? d : undefined;
      },
      { what: 'both eviction reports applied' },
    );
    expect(detail.accounting[0]).toMatchObject({ received: 70, gaps: 30, explainedByEviction: 22, unexplainedGaps: 8, evicted: { records: 22, bytes: 2200, reports: 2 } });
    const d1 = DeviceDetailResponseSchema.parse((await api(cp, '/api/agents/gw-2/devices/d1')).body);
    // d1's agent seqs 51, 56, ..., 76 (its device seqs 10..15) never arrived.
    expect(d1).toMatchObject({ received: 14, evicted: 5, gaps: 6 });
  });

  it('terminates bad batches, counts them and keeps processing the ones after', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-3');
    const subject = uplinkSubject('gw-3', 'telemetry');
    await agent.publishRaw(subject, Buffer.from('{"not": "gzip"}'), 'bad-1');
    await agent.publishRaw(subject, gzipSync('{"agentId": "gw-3", '), 'bad-2');
    await agent.publishRaw(subject, gzipSync(JSON.stringify(agent.batch(1, 10))), 'bad-3', null);
    await agent.publishRaw(subject, gzipSync(JSON.stringify(agent.batch(1, 10))), 'bad-3b', 'zstd+json');
    await agent.publishRaw(uplinkSubject('gw-3', 'events'), gzipSync(JSON.stringify(agent.batch(1, 10))), 'bad-4');
    await agent.publishBatch(agent.batch(1, 10));
    await waitForReceived(cp, 'gw-3', 10);

    const metrics = (await api(cp, '/metrics')).text;
    for (const [reason, count] of [['not-gzip', 1], ['not-json', 1], ['unsupported-encoding', 2], ['subject-mismatch', 1]] as const) {
      expect(metricValue(metrics, 'outpost_cp_bad_messages_total', { stream: 'uplink', reason }) ?? 0, reason).toBe(count);
    }
    expect((await agentDetail(cp, 'gw-3'))!.totals).toMatchObject({ received: 10, duplicates: 0 });
  });
});

describe('nothing stalls on one bad value', () => {
  it("a poisoned accounting value of agent A: agents B and C keep being counted, A is flagged with a stable code", async () => {
    const server = await nats();
    // Written before any replica cached it: what a bug of another version, or a hand edit, leaves behind.
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    const kv = await new Kvm(nc).create(ACCOUNTING_BUCKET, { history: 1 });
    await kv.put(accountingKey('gw-a', EPOCH, 'telemetry'), '{"v":1,"this":"is not an accounting value"}');
    const cp = await controlPlane(server);
    const [a, b, c] = await Promise.all(['gw-a', 'gw-b', 'gw-c'].map((id) => FakeAgent.connect(server, id)));
    // Interleaved, so A's messages sit in the consumer between B's and C's.
    for (let k = 0; k < 5; k++) {
      for (const agent of [a!, b!, c!]) await agent.publishBatch(agent.batch(k * 20 + 1, k * 20 + 20));
    }
    await waitForReceived(cp, 'gw-b', 100);
    await waitForReceived(cp, 'gw-c', 100);
    const flagged = await waitFor(
      async () => {
        const detail = await agentDetail(cp, 'gw-a');
        return detail !== undefined && detail.accountingProblems.some((p) => p.messages !== undefined && p.messages >= 5) ? detail : undefined;
      },
      { what: "gw-a's five batches given up and shown on the agent", timeoutMs: 30_000 },
    );
    expect(flagged.accountingProblems).toContainEqual(expect.objectContaining({ epoch: EPOCH, lane: 'telemetry', code: 'KV_VALUE_INVALID', messages: 5 }));
    expect(flagged.accounting).toEqual([]);
    const metrics = (await api(cp, '/metrics')).text;
    expect(metricValue(metrics, 'outpost_cp_accounting_given_up_messages_total', { code: 'KV_VALUE_INVALID' })).toBe(5);
    // B and C are still counted after A's poison was met, and the consumer is not held.
    await b!.publishBatch(b!.batch(101, 150));
    await c!.publishBatch(c!.batch(101, 150));
    await waitForReceived(cp, 'gw-b', 150);
    await waitForReceived(cp, 'gw-c', 150);
    expect((await agentDetail(cp, 'gw-b'))!.accountingProblems).toEqual([]);
  });
});

describe('fleet registry', () => {
  it('shows an agent online with its labels after a heartbeat, and offline once heartbeats stop', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-4');
    await agent.heartbeat();
    const listed = await waitFor(
      async () => {
        const list = AgentListResponseSchema.parse((await api(cp, '/api/agents')).body);
        return list.agents.find((a) => a.agentId === 'gw-4');
      },
      { what: 'gw-4 in the agent list' },
    );
    expect(listed).toMatchObject({ status: 'online', labels: { site: 'lab', tier: 'edge' }, epoch: EPOCH, versions: { agent: '0.1.0' } });
    expect((await agentDetail(cp, 'gw-4'))!).toMatchObject({ status: 'online', accounting: [] });

    await agent.heartbeat({ inference: { up: false } });
    await waitFor(async () => (await agentDetail(cp, 'gw-4'))?.status === 'degraded', { what: 'gw-4 degraded (inference down)' });

    const offline = await waitFor(
      async () => {
        const detail = await agentDetail(cp, 'gw-4');
        return detail?.status === 'offline' ? detail : undefined;
      },
      { what: `gw-4 offline ${OFFLINE_AFTER_MS} ms after its last heartbeat` },
    );
    expect(offline.reasons).toEqual(['heartbeat-missed']);
    expect(Date.now() - offline.lastSeenMs!).toBeGreaterThan(OFFLINE_AFTER_MS);
    expect(metricValue((await api(cp, '/metrics')).text, 'outpost_cp_agents', { status: 'offline' })).toBe(1);
  });
});

describe('HTTP API', () => {
  it('answers unknown agents and devices with 404, bad ids with 400, each with a stable code', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-5');
    await agent.publishBatch(agent.batch(1, 5));
    await waitForReceived(cp, 'gw-5', 5);

    const cases: [string, number, string][] = [
      ['/api/agents/nobody', 404, 'AGENT_NOT_FOUND'],
      ['/api/agents/nobody/devices', 404, 'AGENT_NOT_FOUND'],
      ['/api/agents/nobody/devices/d1', 404, 'AGENT_NOT_FOUND'],
      ['/api/agents/gw-5/devices/d9', 404, 'DEVICE_NOT_FOUND'],
      ['/api/agents/bad.agent', 400, 'REQUEST_INVALID'],
      [`/api/agents/${'a'.repeat(65)}`, 400, 'REQUEST_INVALID'],
      [`/api/agents/${'a'.repeat(300)}`, 400, 'REQUEST_INVALID'],
      ['/api/agents/gw-5/devices/bad%20device', 400, 'REQUEST_INVALID'],
      ['/api/agents/gw-5/devices/%E0%A4%A', 400, 'REQUEST_INVALID'],
      ['/api/nothing', 404, 'ROUTE_NOT_FOUND'],
    ];
    for (const [path, status, code] of cases) {
      const response = await api(cp, path);
      expect(response.status, path).toBe(status);
      expect(ApiErrorResponseSchema.parse(response.body).error.code, path).toBe(code);
    }
    const health = await api(cp, '/healthz');
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', checks: [{ name: 'nats', ok: true }] } });
  });
});

describe('replicas and restarts', () => {
  it('two control planes on the same NATS share the work and keep totals exact', async () => {
    const server = await nats();
    // Small pulls, so both replicas' pull requests take turns at the messages.
    const ingest = { fetchBatch: 4 };
    // Started together: both declare the streams, consumers and buckets at the same moment.
    const [a, b] = await Promise.all([controlPlane(server, { ingest }), controlPlane(server, { ingest })]);
    const agents = [await FakeAgent.connect(server, 'gw-6'), await FakeAgent.connect(server, 'gw-7')];
    const BATCHES = 120;
    const SIZE = 50;
    const published: Promise<PubAck>[] = [];
    for (let k = 0; k < BATCHES; k++) {
      for (const agent of agents) {
        for (const lane of ['telemetry', 'events'] as const) {
          // Every batch resends the last 10 records of the previous one (a re-cut after a lost ack).
          const first = Math.max(1, k * SIZE - 9);
          published.push(agent.publishBatch(agent.batch(first, (k + 1) * SIZE, lane)));
        }
      }
    }
    await Promise.all(published);
    const total = BATCHES * SIZE;
    for (const agent of agents) {
      const detail = await waitForReceived(a, agent.agentId, 2 * total, 60_000);
      for (const lane of detail.accounting) expect(lane).toMatchObject({ received: total, duplicates: (BATCHES - 1) * 10, gaps: 0 });
    }
    const batchesBy = async (cp: ControlPlane) => metricValue((await api(cp, '/metrics')).text, 'outpost_cp_uplink_batches_total') ?? 0;
    const [byA, byB] = [await batchesBy(a), await batchesBy(b)];
    expect(byA).toBeGreaterThan(0);
    expect(byB).toBeGreaterThan(0);
    expect(byA + byB).toBe(published.length);
  });

  it('declares its consumer again when someone deletes it on the server', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await FakeAgent.connect(server, 'gw-9');
    await agent.publishBatch(agent.batch(1, 10));
    await waitForReceived(cp, 'gw-9', 10);
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    await (await jetstreamManager(nc)).consumers.delete(UPLINK_STREAM, UPLINK_CONSUMER);
    // The deleted consumer took its position with it: the new one starts over from the first
    // batch, which the accounting recognises as applied (its stream seq), so nothing counts twice.
    await agent.publishBatch(agent.batch(11, 20));
    const detail = await waitForReceived(cp, 'gw-9', 20);
    expect(detail.totals).toMatchObject({ received: 20, duplicates: 0, gaps: 0 });
    expect(metricValue((await api(cp, '/metrics')).text, 'outpost_cp_redelivered_messages_total')).toBe(1);
  });

  it('keeps consuming across a nats-server restart in the middle of a backlog', async () => {
    const server = await nats();
    // A first replica only declares the streams; the backlog is published while none runs.
    await (await controlPlane(server)).close();
    const agent = await FakeAgent.connect(server, 'gw-8');
    const BATCHES = 200;
    const SIZE = 500;
    await Promise.all(Array.from({ length: BATCHES / 2 }, (_, k) => agent.publishBatch(agent.batch(k * SIZE + 1, (k + 1) * SIZE))));
    // Kill the server as soon as a replica has started working through the backlog (one
    // message per pull, so the backlog takes many KV writes and the kill cuts some in flight).
    const cp = await controlPlane(server, { ingest: { fetchBatch: 1 } });
    await waitForReceived(cp, 'gw-8', 1);
    await server.restart();
    // The other half once the server takes publishes again (the client reconnects by itself; a
    // publish sent meanwhile gets no ack and is sent again, deduplicated by its msg id).
    for (let k = BATCHES / 2; k < BATCHES; k++) {
      const batch = agent.batch(k * SIZE + 1, (k + 1) * SIZE);
      await waitFor(
        () =>
          agent.publishBatch(batch, 500).then(
            () => true,
            () => false,
          ),
        { what: `batch ${k} stored after the restart`, timeoutMs: 30_000, intervalMs: 50 },
      );
    }
    const detail = await waitForReceived(cp, 'gw-8', BATCHES * SIZE, 60_000);
    // Writes and acks cut by the kill were retried or redelivered: nothing counted twice.
    expect(detail.totals).toMatchObject({ received: BATCHES * SIZE, duplicates: 0, gaps: 0 });
    expect((await api(cp, '/healthz')).status).toBe(200);
  });
});
