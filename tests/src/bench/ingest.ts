// The agent's ingest path as a real child process: QoS 1 publishes -> embedded broker ->
// validation -> group-committed SQLite outbox -> PUBACK. Every PUBACK is a committed record.
// Loaded by the raw-socket generator (loadgen.ts, processes of its own), or by mqtt.js devices
// in the bench process (the "realistic client" profile).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAgentProcess, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { createTempDir } from '../harness/temp-dir.js';
import { LOADGEN_BUSY_ELU, runRawLoadSequence, type GeneratorCost, type LoadGenPacedResult } from './loadgen.js';
import { closePublishers, connectPublishers, runPaced, runWindowed, type PacedRunOptions, type PacedRunResult, type WindowedRunOptions, type WindowedRunResult } from './publishers.js';
import { ownCpuSeconds, readCpuSeconds, readMemory, type MemoryStats } from './process-stats.js';

/** The preload that samples the agent's CPU (see agent-profiler.ts). */
const AGENT_PROFILER = fileURLToPath(new URL('./agent-profiler.js', import.meta.url));
/** How long a stopping agent may take before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

export interface IngestScenarioOptions {
  durability: 'power' | 'process';
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  /** The paced latency run, before the throughput run; omitted: throughput only. */
  paced?: PacedRunOptions;
  /** Write a .cpuprofile of the agent to this file (adds sampling overhead). */
  cpuProfileFile?: string | undefined;
  /** The raw-socket generator (default), or mqtt.js devices in the bench process (the "realistic client" profile). */
  client?: 'raw' | 'mqtt.js';
  /** Run the throughput run again from two generator processes: a higher rate would mean one was the limit. */
  checkSecondGenerator?: boolean;
}

export interface CpuShare {
  /** CPU seconds per wall second, i.e. cores used (1 = one full core). */
  agentCores: number;
  /** The load generator's processes (raw), or the bench process (mqtt.js). */
  generatorCores: number;
}

export interface IngestScenarioResult {
  durability: 'power' | 'process';
  client: 'raw' | 'mqtt.js';
  throughput: WindowedRunResult;
  throughputCpu: CpuShare;
  /** What the generator spent on the throughput run. */
  generator: GeneratorCost;
  /** The throughput run again from two generator processes (raw client, when asked). */
  secondGenerator: { msgsPerS: number; generator: GeneratorCost } | undefined;
  paced: PacedRunResult | LoadGenPacedResult | undefined;
  /** Cores the agent used during the paced run. */
  pacedAgentCores: number | undefined;
  /** V8 heap of the agent right after the paced run (its /metrics), MB. */
  pacedHeapTotalMb: number | undefined;
  /** Agent memory once started, before any publisher connected. */
  memoryIdle: MemoryStats;
  /** Agent memory right after the paced run. */
  memoryAfterPaced: MemoryStats | undefined;
  /** Agent memory right after the throughput run. */
  memoryAfterThroughput: MemoryStats;
  /** PUBACKs received in all runs, warm-up included. */
  ackedTotal: number;
  /** `outpost_ingest_accepted_total` from the agent's /metrics at the end. */
  acceptedTotal: number;
}

