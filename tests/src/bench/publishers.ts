// The "realistic client" profile of the bench: mqtt.js devices in the bench process publishing
// QoS 1 telemetry, either as fast as a window of in-flight publishes allows, or paced to a
// fixed aggregate rate with per-message PUBACK latency. Every run is bounded in messages and in
// time. mqtt.js costs about as much CPU per message as the agent itself, so on this machine
// these runs measure the clients as much as the broker: the figures of record come from the
// raw-socket generator (loadgen.ts); these show what devices built on mqtt.js would see.
import type { MqttClient } from 'mqtt';
import { connectDevice, telemetryPayload } from '../harness/devices.js';
import { ownCpuSeconds } from './process-stats.js';

/** Extra time after a run's send phase for the last PUBACKs before the run fails. */
const ACK_GRACE_MS = 15_000;

export interface Publisher {
  readonly deviceId: string;
  readonly topic: string;
  readonly client: MqttClient;
  /** Next device seq; keeps growing across runs so every payload of a device is distinct. */
  seq: number;
}

/** Connects `count` devices (ClientId = device id) to `url`. */
export async function connectPublishers(url: string, count: number, prefix = 'bench-dev'): Promise<Publisher[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
  const clients = await Promise.allSettled(ids.map((id) => connectDevice(url, { clientId: id, clean: true, keepalive: 60 })));
  const failed = clients.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed !== undefined) {
    for (const c of clients) if (c.status === 'fulfilled') c.value.end(true);
    throw new Error(`cannot connect bench publishers to ${url}: ${String(failed.reason)}`);
  }
  return clients.map((c, i) => {
    const id = ids[i] as string;
    return { deviceId: id, topic: `devices/${id}/telemetry`, client: (c as PromiseFulfilledResult<MqttClient>).value, seq: 0 };
  });
}

export async function closePublishers(publishers: readonly Publisher[]): Promise<void> {
  await Promise.all(publishers.map((p) => new Promise<void>((resolve) => p.client.end(false, {}, () => resolve()))));
}

/** Rejects as soon as any publisher's connection closes or errors; `stop()` detaches. */
function watchConnections(publishers: readonly Publisher[], fail: (error: Error) => void): () => void {
  const detach: (() => void)[] = [];
  for (const p of publishers) {
    const onClose = (): void => fail(new Error(`connection of ${p.deviceId} closed during the run`));
    const onError = (error: Error): void => fail(new Error(`connection of ${p.deviceId} failed: ${error.message}`));
    p.client.on('close', onClose);
    p.client.on('error', onError);
    detach.push(() => {
      p.client.off('close', onClose);
      p.client.off('error', onError);
    });
  }
  return () => detach.forEach((d) => d());
}

export interface WindowedRunOptions {
  /** Messages in total, spread evenly over the publishers. */
  messages: number;
  /** Publishes each client keeps in flight (unacknowledged). */
  windowPerClient: number;
  /** No new publish starts after this long; in-flight ones are still awaited. */
  maxDurationMs: number;
}

export interface WindowedRunResult {
  sent: number;
  acked: number;
  elapsedMs: number;
  /** Acknowledged publishes per second: each PUBACK is one committed record. */
  msgsPerS: number;
  /** True when the time bound, not the message count, ended the run. */
  timeBound: boolean;
}

/** Maximum throughput: each client keeps `windowPerClient` QoS 1 publishes in flight. */
export function runWindowed(publishers: readonly Publisher[], options: WindowedRunOptions): Promise<WindowedRunResult> {
  const { messages, windowPerClient, maxDurationMs } = options;
  const n = publishers.length;
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const sendUntil = start + maxDurationMs;
    let sent = 0;
    let acked = 0;
    let inFlight = 0;
    let timeBound = false;
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      stopWatching();
      if (error !== undefined) return reject(error);
      const elapsedMs = performance.now() - start;
      resolve({ sent, acked, elapsedMs, msgsPerS: (acked * 1000) / elapsedMs, timeBound });
    };
    const stopWatching = watchConnections(publishers, finish);
    const watchdog = setTimeout(
      () => finish(new Error(`windowed run: ${inFlight} of ${sent} publishes unacknowledged ${ACK_GRACE_MS} ms after the time bound`)),
      maxDurationMs + ACK_GRACE_MS,
    );
    const quota = publishers.map((_, i) => Math.floor(messages / n) + (i < messages % n ? 1 : 0));

    const sendNext = (index: number): void => {
      const p = publishers[index] as Publisher;
      if ((quota[index] as number) === 0) return;
      if (performance.now() >= sendUntil) {
        timeBound = true;
        return;
      }
      quota[index] = (quota[index] as number) - 1;
      sent += 1;
      inFlight += 1;
      p.client.publish(p.topic, telemetryPayload(p.seq++), { qos: 1 }, (error) => {
        if (error) return finish(new Error(`publish of ${p.deviceId} failed: ${error.message}`));
        acked += 1;
        inFlight -= 1;
        sendNext(index);
        if (inFlight === 0) finish();
      });
    };
    for (let i = 0; i < n; i += 1) for (let w = 0; w < windowPerClient; w += 1) sendNext(i);
    if (inFlight === 0) finish();
  });
}

