// One process of the bench's load generator (loadgen.ts starts it with an IPC channel): raw TCP
// connections, one per device, sending pre-encoded QoS 1 PUBLISH frames (mqtt-frames.ts) and
// reading PUBACKs (and, when subscribed, the device's inference results) with a minimal packet
// reader. No MQTT library: a message costs a buffer copy and a few digits, so the generator
// measures the broker, not itself. It reports its own CPU time and event-loop utilisation per
// run, so the bench can show it had time to spare.
//
// Commands (IPC, `{ id, cmd, args }` -> `{ id, ok, result | error }`): connect, windowed,
// paced, startLive, progress, stopLive, close. State (device seqs) lives across runs, so every
// payload of a device is distinct.
import net from 'node:net';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import {
  connectFrame,
  createPacketReader,
  DISCONNECT_FRAME,
  fillPublishes,
  PacketType,
  publishTemplate,
  subscribeFrame,
  timestampDigits,
  type PublishTemplate,
} from './mqtt-frames.js';

/**
 * Extra time after a run's send phase for the last PUBACKs (and results) before the run fails:
 * long, so that a system saturated by a paced rate it cannot hold (its latency then grows with
 * its backlog) still gives a figure instead of ending the bench.
 */
const ACK_GRACE_MS = 60_000;
const KEEPALIVE_S = 120;
const PACER_TICK_MS = 1;

interface Device {
  readonly deviceId: string;
  readonly socket: net.Socket;
  readonly template: PublishTemplate;
  /** Next device seq. */
  seq: number;
  /** Next packet id, 1..65535. */
  packetId: number;
  /** performance.now() at send, by packet id; NaN when that id is not in flight. */
  readonly sentAt: Float64Array;
  inFlight: number;
  /** Send times of publishes whose inference result has not arrived yet, oldest first. */
  resultWaits: number[];
  resultHead: number;
  /** Windowed run: publishes still to send. */
  quota: number;
  /** Paced run with publish times: epoch ms (timeOrigin + now) of each publish, from `timesBaseSeq` on. */
  times: number[] | undefined;
  timesBaseSeq: number;
}

export interface ConnectArgs {
  host: string;
  port: number;
  deviceIds: string[];
  /** Subscribe each device to `devices/{id}/inference` (QoS 0) and time its results. */
  subscribeResults: boolean;
}

export interface RunStats {
  /** CPU time this process used during the run, µs. */
  cpuUs: number;
  /** Share of the run its event loop was busy (0..1): well below 1 means the generator waited for the broker. */
  elu: number;
  wallMs: number;
}

export interface WindowedArgs {
  messages: number;
  windowPerClient: number;
  maxDurationMs: number;
  awaitResults: boolean;
}

export interface WindowedOutcome extends RunStats {
  sent: number;
  acked: number;
  elapsedMs: number;
  timeBound: boolean;
  /** Epoch ms of the first send, so several processes' runs can be put on one clock. */
  startEpochMs: number;
  endEpochMs: number;
}

export interface PacedArgs {
  ratePerS: number;
  durationMs: number;
  /** Return the publish time of every message, per device (for latency measured elsewhere). */
  recordPublishTimes: boolean;
  awaitResults: boolean;
}

/** PUBACK or result latencies of a run, ms, sorted ascending. */
export type Latencies = Float64Array;

export interface PacedOutcome extends RunStats {
  sent: number;
  acked: number;
  sendPhaseMs: number;
  pubackMs: Latencies;
  resultMs: Latencies | undefined;
  publishTimes: { deviceId: string; baseSeq: number; epochMs: number[] }[] | undefined;
}

let devices: Device[] = [];
let ackListener: ((device: Device, latencyMs: number) => void) | undefined;
let resultListener: ((latencyMs: number) => void) | undefined;
let failure: ((error: Error) => void) | undefined;

const nowEpochMs = (): number => performance.timeOrigin + performance.now();

function fail(error: Error): void {
  failure?.(error);
}

