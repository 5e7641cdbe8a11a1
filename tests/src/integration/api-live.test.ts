// The live half of the API against a real nats-server: a fake agent publishes telemetry,
// inference and anomaly records as the agent's uplink would, and the test reads them back from
// /series, /anomalies and the /api/events stream (with fetch, as the dashboard does); a second
// replica rebuilds the same window from the stream; a slow stream client is cut off.
import { Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AnomalyListResponseSchema,
  DeviceDetailResponseSchema,
  SeriesResponseSchema,
  type ControlPlaneConfigInput,
  type InferenceResult,
  type SeriesResponse,
  type ServerEvent,
} from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import {
  connectFakeAgent,
  inferenceRecord,
  openEventStream,
  operatorAuth,
  startControlPlaneProcess,
  startInProcessControlPlane,
  telemetryRecord,
  testControlPlaneConfig,
  type FakeAgent,
} from '../harness/control-plane-process.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const TOKEN = 'live-token-Qm3x';
const silent = pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' });
const MODEL = { name: 'vibration-ae', version: '1.2.0' };

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
  const http = { host: '127.0.0.1', port: 0, dashboardDir: '/nonexistent/outpost-dashboard', auth: operatorAuth(TOKEN), ...overrides.http };
  const cp = await startInProcessControlPlane(testControlPlaneConfig(server.url, { ...overrides, http }), silent);
  cleanups.push(() => cp.close());
  return cp;
}

async function fakeAgent(server: NatsServer, agentId: string): Promise<FakeAgent> {
  const agent = await connectFakeAgent(server.url, agentId);
  cleanups.push(() => agent.close());
  return agent;
}

async function get(port: number, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, body: await response.json() };
}

function waitForSeries(port: number, agentId: string, deviceId: string, done: (s: SeriesResponse) => boolean, what: string, query = ''): Promise<SeriesResponse> {
  return waitFor(
    async () => {
      const { status, body } = await get(port, `/api/agents/${agentId}/devices/${deviceId}/series${query}`);
      if (status !== 200) return undefined;
      const series = SeriesResponseSchema.parse(body);
      return done(series) ? series : undefined;
    },
    { what, timeoutMs: 15_000 },
  );
}

const result = (ts: number, score: number, anomaly: boolean, threshold?: number): InferenceResult & { threshold?: number } => ({
  ts,
  model: MODEL,
  score,
  anomaly,
  ...(threshold === undefined ? {} : { threshold }),
});

/**
 * What the agent sends for device d1 of gw-1 starting at `t0`: telemetry out of order, one
 * record resent in a re-cut batch, inference results in the telemetry lane, and the anomalous
 * result again as an anomaly in the events lane (drained first, as the agent does).
 */
async function publishDeviceData(agent: FakeAgent, t0: number): Promise<void> {
  await agent.publishBatch(agent.batch('events', 1, [inferenceRecord('d1', result(t0 + 3_000, 0.97, true, 0.8), 'anomaly', 4), inferenceRecord('d2', result(t0 + 500, 0.91, true), 'anomaly', 1)]));
  await agent.publishBatch(
    agent.batch('telemetry', 1, [
      telemetryRecord('d1', t0 + 2_000, { temp: 22.5, rpm: 1200 }, 3),
      telemetryRecord('d1', t0, { temp: 20 }, 1),
      telemetryRecord('d1', t0 + 1_000, { temp: 21 }, 2),
      inferenceRecord('d1', result(t0 + 2_000, 0.1, false, 0.8), 'inference', 3),
    ]),
  );
  // A re-cut after a lost ack: seqs 4..6 again with 7 new.
  await agent.publishBatch(
    agent.batch('telemetry', 4, [
      inferenceRecord('d1', result(t0 + 2_000, 0.1, false, 0.8), 'inference', 3),
      telemetryRecord('d1', t0 + 3_000, { temp: 35 }, 4),
      inferenceRecord('d1', result(t0 + 3_000, 0.97, true, 0.8), 'inference', 4),
    ]),
  );
  await agent.publishBatch(
    agent.batch('telemetry', 5, [telemetryRecord('d1', t0 + 3_000, { temp: 35 }, 4), inferenceRecord('d1', result(t0 + 3_000, 0.97, true, 0.8), 'inference', 4), telemetryRecord('d2', t0, { temp: 5 }, 1)]),
  );
}

