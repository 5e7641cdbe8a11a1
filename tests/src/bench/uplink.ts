// The end-to-end benchmarks of issue [uplink]: device -> agent (child process, embedded broker,
// SQLite outbox, uplink) -> nats-server (JetStream) -> control plane (child process, accounting
// in KV) with every stage a process of its own, so /proc shows which one is the bottleneck. The
// devices are the raw-socket load generator (loadgen.ts), in processes of their own too.
//   - e2e throughput: devices publish QoS 1 at max rate; the clock runs from the first publish
//     until the control plane's API counts every acknowledged message.
//   - e2e latency at a paced rate: publish -> the accounting KV write holding the record (what
//     the API reads), per message, from a KV watch in the bench.
//   - drain: a backlog built while NATS is down, then NATS up and the clock runs until the API
//     counts the whole backlog, while live ingest goes on at a paced rate.
//   - peer: the same device traffic through mosquitto and a hand-built mqtt.js -> JetStream
//     forwarder (forwarder.ts), clocked until the stream holds every message.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ACCOUNTING_BUCKET, accountingKey, UPLINK_STREAM, type AgentDetailResponse, DEFAULT_UPLINK_BATCH_MAX_RECORDS, DEFAULT_UPLINK_MAX_IN_FLIGHT_BATCHES, type AgentConfigInput } from '@outpost/shared';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { startControlPlaneProcess, testControlPlaneConfig, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { startMosquitto } from '../harness/mosquitto.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir } from '../harness/temp-dir.js';
import { spawnOwned, waitFor } from '../harness/wait.js';
import { startLoadGen, type GeneratorCost, type LoadGen } from './loadgen.js';
import { readCpuSeconds } from './process-stats.js';
import { percentile, type WindowedRunOptions } from './publishers.js';

const PROFILER = fileURLToPath(new URL('./agent-profiler.js', import.meta.url));
const FORWARDER_MAIN = fileURLToPath(new URL('./forwarder.js', import.meta.url));
const AGENT_ID = 'bench-agent';
const STOP_TIMEOUT_MS = 15_000;
/** Poll interval of the control plane's API while waiting for a count. */
const COUNT_POLL_MS = 50;

export interface UplinkPlan {
  devices: number;
  windowPerClient: number;
  warmupMessages: number;
  throughput: WindowedRunOptions;
  paced: { ratePerS: number; durationMs: number };
  drain: { backlog: number; backlogMaxDurationMs: number; liveRatePerS: number; timeoutMs: number };
  /** JetStream publishes the forwarder keeps in flight. */
  forwarderWindow: number;
  /** Write .cpuprofile files of agent and control plane (e2e scenario) into this dir. */
  profileDir?: string | undefined;
}

/** Cores (CPU seconds per wall second) of each process over one phase. */
export type Cores = Record<string, number>;

