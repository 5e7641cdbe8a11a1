// `npm run bench [-- --quick | --smoke] [-- --out DIR] [-- --profile-agent] [-- --profile-e2e] [-- --uplink-only] [-- --inference-only]`
// The bench of issue [perf]: every system under test in a process of its own, loaded by the
// raw-socket generator (loadgen.ts: pre-encoded frames, processes of its own, its CPU per
// message reported and checked not to be the limit). Scenarios, in order: the agent at
// durability 'power' (paced 10k msg/s latency + RSS, then maximum QoS 1 throughput, then the
// same from two generator processes), the agent at 'process', raw aedes in its own process
// (the broker limit), nats-server's MQTT listener into JetStream (the NATS-native peer), the
// "realistic client" profile (mqtt.js devices, agent and raw aedes), end to end (uplink.ts:
// agent -> nats-server -> control plane throughput and paced latency, the drain of a backlog
// built while NATS was down, mosquitto + a hand-built JetStream forwarder), local inference
// with the default upstream (anomalies and score summaries) and with every score, and model
// swaps. Prints a table and writes tests/bench/results/latest.json (--uplink-only: the e2e
// scenarios alone, to uplink-only.json; --inference-only: inference alone, to inference-only.json).
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferenceUpstream } from '@outpost/shared';
import { runAedesRawScenario, type AedesRawResult } from './aedes-raw.js';
import { parseBenchArgs } from './cli-args.js';
import { renderBarChart } from './chart.js';
import { summarizeCpuProfile, type ProfileEntry, type ProfileSummary } from './cpu-profile.js';
import { runInferenceBench, type InferenceBenchResult, type InferencePlan } from './inference.js';
import { runSwapBench, type SwapPlan, type SwapResult } from './inference-swaps.js';
import { runIngestScenario, type IngestScenarioResult } from './ingest.js';
import { LOADGEN_BUSY_ELU, type GeneratorCost } from './loadgen.js';
import { runNatsMqttPeerScenario, type NatsMqttPeerResult } from './nats-mqtt-peer.js';
import { cpuSnapshot, foreignCores } from './process-stats.js';
import type { PacedRunOptions, WindowedRunOptions } from './publishers.js';
import { formatTable } from './table.js';
import { runUplinkBench, type UplinkPlan, type UplinkResult } from './uplink.js';

const DEFAULT_RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/** The goals of issue [perf] (and the earlier ones still kept), on this 2-core machine. */
const TARGET = {
  ingestMsgsPerS: 100_000,
  ratioVsAedesRaw: 0.5,
  ratioVsNatsMqttPeer: 1.0,
  pubackP99Ms: 20,
  e2eRatioVsNatsMqttPeer: 1.0,
  e2eLatencyP99Ms: 50,
  cpCpuUsPerRecord: 10,
  drainRecordsPerS: 100_000,
  inferenceLatencyP99Ms: 10,
  agentRssMbAt10k: 110,
  agentRssMbPeak: 160,
  inferencePssMb: 40,
  swapGrowthPct: 5,
} as const;
const PACED_RATE_PER_S = 10_000;
/** Above this many cores busy elsewhere, the report warns that the machine was not quiet. */
const OTHER_LOAD_WARN_CORES = 0.2;
/** A second generator process raising the rate by more than this means the first was the limit. */
const SECOND_GENERATOR_GAIN_LIMIT = 1.05;

interface Plan {
  mode: 'full' | 'quick' | 'smoke';
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  paced: PacedRunOptions;
  /** The mqtt.js "realistic client" runs: warm-up and throughput. */
  realistic: { warmup: WindowedRunOptions; throughput: WindowedRunOptions };
  /** Repeat the agent's max run from two generator processes. */
  secondGenerator: boolean;
  uplink: Omit<UplinkPlan, 'profileDir'>;
  inference: InferencePlan;
  swaps: SwapPlan;
  /** The whole bench is killed past this, whatever hangs. */
  hardLimitMs: number;
}

const WINDOW_PER_CLIENT = 100;
const DEVICES = 20;

