// The bench's load generator, fit for measuring servers (issue [perf]): raw TCP connections
// with pre-encoded QoS 1 PUBLISH frames (loadgen-worker.ts), in processes of their own, never
// in the bench process and never in a process under test. Each run reports what the generator
// itself cost (CPU µs per message) and how busy its event loop was: a generator whose loop had
// time to spare was not the bottleneck.
//
// The mqtt.js devices of publishers.ts stay as the second, "realistic client" profile.
import { fileURLToPath } from 'node:url';
import { spawnOwned, type OwnedProcess } from '../harness/wait.js';
import { readCpuSeconds } from './process-stats.js';
import type { ConnectArgs, Latencies, PacedArgs, PacedOutcome, RunStats, WindowedArgs, WindowedOutcome } from './loadgen-worker.js';
import { percentile, type PacedRunResult, type WindowedRunResult } from './publishers.js';

const WORKER_MAIN = fileURLToPath(new URL('./loadgen-worker.js', import.meta.url));
/** A generator whose event loop was busier than this during a run may have held the rate down. */
export const LOADGEN_BUSY_ELU = 0.9;

export interface LoadGenOptions {
  host?: string;
  port: number;
  /** Device connections in all, ids `{prefix}-000`, `{prefix}-001`, ... */
  devices: number;
  prefix: string;
  /** Generator processes; the devices are split among them. Default 1. */
  processes?: number;
  /** Subscribe each device to its own inference results and time them. */
  subscribeResults?: boolean;
}

/** What the generator spent on a run. */
export interface GeneratorCost {
  /** CPU µs of all generator processes per acknowledged message. */
  cpuUsPerMsg: number;
  /** Cores the generator processes used together over the run. */
  cores: number;
  /** The busiest generator process's event-loop utilisation over the run (0..1). */
  elu: number;
  processes: number;
  /** True when some generator process was busier than LOADGEN_BUSY_ELU: the rate may be the generator's. */
  maybeBottleneck: boolean;
}

export interface LoadGenWindowedResult extends WindowedRunResult {
  generator: GeneratorCost;
}

export interface LoadGenPacedResult extends Omit<PacedRunResult, 'latenciesMs'> {
  generator: GeneratorCost;
  /** Publish -> inference result at the device, when the run awaited results. */
  result: { p50Ms: number; p99Ms: number; maxMs: number; samples: number } | undefined;
  /** Epoch ms (performance.timeOrigin + now) of each publish, per device, from `baseSeq` on. */
  publishTimes: { deviceId: string; baseSeq: number; epochMs: number[] }[] | undefined;
}

export interface LoadGen {
  /** Process ids of the generator processes. */
  readonly pids: readonly number[];
  readonly deviceIds: readonly string[];
  /** Maximum throughput: each device keeps `windowPerClient` QoS 1 publishes in flight. */
  windowed(options: { messages: number; windowPerClient: number; maxDurationMs: number; awaitResults?: boolean }): Promise<LoadGenWindowedResult>;
  /** A fixed aggregate rate, PUBACK latency of every message. */
  paced(options: { ratePerS: number; durationMs: number; recordPublishTimes?: boolean; awaitResults?: boolean }): Promise<LoadGenPacedResult>;
  /** Starts a paced load that runs until `stopLive`. */
  startLive(ratePerS: number): Promise<void>;
  progress(): Promise<{ sent: number; acked: number }>;
  /** Stops the live load; resolves once every publish sent is acknowledged. */
  stopLive(): Promise<LoadGenPacedResult>;
  /** The next device seq of every device. */
  nextSeqs(): Promise<Map<string, number>>;
  /** CPU seconds all generator processes used so far. */
  cpuSeconds(): Promise<number>;
  close(): Promise<void>;
}

interface Worker {
  process: OwnedProcess;
  call<T>(cmd: string, args: unknown): Promise<T>;
}

async function startWorker(): Promise<Worker> {
  const owned = await spawnOwned(process.execPath, [WORKER_MAIN], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const { child } = owned;
  let nextId = 1;
  const calls = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  child.on('message', (message: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    const call = calls.get(message.id);
    if (call === undefined) return;
    calls.delete(message.id);
    if (message.ok) call.resolve(message.result);
    else call.reject(new Error(`load generator: ${message.error}`));
  });
  void owned.closed.then(() => {
    for (const call of calls.values()) call.reject(new Error('load generator process exited'));
    calls.clear();
  });
  child.channel?.unref();
  return {
    process: owned,
    call<T>(cmd: string, args: unknown): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const id = nextId++;
        calls.set(id, { resolve: resolve as (value: unknown) => void, reject });
        // Held while a call is pending, so the bench does not end mid-await.
        child.channel?.ref();
        child.send({ id, cmd, args }, (error) => {
          if (error !== null) {
            calls.delete(id);
            reject(error);
          }
        });
      }).finally(() => {
        if (calls.size === 0) child.channel?.unref();
      });
    },
  };
}

