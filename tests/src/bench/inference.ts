// Local inference as an operator would see it, with the agent as a real child process and
// real onnxruntime-node in its inference process: QoS 1 telemetry -> outbox commit -> feature
// row -> micro-batch -> onnxruntime -> result published on devices/{id}/inference, which each
// bench device subscribes to for itself (the broker's ACL allows a device only its own topics).
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPcaModel, createManifest, scorePcaReference } from '@outpost/models';
import { generateSigningKey, signManifest, type FeatureSpec } from '@outpost/shared';
import { startAgentProcess, testAgentConfig, testInferenceConfig, writeModelFiles, type AgentProcess } from '../harness/agent-process.js';
import { fetchMetrics, metricSamples, sumOf } from '../harness/metrics.js';
import { createTempDir } from '../harness/temp-dir.js';
import { closePublishers, connectPublishers, percentile, runPaced, runWindowed, type PacedRunOptions, type PacedRunResult, type Publisher, type WindowedRunOptions, type WindowedRunResult } from './publishers.js';
import { ownCpuSeconds, readCpuSeconds, readMemory } from './process-stats.js';

/** How long a stopping agent may take before it is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** Every result of a run must have arrived this long after its last PUBACK. */
const RESULT_GRACE_MS = 15_000;

/**
 * The bench model: a PCA reconstruction-error model over the six metrics of the bench payload,
 * window 1 and hop 1, so every message makes exactly one row and one result, and each result
 * can be matched to its publish (per device, in order).
 */
const BENCH_FEATURE_SPEC: FeatureSpec = {
  metrics: ['temperature', 'humidity', 'pressure', 'vibration', 'current', 'voltage'],
  features: ['last'],
  windowSize: 1,
  hopSize: 1,
  normalisation: { center: [22, 40, 1013, 0.01, 1.5, 230], scale: [1, 5, 10, 0.01, 0.5, 10] },
};
const BENCH_COMPONENTS = [
  [Math.SQRT1_2, Math.SQRT1_2, 0, 0, 0, 0],
  [0, 0, Math.SQRT1_2, Math.SQRT1_2, 0, 0],
];

export interface InferencePlan {
  devices: number;
  warmup: WindowedRunOptions;
  /** The paced latency run (publish -> result, and PUBACK, at a fixed rate). */
  paced: PacedRunOptions;
  /** Maximum throughput with inference on: rows scored per second. */
  throughput: WindowedRunOptions;
}

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

export interface ProcessMemory {
  /** VmRSS, MB. */
  rssMb: number;
  /** RssAnon: memory only this process holds (heap, onnxruntime's allocations), MB. */
  anonMb: number;
  /** Proportional set size: shared pages (node's and onnxruntime's code) split among the processes mapping them, MB. */
  pssMb: number;
}

/** The agent's commit -> result latency from its histogram (bucket resolution). */
export interface StageLatency {
  /** Upper bound of the histogram bucket holding the median, ms. */
  p50AtMostMs: number;
  p99AtMostMs: number;
  /** Share of results within 5 ms / 10 ms of their commit. */
  within5Ms: number;
  within10Ms: number;
}

export interface InferenceBenchResult {
  /** publish call -> result on devices/{id}/inference, every message of the paced run. */
  resultLatency: LatencyFigures;
  /** Outbox commit -> result inside the agent over the paced run (the inference stage alone). */
  stageLatency: StageLatency;
  paced: PacedRunResult;
  throughput: WindowedRunResult;
  /** Rows scored per second over the max run (every message is one row). */
  rowsPerS: number;
  /** Mean rows per onnxruntime call, paced run / max run. */
  meanBatchRows: { paced: number; throughput: number };
  /** The inference process after the paced run and after the max run. */
  child: { afterPaced: ProcessMemory; afterThroughput: ProcessMemory };
  agentRssMb: { afterPaced: number; afterThroughput: number };
  /** CPU cores over the paced run: agent, inference process, and this process (publishers and result subscribers). */
  pacedCores: { agent: number; child: number; bench: number };
  /** The same over the max run. */
  throughputCores: { agent: number; child: number; bench: number };
  unscored: number;
  config: Record<string, unknown>;
}