export interface PacedRunOptions {
  /** Aggregate publishes per second over all clients. */
  ratePerS: number;
  durationMs: number;
  /** Called as each message is published (device seq, performance.now()), e.g. to time its arrival elsewhere. */
  onPublish?: (publisher: Publisher, seq: number, atMs: number) => void;
}

export interface PacedRunResult {
  sent: number;
  acked: number;
  /** Rate the generator really reached over the send phase. */
  achievedRatePerS: number;
  /** PUBACK latency of each message (publish call -> PUBACK callback), ms, sorted ascending. */
  latenciesMs: Float64Array;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Tick of the pacer: each tick sends what the schedule says is due by now, round-robin. */
const PACER_TICK_MS = 1;

/** Latency at a fixed aggregate rate: publishes are sent on schedule whatever the acks do. */
export function runPaced(publishers: readonly Publisher[], options: PacedRunOptions): Promise<PacedRunResult> {
  const { ratePerS, durationMs } = options;
  const total = Math.round((ratePerS * durationMs) / 1000);
  const latencies = new Float64Array(total);
  const n = publishers.length;
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let sent = 0;
    let acked = 0;
    let sendPhaseMs = 0;
    let settled = false;
    let ticker: NodeJS.Timeout | undefined;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      if (ticker !== undefined) clearInterval(ticker);
      stopWatching();
      if (error !== undefined) return reject(error);
      latencies.sort();
      resolve({
        sent,
        acked,
        achievedRatePerS: (sent * 1000) / sendPhaseMs,
        latenciesMs: latencies,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        maxMs: latencies[latencies.length - 1] ?? 0,
      });
    };
    const stopWatching = watchConnections(publishers, finish);
    const watchdog = setTimeout(
      () => finish(new Error(`paced run: ${sent - acked} of ${sent} publishes unacknowledged ${ACK_GRACE_MS} ms after the send phase`)),
      durationMs + ACK_GRACE_MS,
    );

    const publishOne = (i: number): void => {
      const p = publishers[i % n] as Publisher;
      const t0 = performance.now();
      const seq = p.seq++;
      options.onPublish?.(p, seq, t0);
      p.client.publish(p.topic, telemetryPayload(seq), { qos: 1 }, (error) => {
        if (error) return finish(new Error(`publish of ${p.deviceId} failed: ${error.message}`));
        latencies[i] = performance.now() - t0;
        acked += 1;
        if (acked === total) finish();
      });
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * ratePerS) / 1000));
      while (sent < due) publishOne(sent++);
      if (sent === total) {
        sendPhaseMs = performance.now() - start;
        clearInterval(ticker);
        ticker = undefined;
      }
    };
    if (total === 0) {
      sendPhaseMs = 1;
      finish();
      return;
    }
    ticker = setInterval(tick, PACER_TICK_MS);
  });
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

export interface LoadSequenceOptions {
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  paced?: PacedRunOptions;
}

export interface LoadSequenceResult {
  throughput: WindowedRunResult;
  /** Cores the bench process (publishers, and a broker running inside it) used in the throughput run. */
  throughputBenchCores: number;
  paced: PacedRunResult | undefined;
  /** PUBACKs of all runs, for checking against what the system under test stored. */
  ackedTotal: number;
}

/**
 * The sequence every broker scenario runs on the same publishers: connect `devices` to `url`,
 * warm up, the optional paced run, then the maximum-throughput run; the publishers are closed
 * whatever happens.
 */
export async function runLoadSequence(
  url: string,
  prefix: string,
  options: LoadSequenceOptions,
  hooks: { beforeThroughput?: () => Promise<void>; afterThroughput?: () => Promise<void> } = {},
): Promise<LoadSequenceResult> {
  const publishers = await connectPublishers(url, options.devices, prefix);
  try {
    let ackedTotal = (await runWindowed(publishers, options.warmup)).acked;
    let paced: PacedRunResult | undefined;
    if (options.paced !== undefined) {
      paced = await runPaced(publishers, options.paced);
      ackedTotal += paced.acked;
    }
    await hooks.beforeThroughput?.();
    const cpu0 = ownCpuSeconds();
    const throughput = await runWindowed(publishers, options.throughput);
    const throughputBenchCores = (ownCpuSeconds() - cpu0) / (throughput.elapsedMs / 1000);
    await hooks.afterThroughput?.();
    ackedTotal += throughput.acked;
    return { throughput, throughputBenchCores, paced, ackedTotal };
  } finally {
    await closePublishers(publishers);
  }
}
