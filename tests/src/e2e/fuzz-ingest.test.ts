import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import net from 'node:net';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Lane, METRIC_NAME_PATTERN, TelemetrySchema, type Telemetry } from '@outpost/shared';
import { openOutbox, type StoredRecord } from '@outpost/agent';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { fetchMetrics, sumOf } from '../harness/metrics.js';
import { seedFromEnv } from '../harness/random.js';
import { waitFor } from '../harness/wait.js';

// Issue [ingest], "Done when": 10k fast-check generated payloads and malformed MQTT packets
// never crash the agent while other devices keep flowing. The agent runs as a real child
// process (the built agent/dist/main.js), so a crash is a dead process, not a caught throw.
//
// Seeds are fixed so a failure is reproducible; FUZZ_PAYLOAD_SEED / FUZZ_PACKET_SEED run
// other seeds, e.g. `FUZZ_PACKET_SEED=7 npx vitest run tests/src/e2e/fuzz-ingest.test.ts`.

const PAYLOAD_SEED = seedFromEnv('FUZZ_PAYLOAD_SEED', () => 20_250_601);
const PACKET_SEED = seedFromEnv('FUZZ_PACKET_SEED', () => 20_250_602);
const PAYLOADS = 10_000;
/** QoS 1 publishes of the fuzz device awaiting their PUBACK at any moment. */
const PAYLOADS_IN_FLIGHT = 200;
const PACKET_SEQUENCES = 4_000;
const CONCURRENT_SOCKETS = 50;
/** The steady device publishes one message per tick, for the whole of each test. */
const GOOD_TICK_MS = 5;
const GOOD_DEVICE = 'good-steady-device';
const FUZZ_DEVICE = 'fuzz';
/** testAgentConfig leaves broker.maxPacketBytes at its default, 256 KiB. */
const MAX_PACKET_BYTES = 256 * 1024;
/** A fixed "now" for generated timestamps, so a seed always yields the same payloads. */
const NOW_MS = 1_750_000_000_000;
const AGENT_ID = 'test-agent';

let dir: TempDir;
beforeAll(async () => {
  dir = await createTempDir('outpost-fuzz-');
});
afterAll(async () => {
  await dir.remove();
});

// ---------------------------------------------------------------------------------------
// The agent process and the steady device
// ---------------------------------------------------------------------------------------