function cost(stats: RunStats[], acked: number, wallMs: number): GeneratorCost {
  const cpuUs = stats.reduce((sum, s) => sum + s.cpuUs, 0);
  const elu = Math.max(...stats.map((s) => s.elu));
  return {
    cpuUsPerMsg: acked === 0 ? 0 : cpuUs / acked,
    cores: wallMs <= 0 ? 0 : cpuUs / 1000 / wallMs,
    elu,
    processes: stats.length,
    maybeBottleneck: elu > LOADGEN_BUSY_ELU,
  };
}

/** Merges ascending arrays into one ascending array. */
function mergeSorted(parts: readonly Latencies[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.sort();
}

function summarize(sorted: Float64Array): { p50Ms: number; p99Ms: number; maxMs: number; samples: number } {
  return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted[sorted.length - 1] ?? 0, samples: sorted.length };
}

function mergePaced(outcomes: PacedOutcome[], awaitResults: boolean): LoadGenPacedResult {
  const sent = outcomes.reduce((n, o) => n + o.sent, 0);
  const acked = outcomes.reduce((n, o) => n + o.acked, 0);
  const puback = mergeSorted(outcomes.map((o) => o.pubackMs));
  const sendPhaseMs = Math.max(...outcomes.map((o) => o.sendPhaseMs));
  const wallMs = Math.max(...outcomes.map((o) => o.wallMs));
  const times = outcomes.flatMap((o) => o.publishTimes ?? []);
  return {
    sent,
    acked,
    achievedRatePerS: sendPhaseMs > 0 ? (sent * 1000) / sendPhaseMs : 0,
    ...summarize(puback),
    result: awaitResults ? summarize(mergeSorted(outcomes.map((o) => o.resultMs ?? new Float64Array()))) : undefined,
    publishTimes: outcomes.some((o) => o.publishTimes !== undefined) ? times : undefined,
    generator: cost(outcomes, acked, wallMs),
  };
}

/** Starts the generator processes and connects every device (and subscribes it, when asked). */
export async function startLoadGen(options: LoadGenOptions): Promise<LoadGen> {
  const processes = Math.max(1, Math.min(options.processes ?? 1, options.devices));
  const deviceIds = Array.from({ length: options.devices }, (_, i) => `${options.prefix}-${String(i).padStart(3, '0')}`);
  const workers: Worker[] = [];
  try {
    for (let p = 0; p < processes; p++) workers.push(await startWorker());
    await Promise.all(
      workers.map((w, p) =>
        w.call<void>('connect', {
          host: options.host ?? '127.0.0.1',
          port: options.port,
          deviceIds: deviceIds.filter((_, i) => i % processes === p),
          subscribeResults: options.subscribeResults === true,
        } satisfies ConnectArgs),
      ),
    );
  } catch (error) {
    await Promise.all(workers.map((w) => w.process.kill()));
    throw error;
  }
  const all = <T>(cmd: string, args: (p: number) => unknown): Promise<T[]> => Promise.all(workers.map((w, p) => w.call<T>(cmd, args(p))));
  const share = (total: number, p: number): number => Math.floor(total / processes) + (p < total % processes ? 1 : 0);
  return {
    pids: workers.map((w) => w.process.child.pid ?? -1),
    deviceIds,
    async windowed(o) {
      const outcomes = await all<WindowedOutcome>('windowed', (p) => ({ messages: share(o.messages, p), windowPerClient: o.windowPerClient, maxDurationMs: o.maxDurationMs, awaitResults: o.awaitResults === true }) satisfies WindowedArgs);
      const sent = outcomes.reduce((n, r) => n + r.sent, 0);
      const acked = outcomes.reduce((n, r) => n + r.acked, 0);
      // One clock for all processes: first send of any to the last PUBACK of any.
      const elapsedMs = Math.max(...outcomes.map((r) => r.endEpochMs)) - Math.min(...outcomes.map((r) => r.startEpochMs));
      return {
        sent,
        acked,
        elapsedMs,
        msgsPerS: elapsedMs > 0 ? (acked * 1000) / elapsedMs : 0,
        timeBound: outcomes.some((r) => r.timeBound),
        generator: cost(outcomes, acked, elapsedMs),
      };
    },
    async paced(o) {
      const outcomes = await all<PacedOutcome>(
        'paced',
        (p) => ({ ratePerS: o.ratePerS * (share(deviceIds.length, p) / deviceIds.length), durationMs: o.durationMs, recordPublishTimes: o.recordPublishTimes === true, awaitResults: o.awaitResults === true }) satisfies PacedArgs,
      );
      return mergePaced(outcomes, o.awaitResults === true);
    },
    async startLive(ratePerS) {
      await all<void>('startLive', (p) => ({ ratePerS: ratePerS * (share(deviceIds.length, p) / deviceIds.length) }));
    },
    async progress() {
      const parts = await all<{ sent: number; acked: number }>('progress', () => ({}));
      return { sent: parts.reduce((n, p) => n + p.sent, 0), acked: parts.reduce((n, p) => n + p.acked, 0) };
    },
    async stopLive() {
      return mergePaced(await all<PacedOutcome>('stopLive', () => ({})), false);
    },
    async nextSeqs() {
      const parts = await all<{ deviceId: string; nextSeq: number }[]>('seqs', () => ({}));
      return new Map(parts.flat().map((d) => [d.deviceId, d.nextSeq]));
    },
    async cpuSeconds() {
      const parts = await Promise.all(workers.map((w) => readCpuSeconds(w.process.child.pid ?? -1).catch(() => 0)));
      return parts.reduce((a, b) => a + b, 0);
    },
    async close() {
      await Promise.all(workers.map((w) => w.call<void>('close', {}).catch(() => undefined)));
      await Promise.all(workers.map((w) => w.process.kill()));
    },
  };
}

