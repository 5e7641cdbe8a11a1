// Local inference as an operator would see it, with the agent as a real child process and
// real onnxruntime-node in its inference process: QoS 1 telemetry -> outbox commit -> feature
// row -> micro-batch -> onnxruntime -> result published on devices/{id}/inference, which each
// bench device subscribes to for itself (the broker's ACL allows a device only its own topics).
// The devices are the raw-socket load generator (loadgen.ts), which times each device's
// results against its publishes in its own process.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPcaModel, createManifest, scorePcaReference } from '@outpost/models';
import { generateSigningKey, signManifest, type FeatureSpec, type InferenceUpstream } from '@outpost/shared';
import { startAgentProcess, testAgentConfig, testInferenceConfig, writeModelFiles, type AgentProcess } from '../harness/agent-process.js';
import { fetchMetrics, metricSamples, sumOf } from '../harness/metrics.js';
import { createTempDir } from '../harness/temp-dir.js';
import { startLoadGen, type GeneratorCost, type LoadGenPacedResult } from './loadgen.js';
import { type PacedRunOptions, type WindowedRunOptions, type WindowedRunResult } from './publishers.js';
import { gatewayPssMb } from './gateway-pss.js';
import { readCpuSeconds, readMemory } from './process-stats.js';

/** How long a stopping agent may take before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

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
  /**
   * PSS as on a gateway, where only the agent shares the child's pages (gateway-pss.ts), MB.
   * The kernel's Pss above also splits pages with the bench's and anyone else's node processes.
   */
  gatewayPssMb: number;
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
  paced: LoadGenPacedResult;
  throughput: WindowedRunResult;
  /** What the generator spent on the max run. */
  generator: GeneratorCost;
  /** Rows scored per second over the max run (every message is one row). */
  rowsPerS: number;
  /** Mean rows per onnxruntime call, paced run / max run. */
  meanBatchRows: { paced: number; throughput: number };
  /** The inference process after the paced run and after the max run. */
  child: { afterPaced: ProcessMemory; afterThroughput: ProcessMemory };
  agentRssMb: { afterPaced: number; afterThroughput: number };
  /** CPU cores over the paced run: agent, inference process, and the load generator (publishers and result subscribers). */
  pacedCores: { agent: number; child: number; bench: number };
  /** The same over the max run. */
  throughputCores: { agent: number; child: number; bench: number };
  unscored: number;
  config: Record<string, unknown>;
}

/**
 * Runs the inference scenario on a fresh agent and stops it. `upstream` is the agent's
 * `inference.upstream` (what of the scores goes to the outbox); undefined leaves the default.
 */
export async function runInferenceBench(plan: InferencePlan, log: (line: string) => void, upstream?: InferenceUpstream): Promise<InferenceBenchResult> {
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
    inference: testInferenceConfig(files, [key.trustedKey], upstream === undefined ? {} : { upstream }),
  });
  const agent = await startAgentProcess(config);
  try {
    const childPid = await inferenceChildPid(agent.pid);
    const gen = await startLoadGen({ port: agent.mqttPort!, devices: plan.devices, prefix: 'inf-dev', subscribeResults: true });
    try {
      log(`  warm-up: ${plan.warmup.messages} messages at full speed ...`);
      await gen.windowed({ ...plan.warmup, awaitResults: true });

      log(`  paced: ${plan.paced.ratePerS} msg/s for ${plan.paced.durationMs / 1000} s, publish -> inference result ...`);
      const before = await readCounters(agent.httpPort);
      const cpu0 = { agent: await readCpuSeconds(agent.pid), child: await readCpuSeconds(childPid), bench: await gen.cpuSeconds(), atMs: performance.now() };
      const paced = await gen.paced({ ...plan.paced, awaitResults: true });
      const wallS = (performance.now() - cpu0.atMs) / 1000;
      const pacedCores = {
        agent: ((await readCpuSeconds(agent.pid)) - cpu0.agent) / wallS,
        child: ((await readCpuSeconds(childPid)) - cpu0.child) / wallS,
        bench: ((await gen.cpuSeconds()) - cpu0.bench) / wallS,
      };
      const afterPaced = await readCounters(agent.httpPort);
      const resultLatency = paced.result ?? { p50Ms: Number.NaN, p99Ms: Number.NaN, maxMs: Number.NaN, samples: 0 };
      const childAfterPaced = await readProcessMemory(childPid, agent.pid);
      const agentAfterPaced = (await readMemory(agent.pid)).rssMb;

      log(`  max throughput: ${plan.throughput.messages} messages, ${plan.throughput.windowPerClient} in flight per device ...`);
      const t0 = performance.now();
      const cpu1 = { agent: await readCpuSeconds(agent.pid), child: await readCpuSeconds(childPid), bench: await gen.cpuSeconds() };
      const throughput = await gen.windowed({ ...plan.throughput, awaitResults: true });
      const rowsElapsedS = (performance.now() - t0) / 1000;
      const throughputCores = {
        agent: ((await readCpuSeconds(agent.pid)) - cpu1.agent) / rowsElapsedS,
        child: ((await readCpuSeconds(childPid)) - cpu1.child) / rowsElapsedS,
        bench: ((await gen.cpuSeconds()) - cpu1.bench) / rowsElapsedS,
      };
      const afterThroughput = await readCounters(agent.httpPort);
      const rowsPerS = (afterThroughput.rows - afterPaced.rows) / rowsElapsedS;
      return {
        resultLatency,
        stageLatency: stageLatency(before, afterPaced),
        paced,
        throughput,
        generator: throughput.generator,
        rowsPerS,
        meanBatchRows: {
          paced: (afterPaced.rows - before.rows) / Math.max(1, afterPaced.batches - before.batches),
          throughput: (afterThroughput.rows - afterPaced.rows) / Math.max(1, afterThroughput.batches - afterPaced.batches),
        },
        child: { afterPaced: childAfterPaced, afterThroughput: await readProcessMemory(childPid, agent.pid) },
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
          upstream: upstream ?? 'default',
        },
      };
    } finally {
      await gen.close();
    }
  } finally {
    await stopAgent(agent);
  }
}

/** The agent's one inference process (a child of the agent). */
async function inferenceChildPid(agentPid: number): Promise<number> {
  const tasks = await readdir(`/proc/${agentPid}/task`);
  const children = await Promise.all(tasks.map((t) => readFile(`/proc/${agentPid}/task/${t}/children`, 'utf8').catch(() => '')));
  const pids = children.flatMap((c) => c.split(' ').filter((s) => s.trim() !== '').map(Number));
  if (pids.length !== 1) throw new Error(`expected one inference process under agent ${agentPid}, found ${pids.length}`);
  return pids[0]!;
}

async function readProcessMemory(pid: number, agentPid: number): Promise<ProcessMemory> {
  const [status, rollup, gateway] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/smaps_rollup`, 'utf8'), gatewayPssMb(pid, agentPid)]);
  const kb = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssMb: kb(status, 'VmRSS') / 1024, anonMb: kb(status, 'RssAnon') / 1024, pssMb: kb(rollup, 'Pss') / 1024, gatewayPssMb: gateway };
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