interface WatchedAgent {
  readonly agent: AgentProcess;
  /** Rejects when the agent process exits, with its status and the tail of its stderr. */
  readonly died: Promise<never>;
  /** The exit status if the process has exited by now; undefined while it runs. */
  exitStatus(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined>;
  /** Log lines the agent printed at level error (50) or fatal (60). */
  errorLogs(): Record<string, unknown>[];
}

async function startWatchedAgent(dataDir: string, describeInFlight: () => string): Promise<WatchedAgent> {
  const agent = await startAgentProcess(testAgentConfig(dataDir, { agentId: AGENT_ID, ingest: { rateLimitMsgsPerS: 0 } }));
  let stderr = '';
  agent.child.stderr?.on('data', (d: string | Buffer) => {
    stderr += d.toString();
  });
  const died = agent.exited.then(({ code, signal }) => {
    throw new Error(`agent process exited during the fuzz (code ${code}, signal ${signal}); inputs in flight: ${describeInFlight()}\nstderr:\n${stderr.slice(-8000)}`);
  });
  died.catch(() => undefined); // awaited in races only; never an unhandled rejection
  const notYet = Symbol('running');
  return {
    agent,
    died,
    async exitStatus() {
      // `exited` goes first: when it has already resolved, its reaction is queued first and wins.
      const status = await Promise.race([agent.exited, Promise.resolve(notYet)]);
      return status === notYet ? undefined : (status as { code: number | null; signal: NodeJS.Signals | null });
    },
    errorLogs: () => agent.logs.filter((l) => typeof l['level'] === 'number' && l['level'] >= 50),
  };
}

/**
 * Rejects when `client` closes; for races, so a lost connection fails the test instead of
 * hanging it. The connection drops before the process 'exit' event arrives, so when the
 * agent no longer answers HTTP this waits for its exit and reports that (with its stderr).
 */
function closedUnexpectedly(client: MqttClient, name: string, watched: WatchedAgent): Promise<never> {
  const closed = new Promise<never>((_, reject) => {
    client.once('close', () => {
      fetch(`http://127.0.0.1:${watched.agent.httpPort}/healthz`).then(
        () => reject(new Error(`the ${name} device's connection was closed by the running agent`)),
        () => watched.died.catch(reject),
      );
    });
  });
  closed.catch(() => undefined);
  return closed;
}

interface SteadyDevice {
  /** Device seqs the agent PUBACKed so far. */
  readonly acked: Set<number>;
  /** Stops publishing and waits for the PUBACK of everything already published. */
  stop(): Promise<{ published: number }>;
  /** Stops publishing, waiting for nothing (a test that failed). */
  cancel(): void;
}

/**
 * The device that must keep flowing: one valid QoS 1 telemetry message per tick, whatever
 * the fuzz does beside it. A timer drives the load (as in kill9-ingest); nothing waits on it.
 */
function startSteadyDevice(client: MqttClient, deviceId: string, abort: Promise<never>): SteadyDevice {
  const acked = new Set<number>();
  const pending = new Set<Promise<void>>();
  const errors: Error[] = [];
  let seq = 0;
  const timer = setInterval(() => {
    const s = seq++;
    const p = publish(client, `devices/${deviceId}/telemetry`, telemetryPayload(s, NOW_MS + s)).then(
      () => {
        acked.add(s);
      },
      (error: unknown) => {
        errors.push(error as Error);
      },
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, GOOD_TICK_MS);
  return {
    acked,
    cancel: () => clearInterval(timer),
    async stop() {
      clearInterval(timer);
      await Promise.race([Promise.all(pending), abort]);
      if (errors.length > 0) throw new Error(`steady device publishes failed: ${errors.map((e) => e.message).join('; ')}`);
      return { published: seq };
    },
  };
}

async function readAllTelemetry(dataDir: string): Promise<{ records: StoredRecord[]; deadLetters: number; deadLettersDropped: number; integrity: string }> {
  const outbox = await openOutbox({ path: join(dataDir, 'outbox.sqlite'), agentId: AGENT_ID, durability: 'power', maxBytes: 1 << 30, deadLetterMaxRows: 10_000, maxRecordsPerCommit: 1000 });
  try {
    const { deadLetters, deadLettersDropped } = outbox.stats();
    return { records: await outbox.read(Lane.telemetry, 0, 10_000_000), deadLetters, deadLettersDropped, integrity: await outbox.integrityCheck() };
  } finally {
    await outbox.close();
  }
}

// ---------------------------------------------------------------------------------------
// Test 1: payloads
// ---------------------------------------------------------------------------------------

interface PayloadCase {
  kind: string;
  bytes: Buffer;
}

const metricName = fc.stringMatching(METRIC_NAME_PATTERN);
const finiteNumber = fc.double({ noNaN: true, noDefaultInfinity: true });
const epochMs = fc.oneof(fc.integer({ min: 0, max: 8.64e15 }), fc.integer({ min: NOW_MS - 86_400_000, max: NOW_MS }));

/** Valid per TelemetrySchema: ts, optional seq, 1..256 metrics with good names and finite values. */
const validTelemetry = fc.record(
  {
    ts: epochMs,
    seq: fc.oneof(fc.nat(), fc.maxSafeNat()),
    metrics: fc.dictionary(metricName, finiteNumber, { minKeys: 1, maxKeys: 256 }),
  },
  { requiredKeys: ['ts', 'metrics'] },
) as fc.Arbitrary<Record<string, unknown>>;

/** A value of the wrong type or out of range for any telemetry field. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '', '0x10', 'null', '12', 'true'),
  fc.constantFrom<unknown>(null, true, false, [], {}, -1, 1.5, -0.5, 1e300, -1e300, 8.64e15 + 1, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_SAFE_INTEGER),
  fc.string({ maxLength: 40 }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Metric names the contract refuses (or that are awkward as JS object keys). */
const badMetricName = fc.oneof(
  fc.constantFrom('', ' ', 'has space', 'a/b', '#', '+', '\u0000', 'tab\t', 'ünïcode', '温度', '😀', '\ud800', '__proto__', 'constructor', 'toString', 'hasOwnProperty'),
  fc.integer({ min: 65, max: 2_000 }).map((n) => 'm'.repeat(n)),
  fc.string({ unit: 'grapheme', maxLength: 70 }),
);

/** Raw JSON text tokens that are not JSON numbers, or numbers JSON.parse turns into Infinity. */
const badNumberToken = fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '+1', '01', '.5', '1.', '0x10', '1_000', '1e', '--1', 'undefined');

/** Byte sequences that are not UTF-8: overlong, surrogate, beyond U+10FFFF, lone continuation, 0xFF. */
const invalidUtf8 = fc.constantFrom(
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0x80]),
  Buffer.from([0xff, 0xfe]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
);

function nested(depth: number, shape: 'array' | 'object', leaf: string): string {
  return shape === 'array' ? '['.repeat(depth) + leaf + ']'.repeat(depth) : '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);
}

/** Splices `insert` into `text` at `at` (clamped), as bytes. */
function spliceBytes(text: string | Buffer, at: number, insert: Buffer, removeBytes = 0): Buffer {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const i = bytes.length === 0 ? 0 : at % (bytes.length + 1);
  return Buffer.concat([bytes.subarray(0, i), insert, bytes.subarray(Math.min(bytes.length, i + removeBytes))]);
}

/** Valid telemetry, then one corruption: a wrong type, a missing field, a bad name, bad text. */
const nearValidTelemetry: fc.Arbitrary<PayloadCase> = validTelemetry.chain((t) => {
  const json = (kind: string, v: unknown): PayloadCase => ({ kind, bytes: Buffer.from(JSON.stringify(v)) });
  const metricsOf = (): Record<string, unknown> => ({ ...(t['metrics'] as Record<string, unknown>) });
  return fc.oneof(
    fc.tuple(fc.constantFrom('ts', 'seq', 'metrics'), wrongValue).map(([field, v]) => json(`wrong-${field}`, { ...t, [field]: v })),
    fc.constantFrom('ts', 'metrics').map((field) => {
      const copy = { ...t };
      delete copy[field];
      return json(`missing-${field}`, copy);
    }),
    wrongValue.map((v) => json('wrong-metric-value', { ...t, metrics: { ...metricsOf(), bad: v } })),
    fc.tuple(badMetricName, finiteNumber).map(([name, v]) => {
      // Defined, not assigned, so a '__proto__' name becomes a real JSON key.
      const metrics = metricsOf();
      Object.defineProperty(metrics, name, { value: v, enumerable: true, configurable: true, writable: true });
      return json('bad-metric-name', { ...t, metrics });
    }),
    fc.integer({ min: 257, max: 400 }).map((n) => json('too-many-metrics', { ...t, metrics: Object.fromEntries(Array.from({ length: n }, (_, i) => [`m${i}`, i])) })),
    fc.constant(json('no-metrics', { ...t, metrics: {} })),
    fc.jsonValue({ maxDepth: 4 }).map((extra) => json('extra-field', { ...t, extra })),
    fc.tuple(fc.integer({ min: 1, max: 40_000 }), fc.constantFrom<'array' | 'object'>('array', 'object'), fc.constantFrom('whole', 'metrics', 'metric-value', 'extra'))
      .map(([depth, shape, where]): PayloadCase => {
        const deep = nested(depth, shape, '1');
        const body = JSON.stringify(t);
        const text =
          where === 'whole' ? deep
          : where === 'metrics' ? `{"ts":${String(t['ts'])},"metrics":${deep}}`
          : where === 'metric-value' ? `{"ts":${String(t['ts'])},"metrics":{"deep":${deep}}}`
          : `${body.slice(0, -1)},"extra":${deep}}`;
        return { kind: `deep-${where}`, bytes: Buffer.from(text) };
      }),
    fc.tuple(fc.constantFrom('ts', 'seq', 'metric'), badNumberToken).map(([field, token]): PayloadCase => {
      const body = JSON.stringify(t);
      const text = field === 'metric' ? body.replace(/(":)(-?[0-9][0-9.eE+-]*)(?=[,}]\}?$)/, `$1${token}`) : body.replace(new RegExp(`("${field}":)-?[0-9][0-9.eE+-]*`), `$1${token}`);
      return { kind: `number-token-${field}`, bytes: Buffer.from(text) };
    }),
    fc.nat().map((at): PayloadCase => {
      const body = Buffer.from(JSON.stringify(t));
      return { kind: 'truncated', bytes: body.subarray(0, at % body.length) };
    }),
    fc.constantFrom('\ufeff', ' \n\t', 'garbage', ',', '}', ']', '\u0000', '\r\n').chain((s) =>
      fc.boolean().map((before): PayloadCase => {
        const body = JSON.stringify(t);
        return { kind: `text-${before ? 'prefix' : 'suffix'}`, bytes: Buffer.from(before ? s + body : body + s) };
      }),
    ),
    fc.constant(null).map((): PayloadCase => {
      const body = JSON.stringify(t);
      return { kind: 'duplicate-key', bytes: Buffer.from(`${body.slice(0, -1)},"ts":"again"}`) };
    }),
    fc.constant(null).map((): PayloadCase => {
      const body = JSON.stringify(t);
      return { kind: 'trailing-comma', bytes: Buffer.from(`${body.slice(0, -1)},}`) };
    }),
    fc.tuple(invalidUtf8, fc.nat(), fc.boolean()).map(([bad, at, inName]): PayloadCase => {
      const body = JSON.stringify(t);
      // Inside the first metric name (still a JSON string) or anywhere in the text.
      const nameAt = body.indexOf('"metrics":{"') + '"metrics":{"'.length;
      return { kind: inName ? 'invalid-utf8-in-string' : 'invalid-utf8', bytes: spliceBytes(body, inName ? nameAt : at, bad) };
    }),
    fc.constantFrom('"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"').map((name): PayloadCase => {
      const body = JSON.stringify(t);
      return { kind: 'escaped-name', bytes: Buffer.from(body.replace('"metrics":{', `"metrics":{${name}:1,`)) };
    }),
  );
});

const payloadCase: fc.Arbitrary<PayloadCase> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((b) => ({ kind: 'bytes', bytes: Buffer.from(b) })) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => ({ kind: 'json-value', bytes: Buffer.from(JSON.stringify(v)) })) },
  { weight: 4, arbitrary: nearValidTelemetry },
  { weight: 2, arbitrary: validTelemetry.map((t) => ({ kind: 'valid', bytes: Buffer.from(JSON.stringify(t)) })) },
);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** What the contract says of a payload, computed independently of the agent's code. */
function expectedTelemetry(bytes: Buffer): Telemetry | undefined {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const result = TelemetrySchema.safeParse(json);
  return result.success ? result.data : undefined;
}