/** The plan every broker scenario runs: warm-up, the optional paced run, then the maximum-throughput run. */
export interface RawLoadPlan {
  devices: number;
  warmup: { messages: number; windowPerClient: number; maxDurationMs: number };
  throughput: { messages: number; windowPerClient: number; maxDurationMs: number };
  paced?: { ratePerS: number; durationMs: number } | undefined;
  /** Generator processes; default 1. */
  processes?: number;
}

export interface RawLoadSequenceResult {
  throughput: LoadGenWindowedResult;
  /** Cores each process under test used during the throughput run. */
  throughputCores: Record<string, number>;
  paced: LoadGenPacedResult | undefined;
  /** Cores each process under test used during the paced run. */
  pacedCores: Record<string, number> | undefined;
  /** PUBACKs of all runs, for checking against what the system under test stored. */
  ackedTotal: number;
}

/**
 * Connects the raw generator to `port`, runs `plan` and closes it. `pids` are the processes
 * under test whose CPU is read around each run; `between` runs after the paced run (e.g. to
 * read memory at that rate).
 */
export async function runRawLoadSequence(
  port: number,
  prefix: string,
  plan: RawLoadPlan,
  pids: Record<string, number>,
  between?: () => Promise<void>,
): Promise<RawLoadSequenceResult> {
  const gen = await startLoadGen({ port, devices: plan.devices, prefix, processes: plan.processes });
  try {
    let ackedTotal = (await gen.windowed(plan.warmup)).acked;
    let paced: LoadGenPacedResult | undefined;
    let pacedCores: Record<string, number> | undefined;
    if (plan.paced !== undefined) {
      const mark = await cpuMark(pids);
      paced = await gen.paced(plan.paced);
      pacedCores = coresSince(mark, await cpuMark(pids));
      ackedTotal += paced.acked;
    }
    await between?.();
    const mark = await cpuMark(pids);
    const throughput = await gen.windowed(plan.throughput);
    const throughputCores = coresSince(mark, await cpuMark(pids));
    ackedTotal += throughput.acked;
    return { throughput, throughputCores, paced, pacedCores, ackedTotal };
  } finally {
    await gen.close();
  }
}

interface CpuMark {
  atMs: number;
  seconds: Record<string, number>;
}

export async function cpuMark(pids: Record<string, number>): Promise<CpuMark> {
  const seconds: Record<string, number> = {};
  await Promise.all(Object.entries(pids).map(async ([name, pid]) => (seconds[name] = await readCpuSeconds(pid).catch(() => Number.NaN))));
  return { atMs: performance.now(), seconds };
}

/** Cores (CPU seconds per wall second) of each process between two marks. */
export function coresSince(a: CpuMark, b: CpuMark): Record<string, number> {
  const wallS = (b.atMs - a.atMs) / 1000;
  const out: Record<string, number> = {};
  for (const name of Object.keys(a.seconds)) out[name] = wallS <= 0 ? 0 : ((b.seconds[name] ?? 0) - (a.seconds[name] ?? 0)) / wallS;
  return out;
}