function onPacket(device: Device, type: number, body: Buffer): void {
  if (type === PacketType.puback) {
    const pid = (body[0]! << 8) | body[1]!;
    const at = device.sentAt[pid]!;
    if (Number.isNaN(at)) return fail(new Error(`${device.deviceId}: PUBACK for packet id ${pid}, which is not in flight`));
    device.sentAt[pid] = Number.NaN;
    device.inFlight--;
    ackListener?.(device, performance.now() - at);
  } else if (type === PacketType.publish) {
    // A QoS 0 delivery on the device's own inference topic: the n-th result answers the n-th publish.
    if (device.resultHead < device.resultWaits.length) {
      const sentAt = device.resultWaits[device.resultHead++]!;
      if (device.resultHead > 4096 && device.resultHead * 2 > device.resultWaits.length) {
        device.resultWaits = device.resultWaits.slice(device.resultHead);
        device.resultHead = 0;
      }
      resultListener?.(performance.now() - sentAt);
    } else {
      resultListener?.(Number.NaN);
    }
  }
}

/** Sends `count` publishes of `device` in one write. */
function send(device: Device, count: number, ts: Buffer, trackResults: boolean): void {
  if (count <= 0) return;
  const { template } = device;
  const out = Buffer.allocUnsafe(count * template.frame.length);
  fillPublishes(out, 0, template, count, device.packetId, device.seq, ts);
  const now = performance.now();
  let pid = device.packetId;
  for (let k = 0; k < count; k++) {
    if (!Number.isNaN(device.sentAt[pid]!)) throw new Error(`${device.deviceId}: packet id ${pid} is still in flight (more than 65535 unacknowledged)`);
    device.sentAt[pid] = now;
    if (trackResults) device.resultWaits.push(now);
    pid = pid === 0xffff ? 1 : pid + 1;
  }
  if (device.times !== undefined) {
    const epoch = performance.timeOrigin + now;
    for (let k = 0; k < count; k++) device.times.push(epoch);
  }
  device.packetId = pid;
  device.seq += count;
  device.inFlight += count;
  device.socket.write(out);
}

async function connect(args: ConnectArgs): Promise<void> {
  const connected = await Promise.allSettled(
    args.deviceIds.map(
      (deviceId) =>
        new Promise<Device>((resolve, reject) => {
          const socket = net.connect({ host: args.host, port: args.port });
          socket.setNoDelay(true);
          const device: Device = {
            deviceId,
            socket,
            template: publishTemplate(`devices/${deviceId}/telemetry`),
            seq: 0,
            packetId: 1,
            sentAt: new Float64Array(65536).fill(Number.NaN),
            inFlight: 0,
            resultWaits: [],
            resultHead: 0,
            quota: 0,
            times: undefined,
            timesBaseSeq: 0,
          };
          let phase: 'connack' | 'suback' | 'ready' = 'connack';
          const timer = setTimeout(() => reject(new Error(`${deviceId}: no CONNACK/SUBACK within 10 s`)), 10_000);
          const read = createPacketReader((type, _flags, body) => {
            if (phase === 'ready') return onPacket(device, type, body);
            if (phase === 'connack' && type === PacketType.connack) {
              if (body[1] !== 0) return reject(new Error(`${deviceId}: CONNACK return code ${body[1]}`));
              if (!args.subscribeResults) {
                phase = 'ready';
                clearTimeout(timer);
                return resolve(device);
              }
              phase = 'suback';
              socket.write(subscribeFrame(1, `devices/${deviceId}/inference`, 0));
            } else if (phase === 'suback' && type === PacketType.suback) {
              if (body[2] === 0x80) return reject(new Error(`${deviceId}: SUBSCRIBE refused`));
              phase = 'ready';
              clearTimeout(timer);
              resolve(device);
            }
          });
          socket.on('data', (chunk: Buffer) => {
            try {
              read(chunk);
            } catch (error) {
              fail(error as Error);
            }
          });
          socket.once('error', (error) => {
            reject(error);
            fail(new Error(`${deviceId}: ${error.message}`));
          });
          socket.once('close', () => {
            reject(new Error(`${deviceId}: connection closed`));
            if (!closing) fail(new Error(`connection of ${deviceId} closed during the run`));
          });
          socket.write(connectFrame(deviceId, KEEPALIVE_S));
        }),
    ),
  );
  const bad = connected.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  const ok = connected.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  if (bad !== undefined) {
    for (const d of ok) d.socket.destroy();
    throw bad.reason instanceof Error ? bad.reason : new Error(String(bad.reason));
  }
  devices.push(...ok);
}

/** Measures CPU and event-loop use from now until `stop()`. */
function startStats(): () => RunStats {
  const cpu0 = process.cpuUsage();
  const elu0: EventLoopUtilization = performance.eventLoopUtilization();
  const t0 = performance.now();
  return () => {
    const cpu = process.cpuUsage(cpu0);
    return { cpuUs: cpu.user + cpu.system, elu: performance.eventLoopUtilization(elu0).utilization, wallMs: performance.now() - t0 };
  };
}

