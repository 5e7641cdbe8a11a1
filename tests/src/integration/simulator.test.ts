import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import { hashPassword, type Agent } from '@outpost/agent';
import {
  EXPECTED_REJECT_REASON,
  parseScenario,
  startLiveRun,
  type GeneratedMessage,
  type LiveRunEvent,
  type LiveRunOptions,
  type LiveRunSummary,
  type ScenarioInput,
} from '@outpost/simulators';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { metricValue } from '../harness/metrics.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { spawnOwned } from '../harness/wait.js';

/** The built simulator binary. */
const SIM_MAIN = fileURLToPath(new URL('../../../simulators/dist/main.js', import.meta.url));

let dir: TempDir;
let agent: Agent | undefined;

beforeEach(async () => {
  dir = await createTempDir('outpost-sim-it-');
});
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await dir.remove();
});

async function start(overrides: Partial<AgentConfigInput> = {}): Promise<Agent> {
  agent = await startInProcessAgent(testAgentConfig(join(dir.path, 'data'), overrides));
  return agent;
}

/** Device credentials the agent knows: `<id>-secret` for each id. */
async function deviceCredentials(ids: readonly string[]) {
  return Promise.all(ids.map(async (id) => ({ id, passwordHash: await hashPassword(`${id}-secret`, { costLog2: 10 }) })));
}

interface SimRun {
  summary: LiveRunSummary;
  events: LiveRunEvent[];
  published: GeneratedMessage[];
  acked: Map<string, Set<number>>;
}

async function runSim(a: Agent, scenario: ScenarioInput, options: Partial<LiveRunOptions> = {}): Promise<SimRun> {
  const events: LiveRunEvent[] = [];
  const run = startLiveRun({
    scenario: parseScenario(scenario),
    url: `mqtt://127.0.0.1:${a.mqttPort}`,
    passwordFor: () => undefined,
    onEvent: (e) => events.push(e),
    ...options,
  });
  const summary = await run.done;
  const published = events.flatMap((e) => (e.type === 'published' ? [e.message] : []));
  const acked = new Map<string, Set<number>>();
  for (const e of events) if (e.type === 'acked') acked.set(e.deviceId, (acked.get(e.deviceId) ?? new Set()).add(e.seq));
  return { summary, events, published, acked };
}

/** Every seq of inclusive ranges `[first, last]`, in order. */
function expandRanges(ranges: readonly (readonly [number, number])[]): number[] {
  return ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, k) => first + k));
}

async function outboxRecords(a: Agent) {
  return a.outbox.read(Lane.telemetry, 0, 1_000_000);
}

/** Device seqs in the outbox per device, duplicates kept. */
async function outboxSeqs(a: Agent): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const r of await outboxRecords(a)) {
    if (r.deviceSeq === undefined || r.deviceSeq === null) continue;
    out.set(r.deviceId, [...(out.get(r.deviceId) ?? []), r.deviceSeq]);
  }
  return out;
}