function expectD1Series(series: SeriesResponse, t0: number): void {
  expect(series.points).toEqual([
    { ts: t0, receivedAtMs: t0 + 1, metrics: { temp: 20 } },
    { ts: t0 + 1_000, receivedAtMs: t0 + 1_001, metrics: { temp: 21 } },
    { ts: t0 + 2_000, receivedAtMs: t0 + 2_001, metrics: { temp: 22.5, rpm: 1200 } },
    { ts: t0 + 3_000, receivedAtMs: t0 + 3_001, metrics: { temp: 35 } },
  ]);
  // The anomalous result came twice (inference and anomaly record): listed once.
  expect(series.inference).toEqual([
    { ts: t0 + 2_000, score: 0.1, anomaly: false, threshold: 0.8, model: MODEL },
    { ts: t0 + 3_000, score: 0.97, anomaly: true, threshold: 0.8, model: MODEL },
  ]);
}

describe('GET /series and /anomalies', () => {
  it('show telemetry, inference results and anomalies of a device, once each, in time order', async () => {
    const server = await nats();
    const cp = await controlPlane(server);
    const agent = await fakeAgent(server, 'gw-1');
    const t0 = Date.now() - 60_000;
    await publishDeviceData(agent, t0);

    const series = await waitForSeries(cp.httpPort, 'gw-1', 'd1', (s) => s.points.length === 4 && s.inference.length === 2 && s.inference[1]!.anomaly, 'all of d1 in its series');
    expectD1Series(series, t0);
    expect(series.toMs - series.fromMs).toBe(10 * 60 * 1000);
    expect(series.toMs).toBeLessThanOrEqual(Date.now());

    const since = SeriesResponseSchema.parse((await get(cp.httpPort, `/api/agents/gw-1/devices/d1/series?sinceMs=${t0 + 2_000}`)).body);
    expect(since.points.map((p) => p.ts)).toEqual([t0 + 2_000, t0 + 3_000]);
    expect(since.inference.map((p) => p.ts)).toEqual([t0 + 2_000, t0 + 3_000]);
    expect(since.fromMs).toBe(t0 + 2_000);

    const anomalies = AnomalyListResponseSchema.parse((await get(cp.httpPort, `/api/anomalies?since=${t0 - 1}`)).body).anomalies;
    expect(anomalies).toEqual([
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 3_000, score: 0.97, threshold: 0.8, model: MODEL, receivedAtMs: t0 + 3_002 },
      { agentId: 'gw-1', deviceId: 'd2', ts: t0 + 500, score: 0.91, model: MODEL, receivedAtMs: t0 + 502 },
    ]);
    const query = async (q: string) => AnomalyListResponseSchema.parse((await get(cp.httpPort, `/api/anomalies?${q}`)).body).anomalies.map((a) => a.deviceId);
    expect(await query('')).toEqual(['d1', 'd2']); // default: the last hour
    expect(await query(`since=${new Date(t0 + 1_000).toISOString()}`)).toEqual(['d1']);
    expect(await query('deviceId=d2')).toEqual(['d2']);
    expect(await query('agentId=gw-2')).toEqual([]);
    expect(await query('limit=1')).toEqual(['d1']);
    expect(await query(`since=${Date.now() + 60_000}`)).toEqual([]);

    // The accounting counts the agent's results per kind beside the device's telemetry, and
    // results (carrying the device seq of the telemetry they scored) leave the device's gaps alone.
    const d1 = await waitFor(
      async () => {
        const detail = DeviceDetailResponseSchema.parse((await get(cp.httpPort, '/api/agents/gw-1/devices/d1')).body);
        return detail.received === 7 ? detail : undefined;
      },
      { what: 'd1 accounted' },
    );
    expect(d1).toMatchObject({ received: 7, duplicates: 3, kinds: { telemetry: 4, inference: 2, anomaly: 1 }, gaps: 0, latest: { ts: t0 + 3_000, metrics: { temp: 35 } } });
  });

  it('rebuilds the same window and anomalies in a replica started after the data was sent', async () => {
    const server = await nats();
    const first = await controlPlane(server);
    const agent = await fakeAgent(server, 'gw-1');
    const t0 = Date.now() - 60_000;
    await publishDeviceData(agent, t0);
    await waitForSeries(first.httpPort, 'gw-1', 'd1', (s) => s.points.length === 4 && s.inference.length === 2, 'the first replica to hold d1');

    const second = await controlPlane(server);
    expectD1Series(await waitForSeries(second.httpPort, 'gw-1', 'd1', (s) => s.points.length === 4 && s.inference.length === 2, 'the new replica to read d1 back'), t0);
    expect(AnomalyListResponseSchema.parse((await get(second.httpPort, `/api/anomalies?since=${t0 - 1}`)).body).anomalies.map((a) => [a.deviceId, a.ts])).toEqual([
      ['d1', t0 + 3_000],
      ['d2', t0 + 500],
    ]);
    // What was read back is history: a stream opened on the new replica gets only what arrives after.
    const events = await openEventStream(second.httpPort, { token: TOKEN });
    cleanups.push(async () => events.close());
    await agent.publishBatch(agent.batch('telemetry', 8, [telemetryRecord('d1', t0 + 4_000, { temp: 40 }, 5)]));
    await events.next((e) => e.type === 'telemetry', 'the new telemetry event');
    expect(events.events.filter((e) => e.type !== 'agents')).toEqual([
      { type: 'telemetry', data: { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 4_000, receivedAtMs: t0 + 4_001, metrics: { temp: 40 } } },
    ]);
  });

  it('answers a known device without recent data with empty arrays once its window has passed', async () => {
    const server = await nats();
    const cp = await controlPlane(server, { live: { recentWindowMs: 1_000 } });
    const agent = await fakeAgent(server, 'gw-1');
    await agent.publishBatch(agent.batch('telemetry', 1, [telemetryRecord('d1', Date.now(), { temp: 1 }, 1)]));
    await waitForSeries(cp.httpPort, 'gw-1', 'd1', (s) => s.points.length === 1, 'the point in the window');
    const empty = await waitForSeries(cp.httpPort, 'gw-1', 'd1', (s) => s.points.length === 0, 'the window to pass');
    expect(empty).toMatchObject({ agentId: 'gw-1', deviceId: 'd1', points: [], inference: [] });
    expect((await get(cp.httpPort, '/api/agents/gw-1/devices/d2/series')).status).toBe(404);
  });
});