/** JSON with object keys sorted, so two renderings of the same value compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function recordKey(ts: number, deviceSeq: number | undefined, body: unknown): string {
  return `${ts}|${deviceSeq ?? '-'}|${canonical(body)}`;
}

describe('fuzzed ingest: the agent survives and other devices keep flowing', () => {
  it(`${PAYLOADS} generated payloads (seed ${PAYLOAD_SEED}) are each acknowledged, stored or dead-lettered`, async () => {
    console.log(`fuzz payloads: seed ${PAYLOAD_SEED} (set FUZZ_PAYLOAD_SEED to change)`);
    const cases = fc.sample(payloadCase, { seed: PAYLOAD_SEED, numRuns: PAYLOADS });
    const expected = cases.map((c) => expectedTelemetry(c.bytes));
    const valid = expected.filter((t): t is Telemetry => t !== undefined);
    const invalidCount = cases.length - valid.length;
    const kinds = new Map<string, { n: number; valid: number }>();
    cases.forEach((c, i) => {
      const k = kinds.get(c.kind) ?? { n: 0, valid: 0 };
      k.n += 1;
      if (expected[i] !== undefined) k.valid += 1;
      kinds.set(c.kind, k);
    });
    console.log(`fuzz payloads: ${cases.length} generated, ${valid.length} valid, ${invalidCount} invalid, largest ${Math.max(...cases.map((c) => c.bytes.length))} bytes`);
    console.log(`fuzz payloads by kind (n/valid): ${[...kinds].map(([k, v]) => `${k} ${v.n}/${v.valid}`).join(', ')}`);
    // The generator must really produce both, or the assertions below prove little.
    expect(valid.length).toBeGreaterThan(1_000);
    expect(invalidCount).toBeGreaterThan(5_000);
    expect(Math.max(...cases.map((c) => c.bytes.length))).toBeLessThan(MAX_PACKET_BYTES - 1024);

    const dataDir = join(dir.path, 'payloads');
    let nextCase = 0;
    const watched = await startWatchedAgent(dataDir, () => `payload cases up to #${nextCase} (kinds ${cases.slice(Math.max(0, nextCase - PAYLOADS_IN_FLIGHT), nextCase).map((c) => c.kind).join(',')})`);
    const { agent, died } = watched;
    let steady: SteadyDevice | undefined;
    // Also after a failure or a timeout: no agent, timer or worker outlives the test.
    onTestFinished(async () => {
      steady?.cancel();
      nextCase = cases.length;
      await agent.kill9();
    });
    const url = `mqtt://127.0.0.1:${agent.mqttPort}`;
    const good = await connectDevice(url, { clientId: GOOD_DEVICE });
    const fuzz = await connectDevice(url, { clientId: FUZZ_DEVICE });
    let goodPublished = 0;
    try {
      const abortGood = Promise.race([died, closedUnexpectedly(good, GOOD_DEVICE, watched)]);
      const abortFuzz = Promise.race([died, closedUnexpectedly(fuzz, FUZZ_DEVICE, watched)]);
      steady = startSteadyDevice(good, GOOD_DEVICE, abortGood);

      // Bounded pipelining: PAYLOADS_IN_FLIGHT workers, each publishing the next case once its
      // previous one is acknowledged. mqtt.js sends them in index order on one connection.
      let fuzzAcked = 0;
      const goodAckedBefore = steady.acked.size;
      const worker = async (): Promise<void> => {
        while (nextCase < cases.length) {
          const c = cases[nextCase++]!;
          await publish(fuzz, `devices/${FUZZ_DEVICE}/telemetry`, c.bytes, 1);
          fuzzAcked += 1;
        }
      };
      await Promise.race([Promise.all(Array.from({ length: PAYLOADS_IN_FLIGHT }, worker)), abortFuzz, abortGood]);
      const goodAckedDuringFuzz = steady.acked.size - goodAckedBefore;
      const { published } = await steady.stop();
      goodPublished = published;

      expect(fuzzAcked).toBe(cases.length);
      expect(goodAckedDuringFuzz, 'the steady device got PUBACKs while the fuzz ran').toBeGreaterThan(0);
      expect(steady.acked.size).toBe(published);
      expect(await watched.exitStatus(), 'the agent process is still running').toBeUndefined();
      expect(watched.errorLogs()).toEqual([]);
      console.log(`fuzz payloads: ${fuzzAcked} fuzz publishes and ${published} steady publishes acknowledged (${goodAckedDuringFuzz} of them during the fuzz)`);
    } finally {
      good.end(true);
      fuzz.end(true);
    }
    expect(await agent.stop(), 'SIGTERM exit code').toBe(0);

    const stored = await readAllTelemetry(dataDir);
    expect(stored.integrity).toBe('ok');
    const goodSeqs = new Set(stored.records.filter((r) => r.deviceId === GOOD_DEVICE).map((r) => r.deviceSeq));
    const fuzzRecords = stored.records.filter((r) => r.deviceId === FUZZ_DEVICE);
    expect(stored.records.filter((r) => r.deviceId !== GOOD_DEVICE && r.deviceId !== FUZZ_DEVICE)).toEqual([]);
    expect(goodPublished).toBeGreaterThan(0);
    // Every steady publish was acknowledged (checked above), so every one must be stored.
    const goodMissing = [...Array(goodPublished).keys()].filter((s) => !goodSeqs.has(s));
    expect(goodMissing, 'steady device messages acknowledged but not stored').toEqual([]);

    expect(fuzzRecords.length, 'fuzz records stored = payloads valid per TelemetrySchema').toBe(valid.length);
    // Not only as many: the same ones (as a multiset), each with the ts and seq it carried.
    const storedKeys = fuzzRecords.map((r) => recordKey(r.ts, r.deviceSeq, JSON.parse(r.body))).sort();
    const expectedKeys = valid.map((t) => recordKey(t.ts, t.seq, t)).sort();
    expect(storedKeys).toEqual(expectedKeys);
    expect(stored.deadLetters + stored.deadLettersDropped, 'dead letters kept + dropped = invalid payloads').toBe(invalidCount);
  }, 240_000);

  // -------------------------------------------------------------------------------------
  // Test 2: malformed MQTT packets on raw sockets
  // -------------------------------------------------------------------------------------

  it(`${PACKET_SEQUENCES} malformed MQTT byte sequences (seed ${PACKET_SEED}) never stop the agent or the steady device`, async () => {
    console.log(`fuzz packets: seed ${PACKET_SEED} (set FUZZ_PACKET_SEED to change)`);
    const onlyKind = process.env['FUZZ_PACKET_KIND'];
    const sequences = fc.sample(packetSequence, { seed: PACKET_SEED, numRuns: PACKET_SEQUENCES }).filter((s) => onlyKind === undefined || s.kind.startsWith(onlyKind));
    const kinds = new Map<string, number>();
    for (const s of sequences) kinds.set(s.kind, (kinds.get(s.kind) ?? 0) + 1);
    console.log(`fuzz packets by kind: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    expect(generateFailures, 'packet builders that mqtt-packet refused').toEqual([]);

    const dataDir = join(dir.path, 'packets');
    const inFlight = new Set<number>();
    const watched = await startWatchedAgent(dataDir, () =>
      [...inFlight].map((i) => `#${i} ${sequences[i]!.kind} ${Buffer.concat([sequences[i]!.head ?? Buffer.alloc(0), ...sequences[i]!.chunks]).toString('hex').slice(0, 400)}`).join('\n'),
    );
    const { agent, died } = watched;
    let steady: SteadyDevice | undefined;
    let next = 0;
    onTestFinished(async () => {
      steady?.cancel();
      next = sequences.length;
      await agent.kill9();
    });
    const good = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: GOOD_DEVICE });
    let goodPublished = 0;
    try {
      const abortGood = Promise.race([died, closedUnexpectedly(good, GOOD_DEVICE, watched)]);
      steady = startSteadyDevice(good, GOOD_DEVICE, abortGood);
      const goodAckedBefore = steady.acked.size;

      let closedByAgentFirst = 0;
      const worker = async (): Promise<void> => {
        while (next < sequences.length) {
          const i = next++;
          inFlight.add(i);
          if (await playSequence(agent.mqttPort!, sequences[i]!)) closedByAgentFirst += 1;
          inFlight.delete(i);
        }
      };
      await Promise.race([Promise.all(Array.from({ length: CONCURRENT_SOCKETS }, worker)), abortGood]);
      const goodAckedDuringFuzz = steady.acked.size - goodAckedBefore;
      const { published } = await steady.stop();
      goodPublished = published;

      expect(goodAckedDuringFuzz, 'the steady device got PUBACKs while the fuzz ran').toBeGreaterThan(0);
      expect(steady.acked.size).toBe(published);
      expect(await watched.exitStatus(), 'the agent process is still running').toBeUndefined();

      const metrics = await fetchMetrics(agent.httpPort);
      const guardClosed = sumOf(metrics, 'outpost_broker_packet_guard_closed_total');
      const rejected = sumOf(metrics, 'outpost_ingest_rejected_total');
      const authRefused = sumOf(metrics, 'outpost_broker_auth_refused_total');
      console.log(`fuzz packets: ${sequences.length} sequences on raw sockets, ${closedByAgentFirst} closed by the agent before the test ended them, ${guardClosed} closed by the packet guard, ${authRefused} CONNECTs refused, ${rejected} telemetry publishes dead-lettered; ${published} steady publishes acknowledged (${goodAckedDuringFuzz} during the fuzz)`);
      // The fuzz must have reached the guard, the authenticator and the ingest, or it tested little.
      if (kinds.has('oversize')) expect(guardClosed).toBeGreaterThan(0);
      if (kinds.has('valid-session')) expect(rejected).toBeGreaterThan(0);
      if (kinds.has('valid-session')) expect(authRefused).toBeGreaterThan(0);
      // No connection leaks: once every raw socket is closed only the steady device is left.
      await waitFor(async () => sumOf(await fetchMetrics(agent.httpPort), 'outpost_broker_clients_connected') === 1, { what: 'outpost_broker_clients_connected to fall back to 1', timeoutMs: 10_000 });
      expect(watched.errorLogs()).toEqual([]);
      expect(await watched.exitStatus(), 'the agent process is still running').toBeUndefined();
    } finally {
      good.end(true);
    }
    expect(await agent.stop(), 'SIGTERM exit code').toBe(0);

    const stored = await readAllTelemetry(dataDir);
    expect(stored.integrity).toBe('ok');
    const goodSeqs = new Set(stored.records.filter((r) => r.deviceId === GOOD_DEVICE).map((r) => r.deviceSeq));
    expect(goodPublished).toBeGreaterThan(0);
    const goodMissing = [...Array(goodPublished).keys()].filter((s) => !goodSeqs.has(s));
    expect(goodMissing, 'steady device messages acknowledged but not stored').toEqual([]);
    const rawRecords = stored.records.filter((r) => r.deviceId.startsWith('raw-')).length;
    console.log(`fuzz packets: ${rawRecords} telemetry records from raw-socket clients stored`);
    if (kinds.has('valid-session')) expect(rawRecords, 'raw sessions got telemetry through to the outbox').toBeGreaterThan(0);
  }, 240_000);
});

// ---------------------------------------------------------------------------------------
// Test 2 generators: byte sequences built from valid packets, then broken
// ---------------------------------------------------------------------------------------

interface PacketSequence {
  kind: string;
  /** Written first; the test waits for the agent's answer (CONNACK) or close before the rest. */
  head?: Buffer | undefined;
  /** Written one after another, then the socket is ended. */
  chunks: Buffer[];
  /**
   * The chunks are well-framed packets after an accepted CONNECT: a PINGREQ follows them and
   * the socket is ended only on its PINGRESP (or when the agent closes), so the agent has
   * handled every packet while the connection was open, not just at end of stream.
   */
  sync?: boolean;
}

