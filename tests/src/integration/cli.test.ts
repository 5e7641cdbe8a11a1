// The built `outpostctl` against a running control plane and a real nats-server: table and
// --json output, and the exit codes scripts rely on (0, 1, 2, 3, 4, 5).
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentListResponseSchema, AnomalyListResponseSchema, DeviceDetailResponseSchema } from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import {
  connectFakeAgent,
  controlPlaneApi,
  inferenceRecord,
  operatorAuth,
  operatorTokenSha256,
  runOutpostctl,
  startInProcessControlPlane,
  telemetryRecord,
  testControlPlaneConfig,
  type CliRun,
  type FakeAgent,
} from '../harness/control-plane-process.js';
import { getFreePort } from '../harness/free-port.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { waitFor } from '../harness/wait.js';

const TOKEN = 'cli-token-7Hq2Zr';
const MODEL = { name: 'vibration-ae', version: '1.2.0' };

let server: NatsServer;
let cp: ControlPlane;
let agent: FakeAgent;
let url: string;
let t0: number;

beforeAll(async () => {
  server = await startNatsServer();
  cp = await startInProcessControlPlane(
    testControlPlaneConfig(server.url, { http: { host: '127.0.0.1', port: 0, auth: operatorAuth(TOKEN), dashboardDir: '/nonexistent' } }),
    pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' }),
  );
  url = `http://127.0.0.1:${cp.httpPort}`;
  agent = await connectFakeAgent(server.url, 'gw-1');
  await agent.heartbeat({ labels: { site: 'lab', tier: 'edge' } });
  t0 = Date.now() - 30_000;
  await agent.publishBatch(agent.batch('events', 1, [inferenceRecord('d1', { ts: t0 + 2_000, model: MODEL, score: 0.93, anomaly: true }, 'anomaly', 3)]));
  // d1 skips its own seq 2: one gap.
  await agent.publishBatch(
    agent.batch('telemetry', 1, [
      telemetryRecord('d1', t0, { temp: 20 }, 1),
      telemetryRecord('d1', t0 + 2_000, { temp: 38.5, rpm: 900 }, 3),
      telemetryRecord('d2', t0, { humidity: 40 }, 1),
      inferenceRecord('d1', { ts: t0 + 2_000, model: MODEL, score: 0.93, anomaly: true }, 'inference', 3),
    ]),
  );
  // Probed through the API (cheap), so the CLI runs below see settled data.
  const api = controlPlaneApi(cp.httpPort, TOKEN);
  await waitFor(async () => (await api.device('gw-1', 'd1')).body.received === 4, { what: 'gw-1/d1 accounted', timeoutMs: 20_000 });
  await waitFor(async () => AnomalyListResponseSchema.parse((await api.get('/api/anomalies')).body).anomalies.length === 1, { what: 'the anomaly listed' });
});

afterAll(async () => {
  await agent?.close();
  await cp?.close();
  await server?.stop();
});

/** outpostctl with the URL and token from the environment, as a script would set them. */
function ctl(...args: string[]): Promise<CliRun> {
  return runOutpostctl(args, { env: { OUTPOST_URL: url, OUTPOST_TOKEN: TOKEN } });
}

/** Cells of a table line: runs of text separated by two or more spaces, with where they start and end. */
function cells(line: string): { text: string; start: number; end: number }[] {
  return [...line.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ text: m[0], start: m.index, end: m.index + m[0].length }));
}

/** The rows of a table by header name; every cell lines up with its header on the left or on the right. */
function table(stdout: string): Record<string, string>[] {
  const [headerLine, ...lines] = stdout.trimEnd().split('\n');
  const header = cells(headerLine!);
  return lines.map((line) => {
    const row = cells(line);
    expect(row.map((c) => c.text).length, line).toBe(header.length);
    row.forEach((cell, k) => expect(cell.start === header[k]!.start || cell.end === header[k]!.end, `${line}: ${header[k]!.text} not aligned`).toBe(true));
    return Object.fromEntries(header.map((h, k) => [h.text, row[k]!.text]));
  });
}