describe('GET /api/events', () => {
  it('streams the fleet, telemetry, inference and anomalies; a filter narrows telemetry and inference only', async () => {
    const server = await nats();
    const cp = await controlPlane(server, { http: { sse: { keepaliveMs: 1_000 } } });
    const all = await openEventStream(cp.httpPort, { token: TOKEN });
    const d2Only = await openEventStream(cp.httpPort, { token: TOKEN, query: 'agentId=gw-1&deviceId=d2' });
    cleanups.push(async () => all.close(), async () => d2Only.close());
    expect(all.status).toBe(200);
    await all.next((e) => e.type === 'agents' && e.data.agents.length === 0, 'the empty fleet on connect');

    const agent = await fakeAgent(server, 'gw-1');
    await agent.heartbeat();
    await all.next((e) => e.type === 'agents' && e.data.agents.some((a) => a.agentId === 'gw-1' && a.status === 'online'), 'gw-1 in an agents event');
    const t0 = Date.now();
    await publishDeviceData(agent, t0);
    await all.next((e) => e.type === 'telemetry' && e.data.deviceId === 'd2', 'the last telemetry event');
    await all.next((e) => e.type === 'anomaly' && e.data.deviceId === 'd2', 'the last anomaly event');

    const of = (stream: { events: ServerEvent[] }, type: ServerEvent['type']) => stream.events.filter((e) => e.type === type).map((e) => e.data);
    // Each record once, in arrival order, resent records not again.
    expect(of(all, 'telemetry')).toEqual([
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 2_000, receivedAtMs: t0 + 2_001, metrics: { temp: 22.5, rpm: 1200 } },
      { agentId: 'gw-1', deviceId: 'd1', ts: t0, receivedAtMs: t0 + 1, metrics: { temp: 20 } },
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 1_000, receivedAtMs: t0 + 1_001, metrics: { temp: 21 } },
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 3_000, receivedAtMs: t0 + 3_001, metrics: { temp: 35 } },
      { agentId: 'gw-1', deviceId: 'd2', ts: t0, receivedAtMs: t0 + 1, metrics: { temp: 5 } },
    ]);
    expect(of(all, 'inference')).toEqual([
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 2_000, score: 0.1, anomaly: false, threshold: 0.8, model: MODEL },
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 3_000, score: 0.97, anomaly: true, threshold: 0.8, model: MODEL },
    ]);
    const anomalies = [
      { agentId: 'gw-1', deviceId: 'd1', ts: t0 + 3_000, score: 0.97, anomaly: true, threshold: 0.8, model: MODEL },
      { agentId: 'gw-1', deviceId: 'd2', ts: t0 + 500, score: 0.91, anomaly: true, model: MODEL },
    ];
    expect(of(all, 'anomaly')).toEqual(anomalies);

    await d2Only.next((e) => e.type === 'telemetry', 'the telemetry of d2');
    await d2Only.next((e) => e.type === 'anomaly' && e.data.deviceId === 'd2', 'the anomaly of d2');
    expect(of(d2Only, 'telemetry')).toEqual([{ agentId: 'gw-1', deviceId: 'd2', ts: t0, receivedAtMs: t0 + 1, metrics: { temp: 5 } }]);
    expect(of(d2Only, 'inference')).toEqual([]);
    expect(of(d2Only, 'anomaly')).toEqual(anomalies);
    expect(of(d2Only, 'agents').length).toBeGreaterThan(0);

    await waitFor(() => all.comments() > 0, { what: 'a keepalive comment' });
  });

  it('ends every stream when the control plane closes, and refuses streams beyond maxClients', async () => {
    const server = await nats();
    const cp = await startInProcessControlPlane(
      testControlPlaneConfig(server.url, { http: { host: '127.0.0.1', port: 0, dashboardDir: '/nonexistent', sse: { maxClients: 2 } } }),
      silent,
    );
    cleanups.push(() => cp.close());
    const a = await openEventStream(cp.httpPort);
    const b = await openEventStream(cp.httpPort);
    cleanups.push(async () => a.close(), async () => b.close());
    await a.next((e) => e.type === 'agents', 'the first stream to start');
    const refused = await fetch(`http://127.0.0.1:${cp.httpPort}/api/events`);
    expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([429, 'RATE_LIMITED']);
    await cp.close();
    await Promise.all([a.ended, b.ended]);
  });

  it('cuts off a client that does not read, counts it, and keeps serving the others', async () => {
    const server = await nats();
    const dir = await createTempDir();
    cleanups.push(() => dir.remove());
    // A child process, so this test's own reading never competes with the server's writing.
    const cp = await startControlPlaneProcess(
      testControlPlaneConfig(server.url, { http: { host: '127.0.0.1', port: 0, dashboardDir: '/nonexistent', sse: { maxQueuedEvents: 5_000 } }, log: { level: 'error' } }),
      dir.path,
    );
    cleanups.push(() => cp.stop());
    const reader = await openEventStream(cp.httpPort);
    cleanups.push(async () => reader.close());
    await reader.next((e) => e.type === 'agents', 'the reading client to start');

    // The slow client: asks for the stream, then never reads.
    const slow = new Socket();
    cleanups.push(async () => slow.destroy());
    const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => slow.connect(cp.httpPort, '127.0.0.1', resolve).once('error', reject));
    slow.write('GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    slow.pause();
    const sseClients = async () => metricValue(await fetchMetrics(cp.httpPort), 'outpost_cp_sse_clients');
    await waitFor(async () => (await sseClients()) === 2, { what: 'both streams open' });

    // Enough telemetry to fill the paused socket's buffers and then its queue.
    const agent = await fakeAgent(server, 'gw-1');
    const BATCHES = 120;
    const PER_BATCH = 500;
    const t0 = Date.now();
    for (let k = 0; k < BATCHES; k++) {
      const records = Array.from({ length: PER_BATCH }, (_, i) => telemetryRecord(`d${i % 10}`, t0 + k * PER_BATCH + i, { temp: i, humidity: k, pressure: 1013.25 }));
      await agent.publishBatch(agent.batch('telemetry', k * PER_BATCH + 1, records));
    }
    await waitFor(async () => metricValue(await fetchMetrics(cp.httpPort), 'outpost_cp_sse_dropped_clients_total', { reason: 'slow' }) === 1, { what: 'the slow client dropped', timeoutMs: 30_000 });
    slow.resume();
    await slowClosed;
    // The reading client got every record and is still connected.
    await waitFor(() => reader.events.filter((e) => e.type === 'telemetry').length === BATCHES * PER_BATCH, { what: 'every telemetry event at the reader', timeoutMs: 30_000 });
    expect(await sseClients()).toBe(1);
  });
});