export interface LatencyStats {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface E2eResult {
  messages: number;
  /** First publish -> the API counts every message. */
  elapsedMs: number;
  msgsPerS: number;
  /** First publish -> last PUBACK (ingest alone, for comparison). */
  ackedAfterMs: number;
  cpu: Cores;
  /** What the generator spent on the throughput run. */
  generator: GeneratorCost;
  paced: { ratePerS: number; achievedRatePerS: number; puback: LatencyStats; visible: LatencyStats; notVisible: number; cpu: Cores };
  profiles: string[];
}

export interface DrainResult {
  backlog: number;
  backlogIngestMsgsPerS: number;
  /** JetStream ready after the restart -> the API counts the whole backlog. */
  elapsedMs: number;
  recordsPerS: number;
  /** JetStream ready -> the API count first moves (reconnects included). */
  firstCountedAfterMs: number;
  /** nats-server restarted -> JetStream answers (the drain clock starts there). */
  jetstreamReadyAfterUpMs: number;
  /** JetStream ready -> the uplink stream first grows (the agent reconnected and published). */
  firstInStreamAfterMs: number;
  /** First count move -> all counted. */
  recordsPerSAfterFirst: number;
  live: { ratePerS: number; sent: number; acked: number; ackedDuringDrain: number; achievedRatePerS: number; puback: LatencyStats };
  cpu: Cores;
}

export interface PeerResult {
  messages: number;
  elapsedMs: number;
  msgsPerS: number;
  ackedAfterMs: number;
  cpu: Cores;
}

export interface UplinkResult {
  e2e: E2eResult;
  drain: DrainResult;
  peer: PeerResult;
  config: Record<string, unknown>;
}

function agentConfig(dataDir: string, natsUrl: string): AgentConfigInput {
  return testAgentConfig(dataDir, {
    agentId: AGENT_ID,
    ingest: { rateLimitMsgsPerS: 0 },
    log: { level: process.env['OUTPOST_BENCH_DEBUG'] === '1' ? 'info' : 'warn' },
    // Batching at the defaults; reconnect backoff capped at 0.5 s so the drain clock measures
    // draining rather than a 10 s backoff left over from the outage.
    // OUTPOST_BENCH_UPLINK (JSON, e.g. {"batchMaxRecords":2000}) overrides uplink settings for experiments.
    uplink: { servers: [natsUrl], reconnectBaseWaitMs: 100, reconnectMaxWaitMs: 500, ...uplinkOverrides() },
  });
}

function uplinkOverrides(): Record<string, unknown> {
  const text = process.env['OUTPOST_BENCH_UPLINK'];
  return text === undefined || text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

export async function runUplinkBench(plan: UplinkPlan, log: (line: string) => void): Promise<UplinkResult> {
  log('- e2e: agent -> nats-server -> control plane (3 processes): warm-up, max throughput, paced latency ...');
  const e2e = await runE2e(plan);
  log(`  ${e2e.messages.toLocaleString('en-US')} msgs counted at the control plane in ${(e2e.elapsedMs / 1000).toFixed(1)} s (last PUBACK after ${(e2e.ackedAfterMs / 1000).toFixed(1)} s)`);
  log(`- drain: ${plan.drain.backlog.toLocaleString('en-US')}-record backlog with NATS down, then NATS up with live ingest at ${plan.drain.liveRatePerS} msg/s ...`);
  const drain = await runDrain(plan);
  log(`  backlog ${drain.backlog.toLocaleString('en-US')} counted ${(drain.elapsedMs / 1000).toFixed(1)} s after NATS up; live ${drain.live.acked.toLocaleString('en-US')} of ${drain.live.sent.toLocaleString('en-US')} acked`);
  log('- peer: mosquitto + mqtt.js -> JetStream forwarder (3 processes): warm-up, max throughput ...');
  const peer = await runPeer(plan);
  log(`  ${peer.messages.toLocaleString('en-US')} msgs in the stream in ${(peer.elapsedMs / 1000).toFixed(1)} s`);
  return {
    e2e,
    drain,
    peer,
    config: {
      devices: plan.devices,
      windowPerClient: plan.windowPerClient,
      throughputMessages: plan.throughput.messages,
      pacedRatePerS: plan.paced.ratePerS,
      pacedDurationMs: plan.paced.durationMs,
      drainBacklog: plan.drain.backlog,
      drainLiveRatePerS: plan.drain.liveRatePerS,
      uplinkBatchMaxRecords: DEFAULT_UPLINK_BATCH_MAX_RECORDS,
      uplinkMaxInFlightBatches: DEFAULT_UPLINK_MAX_IN_FLIGHT_BATCHES,
      uplinkOverrides: uplinkOverrides(),
      forwarderWindow: plan.forwarderWindow,
    },
  };
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

interface CpuMark {
  atMs: number;
  procs: Record<string, number>;
  loadgen: number;
}

/** CPU seconds of each named process and of the generator processes (`loadgen`). */
async function cpuMark(pids: Record<string, number>, gen: LoadGen): Promise<CpuMark> {
  const procs: Record<string, number> = {};
  await Promise.all(Object.entries(pids).map(async ([name, pid]) => (procs[name] = await readCpuSeconds(pid).catch(() => Number.NaN))));
  return { atMs: performance.now(), procs, loadgen: await gen.cpuSeconds() };
}

function coresBetween(a: CpuMark, b: CpuMark): Cores {
  const wallS = (b.atMs - a.atMs) / 1000;
  const out: Cores = {};
  for (const name of Object.keys(a.procs)) out[name] = ((b.procs[name] ?? 0) - (a.procs[name] ?? 0)) / wallS;
  out['loadgen'] = (b.loadgen - a.loadgen) / wallS;
  return out;
}

function stats(values: number[] | Float64Array): LatencyStats {
  const sorted = Float64Array.from(values).sort();
  return { samples: sorted.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted[sorted.length - 1] ?? 0 };
}

/**
 * totals.received from GET /api/agents/{id}; 0 when unknown. Each request gives up after 1 s:
 * right after a NATS restart the control plane's first KV request gets no reply and its API
 * call hangs for the NATS request timeout (5 s), which would blind the poller that long.
 */
async function countedAtControlPlane(httpPort: number): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/api/agents/${AGENT_ID}`, { signal: AbortSignal.timeout(1_000) });
    if (response.status !== 200) return 0;
    return ((await response.json()) as AgentDetailResponse).totals.received;
  } catch {
    return 0;
  }
}

async function waitCounted(httpPort: number, total: number, timeoutMs: number): Promise<number> {
  await waitFor(async () => (await countedAtControlPlane(httpPort)) >= total, {
    what: `${total} records counted at the control plane`,
    timeoutMs,
    intervalMs: COUNT_POLL_MS,
  });
  return performance.now();
}

async function stopService(service: { stop(): Promise<unknown>; kill9(): Promise<void> }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
  const outcome = await Promise.race([service.stop(), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') await service.kill9();
}

/** Starts a service under the CPU profiler preload when `profileDir` is set (NODE_OPTIONS only around the spawn). */
async function withCpuProf<T>(profileDir: string | undefined, name: string, start: () => Promise<T>): Promise<T> {
  if (profileDir === undefined) return start();
  // NODE_OPTIONS refuses --cpu-prof; the agent's profiler preload works for any of our services.
  const saved = { options: process.env['NODE_OPTIONS'], out: process.env['OUTPOST_BENCH_CPU_PROFILE'] };
  process.env['NODE_OPTIONS'] = `${saved.options ?? ''} --import=${PROFILER}`.trim();
  process.env['OUTPOST_BENCH_CPU_PROFILE'] = join(profileDir, `${name}.cpuprofile`);
  try {
    return await start();
  } finally {
    for (const [k, v] of [['NODE_OPTIONS', saved.options], ['OUTPOST_BENCH_CPU_PROFILE', saved.out]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

interface Stack {
  nats: NatsServer;
  cp: ControlPlaneProcess;
  agent: AgentProcess;
  close(): Promise<void>;
}

async function startStack(profileDir: string | undefined, scenario: string): Promise<Stack> {
  const dir = await createTempDir('outpost-bench-uplink-');
  const nats = await startNatsServer();
  let cp: ControlPlaneProcess | undefined;
  let agent: AgentProcess | undefined;
  const close = async (): Promise<void> => {
    if (agent !== undefined) await stopService(agent);
    if (cp !== undefined) await stopService(cp);
    await nats.stop();
    await dir.remove();
  };
  try {
    cp = await withCpuProf(profileDir, `${scenario}-control-plane`, () => startControlPlaneProcess(testControlPlaneConfig(nats.url), dir.path));
    agent = await withCpuProf(profileDir, `${scenario}-agent`, () => startAgentProcess(agentConfig(join(dir.path, 'agent'), nats.url)));
    return { nats, cp, agent, close };
  } catch (error) {
    await close();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// e2e: throughput, then paced latency
// ---------------------------------------------------------------------------------------

interface DeviceTrack {
  /** First device seq of the paced run. */
  base: number;
  /** Epoch ms (timeOrigin + now) at which each seq from `base` on was first seen in the accounting. */
  arrivals: number[];
}

/**
 * Watches the accounting KV key of the agent's telemetry lane: the control plane's API reads
 * exactly these values, so a record is visible at the API from the revision whose device-seq
 * set first holds it. Latency = arrival of that revision in the bench - publish time (both
 * epoch ms from performance.timeOrigin + now: the generator runs in another process).
 */
async function watchVisibility(natsUrl: string, key: string, tracks: Map<string, DeviceTrack>) {
  const nc: NatsConnection = await connect({ servers: natsUrl });
  const kv = await new Kvm(nc).open(ACCOUNTING_BUCKET);
  const iter = await kv.watch({ key });
  const done = (async () => {
    for await (const entry of iter) {
      const at = performance.timeOrigin + performance.now();
      if (entry.operation !== 'PUT') continue;
      const bytes = entry.value;
      const text = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes).toString('utf8') : Buffer.from(bytes).toString('utf8');
      const value = JSON.parse(text) as { devices: { deviceId: string; deviceSeqs: [number, number][] }[] };
      for (const device of value.devices) {
        const track = tracks.get(device.deviceId);
        if (track === undefined) continue;
        const contains = (s: number): boolean => device.deviceSeqs.some(([a, b]) => s >= a && s <= b);
        while (contains(track.base + track.arrivals.length)) track.arrivals.push(at);
      }
    }
  })();
  return {
    seen: () => [...tracks.values()].reduce((n, t) => n + t.arrivals.length, 0),
    async close() {
      iter.stop();
      await done.catch(() => undefined);
      await nc.close();
    },
  };
}

async function runE2e(plan: UplinkPlan): Promise<E2eResult> {
  const stack = await startStack(plan.profileDir, 'e2e');
  const { nats, cp, agent } = stack;
  const pids = { agent: agent.pid, controlPlane: cp.pid, nats: nats.pid };
  try {
    const gen = await startLoadGen({ port: agent.mqttPort!, devices: plan.devices, prefix: 'bench-dev' });
    try {
      // Warm-up: JIT, SQLite pages, streams; wait until the pipeline is empty again.
      const warm = await gen.windowed({ messages: plan.warmupMessages, windowPerClient: plan.windowPerClient, maxDurationMs: 10_000 });
      await waitCounted(cp.httpPort, warm.acked, 60_000);
      let total = warm.acked;

      const before = await cpuMark(pids, gen);
      const run = await gen.windowed(plan.throughput);
      total += run.acked;
      const countedAt = await waitCounted(cp.httpPort, total, 120_000);
      const after = await cpuMark(pids, gen);
      const elapsedMs = countedAt - before.atMs;

      // Paced: per-message publish -> visible at the control plane.
      const tracks = new Map<string, DeviceTrack>([...(await gen.nextSeqs())].map(([deviceId, next]) => [deviceId, { base: next, arrivals: [] }]));
      const watch = await watchVisibility(nats.url, accountingKey(AGENT_ID, agent.epoch, 'telemetry'), tracks);
      let paced;
      let pacedCpu: Cores;
      const latencies: number[] = [];
      try {
        const p0 = await cpuMark(pids, gen);
        paced = await gen.paced({ ...plan.paced, recordPublishTimes: true });
        pacedCpu = coresBetween(p0, await cpuMark(pids, gen));
        total += paced.acked;
        await waitFor(() => watch.seen() >= paced!.acked, { what: 'every paced message visible in the accounting', timeoutMs: 30_000, intervalMs: 20 }).catch(() => undefined);
        for (const device of paced.publishTimes ?? []) {
          const track = tracks.get(device.deviceId);
          if (track === undefined || track.base !== device.baseSeq) throw new Error(`e2e latency: seqs of ${device.deviceId} do not line up`);
          device.epochMs.forEach((sentAt, i) => {
            const seenAt = track.arrivals[i];
            if (seenAt !== undefined) latencies.push(seenAt - sentAt);
          });
        }
      } finally {
        await watch.close();
      }
      await waitCounted(cp.httpPort, total, 30_000);
      return {
        messages: run.acked,
        elapsedMs,
        msgsPerS: (run.acked * 1000) / elapsedMs,
        ackedAfterMs: run.elapsedMs,
        cpu: coresBetween(before, after),
        generator: run.generator,
        paced: {
          ratePerS: plan.paced.ratePerS,
          achievedRatePerS: paced.achievedRatePerS,
          puback: { samples: paced.acked, p50Ms: paced.p50Ms, p99Ms: paced.p99Ms, maxMs: paced.maxMs },
          visible: stats(latencies),
          notVisible: paced.acked - latencies.length,
          cpu: pacedCpu,
        },
        profiles: plan.profileDir === undefined ? [] : ['e2e-agent', 'e2e-control-plane', 'drain-agent', 'drain-control-plane'].map((n) => join(plan.profileDir!, `${n}.cpuprofile`)),
      };
    } finally {
      await gen.close();
    }
  } finally {
    await stack.close();
  }
}

// ---------------------------------------------------------------------------------------
// drain
// ---------------------------------------------------------------------------------------

async function runDrain(plan: UplinkPlan): Promise<DrainResult> {
  const stack = await startStack(plan.profileDir, 'drain');
  const { nats, cp, agent } = stack;
  const pids = { agent: agent.pid, controlPlane: cp.pid };
  try {
    const gen = await startLoadGen({ port: agent.mqttPort!, devices: plan.devices, prefix: 'drain-dev' });
    try {
      const warm = await gen.windowed({ messages: plan.warmupMessages, windowPerClient: plan.windowPerClient, maxDurationMs: 10_000 });
      await waitCounted(cp.httpPort, warm.acked, 60_000);

      await nats.down();
      const backlogRun = await gen.windowed({ messages: plan.drain.backlog, windowPerClient: plan.windowPerClient, maxDurationMs: plan.drain.backlogMaxDurationMs });
      const target = warm.acked + backlogRun.acked;

      await nats.up();
      const upAt = performance.now();
      await gen.startLive(plan.drain.liveRatePerS);
      let live: Awaited<ReturnType<LoadGen['stopLive']>> | undefined;
      // A restarted nats-server 2.9.10 accepts connections before JetStream answers: requests
      // sent in between get no reply at all (a client waits its whole timeout). The clock starts
      // once JetStream answers, so the figure measures draining, not the server's recovery.
      const probeNc = await connect({ servers: nats.url });
      const jsm = await jetstreamManager(probeNc, { timeout: 1_000 });
      const inStreamAtUp = await waitFor(() => jsm.streams.info(UPLINK_STREAM).then((i) => i.state.messages, () => undefined), {
        what: 'JetStream to answer after the restart',
        timeoutMs: 30_000,
        intervalMs: 20,
      });
      const before = await cpuMark({ ...pids, nats: nats.pid }, gen);
      let firstInStreamAt: number | undefined;
      let streamProbeBusy = false;
      let firstAt: number | undefined;
      let liveAckedAtDone = 0;
      let doneAt = 0;
      try {
        await waitFor(
          async () => {
            const counted = await countedAtControlPlane(cp.httpPort);
            if (firstAt === undefined && counted > warm.acked) firstAt = performance.now();
            if (firstInStreamAt === undefined && !streamProbeBusy) {
              // In the background: a slow answer must not hold up the count probe.
              streamProbeBusy = true;
              void jsm.streams.info(UPLINK_STREAM).then(
                (i) => {
                  streamProbeBusy = false;
                  if (firstInStreamAt === undefined && i.state.messages > inStreamAtUp) firstInStreamAt = performance.now();
                },
                () => (streamProbeBusy = false),
              );
            }
            return counted >= target;
          },
          { what: `a backlog of ${backlogRun.acked} records counted at the control plane`, timeoutMs: plan.drain.timeoutMs, intervalMs: COUNT_POLL_MS },
        );
        doneAt = performance.now();
        liveAckedAtDone = (await gen.progress()).acked;
      } finally {
        live = await gen.stopLive();
        await probeNc.close().catch(() => undefined);
      }
      const after = await cpuMark({ ...pids, nats: nats.pid }, gen);
      if (process.env['OUTPOST_BENCH_DEBUG'] === '1') {
        console.log(`nats up at ${Date.now() - (performance.now() - before.atMs)}`);
        for (const entry of [...agent.logs, ...cp.logs]) console.log(JSON.stringify(entry).slice(0, 400));
      }
      // Everything acknowledged, live included, is counted in the end.
      if (live === undefined) throw new Error('live load did not stop');
      await waitCounted(cp.httpPort, target + live.acked, 60_000);
      const elapsedMs = doneAt - before.atMs;
      const first = firstAt ?? doneAt;
      return {
        backlog: backlogRun.acked,
        backlogIngestMsgsPerS: backlogRun.msgsPerS,
        elapsedMs,
        recordsPerS: (backlogRun.acked * 1000) / elapsedMs,
        firstCountedAfterMs: first - before.atMs,
        jetstreamReadyAfterUpMs: before.atMs - upAt,
        firstInStreamAfterMs: (firstInStreamAt ?? doneAt) - before.atMs,
        recordsPerSAfterFirst: (backlogRun.acked * 1000) / Math.max(1, doneAt - first),
        live: {
          ratePerS: plan.drain.liveRatePerS,
          sent: live.sent,
          acked: live.acked,
          ackedDuringDrain: liveAckedAtDone,
          achievedRatePerS: live.achievedRatePerS,
          puback: { samples: live.acked, p50Ms: live.p50Ms, p99Ms: live.p99Ms, maxMs: live.maxMs },
        },
        cpu: coresBetween(before, after),
      };
    } finally {
      await gen.close();
    }
  } finally {
    await stack.close();
  }
}

// ---------------------------------------------------------------------------------------
// peer: mosquitto + forwarder
// ---------------------------------------------------------------------------------------

const PEER_STREAM = 'BENCH_FORWARDED';

async function runPeer(plan: UplinkPlan): Promise<PeerResult> {
  const nats = await startNatsServer();
  // Not the defaults (20 in flight, 1000 queued, beyond which QoS 1 messages are dropped):
  // the forwarder must neither lose messages nor be throttled by the broker's per-client limits.
  const mosquitto = await startMosquitto({ configLines: ['max_inflight_messages 1000', 'max_queued_messages 0'] }).catch(async (error: unknown) => {
    await nats.stop();
    throw error;
  });
  const nc = await connect({ servers: nats.url });
  const forwarder = await spawnOwned(process.execPath, [FORWARDER_MAIN, mosquitto.url, nats.url, 'fwd', String(plan.forwarderWindow)], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: PEER_STREAM, subjects: ['fwd.>'], storage: 'file' as never });
    const stdout = forwarder.child.stdout;
    if (stdout === null) throw new Error('forwarder has no stdout');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('forwarder not ready within 10 s')), 10_000);
      createInterface({ input: stdout }).on('line', (line) => {
        if (line.includes('forwarder-ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void forwarder.closed.then(() => reject(new Error('forwarder exited before ready')));
    });
    const inStream = async (): Promise<number> => (await jsm.streams.info(PEER_STREAM)).state.messages;
    const waitStored = async (total: number, timeoutMs: number): Promise<number> => {
      await waitFor(async () => (await inStream()) >= total, { what: `${total} messages in ${PEER_STREAM}`, timeoutMs, intervalMs: COUNT_POLL_MS });
      return performance.now();
    };
    const pids = { mosquitto: mosquitto.pid, forwarder: forwarder.child.pid ?? -1, nats: nats.pid };
    const gen = await startLoadGen({ port: Number(new URL(mosquitto.url).port), devices: plan.devices, prefix: 'peer-dev' });
    try {
      const warm = await gen.windowed({ messages: plan.warmupMessages, windowPerClient: plan.windowPerClient, maxDurationMs: 10_000 });
      await waitStored(warm.acked, 60_000);
      const before = await cpuMark(pids, gen);
      const run = await gen.windowed(plan.throughput);
      const storedAt = await waitStored(warm.acked + run.acked, 120_000);
      const after = await cpuMark(pids, gen);
      const elapsedMs = storedAt - before.atMs;
      return { messages: run.acked, elapsedMs, msgsPerS: (run.acked * 1000) / elapsedMs, ackedAfterMs: run.elapsedMs, cpu: coresBetween(before, after) };
    } finally {
      await gen.close();
    }
  } finally {
    await forwarder.kill();
    await nc.close().catch(() => undefined);
    await mosquitto.stop();
    await nats.stop();
  }
}