const PLANS: Record<Plan['mode'], Plan> = {
  full: {
    mode: 'full',
    devices: DEVICES,
    warmup: { messages: 50_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
    throughput: { messages: 3_000_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 20_000 },
    paced: { ratePerS: PACED_RATE_PER_S, durationMs: 20_000 },
    realistic: {
      warmup: { messages: 20_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
      throughput: { messages: 1_000_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 15_000 },
    },
    secondGenerator: true,
    uplink: {
      devices: DEVICES,
      windowPerClient: WINDOW_PER_CLIENT,
      warmupMessages: 20_000,
      throughput: { messages: 1_000_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 20_000 },
      paced: { ratePerS: 5_000, durationMs: 20_000 },
      drain: { backlog: 1_000_000, backlogMaxDurationMs: 90_000, liveRatePerS: 2_000, timeoutMs: 120_000 },
      forwarderWindow: 1_000,
    },
    inference: {
      devices: DEVICES,
      warmup: { messages: 20_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
      paced: { ratePerS: PACED_RATE_PER_S, durationMs: 20_000 },
      throughput: { messages: 600_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 15_000 },
    },
    swaps: { swaps: 20, devices: DEVICES, ratePerDevicePerS: 100, messagesBetweenSwaps: 1_000 },
    hardLimitMs: 1_200_000,
  },
  quick: {
    mode: 'quick',
    devices: DEVICES,
    warmup: { messages: 20_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 2_000 },
    throughput: { messages: 1_000_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
    paced: { ratePerS: PACED_RATE_PER_S, durationMs: 4_000 },
    realistic: {
      warmup: { messages: 5_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 2_000 },
      throughput: { messages: 300_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 4_000 },
    },
    secondGenerator: true,
    uplink: {
      devices: DEVICES,
      windowPerClient: WINDOW_PER_CLIENT,
      warmupMessages: 5_000,
      throughput: { messages: 300_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 6_000 },
      paced: { ratePerS: 5_000, durationMs: 5_000 },
      drain: { backlog: 300_000, backlogMaxDurationMs: 20_000, liveRatePerS: 2_000, timeoutMs: 40_000 },
      forwarderWindow: 1_000,
    },
    inference: {
      devices: DEVICES,
      warmup: { messages: 5_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 2_000 },
      paced: { ratePerS: PACED_RATE_PER_S, durationMs: 5_000 },
      throughput: { messages: 200_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 6_000 },
    },
    swaps: { swaps: 20, devices: DEVICES, ratePerDevicePerS: 100, messagesBetweenSwaps: 300 },
    hardLimitMs: 420_000,
  },
  // CI's check that every scenario still runs and every figure is written: tiny counts, figures meaningless.
  smoke: {
    mode: 'smoke',
    devices: 4,
    warmup: { messages: 200, windowPerClient: 10, maxDurationMs: 2_000 },
    throughput: { messages: 2_000, windowPerClient: 10, maxDurationMs: 2_000 },
    paced: { ratePerS: 500, durationMs: 500 },
    realistic: {
      warmup: { messages: 100, windowPerClient: 10, maxDurationMs: 2_000 },
      throughput: { messages: 1_000, windowPerClient: 10, maxDurationMs: 2_000 },
    },
    secondGenerator: true,
    uplink: {
      devices: 4,
      windowPerClient: 10,
      warmupMessages: 200,
      throughput: { messages: 2_000, windowPerClient: 10, maxDurationMs: 2_000 },
      paced: { ratePerS: 500, durationMs: 500 },
      drain: { backlog: 2_000, backlogMaxDurationMs: 5_000, liveRatePerS: 100, timeoutMs: 30_000 },
      forwarderWindow: 100,
    },
    inference: {
      devices: 4,
      warmup: { messages: 200, windowPerClient: 10, maxDurationMs: 2_000 },
      paced: { ratePerS: 500, durationMs: 500 },
      throughput: { messages: 2_000, windowPerClient: 10, maxDurationMs: 2_000 },
    },
    swaps: { swaps: 2, devices: 4, ratePerDevicePerS: 50, messagesBetweenSwaps: 50 },
    hardLimitMs: 300_000,
  },
};

const USAGE =
  'usage: npm run bench [-- --quick | --smoke] [-- --out DIR] [-- --profile-agent] [-- --profile-e2e] [-- --uplink-only] [-- --inference-only] [-- --inference-upstream summaries,every-score | default]';

interface Args {
  quick: boolean;
  smoke: boolean;
  /** Where latest.json and the chart go. */
  outDir: string;
  profileAgent: boolean;
  profileE2e: boolean;
  uplinkOnly: boolean;
  inferenceOnly: boolean;
  /** The agent's `inference.upstream` for each inference run; `default` leaves the key out (one run). */
  inferenceUpstreams: (InferenceUpstream | 'default')[];
}

function parseOptions(argv: string[]): Args | 'help' {
  const { values } = parseBenchArgs(
    {
      args: argv,
      options: {
        quick: { type: 'boolean' },
        smoke: { type: 'boolean' },
        out: { type: 'string' },
        'profile-agent': { type: 'boolean' },
        'profile-e2e': { type: 'boolean' },
        'uplink-only': { type: 'boolean' },
        'inference-only': { type: 'boolean' },
        'inference-upstream': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    USAGE,
  );
  if (values.help === true) return 'help';
  const upstreams = (values['inference-upstream'] ?? `${InferenceUpstream.summaries},${InferenceUpstream.everyScore}`).split(',');
  const known: string[] = [InferenceUpstream.summaries, InferenceUpstream.everyScore, 'default'];
  const unknown = upstreams.find((u) => !known.includes(u));
  if (unknown !== undefined || upstreams.length === 0) throw new Error(`--inference-upstream: ${JSON.stringify(unknown)} is not one of ${known.join(', ')}\n${USAGE}`);
  return {
    quick: values.quick === true,
    smoke: values.smoke === true,
    outDir: values.out ?? DEFAULT_RESULTS_DIR,
    profileAgent: values['profile-agent'] === true,
    profileE2e: values['profile-e2e'] === true,
    uplinkOnly: values['uplink-only'] === true,
    inferenceOnly: values['inference-only'] === true,
    inferenceUpstreams: upstreams as Args['inferenceUpstreams'],
  };
}

const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(value));
const round = (value: number, digits: number): number => Number(value.toFixed(digits));

/** CPU µs per message from cores used at a rate. */
function usPerMsg(cores: number, msgsPerS: number): number {
  return msgsPerS === 0 ? 0 : (cores * 1e6) / msgsPerS;
}

/** One goal: the value, the comparison and the target. */
interface Goal {
  value: number;
  op: '>=' | '<=';
  target: number;
}

interface Judged {
  target: string;
  ratio: number;
  met: boolean;
}

function judge(g: Goal): Judged {
  const ratio = g.target === 0 ? 0 : g.value / g.target;
  return { target: `${g.op} ${g.target}`, ratio: round(ratio, 3), met: g.op === '>=' ? g.value >= g.target : g.value <= g.target };
}

function verdict(j: Judged): string {
  return `${fmt(j.ratio, 2)}x ${j.met ? 'met' : 'MISSED'}`;
}

function describeThroughput(label: string, r: { throughput: { acked: number; elapsedMs: number; timeBound: boolean } }): string {
  const t = r.throughput;
  return `${label}: ${fmt(t.acked)} acked in ${fmt(t.elapsedMs / 1000, 1)} s (${t.timeBound ? 'time-bound' : 'count-bound'})`;
}

function describeGenerator(g: GeneratorCost): string {
  return `generator ${fmt(g.cpuUsPerMsg, 2)} µs/msg, ${fmt(g.cores, 2)} cores, event loop busy ${fmt(g.elu * 100, 0)}%${g.maybeBottleneck ? ' (MAY BE THE LIMIT)' : ''}`;
}

type Row = [string, string, string, string, string];

async function main(): Promise<void> {
  const args = parseOptions(process.argv.slice(2));
  if (args === 'help') {
    console.log(USAGE);
    return;
  }
  const plan = PLANS[args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'];
  const RESULTS_DIR = args.outDir;
  // Everything stops by itself: a hang anywhere ends the bench (its exit hooks kill the children).
  setTimeout(() => {
    console.error(`bench exceeded its hard limit of ${plan.hardLimitMs / 1000} s; aborting`);
    process.exit(1);
  }, plan.hardLimitMs).unref();

  const cores = availableParallelism();
  console.log(
    `Outpost bench (${plan.mode}): ${plan.devices} device connections from a raw-socket generator in its own process (pre-encoded QoS 1 frames, ~150-byte JSON), ` +
      `window ${WINDOW_PER_CLIENT}/device, every system under test in its own process; Node ${process.version}, ${cores} cores`,
  );

  const started = performance.now();
  /** Cores other processes used during each scenario: the figures assume a quiet machine. */
  const otherLoad: Record<string, number> = {};
  const measured = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const before = await cpuSnapshot();
    const result = await run();
    otherLoad[name] = round(foreignCores(before, await cpuSnapshot()), 2);
    return result;
  };
  let e2eProfileDir: string | undefined;
  if (args.profileE2e) e2eProfileDir = await mkdtemp(join(tmpdir(), 'outpost-bench-e2e-prof-'));
  const uplinkPlan: UplinkPlan = { ...plan.uplink, profileDir: e2eProfileDir };
  const loadWarning = (): void => {
    const busiest = Math.max(...Object.values(otherLoad));
    const loadText = Object.entries(otherLoad)
      .map(([name, c]) => `${name} ${fmt(c, 2)}`)
      .join(', ');
    console.log(`Other load on the machine (cores used by other processes and steal, per scenario): ${loadText}`);
    if (busiest > OTHER_LOAD_WARN_CORES) console.log(`WARNING: the machine was not quiet (up to ${fmt(busiest, 2)} of ${cores} cores busy elsewhere); rates are low, CPU per message less affected.`);
  };
  const machine = (): Record<string, unknown> => ({ cores, node: process.version, other_load_cores: otherLoad });
  const write = async (file: string, results: Record<string, unknown>): Promise<string> => {
    await mkdir(RESULTS_DIR, { recursive: true });
    const path = join(RESULTS_DIR, file);
    await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
    return path;
  };
  const runInference = async (): Promise<InferenceRun[]> => {
    const runs: InferenceRun[] = [];
    for (const upstream of args.inferenceUpstreams) {
      console.log(`- local inference (upstream: ${upstream}): agent process with a PCA model, publish -> devices/{id}/inference ...`);
      const result = await measured(`inference_${upstream}`, () => runInferenceBench(plan.inference, (line) => console.log(line), upstream === 'default' ? undefined : upstream));
      runs.push({ upstream, result });
    }
    return runs;
  };

  if (args.inferenceOnly) {
    const inference = await runInference();
    const f = inferenceFigures(inference);
    console.log('');
    printTable([HEADER, ...f.rows]);
    console.log('');
    printInferenceNotes();
    loadWarning();
    const file = await write('inference-only.json', { time: new Date().toISOString(), machine: machine(), mode: plan.mode, ...f.figures, targets: f.targets, config: { inference: inference.map((r) => r.result.config) } });
    console.log(`\nwrote ${file} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);
    return;
  }

  if (args.uplinkOnly) {
    const uplink = await measured('uplink', () => runUplinkBench(uplinkPlan, (line) => console.log(line)));
    const f = uplinkFigures(uplink, undefined);
    console.log('');
    printTable([HEADER, ...f.rows]);
    console.log('');
    printUplinkNotes(uplink);
    loadWarning();
    const file = await write('uplink-only.json', { time: new Date().toISOString(), machine: machine(), mode: plan.mode, ...f.figures, targets: f.targets, config: { uplink: uplink.config } });
    console.log(`\nwrote ${file} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);
    if (e2eProfileDir !== undefined) await printE2eProfiles(uplink);
    return;
  }

  let profileFile: string | undefined;
  if (args.profileAgent) profileFile = join(await mkdtemp(join(tmpdir(), 'outpost-bench-prof-')), 'agent-power.cpuprofile');
  const load = { devices: plan.devices, warmup: plan.warmup, throughput: plan.throughput };

  console.log('- agent, durability power: warm-up, paced 10k msg/s, max throughput, max throughput from 2 generator processes ...');
  const power = await measured('agent_power', () =>
    runIngestScenario({ durability: 'power', ...load, paced: plan.paced, cpuProfileFile: profileFile, checkSecondGenerator: plan.secondGenerator }),
  );
  console.log(`  ${describeThroughput('max run', power)}; /metrics accepted ${fmt(power.acceptedTotal)} = PUBACKs ${fmt(power.ackedTotal)}; ${describeGenerator(power.generator)}`);
  if (power.secondGenerator !== undefined) console.log(`  from 2 generator processes: ${fmt(power.secondGenerator.msgsPerS)} msg/s; ${describeGenerator(power.secondGenerator.generator)}`);
  console.log('- agent, durability process: warm-up, max throughput ...');
  const processDurability = await measured('agent_process', () => runIngestScenario({ durability: 'process', ...load }));
  console.log(`  ${describeThroughput('max run', processDurability)}; ${describeGenerator(processDurability.generator)}`);
  console.log('- raw aedes in its own process, one subscriber, no storage: warm-up, paced 10k msg/s, max throughput, max throughput from 2 generator processes ...');
  const aedes = await measured('aedes_raw', () => runAedesRawScenario({ ...load, paced: plan.paced }, 'raw', plan.secondGenerator));
  console.log(`  ${describeThroughput('max run', aedes)}; subscriber received ${fmt(aedes.delivered)} = PUBACKs ${fmt(aedes.ackedTotal)}; ${describeGenerator((aedes.throughput as { generator: GeneratorCost }).generator)}`);
  if (aedes.secondGenerator !== undefined) console.log(`  from 2 generator processes: ${fmt(aedes.secondGenerator.msgsPerS)} msg/s; ${describeGenerator(aedes.secondGenerator.generator)}`);
  console.log("- nats-server's own MQTT listener into a JetStream stream (the NATS-native peer): warm-up, paced 10k msg/s, max throughput ...");
  const natsPeer = await measured('nats_mqtt_peer', () => runNatsMqttPeerScenario({ ...load, paced: plan.paced }));
  console.log(`  ${describeThroughput('max run', natsPeer)}; stream holds ${fmt(natsPeer.stored)} = PUBACKs ${fmt(natsPeer.ackedTotal)}; ${describeGenerator(natsPeer.throughput.generator)}`);
  console.log('- "realistic client" profile: 20 mqtt.js devices in the bench process, agent (power) and raw aedes, max throughput ...');
  const realisticLoad = { devices: plan.devices, warmup: plan.realistic.warmup, throughput: plan.realistic.throughput };
  const realisticAgent = await measured('realistic_agent', () => runIngestScenario({ durability: 'power', ...realisticLoad, client: 'mqtt.js' }));
  const realisticAedes = await measured('realistic_aedes', () => runAedesRawScenario(realisticLoad, 'mqtt.js'));
  console.log(`  agent ${fmt(realisticAgent.throughput.msgsPerS)} msg/s, raw aedes ${fmt(realisticAedes.throughput.msgsPerS)} msg/s; mqtt.js ${fmt(realisticAgent.generator.cpuUsPerMsg, 1)} µs/msg`);
  const uplink = await measured('uplink', () => runUplinkBench(uplinkPlan, (line) => console.log(line)));
  const inference = await runInference();
  console.log('- model swaps under load: agent RSS after the first and the last swap, each after a full GC ...');
  const swaps = await measured('swaps', () => runSwapBench(plan.swaps, (line) => console.log(line)));

  const ingest = ingestFigures(power, processDurability, aedes, natsPeer, realisticAgent, realisticAedes);
  const up = uplinkFigures(uplink, natsPeer);
  const inf = inferenceFigures(inference);
  const sw = swapFigures(swaps);
  const figures = { ...ingest.figures, ...up.figures, ...inf.figures, ...sw.figures };
  const targets = { ...ingest.targets, ...up.targets, ...inf.targets, ...sw.targets };

  console.log('');
  printTable([HEADER, ...ingest.rows, ...up.rows, ...inf.rows, ...sw.rows]);
  console.log('');
  console.log('Method: every system under test (agent, raw aedes, nats-server, mosquitto + forwarder, control plane) runs in its own process;');
  console.log('the devices are a raw-socket generator in processes of their own (pre-encoded PUBLISH frames, only packet id, seq and ts patched),');
  console.log('whose CPU per message and event-loop use are reported per run: a generator whose loop had time to spare, and whose rate did not');
  console.log('rise with a second process, was not the limit. PUBACK latency is measured in the generator (send -> PUBACK read), loopback included.');
  const agentUs = ingest.figures['ingest.qos1.agent_cpu_us_per_msg'] as number;
  const aedesUs = ingest.figures['aedes_raw.qos1.cpu_us_per_msg'] as number;
  // Process CPU: every thread (event loop, libuv's pool with SQLite and zlib, V8's GC helpers), so no bound on one loop's rate.
  console.log(`CPU per message (all threads of each process): agent ${fmt(agentUs, 1)} µs, raw aedes ${fmt(aedesUs, 1)} µs, generator ${fmt(power.generator.cpuUsPerMsg, 2)} µs.`);
  printUplinkNotes(uplink);
  printInferenceNotes();
  loadWarning();

  const time = new Date().toISOString();
  const results = {
    time,
    machine: machine(),
    mode: plan.mode,
    ...figures,
    targets,
    config: {
      devices: plan.devices,
      windowPerClient: WINDOW_PER_CLIENT,
      generator: 'raw sockets, pre-encoded QoS 1 frames, own process(es)',
      warmupMessages: plan.warmup.messages,
      throughputMessages: plan.throughput.messages,
      throughputMaxDurationMs: plan.throughput.maxDurationMs,
      pacedRatePerS: plan.paced.ratePerS,
      pacedDurationMs: plan.paced.durationMs,
      durability: 'power',
      // A profiled agent runs slower: such results are not comparable with plain runs.
      agentCpuProfile: args.profileAgent,
      e2eCpuProfile: args.profileE2e,
      uplink: uplink.config,
      inference: inference.map((r) => r.result.config),
      swaps: swaps.config,
    },
  };
  const resultsFile = await write('latest.json', results);
  const chartFile = join(RESULTS_DIR, 'throughput.svg');
  await writeFile(chartFile, throughputChart(figures, plan.mode, cores, time));
  console.log(`\nwrote ${resultsFile} and ${chartFile} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);

  if (profileFile !== undefined) await printProfile(profileFile);
  if (e2eProfileDir !== undefined) await printE2eProfiles(uplink);
}

const HEADER: Row = ['figure', 'value', 'target', 'vs target', 'context'];

interface FigureSet {
  figures: Record<string, number | boolean | Record<string, number>>;
  targets: Record<string, Judged>;
  rows: Row[];
}

function ingestFigures(
  power: IngestScenarioResult,
  processDurability: IngestScenarioResult,
  aedes: AedesRawResult,
  natsPeer: NatsMqttPeerResult,
  realisticAgent: IngestScenarioResult,
  realisticAedes: AedesRawResult,
): FigureSet {
  const paced = power.paced;
  const memory = power.memoryAfterPaced;
  if (paced === undefined || memory === undefined || aedes.paced === undefined || natsPeer.paced === undefined) throw new Error('paced runs missing');
  const msgsPerS = power.throughput.msgsPerS;
  // The broker limit is the best aedes did, from one generator process or two.
  const aedesTwo = aedes.secondGenerator;
  const aedesBestIsTwo = aedesTwo !== undefined && aedesTwo.msgsPerS > aedes.throughput.msgsPerS;
  const aedesMsgsPerS = aedesBestIsTwo ? aedesTwo.msgsPerS : aedes.throughput.msgsPerS;
  const aedesServerCores = aedesBestIsTwo ? aedesTwo.serverCores : aedes.throughputServerCores;
  const peerMsgsPerS = natsPeer.throughput.msgsPerS;
  const peakRssMb = power.memoryAfterThroughput.peakRssMb;
  const generators: GeneratorCost[] = [power.generator, processDurability.generator, (aedes.throughput as { generator: GeneratorCost }).generator, natsPeer.throughput.generator];
  if (power.secondGenerator !== undefined) generators.push(power.secondGenerator.generator);
  if (aedesTwo !== undefined) generators.push(aedesTwo.generator);
  const eluMax = Math.max(...generators.map((g) => g.elu));
  const gain = power.secondGenerator === undefined ? Number.NaN : power.secondGenerator.msgsPerS / msgsPerS;
  const notBottleneck = eluMax <= LOADGEN_BUSY_ELU && (Number.isNaN(gain) || gain <= SECOND_GENERATOR_GAIN_LIMIT);
  const targets = {
    'ingest.qos1.msgs_per_s': judge({ value: msgsPerS, op: '>=', target: TARGET.ingestMsgsPerS }),
    'ingest.qos1.ratio_vs_aedes_raw': judge({ value: msgsPerS / aedesMsgsPerS, op: '>=', target: TARGET.ratioVsAedesRaw }),
    'ingest.qos1.ratio_vs_nats_mqtt_peer': judge({ value: msgsPerS / peerMsgsPerS, op: '>=', target: TARGET.ratioVsNatsMqttPeer }),
    'ingest.puback_p99_ms_at_10k': judge({ value: paced.p99Ms, op: '<=', target: TARGET.pubackP99Ms }),
    'memory.agent_rss_mb_at_10k': judge({ value: memory.rssMb, op: '<=', target: TARGET.agentRssMbAt10k }),
    'memory.agent_rss_mb_peak': judge({ value: peakRssMb, op: '<=', target: TARGET.agentRssMbPeak }),
  };
  const agentUs = usPerMsg(power.throughputCpu.agentCores, msgsPerS);
  const figures = {
    'ingest.qos1.msgs_per_s': round(msgsPerS, 0),
    'ingest.qos1.ratio_vs_aedes_raw': round(msgsPerS / aedesMsgsPerS, 3),
    'ingest.qos1.ratio_vs_nats_mqtt_peer': round(msgsPerS / peerMsgsPerS, 3),
    'ingest.puback_p50_ms_at_10k': round(paced.p50Ms, 2),
    'ingest.puback_p99_ms_at_10k': round(paced.p99Ms, 2),
    'memory.agent_rss_mb_at_10k': round(memory.rssMb, 1),
    'memory.agent_rss_mb_peak': round(peakRssMb, 1),
    'loadgen.cpu_us_per_msg': round(power.generator.cpuUsPerMsg, 2),
    'loadgen.cores_max_run': round(power.generator.cores, 2),
    'loadgen.event_loop_busy_max': round(eluMax, 3),
    'loadgen.second_process_msgs_per_s': round(power.secondGenerator?.msgsPerS ?? Number.NaN, 0),
    'loadgen.second_process_gain': round(gain, 3),
    'loadgen.aedes_second_process_gain': round(aedesTwo === undefined ? Number.NaN : aedesTwo.msgsPerS / aedes.throughput.msgsPerS, 3),
    'loadgen.not_the_bottleneck': notBottleneck,
    // Extra figures: context for the ones above.
    'ingest.puback_max_ms_at_10k': round(paced.maxMs, 2),
    'ingest.paced_achieved_msgs_per_s': round(paced.achievedRatePerS, 0),
    'ingest.agent_cpu_cores_at_10k': round(power.pacedAgentCores ?? 0, 2),
    'memory.agent_heap_total_mb_at_10k': round(power.pacedHeapTotalMb ?? 0, 1),
    'memory.agent_rss_mb_idle': round(power.memoryIdle.rssMb, 1),
    'memory.agent_rss_mb_after_max_run': round(power.memoryAfterThroughput.rssMb, 1),
    'ingest.qos1.agent_cpu_cores': round(power.throughputCpu.agentCores, 2),
    'ingest.qos1.agent_cpu_us_per_msg': round(agentUs, 1),
    'ingest_process_durability.qos1.msgs_per_s': round(processDurability.throughput.msgsPerS, 0),
    'ingest_process_durability.qos1.ratio_vs_aedes_raw': round(processDurability.throughput.msgsPerS / aedesMsgsPerS, 3),
    'ingest_process_durability.qos1.agent_cpu_us_per_msg': round(usPerMsg(processDurability.throughputCpu.agentCores, processDurability.throughput.msgsPerS), 1),
    'aedes_raw.qos1.msgs_per_s': round(aedesMsgsPerS, 0),
    'aedes_raw.qos1.msgs_per_s_one_generator': round(aedes.throughput.msgsPerS, 0),
    'aedes_raw.qos1.msgs_per_s_two_generators': round(aedesTwo?.msgsPerS ?? Number.NaN, 0),
    'aedes_raw.qos1.cpu_us_per_msg': round(usPerMsg(aedesServerCores, aedesMsgsPerS), 1),
    'aedes_raw.qos1.cpu_cores': round(aedesServerCores, 2),
    'aedes_raw.puback_p50_ms_at_10k': round(aedes.paced.p50Ms, 2),
    'aedes_raw.puback_p99_ms_at_10k': round(aedes.paced.p99Ms, 2),
    'peer.nats_mqtt.msgs_per_s': round(peerMsgsPerS, 0),
    'peer.nats_mqtt.cpu_us_per_msg': round(usPerMsg(natsPeer.throughputServerCores, peerMsgsPerS), 1),
    'peer.nats_mqtt.puback_p50_ms_at_10k': round(natsPeer.paced.p50Ms, 2),
    'peer.nats_mqtt.puback_p99_ms_at_10k': round(natsPeer.paced.p99Ms, 2),
    'realistic_client.ingest.qos1.msgs_per_s': round(realisticAgent.throughput.msgsPerS, 0),
    'realistic_client.aedes_raw.qos1.msgs_per_s': round(realisticAedes.throughput.msgsPerS, 0),
    'realistic_client.mqttjs_cpu_us_per_msg': round(realisticAgent.generator.cpuUsPerMsg, 1),
    'realistic_client.agent_cpu_us_per_msg': round(usPerMsg(realisticAgent.throughputCpu.agentCores, realisticAgent.throughput.msgsPerS), 1),
  };
  const rows: Row[] = [
    ['ingest.qos1.msgs_per_s (power: fsync before PUBACK)', fmt(msgsPerS), `>= ${fmt(TARGET.ingestMsgsPerS)}`, verdict(targets['ingest.qos1.msgs_per_s']), `agent ${fmt(agentUs, 1)} µs/msg`],
    [
      'ingest.qos1.ratio_vs_aedes_raw',
      fmt(msgsPerS / aedesMsgsPerS, 3),
      `>= ${TARGET.ratioVsAedesRaw}`,
      verdict(targets['ingest.qos1.ratio_vs_aedes_raw']),
      `aedes ${fmt(aedesMsgsPerS)} msg/s (1 / 2 gen. ${fmt(aedes.throughput.msgsPerS)} / ${fmt(aedesTwo?.msgsPerS ?? Number.NaN)}), ${fmt(figures['aedes_raw.qos1.cpu_us_per_msg'], 1)} µs/msg`,
    ],
    ['ingest.qos1.ratio_vs_nats_mqtt_peer', fmt(msgsPerS / peerMsgsPerS, 3), `>= ${TARGET.ratioVsNatsMqttPeer}`, verdict(targets['ingest.qos1.ratio_vs_nats_mqtt_peer']), `peer ${fmt(peerMsgsPerS)} msg/s`],
    ['ingest.puback_p99_ms_at_10k (p50)', `${fmt(paced.p99Ms, 2)} (${fmt(paced.p50Ms, 2)})`, `<= ${TARGET.pubackP99Ms}`, verdict(targets['ingest.puback_p99_ms_at_10k']), `aedes ${fmt(aedes.paced.p99Ms, 2)}, peer ${fmt(natsPeer.paced.p99Ms, 2)}`],
    ['memory.agent_rss_mb_at_10k', fmt(memory.rssMb, 1), `<= ${TARGET.agentRssMbAt10k}`, verdict(targets['memory.agent_rss_mb_at_10k']), `idle ${fmt(power.memoryIdle.rssMb, 1)}, heap ${fmt(power.pacedHeapTotalMb ?? 0, 1)}`],
    ['memory.agent_rss_mb_peak (VmHWM, max run)', fmt(peakRssMb, 1), `<= ${TARGET.agentRssMbPeak}`, verdict(targets['memory.agent_rss_mb_peak']), `after max run ${fmt(power.memoryAfterThroughput.rssMb, 1)}`],
    ['loadgen.cpu_us_per_msg (agent max run)', fmt(power.generator.cpuUsPerMsg, 2), '', '', `${fmt(power.generator.cores, 2)} cores, loop busy ${fmt(power.generator.elu * 100, 0)}%`],
    ['loadgen.not_the_bottleneck', String(notBottleneck), '', '', `busiest loop ${fmt(eluMax * 100, 0)}%; 2 processes: ${fmt(gain, 3)}x the rate`],
    ['  ingest msgs/s, durability process', fmt(processDurability.throughput.msgsPerS), '', '', `${fmt(figures['ingest_process_durability.qos1.agent_cpu_us_per_msg'], 1)} µs/msg`],
    ['  agent CPU at 10k msg/s', `${fmt(power.pacedAgentCores ?? 0, 2)} cores`, '', '', ''],
    ['  realistic client (mqtt.js): agent / raw aedes msg/s', `${fmt(realisticAgent.throughput.msgsPerS)} / ${fmt(realisticAedes.throughput.msgsPerS)}`, '', '', `mqtt.js ${fmt(realisticAgent.generator.cpuUsPerMsg, 1)} µs/msg`],
  ];
  return { figures, targets, rows };
}

function uplinkFigures(u: UplinkResult, natsPeer: NatsMqttPeerResult | undefined): FigureSet {
  const { e2e, drain, peer } = u;
  const c = (cpu: Record<string, number>, name: string): number => round(cpu[name] ?? 0, 2);
  const cpUs = usPerMsg(e2e.cpu['controlPlane'] ?? 0, e2e.msgsPerS);
  const peerRate = natsPeer?.throughput.msgsPerS ?? Number.NaN;
  const targets: Record<string, Judged> = {
    'e2e.latency_p99_ms_at_5k': judge({ value: e2e.paced.visible.p99Ms, op: '<=', target: TARGET.e2eLatencyP99Ms }),
    'cp.cpu_us_per_record': judge({ value: cpUs, op: '<=', target: TARGET.cpCpuUsPerRecord }),
    'drain.records_per_s': judge({ value: drain.recordsPerS, op: '>=', target: TARGET.drainRecordsPerS }),
  };
  if (natsPeer !== undefined) targets['e2e.ratio_vs_nats_mqtt_peer'] = judge({ value: e2e.msgsPerS / peerRate, op: '>=', target: TARGET.e2eRatioVsNatsMqttPeer });
  const figures = {
    'e2e.msgs_per_s': round(e2e.msgsPerS, 0),
    'e2e.ratio_vs_nats_mqtt_peer': round(e2e.msgsPerS / peerRate, 3),
    'e2e.ratio_vs_mosquitto_bridge': round(e2e.msgsPerS / peer.msgsPerS, 3),
    'e2e.latency_p50_ms_at_5k': round(e2e.paced.visible.p50Ms, 1),
    'e2e.latency_p99_ms_at_5k': round(e2e.paced.visible.p99Ms, 1),
    'cp.cpu_us_per_record': round(cpUs, 1),
    'drain.records_per_s': round(drain.recordsPerS, 0),
    // Extra figures: context for the ones above.
    'e2e.latency_max_ms_at_5k': round(e2e.paced.visible.maxMs, 1),
    'e2e.latency_samples_at_5k': e2e.paced.visible.samples,
    'e2e.latency_not_visible_at_5k': e2e.paced.notVisible,
    'e2e.paced_achieved_msgs_per_s': round(e2e.paced.achievedRatePerS, 0),
    'e2e.puback_p99_ms_at_5k': round(e2e.paced.puback.p99Ms, 2),
    'e2e.messages': e2e.messages,
    'e2e.last_puback_after_ms': round(e2e.ackedAfterMs, 0),
    'e2e.agent_cpu_cores': c(e2e.cpu, 'agent'),
    'e2e.control_plane_cpu_cores': c(e2e.cpu, 'controlPlane'),
    'e2e.nats_cpu_cores': c(e2e.cpu, 'nats'),
    'e2e.loadgen_cpu_cores': c(e2e.cpu, 'loadgen'),
    'e2e.agent_cpu_us_per_msg': round(usPerMsg(e2e.cpu['agent'] ?? 0, e2e.msgsPerS), 1),
    'e2e.control_plane_cpu_us_per_msg': round(cpUs, 1),
    'e2e.nats_cpu_us_per_msg': round(usPerMsg(e2e.cpu['nats'] ?? 0, e2e.msgsPerS), 1),
    'e2e.loadgen_cpu_us_per_msg': round(e2e.generator.cpuUsPerMsg, 2),
    'e2e.paced_cpu_cores': Object.fromEntries(Object.entries(e2e.paced.cpu).map(([k, v]) => [k, round(v, 2)])),
    'drain.backlog_records': drain.backlog,
    'drain.backlog_ingest_msgs_per_s': round(drain.backlogIngestMsgsPerS, 0),
    'drain.elapsed_ms': round(drain.elapsedMs, 0),
    'drain.first_counted_after_ms': round(drain.firstCountedAfterMs, 0),
    'drain.first_in_stream_after_ms': round(drain.firstInStreamAfterMs, 0),
    'drain.jetstream_ready_after_up_ms': round(drain.jetstreamReadyAfterUpMs, 0),
    'drain.records_per_s_after_first_count': round(drain.recordsPerSAfterFirst, 0),
    'drain.live_msgs_per_s': round(drain.live.achievedRatePerS, 0),
    'drain.live_sent': drain.live.sent,
    'drain.live_acked': drain.live.acked,
    'drain.live_acked_during_drain': drain.live.ackedDuringDrain,
    'drain.live_puback_p50_ms': round(drain.live.puback.p50Ms, 2),
    'drain.live_puback_p99_ms': round(drain.live.puback.p99Ms, 2),
    'drain.live_puback_max_ms': round(drain.live.puback.maxMs, 2),
    'drain.agent_cpu_cores': c(drain.cpu, 'agent'),
    'drain.control_plane_cpu_cores': c(drain.cpu, 'controlPlane'),
    'drain.nats_cpu_cores': c(drain.cpu, 'nats'),
    'drain.agent_cpu_us_per_record': round(usPerMsg(drain.cpu['agent'] ?? 0, drain.recordsPerS), 1),
    'drain.control_plane_cpu_us_per_record': round(usPerMsg(drain.cpu['controlPlane'] ?? 0, drain.recordsPerS), 1),
    'peer.mosquitto_bridge.msgs_per_s': round(peer.msgsPerS, 0),
    'peer.mosquitto_bridge.mosquitto_cpu_cores': c(peer.cpu, 'mosquitto'),
    'peer.mosquitto_bridge.forwarder_cpu_cores': c(peer.cpu, 'forwarder'),
    'peer.mosquitto_bridge.nats_cpu_cores': c(peer.cpu, 'nats'),
  };
  const cores = (cpu: Record<string, number>, ...names: string[]): string => names.map((n) => fmt(cpu[n] ?? 0, 2)).join(' / ');
  const noTarget = (name: string): string => (targets[name] === undefined ? '' : verdict(targets[name]!));
  const rows: Row[] = [
    ['e2e.msgs_per_s (device -> counted at CP)', fmt(e2e.msgsPerS), '', '', `agent / CP / nats / gen ${cores(e2e.cpu, 'agent', 'controlPlane', 'nats', 'loadgen')} cores`],
    ['e2e.ratio_vs_nats_mqtt_peer', fmt(e2e.msgsPerS / peerRate, 3), `>= ${TARGET.e2eRatioVsNatsMqttPeer}`, noTarget('e2e.ratio_vs_nats_mqtt_peer'), `peer ${fmt(peerRate)} msg/s (stored in JetStream only)`],
    ['e2e.ratio_vs_mosquitto_bridge', fmt(e2e.msgsPerS / peer.msgsPerS, 3), '', '', `peer ${fmt(peer.msgsPerS)} msg/s`],
    ['e2e.latency_p99_ms_at_5k (p50)', `${fmt(e2e.paced.visible.p99Ms, 1)} (${fmt(e2e.paced.visible.p50Ms, 1)})`, `<= ${TARGET.e2eLatencyP99Ms}`, noTarget('e2e.latency_p99_ms_at_5k'), `max ${fmt(e2e.paced.visible.maxMs, 1)}, not visible ${fmt(e2e.paced.notVisible)}`],
    ['cp.cpu_us_per_record (e2e max run)', fmt(cpUs, 1), `<= ${TARGET.cpCpuUsPerRecord}`, noTarget('cp.cpu_us_per_record'), `agent ${fmt(usPerMsg(e2e.cpu['agent'] ?? 0, e2e.msgsPerS), 1)}, nats ${fmt(usPerMsg(e2e.cpu['nats'] ?? 0, e2e.msgsPerS), 1)} µs/msg`],
    [`drain.records_per_s (${fmt(drain.backlog)} backlog, live ${fmt(drain.live.ratePerS)}/s)`, fmt(drain.recordsPerS), `>= ${fmt(TARGET.drainRecordsPerS)}`, noTarget('drain.records_per_s'), `agent / CP / nats ${cores(drain.cpu, 'agent', 'controlPlane', 'nats')} cores`],
    ['  drain live PUBACK p50 / p99 / max', `${fmt(drain.live.puback.p50Ms, 2)} / ${fmt(drain.live.puback.p99Ms, 2)} / ${fmt(drain.live.puback.maxMs, 1)} ms`, '', '', `live acked ${fmt(drain.live.acked)} of ${fmt(drain.live.sent)}`],
    ['  drain: JS ready -> 1st in stream / 1st counted / all', `${fmt(drain.firstInStreamAfterMs / 1000, 2)} / ${fmt(drain.firstCountedAfterMs / 1000, 2)} / ${fmt(drain.elapsedMs / 1000, 1)} s`, '', '', ''],
  ];
  return { figures, targets, rows };
}

interface InferenceRun {
  upstream: InferenceUpstream | 'default';
  result: InferenceBenchResult;
}

function inferenceFigures(runs: InferenceRun[]): FigureSet {
  // The figures of record come from the default setting: the first run whose upstream is the default.
  const main = runs.find((r) => r.upstream === InferenceUpstream.summaries || r.upstream === 'default') ?? runs[0]!;
  const r = main.result;
  const p99 = r.resultLatency.p99Ms;
  // The figure of record counts the child's pages as a gateway would: shared with the agent only.
  // The kernel's Pss also splits them with the generator's and the bench's node processes (and
  // anyone else's), which flatters it; it stays as context, and stands in only without root.
  const mem = r.child.afterThroughput;
  const pss = Number.isNaN(mem.gatewayPssMb) ? mem.pssMb : mem.gatewayPssMb;
  const targets = {
    'inference.latency_p99_ms_at_10k': judge({ value: p99, op: '<=', target: TARGET.inferenceLatencyP99Ms }),
    'memory.inference_pss_mb': judge({ value: pss, op: '<=', target: TARGET.inferencePssMb }),
  };
  const figures: FigureSet['figures'] = {
    'inference.latency_p50_ms_at_10k': round(r.resultLatency.p50Ms, 2),
    'inference.latency_p99_ms_at_10k': round(p99, 2),
    'memory.inference_pss_mb': round(pss, 1),
    'memory.inference_pss_mb_kernel': round(mem.pssMb, 1),
    'memory.inference_pss_is_gateway': !Number.isNaN(mem.gatewayPssMb),
    'memory.inference_rss_mb': round(r.child.afterThroughput.rssMb, 1),
    'inference.rows_per_s': round(r.rowsPerS, 0),
    'inference.upstream': main.upstream === InferenceUpstream.everyScore,
  };
  const rows: Row[] = [];
  for (const run of runs) {
    const x = run.result;
    // Each setting's own figures, prefixed by it: what each costs.
    const p = `inference.${run.upstream}`;
    Object.assign(figures, {
      [`${p}.latency_p50_ms_at_10k`]: round(x.resultLatency.p50Ms, 2),
      [`${p}.latency_p99_ms_at_10k`]: round(x.resultLatency.p99Ms, 2),
      [`${p}.latency_max_ms_at_10k`]: round(x.resultLatency.maxMs, 2),
      [`${p}.latency_samples_at_10k`]: x.resultLatency.samples,
      [`${p}.stage_p99_ms_at_most_at_10k`]: x.stageLatency.p99AtMostMs,
      [`${p}.puback_p99_ms_at_10k`]: round(x.paced.p99Ms, 2),
      [`${p}.paced_achieved_msgs_per_s`]: round(x.paced.achievedRatePerS, 0),
      [`${p}.rows_per_s`]: round(x.rowsPerS, 0),
      [`${p}.agent_cpu_cores_at_10k`]: round(x.pacedCores.agent, 2),
      [`${p}.agent_cpu_us_per_msg_at_10k`]: round(usPerMsg(x.pacedCores.agent, x.paced.achievedRatePerS), 1),
      [`${p}.child_cpu_cores_at_10k`]: round(x.pacedCores.child, 2),
      [`${p}.agent_cpu_us_per_msg_max_run`]: round(usPerMsg(x.throughputCores.agent, x.rowsPerS), 1),
      [`${p}.mean_batch_rows_at_10k`]: round(x.meanBatchRows.paced, 1),
      [`${p}.child_rss_mb`]: round(x.child.afterThroughput.rssMb, 1),
      [`${p}.child_pss_mb`]: round(x.child.afterThroughput.pssMb, 1),
      [`${p}.child_gateway_pss_mb`]: round(x.child.afterThroughput.gatewayPssMb, 1),
      [`${p}.child_anon_mb`]: round(x.child.afterThroughput.anonMb, 1),
      [`${p}.agent_rss_mb_at_10k`]: round(x.agentRssMb.afterPaced, 1),
      [`${p}.unscored_rows`]: x.unscored,
    });
    const mark = run === main ? '' : '  ';
    rows.push(
      [`${mark}inference.latency_p99_ms_at_10k [${run.upstream}] (p50)`, `${fmt(x.resultLatency.p99Ms, 2)} (${fmt(x.resultLatency.p50Ms, 2)})`, run === main ? `<= ${TARGET.inferenceLatencyP99Ms}` : '', run === main ? verdict(targets['inference.latency_p99_ms_at_10k']) : '', `agent ${fmt(usPerMsg(x.pacedCores.agent, x.paced.achievedRatePerS), 1)} µs/msg at 10k, max ${fmt(x.rowsPerS)} rows/s`],
    );
  }
  rows.push([
    `memory.inference_pss_mb (${Number.isNaN(mem.gatewayPssMb) ? "kernel's Pss: NOT as on a gateway" : 'shared with the agent only'})`,
    fmt(pss, 1),
    `<= ${TARGET.inferencePssMb}`,
    verdict(targets['memory.inference_pss_mb']),
    `kernel Pss ${fmt(mem.pssMb, 1)}, RSS ${fmt(mem.rssMb, 1)}, own (anon) ${fmt(mem.anonMb, 1)} MB`,
  ]);
  return { figures, targets, rows };
}

function swapFigures(r: SwapResult): FigureSet {
  const targets = { 'memory.swap_growth_pct': judge({ value: Math.max(0, r.growthPct), op: '<=', target: TARGET.swapGrowthPct }) };
  return {
    figures: {
      'memory.swap_growth_pct': round(r.growthPct, 2),
      'memory.agent_rss_mb_after_first_swap': round(r.rssAfterFirstMb, 1),
      'memory.agent_rss_mb_after_last_swap': round(r.rssAfterLastMb, 1),
      'inference.swaps': r.swaps,
      'inference.processes_after_swaps': r.inferenceProcesses,
    },
    targets,
    rows: [['memory.swap_growth_pct (agent RSS, swap 1 -> 20)', `${fmt(r.growthPct, 2)} %`, `<= ${TARGET.swapGrowthPct}`, verdict(targets['memory.swap_growth_pct']), `${fmt(r.rssAfterFirstMb, 1)} -> ${fmt(r.rssAfterLastMb, 1)} MB`]],
  };
}

function printUplinkNotes(u: UplinkResult): void {
  console.log('e2e: msgs/s = messages acknowledged in the max run / (first publish -> GET /api/agents/{id} totals.received reaches them; polled');
  console.log('every 50 ms). Latency = publish -> arrival in the bench of the accounting KV revision (a watch on the agent\'s telemetry key of');
  console.log('outpost_accounting, what the API reads) whose device-seq set first holds the message, every message of the paced run.');
  console.log('cp.cpu_us_per_record = control-plane CPU over the e2e max run / records counted. Drain = backlog / (restarted nats-server\'s');
  console.log('JetStream answers -> API counts the whole backlog), live ingest paced meanwhile; agent reconnect backoff capped at 0.5 s.');
  console.log(`Peers: nats-server's MQTT listener stops at "stored in JetStream" (one stage before our accounting); mosquitto + mqtt.js forwarder`);
  console.log(`(js.publish per message, ${String(u.config['forwarderWindow'])} in flight) is clocked until the stream holds every message.`);
}

function printInferenceNotes(): void {
  console.log('Inference: a PCA model (k = 2) over the six metrics of the bench payload, window 1, so every message is one row and one result.');
  console.log('Latency = publish -> the result on devices/{id}/inference at the publishing device (its own subscription), every message of');
  console.log('the paced run, timed in the generator; it includes the PUBACK path, the micro-batch wait (maxBatchWaitMs 2), one IPC round trip');
  console.log('and onnxruntime. Upstream `summaries` (the default): anomalies and per-device score summaries per interval go to the outbox;');
  console.log('`every-score`: every result as an `inference` record besides. memory.inference_pss_mb counts each resident page of the child');
  console.log("whole, or half when the agent maps the same physical page (as on a gateway); the kernel's Pss also splits with the bench's processes.");
}

async function printE2eProfiles(u: UplinkResult): Promise<void> {
  for (const file of u.e2e.profiles) {
    try {
      const summary = await summarizeCpuProfile(file, 15);
      console.log(`\nCPU profile ${file} (e2e scenario, whole life; sampled ${fmt(summary.totalMs / 1000, 1)} s); self time by package:`);
      printSelfTimes(summary, 10);
    } catch (error) {
      console.log(`\nCPU profile ${file} unreadable: ${(error as Error).message}`);
    }
  }
}

function printTable(rows: readonly (readonly string[])[]): void {
  for (const line of formatTable(rows)) console.log(line);
}

async function printProfile(file: string): Promise<void> {
  const summary = await summarizeCpuProfile(file);
  console.log(`\nAgent CPU profile (durability power, whole life incl. paced run; sampling adds overhead): ${file}`);
  console.log(`sampled ${fmt(summary.totalMs / 1000, 1)} s; self time by package:`);
  printSelfTimes(summary, 12);
}

/** A profile's self time: the `packages` largest packages, then every function it kept. */
function printSelfTimes(summary: ProfileSummary, packages: number): void {
  const share = (entry: ProfileEntry): string => `  ${fmt(entry.share * 100, 1).padStart(5)}%  ${entry.name}`;
  for (const p of summary.packages.slice(0, packages)) console.log(share(p));
  console.log('self time by function:');
  for (const f of summary.functions) console.log(share(f));
}

/** The comparison at a glance: Outpost's bars against the limit and the peers of the same run. */
function throughputChart(figures: Record<string, unknown>, mode: string, cores: number, time: string): string {
  const n = (name: string): number => Number(figures[name] ?? 0);
  return renderBarChart('Outpost vs. limits and peers, same machine, same run', `${mode} run, ${cores} cores, Node ${process.version}, ${time}; QoS 1, 20 devices, raw-socket generator in its own process`, [
    {
      title: 'Device -> durably acknowledged (PUBACK after the write)',
      unit: 'msg/s',
      target: TARGET.ingestMsgsPerS,
      bars: [
        { label: 'Outpost agent (SQLite, fsync)', value: n('ingest.qos1.msgs_per_s'), ours: true },
        { label: 'nats-server MQTT -> JetStream', value: n('peer.nats_mqtt.msgs_per_s'), ours: false },
        { label: 'raw aedes, no storage (limit)', value: n('aedes_raw.qos1.msgs_per_s'), ours: false },
      ],
    },
    {
      title: 'Device -> counted at the control plane / stored in JetStream',
      unit: 'msg/s',
      bars: [
        { label: 'Outpost end to end (accounted)', value: n('e2e.msgs_per_s'), ours: true },
        { label: 'nats-server MQTT -> JetStream', value: n('peer.nats_mqtt.msgs_per_s'), ours: false },
        { label: 'mosquitto + mqtt.js forwarder', value: n('peer.mosquitto_bridge.msgs_per_s'), ours: false },
      ],
    },
    {
      title: 'Backlog drain after an outage, live ingest on',
      unit: 'records/s',
      target: TARGET.drainRecordsPerS,
      bars: [{ label: 'Outpost drain', value: n('drain.records_per_s'), ours: true }],
    },
  ]);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed:', error);
    process.exit(1);
  },
);