/** Runs the inference scenario on a fresh agent and stops it. */
export async function runInferenceBench(plan: InferencePlan, log: (line: string) => void): Promise<InferenceBenchResult> {
  await using dir = await createTempDir('outpost-bench-inference-');
  const key = generateSigningKey('bench-key');
  const onnx = buildPcaModel({ components: BENCH_COMPONENTS });
  const testInputs = [
    [0, 0, 0, 0, 0, 0],
    [1, -1, 0.5, 2, -0.5, 0.25],
    [-2, 0.5, 1, -1, 3, -0.75],
  ];
  const manifest = createManifest({
    name: 'bench-pca',
    version: '1.0.0',
    createdAt: new Date(Date.now() - 60_000).toISOString(),
    onnx,
    featureSpec: BENCH_FEATURE_SPEC,
    threshold: 10,
    testVectors: testInputs.map((input) => ({ input, expectedScore: scorePcaReference(input, BENCH_COMPONENTS) })),
  });
  const files = await writeModelFiles(dir.path, 'bench-pca', onnx, signManifest(manifest, key.privateKeyPem, key.keyId));
  const config = testAgentConfig(join(dir.path, 'data'), {
    agentId: 'bench-inference',
    ingest: { rateLimitMsgsPerS: 0 },
    log: { level: 'warn' },
    inference: testInferenceConfig(files, [key.trustedKey]),
  });
  const agent = await startAgentProcess(config);
  try {
    const childPid = await inferenceChildPid(agent.pid);
    const publishers = await connectPublishers(`mqtt://127.0.0.1:${agent.mqttPort}`, plan.devices, 'inf-dev');
    try {
      const results = await subscribeResults(publishers);
      log(`  warm-up: ${plan.warmup.messages} messages at full speed ...`);
      const warm = await runWindowed(publishers, plan.warmup);
      await results.waitFor(warm.acked);
      results.reset();

      log(`  paced: ${plan.paced.ratePerS} msg/s for ${plan.paced.durationMs / 1000} s, publish -> inference result ...`);
      const before = await readCounters(agent.httpPort);
      const cpu0 = { agent: await readCpuSeconds(agent.pid), child: await readCpuSeconds(childPid), bench: ownCpuSeconds(), atMs: performance.now() };
      const paced = await runPaced(publishers, { ...plan.paced, onPublish: (p, _seq, atMs) => results.published(p.deviceId, atMs) });
      await results.waitFor(paced.acked);
      const wallS = (performance.now() - cpu0.atMs) / 1000;
      const pacedCores = {
        agent: ((await readCpuSeconds(agent.pid)) - cpu0.agent) / wallS,
        child: ((await readCpuSeconds(childPid)) - cpu0.child) / wallS,
        bench: (ownCpuSeconds() - cpu0.bench) / wallS,
      };
      const afterPaced = await readCounters(agent.httpPort);
      const resultLatency = results.latency();
      const childAfterPaced = await readProcessMemory(childPid);
      const agentAfterPaced = (await readMemory(agent.pid)).rssMb;
      results.reset();

      log(`  max throughput: ${plan.throughput.messages} messages, ${plan.throughput.windowPerClient} in flight per device ...`);
      const t0 = performance.now();
      const cpu1 = { agent: await readCpuSeconds(agent.pid), child: await readCpuSeconds(childPid), bench: ownCpuSeconds() };
      const throughput = await runWindowed(publishers, plan.throughput);
      await results.waitFor(throughput.acked);
      const rowsElapsedS = (performance.now() - t0) / 1000;
      const throughputCores = {
        agent: ((await readCpuSeconds(agent.pid)) - cpu1.agent) / rowsElapsedS,
        child: ((await readCpuSeconds(childPid)) - cpu1.child) / rowsElapsedS,
        bench: (ownCpuSeconds() - cpu1.bench) / rowsElapsedS,
      };
      const afterThroughput = await readCounters(agent.httpPort);
      const rowsPerS = (afterThroughput.rows - afterPaced.rows) / rowsElapsedS;
      return {
        resultLatency,
        stageLatency: stageLatency(before, afterPaced),
        paced,
        throughput,
        rowsPerS,
        meanBatchRows: {
          paced: (afterPaced.rows - before.rows) / Math.max(1, afterPaced.batches - before.batches),
          throughput: (afterThroughput.rows - afterPaced.rows) / Math.max(1, afterThroughput.batches - afterPaced.batches),
        },
        child: { afterPaced: childAfterPaced, afterThroughput: await readProcessMemory(childPid) },
        agentRssMb: { afterPaced: agentAfterPaced, afterThroughput: (await readMemory(agent.pid)).rssMb },
        pacedCores,
        throughputCores,
        unscored: afterThroughput.unscored,
        config: {
          devices: plan.devices,
          pacedRatePerS: plan.paced.ratePerS,
          pacedDurationMs: plan.paced.durationMs,
          throughputMessages: plan.throughput.messages,
          model: 'PCA k=2 over 6 metrics, window 1 (one row per message)',
          maxBatchSize: 256,
          maxBatchWaitMs: 2,
        },
      };
    } finally {
      await closePublishers(publishers);
    }
  } finally {
    await stopAgent(agent);
  }
}