/** Resets result tracking before a run that awaits results. */
function resetResults(): void {
  for (const d of devices) {
    d.resultWaits = [];
    d.resultHead = 0;
  }
}

/** Resolves when `done()` holds, checked after every ack/result; rejects on a failure or after `timeoutMs`. */
function until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      checker = undefined;
      failure = undefined;
    };
    const timer = setTimeout(() => {
      settle();
      reject(new Error(what()));
    }, timeoutMs);
    checker = () => {
      if (!done()) return;
      settle();
      resolve();
    };
    failure = (error) => {
      settle();
      reject(error);
    };
    checker();
  });
}
let checker: (() => void) | undefined;

async function windowed(args: WindowedArgs): Promise<WindowedOutcome> {
  const n = devices.length;
  const stop = startStats();
  const start = performance.now();
  const startEpochMs = nowEpochMs();
  const sendUntil = start + args.maxDurationMs;
  let sent = 0;
  let acked = 0;
  let results = 0;
  let timeBound = false;
  if (args.awaitResults) resetResults();
  devices.forEach((d, i) => (d.quota = Math.floor(args.messages / n) + (i < args.messages % n ? 1 : 0)));
  // PUBACKs of one socket read are answered with one write per device, at the end of the read.
  const owed = new Map<Device, number>();
  let flushQueued = false;
  const flush = (): void => {
    flushQueued = false;
    const ts = timestampDigits(Date.now());
    for (const [d, count] of owed) {
      send(d, count, ts, args.awaitResults);
      sent += count;
    }
    owed.clear();
  };
  ackListener = (d) => {
    acked++;
    if (d.quota > 0) {
      if (performance.now() >= sendUntil) {
        timeBound = true;
        d.quota = 0;
      } else {
        d.quota--;
        owed.set(d, (owed.get(d) ?? 0) + 1);
        if (!flushQueued) {
          flushQueued = true;
          queueMicrotask(flush);
        }
      }
    }
    checker?.();
  };
  resultListener = () => {
    results++;
    checker?.();
  };
  const ts = timestampDigits(Date.now());
  for (const d of devices) {
    const first = Math.min(args.windowPerClient, d.quota);
    d.quota -= first;
    send(d, first, ts, args.awaitResults);
    sent += first;
  }
  try {
    await until(() => !flushQueued && acked === sent && devices.every((d) => d.quota === 0), args.maxDurationMs + ACK_GRACE_MS, () => `windowed run: ${sent - acked} of ${sent} publishes unacknowledged ${ACK_GRACE_MS} ms after the time bound`);
    const elapsedMs = performance.now() - start;
    const endEpochMs = nowEpochMs();
    if (args.awaitResults) await until(() => results >= acked, ACK_GRACE_MS, () => `only ${results} of ${acked} inference results arrived`);
    return { sent, acked, elapsedMs, timeBound, startEpochMs, endEpochMs, ...stop() };
  } finally {
    ackListener = undefined;
    resultListener = undefined;
  }
}

interface LiveRun {
  start: number;
  ratePerS: number;
  sent: number;
  acked: number;
  stoppedAt: number | undefined;
  puback: number[];
  results: number[];
  ticker: NodeJS.Timeout | undefined;
  stats: () => RunStats;
  error: Error | undefined;
}

let live: LiveRun | undefined;

function startPacedRun(ratePerS: number, total: number, recordPublishTimes: boolean, trackResults: boolean): LiveRun {
  if (live !== undefined) throw new Error('a paced run is already going');
  if (trackResults) resetResults();
  for (const d of devices) {
    d.times = recordPublishTimes ? [] : undefined;
    d.timesBaseSeq = d.seq;
  }
  const run: LiveRun = { start: performance.now(), ratePerS, sent: 0, acked: 0, stoppedAt: undefined, puback: [], results: [], ticker: undefined, stats: startStats(), error: undefined };
  ackListener = (_d, latency) => {
    run.acked++;
    run.puback.push(latency);
    checker?.();
  };
  resultListener = (latency) => {
    if (!Number.isNaN(latency)) run.results.push(latency);
    checker?.();
  };
  failure = (error) => (run.error ??= error);
  const counts = new Array<number>(devices.length).fill(0);
  const tick = (): void => {
    const due = Math.min(total, Math.floor(((performance.now() - run.start) * ratePerS) / 1000));
    if (due <= run.sent) return;
    const ts = timestampDigits(Date.now());
    // Round-robin over devices, as one publish after another would be; one write per device per tick.
    const n = devices.length;
    for (let k = run.sent; k < due; k++) counts[k % n]!++;
    for (let i = 0; i < n; i++) {
      if (counts[i]! > 0) send(devices[i]!, counts[i]!, ts, trackResults);
      counts[i] = 0;
    }
    run.sent = due;
    if (run.sent >= total) stopTicker(run);
  };
  run.ticker = setInterval(tick, PACER_TICK_MS);
  live = run;
  return run;
}