const PINGREQ = Buffer.from([0xc0, 0x00]);

/** Builder inputs mqtt-packet refused; the generators must not produce any. */
const generateFailures: string[] = [];

function generate(packet: Packet, protocolVersion: 3 | 4 | 5 = 4): Buffer {
  try {
    return mqttPacket.generate(packet, { protocolVersion });
  } catch (error) {
    if (generateFailures.length < 10) generateFailures.push(`${(error as Error).message}: ${JSON.stringify(packet).slice(0, 200)}`);
    return PINGREQ;
  }
}

/**
 * Raw clients use their own ids: never the steady device's, which would take over its
 * session, and (almost surely) never one another's. Concurrent takeovers of one ClientId
 * leave aedes 1.2.0's client count too high for good (moscajs/aedes#1023), which would break
 * the leak check below; that race is reported, not fuzzed here.
 */
const rawIdNumber = fc.integer({ min: 0, max: 2 ** 30 });
const rawClientId = fc.oneof(
  { weight: 6, arbitrary: rawIdNumber.map((i) => `raw-${i}`) },
  { weight: 1, arbitrary: fc.constantFrom('', 'has space', 'raw/slash', '+', '#', 'ünï', 'x'.repeat(65), 'r'.repeat(300)) },
);

const messageId = fc.integer({ min: 1, max: 65_535 });
const topicFor = (clientId: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(`devices/${clientId}/telemetry`) },
    { weight: 1, arbitrary: fc.constantFrom(`devices/${clientId}/other`, `devices/${clientId}/errors`, 'devices/raw-0/telemetry', 'devices/+/telemetry', 'devices/#', '#', '+', '$SYS/broker', '$outpost/discard', '/', 'a//b', `devices/${GOOD_DEVICE}/errors`) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 300 }).map((n) => `${'l/'.repeat(n)}end`) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 65_535 }).map((n) => 't'.repeat(n)) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 50 }) },
  );