interface ResultTracker {
  /** Records a publish of `deviceId` at `atMs` (performance.now()). */
  published(deviceId: string, atMs: number): void;
  /** Resolves once `n` results arrived since the last reset. */
  waitFor(n: number): Promise<void>;
  /** Latency of each result matched to its publish since the last reset. */
  latency(): LatencyFigures;
  reset(): void;
}

/**
 * Subscribes every publisher to its own inference topic. Results of one device arrive in the
 * order of its publishes (one batch in flight, FIFO queue), so the n-th result of a device
 * answers its n-th publish.
 */
async function subscribeResults(publishers: readonly Publisher[]): Promise<ResultTracker> {
  let sentAt = new Map<string, number[]>();
  let latencies: number[] = [];
  let received = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  for (const p of publishers) {
    const topic = `devices/${p.deviceId}/inference`;
    p.client.on('message', (t) => {
      if (t !== topic) return;
      const now = performance.now();
      const t0 = sentAt.get(p.deviceId)?.shift();
      if (t0 !== undefined) latencies.push(now - t0);
      received++;
      if (waiter !== undefined && received >= waiter.n) {
        waiter.resolve();
        waiter = undefined;
      }
    });
    await p.client.subscribeAsync(topic, { qos: 0 });
  }
  return {
    published(deviceId, atMs) {
      const list = sentAt.get(deviceId);
      if (list === undefined) sentAt.set(deviceId, [atMs]);
      else list.push(atMs);
    },
    waitFor(n) {
      if (received >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${received} of ${n} inference results arrived`)), RESULT_GRACE_MS);
        waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    },
    latency() {
      const sorted = Float64Array.from(latencies).sort();
      return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted[sorted.length - 1] ?? 0, samples: sorted.length };
    },
    reset() {
      sentAt = new Map();
      latencies = [];
      received = 0;
    },
  };
}

/** The agent's one inference process (a child of the agent). */
async function inferenceChildPid(agentPid: number): Promise<number> {
  const tasks = await readdir(`/proc/${agentPid}/task`);
  const children = await Promise.all(tasks.map((t) => readFile(`/proc/${agentPid}/task/${t}/children`, 'utf8').catch(() => '')));
  const pids = children.flatMap((c) => c.split(' ').filter((s) => s.trim() !== '').map(Number));
  if (pids.length !== 1) throw new Error(`expected one inference process under agent ${agentPid}, found ${pids.length}`);
  return pids[0]!;
}

async function readProcessMemory(pid: number): Promise<ProcessMemory> {
  const [status, rollup] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/smaps_rollup`, 'utf8')]);
  const kb = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssMb: kb(status, 'VmRSS') / 1024, anonMb: kb(status, 'RssAnon') / 1024, pssMb: kb(rollup, 'Pss') / 1024 };
}

interface Counters {
  rows: number;
  batches: number;
  unscored: number;
  /** Cumulative counts of outpost_inference_latency_seconds by upper bound (le, seconds). */
  latencyBuckets: Map<number, number>;
}

async function readCounters(httpPort: number): Promise<Counters> {
  const text = await fetchMetrics(httpPort, { timeoutMs: 5_000 });
  const latencyBuckets = new Map<number, number>();
  for (const { labels, value } of metricSamples(text, 'outpost_inference_latency_seconds_bucket')) {
    latencyBuckets.set(labels['le'] === '+Inf' ? Infinity : Number(labels['le']), value);
  }
  return {
    rows: sumOf(text, 'outpost_inference_rows_scored_total'),
    batches: sumOf(text, 'outpost_inference_batches_total'),
    unscored: sumOf(text, 'outpost_inference_unscored_rows_total'),
    latencyBuckets,
  };
}

/**
 * The agent's own commit -> result latency over a run (histogram difference): the share of
 * results within each bucket bound, and the bound that holds 50% / 99% of them.
 */
function stageLatency(before: Counters, after: Counters): StageLatency {
  const bounds = [...after.latencyBuckets.keys()].sort((a, b) => a - b);
  const count = (after.latencyBuckets.get(Infinity) ?? 0) - (before.latencyBuckets.get(Infinity) ?? 0);
  const within = (le: number): number => ((after.latencyBuckets.get(le) ?? 0) - (before.latencyBuckets.get(le) ?? 0)) / Math.max(1, count);
  const boundFor = (q: number): number => (bounds.find((le) => within(le) >= q) ?? Infinity) * 1000;
  return { p50AtMostMs: boundFor(0.5), p99AtMostMs: boundFor(0.99), within5Ms: within(0.005), within10Ms: within(0.01) };
}

async function stopAgent(agent: AgentProcess): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([agent.stop(), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') await agent.kill9();
}
