// The dashboard in real headless Chromium against a demo-like stack: nats-server, the control
// plane binary (an API token required: a viewer's, since these pages only read; dashboard served
// at /), two agent processes, MQTT devices publishing telemetry all along. It asserts on what an
// operator sees: agents appear without a reload, a device's chart grows with pushed points, an
// anomaly is marked.
// The anomaly travels the real uplink path: a hand-built `anomaly` record in the events lane,
// published to JetStream the way an agent with a model publishes it.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_ENCODING, ENCODING_HEADER, batchMsgId, heartbeatSubject, uplinkSubject, type ControlPlaneConfigInput, type Heartbeat, type UplinkBatch } from '@outpost/shared';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { startControlPlaneProcess, testControlPlaneConfig, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { connectDevice, startSteadyLoad, type LoadDevice } from '../harness/devices.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { getFreePort } from '../harness/free-port.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

const DASHBOARD_DIR = fileURLToPath(new URL('../../../control-plane/dist/dashboard', import.meta.url));
const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output', import.meta.url));
const CHROMIUM = { executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] };
/** Telemetry per device per second: enough for a chart to move, little for 2 shared cores. */
const RATE_PER_DEVICE_PER_S = 5;
/** How long one UI condition may take to show; generous because the machine is shared. */
const UI_TIMEOUT_MS = 30_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function tempDir(): Promise<TempDir> {
  const dir = await createTempDir('outpost-dashboard-');
  cleanups.push(() => dir.remove());
  return dir;
}

async function nats(): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanups.push(() => server.stop());
  return server;
}

async function controlPlane(server: NatsServer, dir: TempDir, http: Partial<NonNullable<ControlPlaneConfigInput['http']>>): Promise<ControlPlaneProcess> {
  const cp = await startControlPlaneProcess(testControlPlaneConfig(server.url, { http: { host: '127.0.0.1', port: 0, dashboardDir: DASHBOARD_DIR, ...http } }), dir.path);
  cleanups.push(() => cp.kill9());
  return cp;
}

async function agent(server: NatsServer, dir: TempDir, agentId: string, labels: Record<string, string>): Promise<AgentProcess> {
  const process = await startAgentProcess(
    testAgentConfig(join(dir.path, agentId), { agentId, labels, uplink: { servers: [server.url], heartbeatIntervalMs: 1_000 } }),
  );
  cleanups.push(() => process.kill9());
  return process;
}

/** Devices on an agent's broker publishing QoS 1 telemetry until the test ends. */
async function devices(agentProcess: AgentProcess, deviceIds: readonly string[]): Promise<void> {
  const connected: LoadDevice[] = await Promise.all(
    deviceIds.map(async (deviceId) => {
      const client = await connectDevice(`mqtt://127.0.0.1:${agentProcess.mqttPort}`, { clientId: deviceId });
      client.on('error', () => undefined);
      return { deviceId, client };
    }),
  );
  const load = startSteadyLoad(connected, RATE_PER_DEVICE_PER_S);
  cleanups.push(async () => {
    load.stop();
    for (const d of connected) d.client.end(true);
  });
}

async function browserPage(): Promise<{ browser: Browser; page: Page; problems: string[] }> {
  const browser = await chromium.launch(CHROMIUM);
  cleanups.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  // Any script error or failed request the page logs fails the test at the end.
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  return { browser, page, problems };
}

/** The number in a `data-*` attribute of the first element matching `selector`. */
async function numberAttribute(page: Page, selector: string, attribute: string): Promise<number> {
  const value = await page.getAttribute(selector, attribute, { timeout: UI_TIMEOUT_MS });
  return Number(value);
}

/** Waits until `selector`'s numeric `attribute` is above `than`. */
async function waitForAbove(page: Page, selector: string, attribute: string, than: number): Promise<number> {
  const handle = await page.waitForFunction(
    ({ selector, attribute, than }) => {
      const value = Number(document.querySelector(selector)?.getAttribute(attribute) ?? Number.NaN);
      return value > than ? value : false;
    },
    { selector, attribute, than },
    { timeout: UI_TIMEOUT_MS },
  );
  return (await handle.jsonValue()) as number;
}