const publishPayload = fc.oneof(
  fc.nat().map((s) => Buffer.from(telemetryPayload(s, NOW_MS))),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v))),
);
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
/** `arbitrary` in `present` of `present + absent` cases, else undefined. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>, present: number, absent: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: present, arbitrary }, { weight: absent, arbitrary: fc.constant(undefined) });

const connectPacket = (clientId: string): fc.Arbitrary<Buffer> =>
  fc
    .record({
      protocolVersion: fc.constantFrom<3 | 4 | 5>(4, 4, 4, 3, 5),
      keepalive: fc.oneof(fc.constant(0), fc.constant(60), fc.integer({ min: 0, max: 65_535 })),
      clean: fc.boolean(),
      // Mostly absent: a user name gets the CONNECT refused (no devices are configured).
      username: sometimes(fc.string({ maxLength: 20 }), 1, 5),
      password: sometimes(fc.uint8Array({ maxLength: 20 }), 1, 1),
      will: sometimes(fc.record({ topic: topicFor(clientId), payload: publishPayload, qos, retain: fc.boolean() }), 1, 2),
    })
    .map(({ protocolVersion, clean, username, password, will, keepalive }) => {
      // mqtt-packet refuses an empty ClientId without a clean session or before 3.1.1: build
      // such a CONNECT as 3.1.1 with a clean session, then patch the level and flags bytes.
      const patchEmptyId = clientId === '' && (protocolVersion === 3 || !clean);
      const version = patchEmptyId ? 4 : protocolVersion;
      const packet = generate(
        {
          cmd: 'connect',
          clientId,
          protocolVersion: version,
          protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
          keepalive,
          clean: patchEmptyId ? true : clean,
          ...(username === undefined ? {} : { username }),
          ...(username === undefined || password === undefined ? {} : { password: Buffer.from(password) }),
          ...(will === undefined ? {} : { will }),
          ...(version === 5 ? { properties: { sessionExpiryInterval: 10, receiveMaximum: 5, userProperties: { a: 'b' } } } : {}),
        },
        version,
      );
      if (patchEmptyId) {
        const levelAt = bodyOffset(packet) + 2 + 4; // after the length-prefixed "MQTT"
        packet[levelAt] = protocolVersion;
        if (!clean) packet[levelAt + 1] = packet[levelAt + 1]! & ~0x02;
      }
      return packet;
    });

/** One valid MQTT 3.1.1 packet a client may send after CONNECT (and some it may not). */
const clientPacket = (clientId: string): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.tuple(topicFor(clientId), publishPayload, qos, messageId, fc.boolean(), fc.boolean()).map(([topic, payload, q, id, retain, dup]) => generate({ cmd: 'publish', topic, payload, qos: q, messageId: id, retain, dup })) },
    { weight: 2, arbitrary: fc.tuple(fc.array(fc.tuple(topicFor(clientId), qos), { minLength: 1, maxLength: 4 }), messageId).map(([subs, id]) => generate({ cmd: 'subscribe', messageId: id, subscriptions: subs.map(([topic, q]) => ({ topic, qos: q })) })) },
    { weight: 1, arbitrary: fc.tuple(fc.array(topicFor(clientId), { minLength: 1, maxLength: 3 }), messageId).map(([unsubscriptions, id]) => generate({ cmd: 'unsubscribe', messageId: id, unsubscriptions })) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId).map(([cmd, id]) => generate({ cmd, messageId: id } as Packet)) },
    { weight: 1, arbitrary: fc.constantFrom(generate({ cmd: 'pingreq' }), generate({ cmd: 'disconnect' })) },
    // Packets only a server sends.
    { weight: 1, arbitrary: fc.constantFrom(generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }), generate({ cmd: 'pingresp' }), generate({ cmd: 'suback', messageId: 1, granted: [0] }), generate({ cmd: 'unsuback', messageId: 1, granted: [] })) },
    { weight: 1, arbitrary: connectPacket(clientId) }, // a second CONNECT is a protocol violation
  );