describe('device simulator against a real agent', () => {
  it('sends physically plausible telemetry that the agent accepts in full, seq by seq', async () => {
    const a = await start();
    const { summary, published } = await runSim(a, { seed: 1, count: 30, ratePerS: 50, devices: [{ count: 2 }, { count: 1, prefix: 'env-', profile: 'env-sensor' }] });
    expect(summary.problems).toEqual([]);
    expect(summary).toMatchObject({ sent: 90, acked: 90, unacked: 0, connected: 3 });
    const seqs = await outboxSeqs(a);
    for (const id of ['dev-0001', 'dev-0002', 'env-0001']) expect(seqs.get(id)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const records = await outboxRecords(a);
    const byKey = new Map(published.map((m) => [`${m.deviceId}:${m.seq}`, m]));
    for (const r of records) expect(JSON.parse(r.body)).toEqual(JSON.parse(byKey.get(`${r.deviceId}:${r.deviceSeq}`)!.body as string));
  });

  it('malformed payloads become dead letters with the right reason and are answered on devices/{id}/errors', async () => {
    const a = await start();
    const { summary, published } = await runSim(a, { seed: 11, count: 60, ratePerS: 100, devices: [{ count: 3 }], faults: { malformed: { probability: 0.15 } } }, { answerGraceMs: 20_000 });
    expect(summary.problems).toEqual([]);
    const malformed = published.filter((m) => m.kind.type === 'malformed');
    expect(summary.malformedSent).toBe(malformed.length);
    const expectedReasons = new Map<string, number>();
    for (const m of malformed) {
      if (m.kind.type !== 'malformed') continue;
      const reason = EXPECTED_REJECT_REASON[m.kind.malformed];
      expectedReasons.set(reason, (expectedReasons.get(reason) ?? 0) + 1);
    }
    // Every kind occurred with this seed, so every reason is checked.
    expect([...expectedReasons.keys()].sort()).toEqual(['invalid-json', 'invalid-payload', 'not-utf8']);

    const letters = await a.outbox.deadLetters(1_000);
    const letterReasons = new Map<string, number>();
    for (const l of letters) letterReasons.set(l.reason, (letterReasons.get(l.reason) ?? 0) + 1);
    expect(letterReasons).toEqual(expectedReasons);
    // Each dead letter keeps the exact bytes the simulator sent.
    const sentBodies = new Set(malformed.map((m) => Buffer.from(m.body).toString('base64')));
    for (const l of letters) expect(sentBodies.has(l.payload.toString('base64'))).toBe(true);
    expect(new Map(Object.entries(summary.errorAnswers))).toEqual(expectedReasons);

    // The valid rest is all there, and nothing else.
    const seqs = await outboxSeqs(a);
    for (const id of ['dev-0001', 'dev-0002', 'dev-0003']) {
      const valid = published.filter((m) => m.deviceId === id && m.kind.type === 'telemetry').map((m) => m.seq);
      expect(seqs.get(id)).toEqual(valid);
      // The summary lists exactly the valid telemetry as PUBACKed (the malformed ones are acknowledged too, but not counted there).
      expect(summary.perDevice[id]!.telemetryPubacked).toBe(valid.length);
      expect(expandRanges(summary.perDevice[id]!.telemetryPubackedSeqs)).toEqual(valid);
      expect(summary.perDevice[id]!.acked).toBe(published.filter((m) => m.deviceId === id).length);
    }
  });

  it('devices with wrong credentials are refused with CONNACK 4 and send nothing; the others are unaffected', async () => {
    const ids = ['dev-0001', 'dev-0002', 'dev-0003', 'dev-0004'];
    const a = await start({ broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices: await deviceCredentials(ids) } });
    const { summary } = await runSim(a, { seed: 2, count: 10, ratePerS: 50, devices: [{ count: 4 }], faults: { badCredentials: { ratio: 0.5 } } }, { passwordFor: (id) => `${id}-secret` });
    expect(summary.problems).toEqual([]);
    expect(summary.refused).toHaveLength(2);
    for (const r of summary.refused) expect(r).toMatchObject({ code: 4, expected: true });
    const refusedIds = new Set(summary.refused.map((r) => r.deviceId));
    const seqs = await outboxSeqs(a);
    expect([...seqs.keys()].sort()).toEqual(ids.filter((id) => !refusedIds.has(id)));
    for (const [, list] of seqs) expect(list).toHaveLength(10);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_auth_refused_total', { code: '4' })).toBe(2);
  });

  it('an oversize packet closes only its own connection, and no QoS 1 message of that device is lost', async () => {
    const a = await start({ broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: true, maxPacketBytes: 4096 } });
    const { summary, published, acked } = await runSim(a, {
      seed: 4,
      count: 40,
      ratePerS: 40,
      devices: [{ count: 4 }],
      faults: { oversize: { probability: 0.03, bytes: 8192 } },
    });
    expect(summary.problems).toEqual([]);
    const oversizeBy = new Map<string, number>();
    for (const m of published) if (m.kind.type === 'oversize') oversizeBy.set(m.deviceId, (oversizeBy.get(m.deviceId) ?? 0) + 1);
    expect(summary.oversizeSent).toBeGreaterThan(0);
    // With this seed some devices never send one: they must never have been disconnected.
    const clean = Object.keys(summary.perDevice).filter((id) => !oversizeBy.has(id));
    expect(clean.length).toBeGreaterThan(0);
    for (const id of clean) expect(summary.perDevice[id]!.disconnects).toBe(0);
    for (const id of oversizeBy.keys()) expect(summary.perDevice[id]!.disconnects).toBeGreaterThan(0);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_packet_guard_closed_total', { reason: 'packet-too-large' })).toBeDefined();
    // Every telemetry message was acknowledged and is in the outbox; oversize ones never are.
    const seqs = await outboxSeqs(a);
    for (const id of Object.keys(summary.perDevice)) {
      const expected = published.filter((m) => m.deviceId === id && m.kind.type === 'telemetry').map((m) => m.seq);
      expect([...(acked.get(id) ?? [])].filter((s) => expected.includes(s)).sort((x, y) => x - y)).toEqual(expected);
      expect([...new Set(seqs.get(id))].sort((x, y) => x - y)).toEqual(expected);
    }
  });

  it('a flaky link with QoS 1 loses nothing: every acknowledged seq is in the outbox, in-flight ones were resent', async () => {
    const a = await start();
    const { summary, acked } = await runSim(a, {
      seed: 5,
      count: 80,
      ratePerS: 40,
      qos: 1,
      devices: [{ count: 3 }],
      faults: { flakyLink: { ratio: 1, intervalS: 0.3, downS: 0.1 } },
    });
    expect(summary.problems).toEqual([]);
    expect(summary.unacked).toBe(0);
    expect(summary.acked).toBe(240);
    expect(summary.linkDrops).toBeGreaterThan(0);
    expect(summary.reconnects).toBeGreaterThan(0);
    // Each drop comes right after a publish left, before its PUBACK: mqtt.js sends it again.
    expect(summary.resent).toBeGreaterThan(0);
    const seqs = await outboxSeqs(a);
    let duplicates = 0;
    for (const id of ['dev-0001', 'dev-0002', 'dev-0003']) {
      const stored = seqs.get(id) ?? [];
      const all = Array.from({ length: 80 }, (_, i) => i);
      expect([...(acked.get(id) ?? [])].sort((x, y) => x - y)).toEqual(all);
      expect(summary.perDevice[id]).toMatchObject({ telemetryPubacked: 80, telemetryPubackedSeqs: [[0, 79]] });
      expect([...new Set(stored)].sort((x, y) => x - y)).toEqual(all);
      duplicates += stored.length - new Set(stored).size;
    }
    // At-least-once: a resent message whose first copy was committed is stored twice, never lost.
    expect(duplicates).toBeLessThanOrEqual(summary.resent);
  });

  it('clock skew: the agent records the skewed device ts', async () => {
    const a = await start();
    const { summary, published } = await runSim(a, { seed: 6, count: 10, ratePerS: 20, devices: [{ count: 4 }], faults: { clockSkew: { ratio: 0.5, offsetS: 3_600 } } });
    expect(summary.problems).toEqual([]);
    const skewed = Object.entries(summary.perDevice).filter(([, d]) => d.clockSkewMs !== 0);
    expect(skewed).toHaveLength(2);
    for (const [, d] of skewed) expect(Math.abs(d.clockSkewMs)).toBe(3_600_000);
    const sent = new Map(published.map((m) => [`${m.deviceId}:${m.seq}`, m]));
    const records = await outboxRecords(a);
    expect(records).toHaveLength(40);
    for (const r of records) {
      const m = sent.get(`${r.deviceId}:${r.deviceSeq}`)!;
      expect(r.ts).toBe(m.ts);
      expect(m.ts - m.sentAtMs).toBe(summary.perDevice[r.deviceId]!.clockSkewMs);
    }
  });
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runCli(args: string[]): Promise<CliResult> {
  const { child, closed } = await spawnOwned(process.execPath, [SIM_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await closed;
  return { code: child.exitCode, stdout, stderr };
}

describe('outpost-sim devices (the built binary)', () => {
  it('runs against an agent and prints one JSON summary that matches what the agent stored', async () => {
    const ids = ['dev-0001', 'dev-0002', 'dev-0003'];
    const credentials = join(dir.path, 'credentials.json');
    await writeFile(credentials, JSON.stringify(Object.fromEntries(ids.map((id) => [id, `${id}-secret`]))));
    const a = await start({ broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices: await deviceCredentials(ids) } });
    const result = await runCli(['devices', '--url', `mqtt://127.0.0.1:${a.mqttPort}`, '--devices', '3', '--count', '20', '--rate', '50', '--credentials', credentials, '--malformed', '0.1', '--seed', '3', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as LiveRunSummary;
    expect(summary).toMatchObject({ mode: 'live', devices: 3, connected: 3, sent: 60, acked: 60, unacked: 0, problems: [] });
    expect(summary.malformedSent).toBeGreaterThan(0);
    expect(await outboxRecords(a)).toHaveLength(60 - summary.malformedSent);
    expect(await a.outbox.deadLetters(100)).toHaveLength(summary.malformedSent);
  });

  it('exits 1 with the refusal when the agent refuses its devices', async () => {
    const a = await start({ broker: { mode: 'embedded', host: '127.0.0.1', port: 0, allowAnonymous: false, devices: await deviceCredentials(['dev-0001']) } });
    const result = await runCli(['devices', '--url', `mqtt://127.0.0.1:${a.mqttPort}`, '--devices', '1', '--count', '5', '--password', 'wrong', '--json']);
    expect(result.code).toBe(1);
    const summary = JSON.parse(result.stdout) as LiveRunSummary;
    expect(summary.refused).toEqual([{ deviceId: 'dev-0001', code: 4, expected: false }]);
    expect(summary.problems.join('\n')).toContain('dev-0001 (CONNACK 4)');
  });

  it('exits 2 naming the bad key or flag, and for the fleet simulator that is not there yet', async () => {
    const scenario = join(dir.path, 'bad.yaml');
    await writeFile(scenario, 'devices:\n  - count: 2\n    colour: red\n');
    const badFile = await runCli(['devices', '--scenario', scenario, '--record', join(dir.path, 'x.jsonl')]);
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toContain('devices.0.colour: unknown key');
    const badFlag = await runCli(['devices', '--rate', 'fast', '--record', join(dir.path, 'x.jsonl')]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--rate');
    const noUrl = await runCli(['devices', '--count', '1']);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('--url');
    const fleet = await runCli(['fleet']);
    expect(fleet.code).toBe(2);
    expect(fleet.stderr).toContain('not implemented yet');
  });
});