function stopTicker(run: LiveRun): void {
  if (run.ticker !== undefined) clearInterval(run.ticker);
  run.ticker = undefined;
  run.stoppedAt ??= performance.now();
}

async function finishPacedRun(run: LiveRun, awaitResults: boolean, recordPublishTimes: boolean): Promise<PacedOutcome> {
  try {
    if (run.error !== undefined) throw run.error;
    await until(() => run.acked >= run.sent, ACK_GRACE_MS, () => `paced run: ${run.sent - run.acked} of ${run.sent} publishes unacknowledged ${ACK_GRACE_MS} ms after the send phase`);
    if (awaitResults) await until(() => run.results.length >= run.acked, ACK_GRACE_MS, () => `only ${run.results.length} of ${run.acked} inference results arrived`);
    const stats = run.stats();
    const publishTimes = recordPublishTimes ? devices.map((d) => ({ deviceId: d.deviceId, baseSeq: d.timesBaseSeq, epochMs: d.times ?? [] })) : undefined;
    return {
      sent: run.sent,
      acked: run.acked,
      sendPhaseMs: (run.stoppedAt ?? performance.now()) - run.start,
      pubackMs: Float64Array.from(run.puback).sort(),
      resultMs: awaitResults ? Float64Array.from(run.results).sort() : undefined,
      publishTimes,
      ...stats,
    };
  } finally {
    for (const d of devices) d.times = undefined;
    ackListener = undefined;
    resultListener = undefined;
    failure = undefined;
    live = undefined;
  }
}

async function paced(args: PacedArgs): Promise<PacedOutcome> {
  const total = Math.round((args.ratePerS * args.durationMs) / 1000);
  const run = startPacedRun(args.ratePerS, total, args.recordPublishTimes, args.awaitResults);
  await until(() => run.sent >= total || run.error !== undefined, args.durationMs + ACK_GRACE_MS, () => 'paced run: the pacer fell behind');
  return finishPacedRun(run, args.awaitResults, args.recordPublishTimes);
}

let closing = false;

async function close(): Promise<void> {
  closing = true;
  await Promise.all(
    devices.map(
      (d) =>
        new Promise<void>((resolve) => {
          if (d.socket.destroyed) return resolve();
          d.socket.once('close', () => resolve());
          d.socket.end(DISCONNECT_FRAME);
          setTimeout(() => {
            d.socket.destroy();
            resolve();
          }, 2_000).unref();
        }),
    ),
  );
  devices = [];
}

type Command =
  | { cmd: 'connect'; args: ConnectArgs }
  | { cmd: 'windowed'; args: WindowedArgs }
  | { cmd: 'paced'; args: PacedArgs }
  | { cmd: 'startLive'; args: { ratePerS: number } }
  | { cmd: 'progress'; args: Record<string, never> }
  | { cmd: 'stopLive'; args: Record<string, never> }
  | { cmd: 'seqs'; args: Record<string, never> }
  | { cmd: 'close'; args: Record<string, never> };

async function handle(command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'connect':
      return connect(command.args);
    case 'windowed':
      return windowed(command.args);
    case 'paced':
      return paced(command.args);
    case 'startLive':
      startPacedRun(command.args.ratePerS, Number.MAX_SAFE_INTEGER, false, false);
      return undefined;
    case 'progress':
      return { sent: live?.sent ?? 0, acked: live?.acked ?? 0 };
    case 'stopLive': {
      if (live === undefined) throw new Error('no live run');
      stopTicker(live);
      return finishPacedRun(live, false, false);
    }
    case 'seqs':
      return devices.map((d) => ({ deviceId: d.deviceId, nextSeq: d.seq }));
    case 'close':
      return close();
  }
}

process.on('message', (message: { id: number } & Command) => {
  handle(message).then(
    (result) => process.send?.({ id: message.id, ok: true, result }),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
});
// The parent going away ends the generator.
process.on('disconnect', () => process.exit(0));