describe('outpostctl output', () => {
  it('agents ls: an aligned table without colour when stdout is not a terminal, and --json the API body', async () => {
    const run = await ctl('agents', 'ls');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(run.stdout).not.toContain('\u001b[');
    expect(run.stdout.split('\n')[0]).toMatch(/^AGENT +STATUS +LAST SEEN +VERSION +MODEL +BUFFERED +IN\/S +LABELS$/);
    expect(table(run.stdout)).toEqual([expect.objectContaining({ AGENT: 'gw-1', STATUS: 'online', VERSION: '0.1.0', BUFFERED: '3', LABELS: 'site=lab,tier=edge' })]);

    const json = await ctl('agents', 'ls', '--json');
    expect(json.code).toBe(0);
    const body = AgentListResponseSchema.parse(JSON.parse(json.stdout));
    expect(body.agents.map((a) => [a.agentId, a.status])).toEqual([['gw-1', 'online']]);
    // --json is the API's answer as it is.
    const api = await (await fetch(`${url}/api/agents`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect({ ...body, agents: body.agents.map((a) => ({ ...a, lastSeenMs: 0 })) }).toEqual({ ...(api as typeof body), agents: (api as typeof body).agents.map((a) => ({ ...a, lastSeenMs: 0 })) });
  });

  it('agents show, devices ls and devices show: fields, accounting and device completeness', async () => {
    const agentRun = await ctl('agents', 'show', 'gw-1');
    expect(agentRun.code).toBe(0);
    expect(agentRun.stdout).toMatch(/^Agent +gw-1$/m);
    expect(agentRun.stdout).toMatch(/^Status +online$/m);
    expect(agentRun.stdout).toMatch(/^Totals +received 5, duplicates 0, gaps 0 /m);
    const lanes = table(agentRun.stdout.slice(agentRun.stdout.indexOf('EPOCH')));
    expect(lanes.map((l) => [l['LANE'], l['RECEIVED']])).toEqual([
      ['events', '1'],
      ['telemetry', '4'],
    ]);

    const devices = await ctl('devices', 'ls', 'gw-1');
    expect(devices.code).toBe(0);
    expect(table(devices.stdout).map((d) => [d['DEVICE'], d['RECEIVED'], d['GAPS'], d['COMPLETE'], d['LATEST']])).toEqual([
      ['d1', '4', '1', '66.7%', 'temp=38.5 rpm=900'],
      ['d2', '1', '0', '100.0%', 'humidity=40'],
    ]);

    const device = await ctl('devices', 'show', 'gw-1', 'd1');
    expect(device.code).toBe(0);
    expect(device.stdout).toMatch(/^Received +4 \(anomaly 1, inference 1, telemetry 2\)$/m);
    expect(device.stdout).toMatch(/^Gaps +1 \(device seqs 2\)$/m);
    expect(device.stdout).toMatch(/^Device seqs +1 to 3$/m);

    const json = await ctl('--json', 'devices', 'show', 'gw-1', 'd1');
    expect(DeviceDetailResponseSchema.parse(JSON.parse(json.stdout))).toMatchObject({ deviceId: 'd1', gaps: 1, kinds: { telemetry: 2, inference: 1, anomaly: 1 } });
  });

  it('anomalies ls: filters by time, agent, device and count', async () => {
    const run = await ctl('anomalies', 'ls', '--since', '1h');
    expect(run.code).toBe(0);
    expect(table(run.stdout)).toEqual([{ TIME: new Date(t0 + 2_000).toISOString().replace(/\.\d{3}Z$/, 'Z'), AGENT: 'gw-1', DEVICE: 'd1', SCORE: '0.930', THRESHOLD: '-', MODEL: 'vibration-ae@1.2.0' }]);
    const [minutes, epoch, iso, recent, otherAgent, filtered] = await Promise.all([
      ctl('anomalies', 'ls', '--json', '--since', '10m'),
      ctl('anomalies', 'ls', '--json', '--since', String(t0)),
      ctl('anomalies', 'ls', '--json', '--since', new Date(t0).toISOString()),
      ctl('anomalies', 'ls', '--since', '5s'),
      ctl('anomalies', 'ls', '--agent', 'gw-2'),
      ctl('anomalies', 'ls', '--agent', 'gw-1', '--device', 'd1', '--limit', '1'),
    ]);
    for (const run of [minutes, epoch, iso]) expect(AnomalyListResponseSchema.parse(JSON.parse(run.stdout)).anomalies).toHaveLength(1);
    expect(recent.stdout).toBe('No anomalies.\n');
    expect(otherAgent.stdout).toBe('No anomalies.\n');
    expect(filtered.stdout).toContain('vibration-ae@1.2.0');
  });

  it('token hash prints the sha256 the config wants for a token on stdin', async () => {
    const [run, generated, empty] = await Promise.all([
      runOutpostctl(['token', 'hash'], { stdin: `${TOKEN}\n` }),
      runOutpostctl(['token', 'generate', '--json']),
      runOutpostctl(['token', 'hash'], { stdin: '' }),
    ]);
    expect([run.code, run.stdout]).toEqual([0, `${operatorTokenSha256(TOKEN)}\n`]);
    const { token, sha256 } = JSON.parse(generated.stdout) as { token: string; sha256: string };
    expect(sha256).toBe(operatorTokenSha256(token));
    expect(empty.code).toBe(2);
  });
});

describe('outpostctl exit codes', () => {
  it('0 on success, with --url and --token flags instead of the environment', async () => {
    const [run, help] = await Promise.all([runOutpostctl(['--url', url, '--token', TOKEN, 'agents', 'ls']), runOutpostctl(['--help'])]);
    expect(run.code).toBe(0);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes:\n {2}0 {2}ok\n {2}1 .*\n {2}2 .*usage.*\n {2}3 .*not found.*\n {2}4 .*auth.*\n {2}5 .*cannot reach/);
  });

  it('3 for an unknown agent or device, with the API code on stderr', async () => {
    const [agentRun, deviceRun] = await Promise.all([ctl('agents', 'show', 'gw-9'), ctl('devices', 'show', 'gw-1', 'd9')]);
    expect([agentRun.code, agentRun.stdout]).toEqual([3, '']);
    expect(agentRun.stderr).toMatch(/^outpostctl: AGENT_NOT_FOUND: no agent "gw-9" is known\n$/);
    expect([deviceRun.code, deviceRun.stdout]).toEqual([3, '']);
    expect(deviceRun.stderr).toMatch(/^outpostctl: DEVICE_NOT_FOUND: /);
  });

  it('4 for a missing or unknown token', async () => {
    const [wrong, missing] = await Promise.all([
      runOutpostctl(['agents', 'ls'], { env: { OUTPOST_URL: url, OUTPOST_TOKEN: 'wrong' } }),
      runOutpostctl(['agents', 'ls', '--json'], { env: { OUTPOST_URL: url } }),
    ]);
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/^outpostctl: AUTH_INVALID: /);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^outpostctl: AUTH_REQUIRED: .*--token or OUTPOST_TOKEN/);
  });

  it('5 when the control plane cannot be reached', async () => {
    const port = await getFreePort();
    const run = await runOutpostctl(['agents', 'ls'], { env: { OUTPOST_URL: `http://127.0.0.1:${port}`, OUTPOST_TOKEN: TOKEN } });
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/^outpostctl: cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });

  it('2 for a usage error, before any request', async () => {
    const cases = [
      ['bogus'],
      ['agents'],
      ['agents', 'ls', '--bogus'],
      ['devices', 'show', 'gw-1'],
      ['devices', 'show', 'gw-1', 'd/1'],
      ['anomalies', 'ls', '--limit', 'abc'],
      ['anomalies', 'ls', '--since', 'yesterday'],
      ['--url', 'not a url', 'agents', 'ls'],
    ];
    // Independent processes: run together (each spends its time loading modules).
    const runs = await Promise.all(cases.map((args) => ctl(...args)));
    runs.forEach((run, k) => {
      expect([run.code, run.stdout], cases[k]!.join(' ')).toEqual([2, '']);
      expect(run.stderr, cases[k]!.join(' ')).not.toBe('');
    });
  });

  it('1 for another error answer of the control plane (NATS away: 500)', async () => {
    await server.down();
    try {
      const run = await ctl('agents', 'show', 'gw-1');
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^outpostctl: INTERNAL_ERROR: /);
    } finally {
      await server.up();
    }
  });
});
