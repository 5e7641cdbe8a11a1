// "Effectively once" per device message, end to end (DESIGN section 2): a device resend after a
// lost PUBACK is stored and counted once, a device over its rate is slowed down instead of being
// disconnected, a device that restarts its seqs is never dropped, and one unreadable row in the
// outbox costs that row alone, reported. Real processes throughout: nats-server, the agent,
// the control plane, and a device stack we did not write (mosquitto_pub).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import sqlite3 from 'sqlite3';
import type { AgentConfigInput } from '@outpost/shared';
import { openOutbox } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { startAgentProcess, testAgentConfig, testUplinkConfig, type AgentProcess } from '../harness/agent-process.js';
import { controlPlaneApi, startInProcessControlPlane, testControlPlaneConfig } from '../harness/control-plane-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { getFreePort } from '../harness/free-port.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { readUplinkStream, type StreamRecord } from '../harness/uplink-stream.js';
import { resolveExecutable, spawnOwned, waitFor } from '../harness/wait.js';

let dir: TempDir;
let nats: NatsServer;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await createTempDir('outpost-once-');
  nats = await startNatsServer({ secure: true });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await nats.stop();
  await dir.remove();
});

async function agentConfig(agentId: string, overrides: Partial<AgentConfigInput> = {}): Promise<AgentConfigInput> {
  return testAgentConfig(join(dir.path, agentId), {
    agentId,
    // A fixed port: a restarted agent comes back where its devices reconnect.
    broker: { mode: 'embedded', host: '127.0.0.1', port: await getFreePort(), allowAnonymous: true },
    // Secured like production: the agent's own NATS user from an enrolment bundle, TLS.
    uplink: await testUplinkConfig(nats, agentId, { heartbeatIntervalMs: 1_000 }),
    ...overrides,
  });
}

async function startAgent(config: AgentConfigInput): Promise<AgentProcess> {
  const agent = await startAgentProcess(config);
  cleanups.push(() => agent.kill9());
  return agent;
}

/** True once the agent's outbox holds nothing (everything reached JetStream). */
async function outboxEmpty(agent: AgentProcess): Promise<boolean> {
  const text = await fetchMetrics(agent.httpPort);
  return metricValue(text, 'outpost_outbox_records', { lane: 'events' }) === 0 && metricValue(text, 'outpost_outbox_records', { lane: 'telemetry' }) === 0;
}

/** Per device: the device seqs of telemetry in the stream (one entry per agent record, duplicate agent seqs dropped), and the resends the agent reported. */
function streamByDevice(records: readonly StreamRecord[]): Map<string, { seqs: number[]; resends: number }> {
  const unique = new Map<string, StreamRecord>();
  for (const r of records) unique.set(`${r.agentId}:${r.epoch}:${r.lane}:${r.seq}`, r);
  const out = new Map<string, { seqs: number[]; resends: number }>();
  for (const r of unique.values()) {
    const entry = out.get(r.deviceId) ?? { seqs: [], resends: 0 };
    if (r.kind === 'telemetry' && r.deviceSeq !== undefined) entry.seqs.push(r.deviceSeq);
    if (r.kind === 'device-resend') entry.resends++;
    out.set(r.deviceId, entry);
  }
  return out;
}