/** Offset of the variable header: after byte 1 and the Remaining Length varint. */
function bodyOffset(packet: Buffer): number {
  let i = 1;
  while (i < packet.length && i < 5 && (packet[i]! & 0x80) !== 0) i += 1;
  return i + 1;
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** `packet` with `placeholder` (ASCII, found in its strings) overwritten by `bytes` of the same length. */
function patch(packet: Buffer, placeholder: string, bytes: Buffer): Buffer {
  const copy = Buffer.from(packet);
  const at = copy.indexOf(placeholder);
  if (at >= 0) bytes.copy(copy, at, 0, Math.min(bytes.length, placeholder.length));
  return copy;
}

/** Splits bytes at the given points, so the agent sees any chunking of the stream. */
function chunked(bytes: Buffer, points: number[]): Buffer[] {
  if (bytes.length === 0) return [bytes];
  const cuts = [...new Set(points.map((p) => p % bytes.length))].filter((p) => p > 0).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

const splitPoints = fc.array(fc.nat(), { maxLength: 4 });
const garbage = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: 1, maxLength }).map((b) => Buffer.from(b));
/** Four bytes that are not UTF-8 (or are forbidden in MQTT strings: U+0000). */
const badUtf8x4 = fc.constantFrom(
  Buffer.from([0xc0, 0x80, 0x41, 0x41]),
  Buffer.from([0xed, 0xa0, 0x80, 0x41]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xff, 0xfe, 0xfd, 0xfc]),
  Buffer.from([0x41, 0x00, 0x41, 0x41]),
  Buffer.from([0x80, 0x80, 0x80, 0x80]),
  Buffer.from([0xef, 0xbf, 0xbe, 0x41]), // U+FFFE, a non-character
);