/** Publishes one batch as an agent's uplink does (gzip JSON, Nats-Msg-Id) and waits for JetStream's ack. */
async function publishBatch(server: NatsServer, batch: UplinkBatch): Promise<void> {
  const nc = await connect({ servers: [server.url] });
  try {
    const h = natsHeaders();
    h.set(ENCODING_HEADER, BATCH_ENCODING);
    const msgID = batchMsgId(batch.agentId, batch.epoch, batch.lane, batch.firstSeq, batch.lastSeq);
    await jetstream(nc).publish(uplinkSubject(batch.agentId, batch.lane), gzipSync(JSON.stringify(batch)), { msgID, headers: h });
  } finally {
    await nc.close();
  }
}

describe('dashboard in headless Chromium', () => {
  it('shows agents as they appear, a device chart growing with live points, and an anomaly marked', async () => {
    const dir = await tempDir();
    const server = await nats();
    const token = randomBytes(24).toString('base64url');
    // A viewer's token: every page here only reads, so a viewer sees all of it.
    const cp = await controlPlane(server, dir, { auth: { tokens: [{ name: 'e2e-viewer', sha256: createHash('sha256').update(token).digest('hex'), role: 'viewer' }] } });
    const north = await agent(server, dir, 'gw-north', { site: 'north', tier: 'edge' });
    await devices(north, ['press-1', 'press-2']);

    const { page, problems } = await browserPage();
    const base = `http://127.0.0.1:${cp.httpPort}/`;

    // The fleet: the token comes in the fragment and leaves the address bar at once.
    await page.goto(`${base}#token=${token}`);
    await page.waitForSelector('[data-testid="agent-row-gw-north"][data-status="online"]', { timeout: UI_TIMEOUT_MS });
    expect(page.url()).not.toContain(token);
    expect(await page.evaluate(() => sessionStorage.getItem('outpost.token'))).toBe(token);
    expect(await page.textContent('[data-testid="agent-row-gw-north"]')).toContain('north');

    // A second agent starts while the page is open: the `agents` event brings it, no reload.
    const south = await agent(server, dir, 'gw-south', { site: 'south' });
    await devices(south, ['pump-1']);
    await page.waitForSelector('[data-testid="agent-row-gw-south"][data-status="online"]', { timeout: UI_TIMEOUT_MS });
    await page.waitForFunction(() => document.querySelector('[data-testid="agents-total"]')?.textContent === '2', undefined, { timeout: UI_TIMEOUT_MS });
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-fleet.png'), fullPage: true });

    // The agent: its devices with latest values and completeness.
    await page.click('[data-testid="agent-row-gw-north"] a');
    await page.waitForSelector('[data-testid="device-row-press-1"] [data-metric="temperature"]', { timeout: UI_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="device-row-press-2"]', { timeout: UI_TIMEOUT_MS });
    const received = Number((await page.textContent('[data-testid="device-row-press-1"] [data-testid="received"]'))?.replace(/,/g, ''));
    expect(received).toBeGreaterThan(0);
    // Counts refresh while telemetry flows, without a reload.
    await page.waitForFunction(
      (before) => Number(document.querySelector('[data-testid="device-row-press-1"] [data-testid="received"]')?.textContent?.replace(/,/g, '')) > before,
      received,
      { timeout: UI_TIMEOUT_MS },
    );
    expect(await page.getAttribute('[data-testid="device-row-press-1"] [data-testid="completeness"]', 'data-ratio')).toBe('1.000000');
    // A device with two holes in its seqs: 3 is a payload the agent refused (reported as a dead
    // letter), 4 never arrived. The row tells the one from the other.
    const gapTs = Date.now();
    const valve = (seq: number, deviceSeq: number) => ({ seq, deviceId: 'valve-9', ts: gapTs + deviceSeq, receivedAtMs: gapTs, deviceSeq, kind: 'telemetry', body: { ts: gapTs + deviceSeq, seq: deviceSeq, metrics: { flow: deviceSeq } } });
    await publishBatch(server, { agentId: 'gw-north', epoch: 'e2egaps00001', lane: 'telemetry', firstSeq: 1, lastSeq: 3, records: [valve(1, 1), valve(2, 2), valve(3, 5)] });
    await publishBatch(server, {
      agentId: 'gw-north',
      epoch: 'e2egaps00001',
      lane: 'events',
      firstSeq: 1,
      lastSeq: 1,
      records: [{ seq: 1, deviceId: 'valve-9', ts: gapTs, receivedAtMs: gapTs, deviceSeq: 3, kind: 'dead-letter', body: { reason: 'invalid-json', topic: 'devices/valve-9/telemetry', detail: 'x', seq: 3 } }],
    });
    await page.waitForSelector('[data-testid="device-row-valve-9"] [data-testid="unexplained-gaps"]', { timeout: UI_TIMEOUT_MS });
    expect(await page.textContent('[data-testid="device-row-valve-9"] [data-testid="gaps"]')).toBe('2 (1 unexplained)');
    expect(await page.getAttribute('[data-testid="device-row-valve-9"] [data-testid="gaps"] span', 'title')).toBe('1 refused by the agent, 0 evicted, 1 unexplained');
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-agent.png'), fullPage: true });

    // The device: a chart per metric, fed by /series, then by pushed telemetry.
    await page.click('[data-testid="device-row-press-1"] a');
    expect(page.url()).toBe(`${base}#/agents/gw-north/devices/press-1`);
    await page.waitForSelector('[data-testid="chart-temperature"] canvas', { timeout: UI_TIMEOUT_MS });
    const pointsBefore = await waitForAbove(page, '[data-testid="chart-temperature"]', 'data-points', 0);
    await waitForAbove(page, '[data-testid="chart-temperature"]', 'data-points', pointsBefore);
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    expect(await numberAttribute(page, '[data-testid="anomaly-markers"]', 'data-count')).toBe(0);

    // An anomaly of press-1, reported in the events lane as an agent's inference does.
    const anomalyTs = Date.now();
    await publishBatch(server, {
      agentId: 'gw-north',
      epoch: 'e2eanomaly01',
      lane: 'events',
      firstSeq: 1,
      lastSeq: 1,
      records: [
        {
          seq: 1,
          deviceId: 'press-1',
          ts: anomalyTs,
          receivedAtMs: anomalyTs,
          kind: 'anomaly',
          body: { ts: anomalyTs, model: { name: 'press-autoencoder', version: '1.2.0' }, score: 0.93, threshold: 0.5, anomaly: true },
        },
      ],
    });
    await page.waitForSelector('[data-testid="anomaly-markers"][data-count="1"]', { timeout: UI_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="anomaly-item"]', { timeout: UI_TIMEOUT_MS });
    expect(await page.textContent('[data-testid="anomaly-item"]')).toContain('press-autoencoder 1.2.0');
    // The band is drawn on the metric chart (the draw hook counts what it drew) and on the score chart.
    await waitForAbove(page, '[data-testid="chart-temperature"] .uplot', 'data-markers', 0);
    await page.waitForSelector('[data-testid="chart-score"]', { timeout: UI_TIMEOUT_MS });
    // An anomaly episode of press-1 (opened, then closed 15 s later), as an agent's inference sends it:
    // listed with its duration and contributing metric, and drawn as a band from start to end.
    const startTs = Date.now() - 20_000;
    const episode = { episodeId: 'e2e-episode-1', model: { name: 'anomaly-machine', version: '2.0.0' }, startTs, threshold: 1.8, contributors: [{ metric: 'vibration', detector: 'run', evidence: 6.5 }] };
    await publishBatch(server, {
      agentId: 'gw-north',
      epoch: 'e2eanomaly01',
      lane: 'events',
      firstSeq: 2,
      lastSeq: 3,
      records: [
        { seq: 2, deviceId: 'press-1', ts: startTs, receivedAtMs: startTs, kind: 'anomaly-opened', body: { ...episode, score: 2.1 } },
        {
          seq: 3,
          deviceId: 'press-1',
          ts: startTs + 15_000,
          receivedAtMs: startTs + 15_000,
          kind: 'anomaly-closed',
          body: { ...episode, lastSeenTs: startTs + 12_000, endTs: startTs + 15_000, peakScore: 6.5, peakTs: startTs + 4_000, windows: 4, reason: 'recovered' },
        },
      ],
    });
    await page.waitForSelector('[data-testid="episode-item"][data-state="closed"]', { timeout: UI_TIMEOUT_MS });
    const episodeText = await page.textContent('[data-testid="episode-item"]');
    expect(episodeText).toContain('15 s (recovered)');
    expect(episodeText).toContain('vibration (run)');
    await waitForAbove(page, '[data-testid="chart-temperature"] .uplot', 'data-spans', 0);

    // And points keep coming after it.
    await waitForAbove(page, '[data-testid="chart-temperature"]', 'data-points', await numberAttribute(page, '[data-testid="chart-temperature"]', 'data-points'));

    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard.png'), fullPage: true });
    expect(problems).toEqual([]);
  });

  it('asks for a token when none is given; without auth it needs none and reconnects when the control plane restarts', async () => {
    const dir = await tempDir();
    const server = await nats();
    const token = randomBytes(24).toString('base64url');
    const guarded = await controlPlane(server, dir, { auth: { tokens: [{ name: 'e2e-operator', sha256: createHash('sha256').update(token).digest('hex') }] } });
    const { page, problems } = await browserPage();

    // No token: the API answers 401 and the page shows the token form, then the fleet once given one.
    await page.goto(`http://127.0.0.1:${guarded.httpPort}/`);
    await page.waitForSelector('[data-testid="token-form"]', { timeout: UI_TIMEOUT_MS });
    await page.fill('[data-testid="token-form"] input', 'not-the-token');
    await page.click('[data-testid="token-form"] button');
    await page.waitForFunction(() => document.querySelector('[data-testid="token-form"] h2')?.textContent === 'Token refused', undefined, { timeout: UI_TIMEOUT_MS });
    await page.fill('[data-testid="token-form"] input', token);
    await page.click('[data-testid="token-form"] button');
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    expect(await page.$('[data-testid="token-form"]')).toBeNull();

    // Forgotten, the token is asked for again; a followed link that carries one (no reload)
    // puts it in force at once and leaves the address bar.
    await page.click('[data-testid="forget-token"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="token-form"] h2')?.textContent === 'Token needed', undefined, { timeout: UI_TIMEOUT_MS });
    expect(await page.evaluate(() => sessionStorage.getItem('outpost.token'))).toBeNull();
    await page.evaluate((t) => {
      window.location.hash = `#/?token=${encodeURIComponent(t)}`;
    }, token);
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    expect(await page.$('[data-testid="token-form"]')).toBeNull();
    expect(page.url()).not.toContain(token);
    expect(await page.evaluate(() => sessionStorage.getItem('outpost.token'))).toBe(token);
    // The browser logs each refused request as a console error; those were expected here.
    expect(problems.every((p) => p.includes('status of 401'))).toBe(true);
    problems.length = 0;

    // Auth off: no form, an empty fleet, then an agent's first heartbeat shows it live.
    const port = await getFreePort();
    const openDir = await tempDir();
    const open = await controlPlane(server, openDir, { port });
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`http://127.0.0.1:${port}/#/`);
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    expect(await page.textContent('[data-testid="empty"]')).toContain('No agent has reported yet');
    const nc = await connect({ servers: [server.url] });
    cleanups.push(() => nc.close());
    const heartbeat = (agentId: string): Heartbeat => ({
      agentId,
      epoch: 'e2elone0001',
      ts: Date.now(),
      labels: { site: 'lab' },
      versions: { agent: '9.9.9' },
      buffer: { records: { events: 0, telemetry: 512 }, bytes: 700_000, maxBytes: 1_000_000, evictedRecords: { events: 0, telemetry: 0 } },
      ingest: { accepted: 10, rejected: 0, devicesConnected: 3, acceptedPerS: 12.5 },
    });
    await jetstream(nc).publish(heartbeatSubject('gw-lone'), JSON.stringify(heartbeat('gw-lone')));
    await page.waitForSelector('[data-testid="agent-row-gw-lone"]', { timeout: UI_TIMEOUT_MS });
    const row = await page.textContent('[data-testid="agent-row-gw-lone"]');
    expect(row).toContain('agent 9.9.9');
    expect(row).toContain('512 rec');
    expect(row).toContain('70.0 %');
    expect(problems).toEqual([]);

    // The control plane dies and comes back at the same address: the page reconnects by itself
    // and shows what happened since.
    await open.kill9();
    await page.waitForSelector('[data-testid="live-status"][data-state="reconnecting"]', { timeout: UI_TIMEOUT_MS });
    await controlPlane(server, openDir, { port });
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    await jetstream(nc).publish(heartbeatSubject('gw-later'), JSON.stringify(heartbeat('gw-later')));
    await page.waitForSelector('[data-testid="agent-row-gw-later"]', { timeout: UI_TIMEOUT_MS });
    // While it was down, the browser logged the refused connections, and nothing else.
    expect(problems.filter((p) => !/Failed to load resource: net::ERR_/.test(p))).toEqual([]);
  });
});