/** mosquitto_pub reading lines from stdin, QoS 1, persistent session, with its debug log parsed. */
async function startMosquittoPub(port: number, deviceId: string) {
  const mosquittoPub = resolveExecutable('mosquitto_pub');
  const stdbuf = resolveExecutable('stdbuf');
  if (mosquittoPub === undefined || stdbuf === undefined) throw new Error('mosquitto_pub (Debian mosquitto-clients) and stdbuf (coreutils) are needed');
  // stdbuf -oL: its debug lines arrive as they happen, not in 4 KiB blocks.
  const pub = await spawnOwned(stdbuf, ['-oL', mosquittoPub, '-h', '127.0.0.1', '-p', String(port), '-t', `devices/${deviceId}/telemetry`, '-q', '1', '-c', '-i', deviceId, '-k', '5', '-l', '-d'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  cleanups.push(() => pub.kill());
  const acked = new Set<number>();
  let resent = 0;
  let connects = 0;
  const log: string[] = [];
  createInterface({ input: pub.child.stdout! }).on('line', (line) => {
    log.push(line);
    if (log.length > 50) log.shift();
    const ack = /received PUBACK \(Mid: (\d+)/.exec(line);
    if (ack !== null) acked.add(Number(ack[1]));
    else if (/sending PUBLISH \(d1,/.test(line)) resent++;
    else if (/sending CONNECT/.test(line)) connects++;
  });
  pub.child.stderr!.on('data', () => undefined);
  return { pub, acked, resent: () => resent, connects: () => connects, log: () => log.join('\n') };
}

describe('every device message counted exactly once', () => {
  it('mosquitto_pub at ~800 msg/s, QoS 1, the agent killed with SIGKILL 3 times: every PUBACKed seq counted once, resends as device duplicates', async () => {
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    const config = await agentConfig('gw-once');
    let agent = await startAgent(config);
    const device = await startMosquittoPub(agent.mqttPort!, 'dev-1');

    // Line n is message n: mosquitto_pub numbers its publishes 1, 2, ... in the order it reads
    // lines, so a PUBACK for Mid n acknowledges seq n. The ts is fixed per line, as a device's
    // own resend carries the same payload.
    const TOTAL = 12_000;
    const T0 = Date.now();
    let written = 0;
    const writer = setInterval(() => {
      const lines: string[] = [];
      for (let k = 0; k < 8 && written < TOTAL; k++) {
        written++;
        lines.push(JSON.stringify({ ts: T0 + written, seq: written, metrics: { temperature: 20 + (written % 50) / 10 } }));
      }
      if (lines.length > 0) device.pub.child.stdin!.write(`${lines.join('\n')}\n`);
      if (written >= TOTAL) {
        clearInterval(writer);
        device.pub.child.stdin!.end();
      }
    }, 10);
    cleanups.push(async () => clearInterval(writer));

    for (const killAt of [2_500, 5_500, 8_500]) {
      await waitFor(() => device.acked.size >= killAt, { what: `${killAt} PUBACKs (mosquitto_pub log:\n${device.log()})`, timeoutMs: 60_000, intervalMs: 20 });
      await agent.kill9();
      agent = await startAgent(config);
    }
    await device.pub.closed; // it exits once every line is acknowledged after stdin ended
    expect(device.acked.size).toBe(TOTAL);

    const api = controlPlaneApi(cp.httpPort);
    let stream = new Map<string, { seqs: number[]; resends: number }>();
    await waitFor(
      async () => {
        if (!(await outboxEmpty(agent))) return false;
        stream = streamByDevice(await readUplinkStream(nats));
        const { status, body } = await api.device('gw-once', 'dev-1');
        const inStream = stream.get('dev-1');
        return status === 200 && inStream !== undefined && body.kinds['telemetry'] === inStream.seqs.length && body.deviceDuplicates === inStream.resends;
      },
      { what: 'every record of gw-once counted at the control plane', timeoutMs: 120_000, intervalMs: 250 },
    );
    const { seqs, resends } = stream.get('dev-1')!;
    // The agent stored no device message twice, and every acknowledged one.
    expect(new Set(seqs).size).toBe(seqs.length);
    const stored = new Set(seqs);
    expect([...device.acked].filter((s) => !stored.has(s))).toEqual([]);
    const { body } = await api.device('gw-once', 'dev-1');
    // received = the number of distinct device messages; resends counted apart, as device duplicates.
    expect(body.kinds['telemetry']).toBe(TOTAL);
    expect(body.received).toBe(TOTAL);
    expect(body.deviceDuplicates).toBe(resends);
    expect(body.gaps).toBe(0);
    const agentView = (await api.agent('gw-once')).body;
    expect(agentView.totals.unexplainedGaps).toBe(0);
    expect(agentView.accountingProblems).toEqual([]);
    console.log(`mosquitto_pub: ${TOTAL} messages acknowledged, ${device.resent()} PUBLISHes resent with DUP after ${device.connects() - 1} reconnects; ${resends} recognised as resends of committed messages; control plane: ${body.kinds['telemetry']} received, ${body.deviceDuplicates} device duplicates`);
  }, 300_000);

  it('a device that reboots (seq back to 1, new ts) keeps every message counted; its resends are not mistaken for it', async () => {
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    const agent = await startAgent(await agentConfig('gw-reboot'));
    const url = `mqtt://127.0.0.1:${agent.mqttPort}`;
    const T0 = 1_700_000_000_000;
    const before = await connectDevice(url, { clientId: 'dev-r' });
    for (let seq = 1; seq <= 40; seq++) await publish(before, 'devices/dev-r/telemetry', telemetryPayload(seq, T0 + seq * 1_000));
    // A resend of message 40 (its PUBACK "lost"): same seq, same ts.
    await publish(before, 'devices/dev-r/telemetry', telemetryPayload(40, T0 + 40_000));
    before.end(true);
    const after = await connectDevice(url, { clientId: 'dev-r' });
    for (let seq = 1; seq <= 40; seq++) await publish(after, 'devices/dev-r/telemetry', telemetryPayload(seq, T0 + 3_600_000 + seq * 1_000));
    after.end(true);

    const api = controlPlaneApi(cp.httpPort);
    const { body } = await waitFor(
      async () => {
        const r = await api.device('gw-reboot', 'dev-r');
        return r.status === 200 && r.body.kinds['telemetry'] === 80 && r.body.deviceDuplicates === 1 ? r : undefined;
      },
      { what: '80 readings and one resend counted', timeoutMs: 30_000 },
    );
    expect(body).toMatchObject({ received: 80, deviceDuplicates: 1, gaps: 0, unexplainedGaps: 0, latest: { ts: T0 + 3_600_000 + 40_000 } });
  });

  it('one corrupted body in the outbox: every other record arrives, the bad one is reported lost by its seq and shows as an explained gap', async () => {
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());
    await nats.down(); // the agent buffers: the row can be corrupted before it is sent
    const config = await agentConfig('gw-corrupt');
    const agent = await startAgent(config);
    const device = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: 'dev-c' });
    const T0 = 1_700_000_000_000;
    for (let seq = 1; seq <= 100; seq++) await publish(device, 'devices/dev-c/telemetry', telemetryPayload(seq, T0 + seq));
    device.end(true);

    // A second SQLite connection, as a failing disk or a hand edit would: device seq 37's body is no longer JSON.
    const outboxPath = join(config.dataDir, 'outbox.sqlite');
    const corruptedAgentSeq = await new Promise<number>((resolve, reject) => {
      const db = new sqlite3.Database(outboxPath);
      db.configure('busyTimeout', 5_000);
      db.run("UPDATE telemetry SET body = '{\"ts\": 1700000000037, \"metr' WHERE device_seq = 37", (err) => {
        if (err) return reject(err);
        db.get<{ seq: number }>('SELECT seq FROM telemetry WHERE device_seq = 37', (getErr, row) => {
          db.close();
          if (getErr) reject(getErr);
          else resolve(row.seq);
        });
      });
    });

    await nats.up();
    const api = controlPlaneApi(cp.httpPort);
    const agentView = await waitFor(
      async () => {
        if (!(await outboxEmpty(agent))) return undefined;
        const r = await api.agent('gw-corrupt');
        const telemetry = r.status === 200 ? r.body.accounting.find((a) => a.lane === 'telemetry') : undefined;
        return telemetry !== undefined && telemetry.received === 99 && telemetry.evicted.records === 1 ? r.body : undefined;
      },
      { what: '99 records and one reported loss at the control plane', timeoutMs: 60_000 },
    );
    const telemetry = agentView.accounting.find((a) => a.lane === 'telemetry')!;
    expect(telemetry).toMatchObject({ received: 99, gaps: 1, explainedByEviction: 1, unexplainedGaps: 0 });
    // Reported by its agent seq: the stream's records skip exactly that one.
    const seqs = (await readUplinkStream(nats)).filter((r) => r.lane === 'telemetry').map((r) => r.seq);
    expect(seqs).not.toContain(corruptedAgentSeq);
    expect(new Set(seqs).size).toBe(99);
    const { body } = await api.device('gw-corrupt', 'dev-c');
    expect(body).toMatchObject({ received: 99, gaps: 1, explainedGaps: { deadLetters: 0, evicted: 1, refusedWithoutSeq: 0 }, unexplainedGaps: 0, evicted: 1 });
    await agent.stop();
    // The agent's own record of it: an eviction row with reason corrupt.
    const outbox = await openOutbox({ path: outboxPath, agentId: 'gw-corrupt', durability: 'power', maxBytes: 1 << 30, deadLetterMaxRows: 10, maxRecordsPerCommit: 100 });
    try {
      expect(await outbox.evictions()).toEqual([expect.objectContaining({ reason: 'corrupt', firstSeq: corruptedAgentSeq, lastSeq: corruptedAgentSeq, records: 1, deviceSeqs: [['dev-c', [[37, 37]]]] })]);
    } finally {
      await outbox.close();
    }
  });
});

describe('rate limits by backpressure', () => {
  /** PUBACK latency of each publish of `device`, publishing `ratePerS` for `durationMs`. */
  async function pacedLatencies(client: Awaited<ReturnType<typeof connectDevice>>, deviceId: string, ratePerS: number, durationMs: number, firstSeq: number): Promise<number[]> {
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    const count = Math.round((ratePerS * durationMs) / 1000);
    const started = performance.now();
    for (let k = 0; k < count; k++) {
      const due = started + (k * 1000) / ratePerS;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const sentAt = performance.now();
      pending.push(publish(client, `devices/${deviceId}/telemetry`, telemetryPayload(firstSeq + k)).then(() => void latencies.push(performance.now() - sentAt)));
    }
    await Promise.all(pending);
    return latencies;
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

  it('one device publishing unpaced above its rate for 10 s: no disconnect, no duplicate, its rate within 10 % of the limit, the other devices unaffected', async () => {
    const LIMIT = 200;
    const config = { ...(await agentConfig('gw-rate', { ingest: { rateLimitMsgsPerS: LIMIT } })), uplink: undefined };
    const agent = await startAgent(config);
    const url = `mqtt://127.0.0.1:${agent.mqttPort}`;
    let disconnects = 0;
    const normal = await Promise.all(
      Array.from({ length: 5 }, async (_, d) => {
        const client = await connectDevice(url, { clientId: `calm-${d}` });
        client.on('close', () => disconnects++);
        cleanups.push(async () => client.end(true));
        return client;
      }),
    );
    // Baseline: the calm devices alone.
    const baseline = (await Promise.all(normal.map((c, d) => pacedLatencies(c, `calm-${d}`, 20, 5_000, 1)))).flat();

    const fast = await connectDevice(url, { clientId: 'fast', reconnectPeriod: 100 });
    fast.on('close', () => disconnects++);
    cleanups.push(async () => fast.end(true));
    // Unpaced: 100 publishes always in flight, a new one as soon as one is acknowledged.
    const ackTimes: number[] = [];
    let next = 0;
    let running = true;
    const inFlight = async (): Promise<void> => {
      while (running) {
        const seq = next++;
        await publish(fast, 'devices/fast/telemetry', telemetryPayload(seq));
        ackTimes.push(performance.now());
      }
    };
    const fastStarted = performance.now();
    const fastLoops = Array.from({ length: 100 }, () => inFlight());
    const [withFast] = await Promise.all([
      Promise.all(normal.map((c, d) => pacedLatencies(c, `calm-${d}`, 20, 10_000, 1_000))).then((l) => l.flat()),
      waitFor(() => performance.now() - fastStarted >= 11_000, { what: '11 s of the fast device', timeoutMs: 60_000, intervalMs: 100 }),
    ]);
    running = false;
    await Promise.all(fastLoops);

    // Accepted rate after the first second (the burst), over 10 s.
    const steady = ackTimes.filter((t) => t >= fastStarted + 1_000 && t < fastStarted + 11_000).length / 10;
    const ratio = median(withFast) / median(baseline);
    console.log(`fast device: ${steady.toFixed(1)} msg/s accepted at a limit of ${LIMIT}; calm devices' median PUBACK latency ${median(baseline).toFixed(2)} ms alone, ${median(withFast).toFixed(2)} ms beside it (ratio ${ratio.toFixed(2)})`);
    expect(disconnects).toBe(0);
    expect(Math.abs(steady - LIMIT) / LIMIT).toBeLessThanOrEqual(0.1);
    // A paused device costs the others nothing: the same median latency, within the noise of a shared machine.
    expect(ratio).toBeLessThan(2);

    await agent.stop();
    const outbox = await openOutbox({ path: join(config.dataDir, 'outbox.sqlite'), agentId: 'gw-rate', durability: 'power', maxBytes: 1 << 30, deadLetterMaxRows: 10, maxRecordsPerCommit: 100 });
    try {
      const fastSeqs = (await outbox.read('telemetry', 0, 10_000_000)).filter((r) => r.deviceId === 'fast').map((r) => r.deviceSeq);
      expect(new Set(fastSeqs).size).toBe(fastSeqs.length);
      expect(fastSeqs.length).toBe(ackTimes.length);
    } finally {
      await outbox.close();
    }
  }, 120_000);
});