/** A client: a valid CONNECT (whose answer is awaited or not), then `rest` in random chunks. */
function session(kind: string, rest: (clientId: string) => fc.Arbitrary<Buffer>, wellFramed = false): fc.Arbitrary<PacketSequence> {
  return rawClientId.chain((clientId) =>
    fc.tuple(connectPacket(clientId), rest(clientId), fc.boolean(), splitPoints).map(([connect, bytes, awaitConnack, points]) =>
      awaitConnack ? { kind, head: connect, chunks: chunked(bytes, points), sync: wellFramed } : { kind, chunks: chunked(Buffer.concat([connect, bytes]), points) },
    ),
  );
}

const packetSequence: fc.Arbitrary<PacketSequence> = fc.oneof(
  // Pure garbage, no CONNECT.
  fc.tuple(garbage(1024), splitPoints).map(([bytes, points]) => ({ kind: 'garbage', chunks: chunked(bytes, points) })),
  // A valid CONNECT, then garbage.
  session('connect+garbage', () => garbage(512)),
  // A valid client session: packets an honest but odd client might send.
  session('valid-session', (id) => fc.array(clientPacket(id), { minLength: 1, maxLength: 8 }).map((ps) => Buffer.concat(ps)), true),
  // A valid packet whose Remaining Length bytes are overwritten.
  session('corrupt-length', (id) =>
    fc.tuple(clientPacket(id), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 5 })).map(([p, lengthBytes]) => Buffer.concat([p.subarray(0, 1), Buffer.from(lengthBytes), p.subarray(bodyOffset(p))])),
  ),
  // A packet cut short, then the socket ends.
  session('truncated', (id) => fc.tuple(clientPacket(id), fc.nat()).map(([p, at]) => p.subarray(0, 1 + (at % (p.length - 1))))),
  // Reserved packet types 0 and 15, or wrong fixed-header flags for the type.
  session('bad-type-or-flags', (id) =>
    fc.tuple(clientPacket(id), fc.constantFrom(0x00, 0xf0, -1), fc.integer({ min: 0, max: 15 })).map(([p, type, flags]) => {
      const copy = Buffer.from(p);
      copy[0] = (type === -1 ? copy[0]! & 0xf0 : type) | flags;
      return copy;
    }),
  ),
  // PUBLISH with QoS 3; SUBSCRIBE asking QoS 3 or with reserved bits set.
  session('qos3', (id) =>
    fc.oneof(
      fc.tuple(topicFor(id), publishPayload, messageId).map(([topic, payload, mid]) => {
        const p = generate({ cmd: 'publish', topic, payload, qos: 1, messageId: mid, retain: false, dup: false });
        p[0] = p[0]! | 0x06;
        return p;
      }),
      fc.tuple(topicFor(id), messageId, fc.constantFrom(3, 0x04, 0x80, 0xff, 0x43)).map(([topic, mid, requested]) => {
        const p = generate({ cmd: 'subscribe', messageId: mid, subscriptions: [{ topic, qos: 0 }] });
        p[p.length - 1] = requested;
        return p;
      }),
    ),
  ),
  // CONNECT with a bad protocol name, level or flags (its own packet, not after a good CONNECT).
  fc
    .tuple(rawClientId, fc.constantFrom('name', 'level', 'flags', 'name-length'), fc.integer({ min: 0, max: 255 }), garbage(4), splitPoints)
    .chain(([clientId, what, byte, junk, points]) =>
      connectPacket(clientId).map((p) => {
        const copy = Buffer.from(p);
        const at = bodyOffset(copy); // protocol name length (2 bytes), name, level, flags
        if (copy.length < at + 2) return { kind: 'bad-connect-unbuilt', chunks: [copy] }; // reported via generateFailures
        const nameLength = copy.readUInt16BE(at);
        if (what === 'name') junk.copy(copy, at + 2, 0, Math.min(junk.length, nameLength));
        if (what === 'level') copy[at + 2 + nameLength] = byte;
        if (what === 'flags') copy[at + 3 + nameLength] = byte;
        if (what === 'name-length') copy.writeUInt16BE(byte * 257, at);
        return { kind: `bad-connect-${what}`, chunks: chunked(copy, points) };
      }),
    ),
  // Strings that are not UTF-8 (or hold U+0000) in the client id, topic, will topic, username or filter.
  fc.tuple(fc.constantFrom('client-id', 'topic', 'will-topic', 'username', 'filter'), badUtf8x4, messageId, splitPoints, rawIdNumber).map(([where, bad, mid, points, n]) => {
    const id = where === 'client-id' ? `raw-${n}-ZZZZ` : `raw-${n}`;
    const connect = generate({ cmd: 'connect', clientId: id, protocolVersion: 4, protocolId: 'MQTT', keepalive: 60, clean: true, ...(where === 'username' ? { username: 'user-ZZZZ' } : {}), ...(where === 'will-topic' ? { will: { topic: `devices/${id}/ZZZZ`, payload: Buffer.from('x'), qos: 0, retain: false } } : {}) });
    const after =
      where === 'topic' ? generate({ cmd: 'publish', topic: `devices/${id}/ZZZZ`, payload: Buffer.from(telemetryPayload(1, NOW_MS)), qos: 1, messageId: mid, retain: false, dup: false })
      : where === 'filter' ? generate({ cmd: 'subscribe', messageId: mid, subscriptions: [{ topic: `devices/${id}/ZZZZ`, qos: 1 }] })
      : Buffer.alloc(0);
    const bytes = Buffer.concat([where === 'topic' || where === 'filter' ? connect : patch(connect, 'ZZZZ', bad), patch(after, 'ZZZZ', bad)]);
    return { kind: `invalid-utf8-${where}`, chunks: chunked(bytes, points) };
  }),
  // Declared lengths above the packet limit, up to the MQTT maximum, and a five-byte varint.
  session('oversize', () =>
    fc.tuple(fc.integer({ min: 0, max: 15 }), fc.oneof(fc.integer({ min: MAX_PACKET_BYTES + 1, max: 268_435_455 }), fc.constant(-1)), garbage(64)).map(([type, declared, body]) =>
      Buffer.concat([Buffer.from([(type << 4) | 0x02]), declared === -1 ? Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]) : encodeVarint(declared), body]),
    ),
  ),
  // A declared length within the limit whose body never comes.
  session('short-body', () => fc.integer({ min: 1_000, max: MAX_PACKET_BYTES }).map((declared) => Buffer.concat([Buffer.from([0x32]), encodeVarint(declared), Buffer.from([0x00, 0x01, 0x61])]))),
  // A valid session with a few random bytes overwritten.
  session('bit-flips', (id) =>
    fc.tuple(fc.array(clientPacket(id), { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([ps, flips]) => {
      const bytes = Buffer.concat(ps);
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      return bytes;
    }),
  ),
);

/**
 * Plays one sequence on a fresh TCP connection: the head (then waits for the agent's answer
 * or close), the chunks, then ends the socket and waits for it to close. The agent closing
 * the connection early is fine; what matters is that it lives on. Returns whether the agent
 * closed the connection before the test ended it.
 */
function playSequence(port: number, sequence: PacketSequence): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let closedByAgent = false;
    let ended = false;
    socket.on('error', () => undefined); // EPIPE / ECONNRESET when the agent closed first
    socket.once('end', () => {
      if (!ended) closedByAgent = true;
    });
    socket.once('close', () => resolve(closedByAgent || !ended));
    socket.resume(); // discard what the agent answers, so 'end' and 'close' are emitted
    const end = (): void => {
      if (socket.destroyed || socket.writableEnded) return;
      ended = true;
      socket.end();
    };
    const writeRest = (): void => {
      if (socket.destroyed || socket.writableEnded) return;
      for (const chunk of sequence.chunks) socket.write(chunk);
      if (sequence.sync !== true) return end();
      // The answers are parsed (not scanned for bytes D0 00, which a PUBLISH may carry).
      const answers = mqttPacket.parser();
      answers.on('error', () => undefined);
      answers.on('packet', (packet) => {
        if (packet.cmd === 'pingresp') end();
      });
      socket.on('data', (data: Buffer) => answers.parse(data));
      socket.write(PINGREQ);
    };
    socket.once('connect', () => {
      if (sequence.head === undefined) {
        writeRest();
        return;
      }
      socket.write(sequence.head);
      // The agent answers a CONNECT with a CONNACK, or closes; either way go on.
      socket.once('data', writeRest);
    });
  });
}