/** Starts a fresh agent, loads it, checks /metrics against the acks, stops it. */
export async function runIngestScenario(options: IngestScenarioOptions): Promise<IngestScenarioResult> {
  await using dir = await createTempDir('outpost-bench-');
  const config = testAgentConfig(join(dir.path, 'data'), {
    agentId: 'bench-agent',
    ingest: { rateLimitMsgsPerS: 0 },
    log: { level: 'warn' },
    outbox: { durability: options.durability },
  });
  // The harness spawns the agent so that it dies with this process, however that ends.
  const agent = await startAgent(config, options.cpuProfileFile);
  try {
    const memoryIdle = await readMemory(agent.pid);
    const client = options.client ?? 'raw';
    let run: Omit<IngestScenarioResult, 'durability' | 'memoryIdle' | 'memoryAfterThroughput' | 'acceptedTotal' | 'client' | 'secondGenerator'>;
    let memoryAfterPaced: MemoryStats | undefined;
    let pacedHeapTotalMb: number | undefined;
    const afterPaced = async (): Promise<void> => {
      if (options.paced === undefined) return;
      memoryAfterPaced = await readMemory(agent.pid);
      pacedHeapTotalMb = (await readMetric(agent.httpPort, 'outpost_agent_nodejs_heap_size_total_bytes')) / 2 ** 20;
    };
    if (client === 'raw') {
      const r = await runRawLoadSequence(agent.mqttPort!, 'bench-dev', options, { agent: agent.pid }, afterPaced);
      run = {
        throughput: r.throughput,
        throughputCpu: { agentCores: r.throughputCores['agent'] ?? 0, generatorCores: r.throughput.generator.cores },
        generator: r.throughput.generator,
        paced: r.paced,
        pacedAgentCores: r.pacedCores?.['agent'],
        pacedHeapTotalMb,
        memoryAfterPaced,
        ackedTotal: r.ackedTotal,
      };
    } else {
      const publishers = await connectPublishers(`mqtt://127.0.0.1:${agent.mqttPort}`, options.devices);
      try {
        let acked = (await runWindowed(publishers, options.warmup)).acked;
        let paced: PacedRunResult | undefined;
        let pacedAgentCores: number | undefined;
        if (options.paced !== undefined) {
          const cpu0 = await readCpuSeconds(agent.pid);
          const t0 = performance.now();
          paced = await runPaced(publishers, options.paced);
          pacedAgentCores = ((await readCpuSeconds(agent.pid)) - cpu0) / ((performance.now() - t0) / 1000);
          acked += paced.acked;
        }
        await afterPaced();
        const agentCpu0 = await readCpuSeconds(agent.pid);
        const benchCpu0 = ownCpuSeconds();
        const throughput = await runWindowed(publishers, options.throughput);
        const wallS = throughput.elapsedMs / 1000;
        const agentCores = ((await readCpuSeconds(agent.pid)) - agentCpu0) / wallS;
        const generatorCores = (ownCpuSeconds() - benchCpu0) / wallS;
        acked += throughput.acked;
        const generator: GeneratorCost = { cpuUsPerMsg: (generatorCores * 1e6) / throughput.msgsPerS, cores: generatorCores, elu: Number.NaN, processes: 1, maybeBottleneck: generatorCores > LOADGEN_BUSY_ELU };
        run = { throughput, throughputCpu: { agentCores, generatorCores }, generator, paced, pacedAgentCores, pacedHeapTotalMb, memoryAfterPaced, ackedTotal: acked };
      } finally {
        await closePublishers(publishers);
      }
    }
    // The check that the generator was not the limit: the same run again from twice the processes.
    let secondGenerator: IngestScenarioResult['secondGenerator'];
    if (options.checkSecondGenerator === true && client === 'raw') {
      const again = await runRawLoadSequence(agent.mqttPort!, 'bench-dev', { ...options, paced: undefined, processes: 2 }, { agent: agent.pid });
      run.ackedTotal += again.ackedTotal;
      secondGenerator = { msgsPerS: again.throughput.msgsPerS, generator: again.throughput.generator };
    }
    const memoryAfterThroughput = await readMemory(agent.pid);
    const acceptedTotal = await readMetric(agent.httpPort, 'outpost_ingest_accepted_total');
    if (acceptedTotal !== run.ackedTotal) {
      throw new Error(`agent counted ${acceptedTotal} accepted publishes but the bench received ${run.ackedTotal} PUBACKs`);
    }
    return { durability: options.durability, client, ...run, memoryIdle, memoryAfterThroughput, acceptedTotal, secondGenerator };
  } finally {
    await stopAgent(agent);
  }
}

/**
 * startAgentProcess, optionally with the CPU profiler preloaded. The child inherits this
 * process's environment when it is spawned, so the two variables are set only around the
 * start (the bench starts nothing else meanwhile).
 */
async function startAgent(config: ReturnType<typeof testAgentConfig>, cpuProfileFile: string | undefined): Promise<AgentProcess> {
  if (cpuProfileFile === undefined) return startAgentProcess(config);
  const saved = { options: process.env['NODE_OPTIONS'], out: process.env['OUTPOST_BENCH_CPU_PROFILE'] };
  process.env['NODE_OPTIONS'] = `${saved.options ?? ''} --import=${AGENT_PROFILER}`.trim();
  process.env['OUTPOST_BENCH_CPU_PROFILE'] = cpuProfileFile;
  try {
    return await startAgentProcess(config);
  } finally {
    restoreEnv('NODE_OPTIONS', saved.options);
    restoreEnv('OUTPOST_BENCH_CPU_PROFILE', saved.out);
  }
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/** SIGTERM (a clean stop, which also writes a CPU profile), SIGKILL if it takes too long. */
async function stopAgent(agent: AgentProcess): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([agent.stop(), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    console.error(`agent did not stop within ${STOP_TIMEOUT_MS} ms; killed`);
    await agent.kill9();
  }
}

/** One unlabelled (default labels only) sample from the agent's Prometheus endpoint. */
async function readMetric(httpPort: number, name: string): Promise<number> {
  const value = metricValue(await fetchMetrics(httpPort, { timeoutMs: 5_000 }), name);
  if (value === undefined) throw new Error(`${name} is missing from /metrics`);
  return value;
}
