// `npm run bench [-- --quick | --smoke] [-- --out DIR] [-- --profile-agent] [-- --profile-e2e] [-- --uplink-only] [-- --inference-only]`:
// the ingest benchmark of issue [ingest], the end-to-end benchmark of issue [uplink] and the
// local inference benchmark of issue [inference] (inference.ts; --inference-only: that one alone,
// written to inference-only.json).
// Scenarios, in order: the agent at durability 'power' (paced 10k msg/s latency + RSS, then
// maximum QoS 1 throughput), the agent at 'process' (throughput only), raw aedes (the broker
// limit), then end to end (uplink.ts): agent -> nats-server -> control plane throughput and
// paced latency, the drain of a backlog built while NATS was down, and the peer (mosquitto +
// a hand-built JetStream forwarder). Prints a table and writes tests/bench/results/latest.json
// (--uplink-only: the e2e scenarios alone, written to uplink-only.json).
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAedesRawScenario, type AedesRawResult } from './aedes-raw.js';
import { parseBenchArgs } from './cli-args.js';
import { renderBarChart } from './chart.js';
import { runSwapBench, type SwapPlan, type SwapResult } from './inference-swaps.js';
import { runNatsMqttPeerScenario, type NatsMqttPeerResult } from './nats-mqtt-peer.js';
import { summarizeCpuProfile, type ProfileEntry, type ProfileSummary } from './cpu-profile.js';
import { runInferenceBench, type InferenceBenchResult, type InferencePlan } from './inference.js';
import { runIngestScenario, type IngestScenarioResult } from './ingest.js';
import { cpuSnapshot, foreignCores } from './process-stats.js';
import type { PacedRunOptions, WindowedRunOptions } from './publishers.js';
import { formatTable } from './table.js';
import { runUplinkBench, type UplinkPlan, type UplinkResult } from './uplink.js';

const DEFAULT_RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/** Targets of issue [ingest] on a 2-core gateway, and the ratios of issue [bench]. */
const TARGET = {
  msgsPerS: 50_000,
  p99Ms: 20,
  rssMb: 110,
  ratioVsNatsMqttPeer: 1.0,
  ratioVsAedesRaw: 0.5,
  swapGrowthPct: 5,
} as const;
const PACED_RATE_PER_S = 10_000;
/** Targets of issue [uplink]. */
const UPLINK_TARGET = {
  e2eMsgsPerS: 30_000,
  drainRecordsPerS: 100_000,
} as const;
/** Targets of issue [inference]. */
const INFERENCE_TARGET = {
  resultP99Ms: 10,
  childRssMb: 70,
} as const;
/** Above this many cores busy elsewhere, the report warns that the machine was not quiet. */
const OTHER_LOAD_WARN_CORES = 0.2;

interface Plan {
  mode: 'full' | 'quick' | 'smoke';
  devices: number;
  warmup: WindowedRunOptions;
  throughput: WindowedRunOptions;
  paced: PacedRunOptions;
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
    warmup: { messages: 20_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
    throughput: { messages: 1_000_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 25_000 },
    paced: { ratePerS: PACED_RATE_PER_S, durationMs: 20_000 },
    uplink: {
      devices: DEVICES,
      windowPerClient: WINDOW_PER_CLIENT,
      warmupMessages: 20_000,
      throughput: { messages: 600_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 25_000 },
      paced: { ratePerS: 5_000, durationMs: 20_000 },
      drain: { backlog: 1_000_000, backlogMaxDurationMs: 90_000, liveRatePerS: 2_000, timeoutMs: 120_000 },
      forwarderWindow: 1_000,
    },
    inference: {
      devices: DEVICES,
      warmup: { messages: 20_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
      paced: { ratePerS: PACED_RATE_PER_S, durationMs: 20_000 },
      throughput: { messages: 300_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 20_000 },
    },
    swaps: { swaps: 20, devices: DEVICES, ratePerDevicePerS: 100, messagesBetweenSwaps: 1_000 },
    hardLimitMs: 900_000,
  },
  quick: {
    mode: 'quick',
    devices: DEVICES,
    warmup: { messages: 5_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 2_000 },
    throughput: { messages: 300_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 5_000 },
    paced: { ratePerS: PACED_RATE_PER_S, durationMs: 3_000 },
    uplink: {
      devices: DEVICES,
      windowPerClient: WINDOW_PER_CLIENT,
      warmupMessages: 5_000,
      throughput: { messages: 150_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 6_000 },
      paced: { ratePerS: 5_000, durationMs: 5_000 },
      drain: { backlog: 200_000, backlogMaxDurationMs: 20_000, liveRatePerS: 2_000, timeoutMs: 40_000 },
      forwarderWindow: 1_000,
    },
    inference: {
      devices: DEVICES,
      warmup: { messages: 5_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 2_000 },
      paced: { ratePerS: PACED_RATE_PER_S, durationMs: 5_000 },
      throughput: { messages: 100_000, windowPerClient: WINDOW_PER_CLIENT, maxDurationMs: 6_000 },
    },
    swaps: { swaps: 20, devices: DEVICES, ratePerDevicePerS: 100, messagesBetweenSwaps: 300 },
    hardLimitMs: 300_000,
  },
  // CI's check that every scenario still runs and every figure is written: tiny counts, figures meaningless.
  smoke: {
    mode: 'smoke',
    devices: 4,
    warmup: { messages: 200, windowPerClient: 10, maxDurationMs: 2_000 },
    throughput: { messages: 2_000, windowPerClient: 10, maxDurationMs: 2_000 },
    paced: { ratePerS: 500, durationMs: 500 },
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
    hardLimitMs: 240_000,
  },
};

const USAGE = 'usage: npm run bench [-- --quick | --smoke] [-- --out DIR] [-- --profile-agent] [-- --profile-e2e] [-- --uplink-only] [-- --inference-only]';

interface Args {
  quick: boolean;
  smoke: boolean;
  /** Where latest.json and the chart go. */
  outDir: string;
  profileAgent: boolean;
  profileE2e: boolean;
  uplinkOnly: boolean;
  inferenceOnly: boolean;
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
        help: { type: 'boolean', short: 'h' },
      },
    },
    USAGE,
  );
  if (values.help === true) return 'help';
  return {
    quick: values.quick === true,
    smoke: values.smoke === true,
    outDir: values.out ?? DEFAULT_RESULTS_DIR,
    profileAgent: values['profile-agent'] === true,
    profileE2e: values['profile-e2e'] === true,
    uplinkOnly: values['uplink-only'] === true,
    inferenceOnly: values['inference-only'] === true,
  };
}

const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const round = (value: number, digits: number): number => Number(value.toFixed(digits));

function describeThroughput(label: string, r: IngestScenarioResult | AedesRawResult | NatsMqttPeerResult): string {
  const t = r.throughput;
  const bound = t.timeBound ? 'time-bound' : 'count-bound';
  return `${label}: ${fmt(t.acked)} acked in ${fmt(t.elapsedMs / 1000, 1)} s (${bound})`;
}

async function main(): Promise<void> {
  const args = parseOptions(process.argv.slice(2));
  if (args === 'help') {
    console.log(USAGE);
    return;
  }
  const plan = PLANS[args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'];
  const RESULTS_DIR = args.outDir;
  // Everything stops by itself: a hang anywhere ends the bench (its exit hooks kill the agent).
  setTimeout(() => {
    console.error(`bench exceeded its hard limit of ${plan.hardLimitMs / 1000} s; aborting`);
    process.exit(1);
  }, plan.hardLimitMs).unref();

  const cores = availableParallelism();
  console.log(`Outpost ingest bench (${plan.mode}): ${plan.devices} mqtt.js devices, QoS 1, ~200-byte JSON, window ${WINDOW_PER_CLIENT}/client, Node ${process.version}, ${cores} cores`);

  let profileFile: string | undefined;
  if (args.profileAgent) profileFile = join(await mkdtemp(join(tmpdir(), 'outpost-bench-prof-')), 'agent-power.cpuprofile');

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
      .map(([name, cores]) => `${name} ${fmt(cores, 2)}`)
      .join(', ');
    console.log(`Other load on the machine (cores used by other processes and steal, per scenario): ${loadText}`);
    if (busiest > OTHER_LOAD_WARN_CORES) console.log(`WARNING: the machine was not quiet (up to ${fmt(busiest, 2)} of ${cores} cores busy elsewhere); figures are low.`);
  };

  if (args.inferenceOnly) {
    console.log('- local inference: agent process with a PCA model, publish -> devices/{id}/inference ...');
    const inference = await measured('inference', () => runInferenceBench(plan.inference, (line) => console.log(line)));
    console.log('');
    printTable(inferenceRows(inference));
    console.log('');
    printInferenceNotes();
    loadWarning();
    const results = { time: new Date().toISOString(), machine: { cores, node: process.version, other_load_cores: otherLoad }, mode: plan.mode, ...inferenceFigures(inference), targets: inferenceTargets(inference), config: { inference: inference.config } };
    await mkdir(RESULTS_DIR, { recursive: true });
    const resultsFile = join(RESULTS_DIR, 'inference-only.json');
    await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nwrote ${resultsFile} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);
    return;
  }

  if (args.uplinkOnly) {
    const uplink = await measured('uplink', () => runUplinkBench(uplinkPlan, (line) => console.log(line)));
    console.log('');
    printTable(uplinkRows(uplink));
    console.log('');
    printUplinkNotes(uplink);
    loadWarning();
    const results = { time: new Date().toISOString(), machine: { cores, node: process.version, other_load_cores: otherLoad }, mode: plan.mode, ...uplinkFigures(uplink), targets: uplinkTargets(uplink), config: { uplink: uplink.config } };
    await mkdir(RESULTS_DIR, { recursive: true });
    const resultsFile = join(RESULTS_DIR, 'uplink-only.json');
    await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nwrote ${resultsFile} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);
    if (e2eProfileDir !== undefined) await printE2eProfiles(uplink);
    return;
  }

  console.log('- agent, durability power: warm-up, paced 10k msg/s, max throughput ...');
  const power = await measured('agent_power', () =>
    runIngestScenario({ durability: 'power', devices: plan.devices, warmup: plan.warmup, throughput: plan.throughput, paced: plan.paced, cpuProfileFile: profileFile }),
  );
  console.log(`  ${describeThroughput('max run', power)}; /metrics accepted ${fmt(power.acceptedTotal)} = PUBACKs ${fmt(power.ackedTotal)}`);
  console.log('- agent, durability process: warm-up, max throughput ...');
  const processDurability = await measured('agent_process', () =>
    runIngestScenario({ durability: 'process', devices: plan.devices, warmup: plan.warmup, throughput: plan.throughput }),
  );
  console.log(`  ${describeThroughput('max run', processDurability)}; /metrics accepted ${fmt(processDurability.acceptedTotal)} = PUBACKs ${fmt(processDurability.ackedTotal)}`);
  console.log('- raw aedes, in-process subscriber, no storage: warm-up, paced 10k msg/s, max throughput ...');
  const aedes = await measured('aedes_raw', () => runAedesRawScenario({ devices: plan.devices, warmup: plan.warmup, throughput: plan.throughput, paced: plan.paced }));
  console.log(`  ${describeThroughput('max run', aedes)}; subscriber received ${fmt(aedes.delivered)} = PUBACKs ${fmt(aedes.ackedTotal)}`);
  console.log("- nats-server's own MQTT listener into a JetStream stream (the NATS-native peer): warm-up, paced 10k msg/s, max throughput ...");
  const natsPeer = await measured('nats_mqtt_peer', () => runNatsMqttPeerScenario({ devices: plan.devices, warmup: plan.warmup, throughput: plan.throughput, paced: plan.paced }));
  console.log(`  ${describeThroughput('max run', natsPeer)}; stream holds ${fmt(natsPeer.stored)} = PUBACKs ${fmt(natsPeer.ackedTotal)}`);
  const uplink = await measured('uplink', () => runUplinkBench(uplinkPlan, (line) => console.log(line)));
  console.log('- local inference: agent process with a PCA model, publish -> devices/{id}/inference ...');
  const inference = await measured('inference', () => runInferenceBench(plan.inference, (line) => console.log(line)));
  console.log('- model swaps under load: agent RSS after the first and the last swap, each after a full GC ...');
  const swaps = await measured('swaps', () => runSwapBench(plan.swaps, (line) => console.log(line)));

  const powerPaced = power.paced;
  const memory = power.memoryAfterPaced;
  if (powerPaced === undefined || memory === undefined || aedes.paced === undefined || natsPeer.paced === undefined) throw new Error('paced runs missing');

  const msgsPerS = power.throughput.msgsPerS;
  const aedesMsgsPerS = aedes.throughput.msgsPerS;
  const figures = {
    'ingest.qos1.msgs_per_s': round(msgsPerS, 0),
    'ingest.qos1.ratio_vs_aedes_raw': round(msgsPerS / aedesMsgsPerS, 3),
    'ingest.qos1.ratio_vs_nats_mqtt_peer': round(msgsPerS / natsPeer.throughput.msgsPerS, 3),
    'ingest.puback_p50_ms_at_10k': round(powerPaced.p50Ms, 2),
    'ingest.puback_p99_ms_at_10k': round(powerPaced.p99Ms, 2),
    'memory.agent_rss_mb_at_10k': round(memory.rssMb, 1),
    // Extra figures: context for the ones above.
    'ingest.puback_max_ms_at_10k': round(powerPaced.maxMs, 2),
    'ingest.paced_achieved_msgs_per_s': round(powerPaced.achievedRatePerS, 0),
    'ingest.agent_cpu_cores_at_10k': round(power.pacedAgentCores ?? 0, 2),
    'memory.agent_heap_total_mb_at_10k': round(power.pacedHeapTotalMb ?? 0, 1),
    'ingest.qos1.agent_cpu_cores': round(power.throughputCpu.agentCores, 2),
    'ingest.qos1.publisher_cpu_cores': round(power.throughputCpu.benchCores, 2),
    // CPU per message: far less sensitive to other load than the rates.
    'ingest.qos1.agent_cpu_us_per_msg': round(usPerMsg(power.throughputCpu.agentCores, msgsPerS), 1),
    'ingest.qos1.publisher_cpu_us_per_msg': round(usPerMsg(power.throughputCpu.benchCores, msgsPerS), 1),
    'ingest_process_durability.qos1.msgs_per_s': round(processDurability.throughput.msgsPerS, 0),
    'ingest_process_durability.qos1.ratio_vs_aedes_raw': round(processDurability.throughput.msgsPerS / aedesMsgsPerS, 3),
    'memory.agent_rss_mb_idle': round(power.memoryIdle.rssMb, 1),
    'memory.agent_peak_rss_mb': round(Math.max(power.memoryAfterThroughput.peakRssMb, memory.peakRssMb), 1),
    'memory.agent_rss_mb_after_max_run': round(power.memoryAfterThroughput.rssMb, 1),
    'aedes_raw.qos1.msgs_per_s': round(aedesMsgsPerS, 0),
    'aedes_raw.qos1.cpu_us_per_msg': round(usPerMsg(aedes.throughputBenchCores, aedesMsgsPerS), 1),
    'aedes_raw.puback_p50_ms_at_10k': round(aedes.paced.p50Ms, 2),
    'aedes_raw.puback_p99_ms_at_10k': round(aedes.paced.p99Ms, 2),
    ...uplinkFigures(uplink),
    'peer.nats_mqtt.msgs_per_s': round(natsPeer.throughput.msgsPerS, 0),
    'peer.nats_mqtt.puback_p50_ms_at_10k': round(natsPeer.paced.p50Ms, 2),
    'peer.nats_mqtt.puback_p99_ms_at_10k': round(natsPeer.paced.p99Ms, 2),
    ...inferenceFigures(inference),
    ...swapFigures(swaps),
  };

  const targets = {
    'ingest.qos1.msgs_per_s': { target: `>= ${TARGET.msgsPerS}`, ratio: round(msgsPerS / TARGET.msgsPerS, 3), met: msgsPerS >= TARGET.msgsPerS },
    'ingest.puback_p99_ms_at_10k': { target: `<= ${TARGET.p99Ms}`, ratio: round(powerPaced.p99Ms / TARGET.p99Ms, 3), met: powerPaced.p99Ms <= TARGET.p99Ms },
    'memory.agent_rss_mb_at_10k': { target: `<= ${TARGET.rssMb}`, ratio: round(memory.rssMb / TARGET.rssMb, 3), met: memory.rssMb <= TARGET.rssMb },
    ...uplinkTargets(uplink),
    'ingest.qos1.ratio_vs_nats_mqtt_peer': {
      target: `>= ${TARGET.ratioVsNatsMqttPeer}`,
      ratio: round(msgsPerS / natsPeer.throughput.msgsPerS / TARGET.ratioVsNatsMqttPeer, 3),
      met: msgsPerS >= natsPeer.throughput.msgsPerS * TARGET.ratioVsNatsMqttPeer,
    },
    'ingest.qos1.ratio_vs_aedes_raw': {
      target: `>= ${TARGET.ratioVsAedesRaw}`,
      ratio: round(msgsPerS / aedesMsgsPerS / TARGET.ratioVsAedesRaw, 3),
      met: msgsPerS >= aedesMsgsPerS * TARGET.ratioVsAedesRaw,
    },
    ...inferenceTargets(inference),
    'memory.swap_growth_pct': { target: `<= ${TARGET.swapGrowthPct}`, ratio: round(Math.max(0, swaps.growthPct) / TARGET.swapGrowthPct, 3), met: swaps.growthPct <= TARGET.swapGrowthPct },
  };

  const rows: [string, string, string, string, string][] = [
    ['figure', 'value', 'target', 'vs target', 'vs aedes raw'],
    ['ingest.qos1.msgs_per_s (power)', fmt(msgsPerS), `>= ${fmt(TARGET.msgsPerS)}`, verdict(targets['ingest.qos1.msgs_per_s']), `${fmt(msgsPerS / aedesMsgsPerS, 3)} of ${fmt(aedesMsgsPerS)}`],
    ['ingest.puback_p50_ms_at_10k', fmt(powerPaced.p50Ms, 2), '', '', `aedes ${fmt(aedes.paced.p50Ms, 2)}`],
    ['ingest.puback_p99_ms_at_10k', fmt(powerPaced.p99Ms, 2), `<= ${TARGET.p99Ms}`, verdict(targets['ingest.puback_p99_ms_at_10k']), `aedes ${fmt(aedes.paced.p99Ms, 2)}`],
    ['memory.agent_rss_mb_at_10k', fmt(memory.rssMb, 1), `<= ${TARGET.rssMb}`, verdict(targets['memory.agent_rss_mb_at_10k']), ''],
    ['  ingest.puback_max_ms_at_10k', fmt(powerPaced.maxMs, 2), '', '', `aedes ${fmt(aedes.paced.maxMs, 2)}`],
    ['  paced rate achieved, msg/s', fmt(powerPaced.achievedRatePerS), '', '', `aedes ${fmt(aedes.paced.achievedRatePerS)}`],
    ['  agent CPU at 10k msg/s', `${fmt(figures['ingest.agent_cpu_cores_at_10k'], 2)} cores`, '', '', ''],
    ['  agent V8 heap total at 10k msg/s', `${fmt(figures['memory.agent_heap_total_mb_at_10k'], 1)} MB`, '', '', ''],
    ['  ingest msgs/s, durability process', fmt(processDurability.throughput.msgsPerS), `>= ${fmt(TARGET.msgsPerS)}`, `${fmt(processDurability.throughput.msgsPerS / TARGET.msgsPerS, 2)}x`, fmt(processDurability.throughput.msgsPerS / aedesMsgsPerS, 3)],
    ['  CPU in max run: agent / publishers', `${fmt(power.throughputCpu.agentCores, 2)} / ${fmt(power.throughputCpu.benchCores, 2)} cores`, '', '', `aedes+publ. ${fmt(aedes.throughputBenchCores, 2)}`],
    ['  CPU per msg: agent / publishers', `${fmt(figures['ingest.qos1.agent_cpu_us_per_msg'], 1)} / ${fmt(figures['ingest.qos1.publisher_cpu_us_per_msg'], 1)} µs`, '', '', `aedes+publ. ${fmt(figures['aedes_raw.qos1.cpu_us_per_msg'], 1)}`],
    ['  agent RSS idle / after max run / peak', `${fmt(power.memoryIdle.rssMb, 1)} / ${fmt(power.memoryAfterThroughput.rssMb, 1)} / ${fmt(figures['memory.agent_peak_rss_mb'], 1)} MB`, '', '', ''],
    ['  aedes raw QoS 1 msgs/s', fmt(aedesMsgsPerS), '', '', '1'],
    ['ingest.qos1.ratio_vs_nats_mqtt_peer', fmt(msgsPerS / natsPeer.throughput.msgsPerS, 3), `>= ${TARGET.ratioVsNatsMqttPeer}`, verdict(targets['ingest.qos1.ratio_vs_nats_mqtt_peer']), `peer ${fmt(natsPeer.throughput.msgsPerS)} msg/s`],
    ['ingest.qos1.ratio_vs_aedes_raw', fmt(msgsPerS / aedesMsgsPerS, 3), `>= ${TARGET.ratioVsAedesRaw}`, verdict(targets['ingest.qos1.ratio_vs_aedes_raw']), ''],
    ['  nats MQTT peer PUBACK p50 / p99 at 10k', `${fmt(natsPeer.paced.p50Ms, 2)} / ${fmt(natsPeer.paced.p99Ms, 2)} ms`, '', '', ''],
    ...uplinkRows(uplink).slice(1),
    ...inferenceRows(inference).slice(1),
    ['memory.swap_growth_pct (agent RSS, swap 1 -> 20)', `${fmt(swaps.growthPct, 2)} %`, `<= ${TARGET.swapGrowthPct}`, verdict(targets['memory.swap_growth_pct']), `${fmt(swaps.rssAfterFirstMb, 1)} -> ${fmt(swaps.rssAfterLastMb, 1)} MB`],
  ];
  console.log('');
  printTable(rows);
  console.log('');
  console.log(`Caveat: raw aedes runs inside the bench process, sharing one event loop with the ${plan.devices} publishers;`);
  console.log('the agent is a separate process with its own event loop (and SQLite threads). Both share the 2 cores with the');
  console.log('load generator, so the ratio compares setups, not brokers alone. PUBACK latency is measured in the publisher');
  console.log('(publish call -> PUBACK callback) and includes mqtt.js and loopback time.');
  const agentUs = figures['ingest.qos1.agent_cpu_us_per_msg'];
  const publisherUs = figures['ingest.qos1.publisher_cpu_us_per_msg'];
  console.log(
    `CPU bound: the agent spends ${fmt(agentUs, 1)} µs of CPU per message (at most ~${fmt(1e6 / agentUs)} msg/s on one core), the publishers ${fmt(publisherUs, 1)} µs; ` +
      `${cores} cores shared by both allow at most ~${fmt((cores * 1e6) / (agentUs + publisherUs))} msg/s.`,
  );
  printUplinkNotes(uplink);
  printInferenceNotes();
  loadWarning();

  const results = {
    time: new Date().toISOString(),
    machine: { cores, node: process.version, other_load_cores: otherLoad },
    mode: plan.mode,
    ...figures,
    targets,
    config: {
      devices: plan.devices,
      windowPerClient: WINDOW_PER_CLIENT,
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
      inference: inference.config,
      swaps: swaps.config,
    },
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const resultsFile = join(RESULTS_DIR, 'latest.json');
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  const chartFile = join(RESULTS_DIR, 'throughput.svg');
  await writeFile(chartFile, throughputChart(figures, plan.mode, cores, results.time));
  console.log(`\nwrote ${resultsFile} and ${chartFile} (bench took ${fmt((performance.now() - started) / 1000, 1)} s)`);

  if (profileFile !== undefined) await printProfile(profileFile);
  if (e2eProfileDir !== undefined) await printE2eProfiles(uplink);
}

function uplinkFigures(u: UplinkResult) {
  const { e2e, drain, peer } = u;
  const cores = (c: Record<string, number>, name: string): number => round(c[name] ?? 0, 2);
  return {
    'e2e.msgs_per_s': round(e2e.msgsPerS, 0),
    'e2e.ratio_vs_mosquitto_bridge': round(e2e.msgsPerS / peer.msgsPerS, 3),
    'e2e.latency_p50_ms_at_5k': round(e2e.paced.visible.p50Ms, 1),
    'e2e.latency_p99_ms_at_5k': round(e2e.paced.visible.p99Ms, 1),
    'drain.records_per_s': round(drain.recordsPerS, 0),
    // Extra figures: context for the ones above.
    'e2e.latency_max_ms_at_5k': round(e2e.paced.visible.maxMs, 1),
    'e2e.latency_samples_at_5k': e2e.paced.visible.samples,
    'e2e.latency_not_visible_at_5k': e2e.paced.notVisible,
    'e2e.paced_achieved_msgs_per_s': round(e2e.paced.achievedRatePerS, 0),
    'e2e.puback_p99_ms_at_5k': round(e2e.paced.puback.p99Ms, 2),
    'e2e.messages': e2e.messages,
    'e2e.last_puback_after_ms': round(e2e.ackedAfterMs, 0),
    'e2e.agent_cpu_cores': cores(e2e.cpu, 'agent'),
    'e2e.control_plane_cpu_cores': cores(e2e.cpu, 'controlPlane'),
    'e2e.nats_cpu_cores': cores(e2e.cpu, 'nats'),
    'e2e.publisher_cpu_cores': cores(e2e.cpu, 'bench'),
    'e2e.agent_cpu_us_per_msg': round(usPerMsg(e2e.cpu['agent'] ?? 0, e2e.msgsPerS), 1),
    'e2e.control_plane_cpu_us_per_msg': round(usPerMsg(e2e.cpu['controlPlane'] ?? 0, e2e.msgsPerS), 1),
    'e2e.nats_cpu_us_per_msg': round(usPerMsg(e2e.cpu['nats'] ?? 0, e2e.msgsPerS), 1),
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
    'drain.agent_cpu_cores': cores(drain.cpu, 'agent'),
    'drain.control_plane_cpu_cores': cores(drain.cpu, 'controlPlane'),
    'drain.nats_cpu_cores': cores(drain.cpu, 'nats'),
    'peer.mosquitto_bridge.msgs_per_s': round(peer.msgsPerS, 0),
    'peer.mosquitto_bridge.mosquitto_cpu_cores': cores(peer.cpu, 'mosquitto'),
    'peer.mosquitto_bridge.forwarder_cpu_cores': cores(peer.cpu, 'forwarder'),
    'peer.mosquitto_bridge.nats_cpu_cores': cores(peer.cpu, 'nats'),
    'peer.mosquitto_bridge.publisher_cpu_cores': cores(peer.cpu, 'bench'),
  };
}

function uplinkTargets(u: UplinkResult) {
  const e2e = u.e2e.msgsPerS;
  const drain = u.drain.recordsPerS;
  return {
    'e2e.msgs_per_s': { target: `>= ${UPLINK_TARGET.e2eMsgsPerS}`, ratio: round(e2e / UPLINK_TARGET.e2eMsgsPerS, 3), met: e2e >= UPLINK_TARGET.e2eMsgsPerS },
    'drain.records_per_s': { target: `>= ${UPLINK_TARGET.drainRecordsPerS}`, ratio: round(drain / UPLINK_TARGET.drainRecordsPerS, 3), met: drain >= UPLINK_TARGET.drainRecordsPerS },
  };
}

function uplinkRows(u: UplinkResult): [string, string, string, string, string][] {
  const { e2e, drain, peer } = u;
  const t = uplinkTargets(u);
  const c = (cpu: Record<string, number>, ...names: string[]): string => names.map((n) => fmt(cpu[n] ?? 0, 2)).join(' / ');
  return [
    ['figure', 'value', 'target', 'vs target', 'vs peer'],
    ['e2e.msgs_per_s (device -> counted at CP)', fmt(e2e.msgsPerS), `>= ${fmt(UPLINK_TARGET.e2eMsgsPerS)}`, verdict(t['e2e.msgs_per_s']), `${fmt(e2e.msgsPerS / peer.msgsPerS, 3)} of ${fmt(peer.msgsPerS)}`],
    ['e2e.latency_p50_ms_at_5k (publish -> visible)', fmt(e2e.paced.visible.p50Ms, 1), '', '', ''],
    ['e2e.latency_p99_ms_at_5k (publish -> visible)', fmt(e2e.paced.visible.p99Ms, 1), '', '', ''],
    ['drain.records_per_s (1M backlog, live 2k/s)'.replace('1M', drain.backlog >= 1e6 ? '1M' : `${fmt(drain.backlog / 1000)}k`), fmt(drain.recordsPerS), `>= ${fmt(UPLINK_TARGET.drainRecordsPerS)}`, verdict(t['drain.records_per_s']), ''],
    ['  e2e: msgs / last PUBACK after / counted after', `${fmt(e2e.messages)} / ${fmt(e2e.ackedAfterMs / 1000, 1)} s / ${fmt(e2e.elapsedMs / 1000, 1)} s`, '', '', ''],
    ['  e2e CPU: agent / CP / nats / publishers', `${c(e2e.cpu, 'agent', 'controlPlane', 'nats', 'bench')} cores`, '', '', `${c(peer.cpu, 'mosquitto', 'forwarder', 'nats', 'bench')} (mosq/fwd/nats/pub)`],
    ['  e2e CPU per msg: agent / CP / nats', `${fmt(usPerMsg(e2e.cpu['agent'] ?? 0, e2e.msgsPerS), 1)} / ${fmt(usPerMsg(e2e.cpu['controlPlane'] ?? 0, e2e.msgsPerS), 1)} / ${fmt(usPerMsg(e2e.cpu['nats'] ?? 0, e2e.msgsPerS), 1)} µs`, '', '', ''],
    ['  e2e latency max / samples / not visible', `${fmt(e2e.paced.visible.maxMs, 1)} ms / ${fmt(e2e.paced.visible.samples)} / ${fmt(e2e.paced.notVisible)}`, '', '', ''],
    ['  e2e paced: achieved msg/s, PUBACK p99', `${fmt(e2e.paced.achievedRatePerS)}, ${fmt(e2e.paced.puback.p99Ms, 2)} ms`, '', '', ''],
    ['  e2e paced CPU: agent / CP / nats / publishers', `${c(e2e.paced.cpu, 'agent', 'controlPlane', 'nats', 'bench')} cores`, '', '', ''],
    ['  drain: backlog ingest msg/s (NATS down)', fmt(drain.backlogIngestMsgsPerS), '', '', ''],
    ['  drain: nats-server up -> JetStream answers', `${fmt(drain.jetstreamReadyAfterUpMs / 1000, 2)} s`, '', '', ''],
    ['  drain: JS ready -> 1st in stream / 1st counted / all', `${fmt(drain.firstInStreamAfterMs / 1000, 2)} / ${fmt(drain.firstCountedAfterMs / 1000, 2)} / ${fmt(drain.elapsedMs / 1000, 1)} s`, '', '', ''],
    ['  drain rate from first count', fmt(drain.recordsPerSAfterFirst), '', '', ''],
    ['  drain live: msg/s, acked during drain / in all', `${fmt(drain.live.achievedRatePerS)}, ${fmt(drain.live.ackedDuringDrain)} / ${fmt(drain.live.acked)} of ${fmt(drain.live.sent)}`, '', '', ''],
    ['  drain live PUBACK p50 / p99 / max', `${fmt(drain.live.puback.p50Ms, 2)} / ${fmt(drain.live.puback.p99Ms, 2)} / ${fmt(drain.live.puback.maxMs, 1)} ms`, '', '', ''],
    ['  drain CPU: agent / CP / nats / bench', `${c(drain.cpu, 'agent', 'controlPlane', 'nats', 'bench')} cores`, '', '', ''],
    ['  peer: mosquitto + forwarder msgs/s', fmt(peer.msgsPerS), '', '', '1'],
  ];
}

function printUplinkNotes(u: UplinkResult): void {
  console.log('e2e methods: msgs/s = messages acknowledged in the max run / (first publish -> GET /api/agents/{id} totals.received reaches');
  console.log(`them; polled every 50 ms). Latency = publish call -> arrival in the bench of the accounting KV revision (a watch on the`);
  console.log('agent\'s telemetry key of the outpost_accounting bucket, which is what the API reads) whose device-seq set first holds the');
  console.log('message, every message of the paced run; the control plane exposes no latency histogram of its own (control-plane/src/metrics.ts).');
  console.log('Drain = backlog records / (restarted nats-server\'s JetStream answers -> API counts the whole backlog), live ingest paced');
  console.log('from the restart on; agent reconnect backoff capped at 0.5 s (uplink.reconnectMaxWaitMs), batching at the defaults.');
  console.log(`Peer = same publishers -> mosquitto -> mqtt.js forwarder (js.publish per message, ${String(u.config['forwarderWindow'])} in flight) -> JetStream, clocked until the`);
  console.log('stream holds every message: it stops at "stored in JetStream", one stage before our control plane, and PUBACKs before storing.');
}

function inferenceFigures(r: InferenceBenchResult) {
  return {
    'inference.result_p50_ms_at_10k': round(r.resultLatency.p50Ms, 2),
    'inference.result_p99_ms_at_10k': round(r.resultLatency.p99Ms, 2),
    // The names issue [bench] asks for: device publish -> local inference result, and the inference process's RSS.
    'inference.latency_p99_ms_at_10k': round(r.resultLatency.p99Ms, 2),
    'memory.inference_rss_mb': round(r.child.afterThroughput.rssMb, 1),
    'inference.rows_per_s': round(r.rowsPerS, 0),
    'inference.child_rss_mb': round(r.child.afterThroughput.rssMb, 1),
    // Extra figures: context for the ones above.
    'inference.result_max_ms_at_10k': round(r.resultLatency.maxMs, 2),
    'inference.result_samples_at_10k': r.resultLatency.samples,
    'inference.stage_p50_ms_at_most_at_10k': r.stageLatency.p50AtMostMs,
    'inference.stage_p99_ms_at_most_at_10k': r.stageLatency.p99AtMostMs,
    'inference.stage_within_10ms_at_10k': round(r.stageLatency.within10Ms, 4),
    'inference.puback_p50_ms_at_10k': round(r.paced.p50Ms, 2),
    'inference.puback_p99_ms_at_10k': round(r.paced.p99Ms, 2),
    'inference.paced_achieved_msgs_per_s': round(r.paced.achievedRatePerS, 0),
    'inference.max_run_msgs_per_s': round(r.throughput.msgsPerS, 0),
    'inference.mean_batch_rows_at_10k': round(r.meanBatchRows.paced, 1),
    'inference.mean_batch_rows_max_run': round(r.meanBatchRows.throughput, 1),
    'inference.child_rss_mb_after_paced': round(r.child.afterPaced.rssMb, 1),
    'inference.child_anon_mb': round(r.child.afterThroughput.anonMb, 1),
    'inference.child_pss_mb': round(r.child.afterThroughput.pssMb, 1),
    'inference.agent_rss_mb_at_10k': round(r.agentRssMb.afterPaced, 1),
    'inference.agent_rss_mb_after_max_run': round(r.agentRssMb.afterThroughput, 1),
    'inference.agent_cpu_cores_at_10k': round(r.pacedCores.agent, 2),
    'inference.child_cpu_cores_at_10k': round(r.pacedCores.child, 2),
    'inference.publisher_cpu_cores_at_10k': round(r.pacedCores.bench, 2),
    'inference.max_run_cpu_cores': { agent: round(r.throughputCores.agent, 2), child: round(r.throughputCores.child, 2), publishers: round(r.throughputCores.bench, 2) },
    'inference.agent_cpu_us_per_msg_max_run': round(usPerMsg(r.throughputCores.agent, r.rowsPerS), 1),
    'inference.unscored_rows': r.unscored,
  };
}

function inferenceTargets(r: InferenceBenchResult) {
  const p99 = r.resultLatency.p99Ms;
  const rss = r.child.afterThroughput.rssMb;
  return {
    'inference.result_p99_ms_at_10k': { target: `<= ${INFERENCE_TARGET.resultP99Ms}`, ratio: round(p99 / INFERENCE_TARGET.resultP99Ms, 3), met: p99 <= INFERENCE_TARGET.resultP99Ms },
    'inference.child_rss_mb': { target: `<= ${INFERENCE_TARGET.childRssMb}`, ratio: round(rss / INFERENCE_TARGET.childRssMb, 3), met: rss <= INFERENCE_TARGET.childRssMb },
  };
}

function inferenceRows(r: InferenceBenchResult): [string, string, string, string, string][] {
  const t = inferenceTargets(r);
  const mem = (m: InferenceBenchResult['child']['afterPaced']): string => `${fmt(m.rssMb, 1)} / ${fmt(m.anonMb, 1)} / ${fmt(m.pssMb, 1)} MB`;
  return [
    ['figure', 'value', 'target', 'vs target', ''],
    ['inference.result_p50_ms_at_10k (publish -> result)', fmt(r.resultLatency.p50Ms, 2), '', '', ''],
    ['inference.result_p99_ms_at_10k (publish -> result)', fmt(r.resultLatency.p99Ms, 2), `<= ${INFERENCE_TARGET.resultP99Ms}`, verdict(t['inference.result_p99_ms_at_10k']), ''],
    ['inference.rows_per_s (max run, 1 row per msg)', fmt(r.rowsPerS), '', '', ''],
    ['inference.child_rss_mb', fmt(r.child.afterThroughput.rssMb, 1), `<= ${INFERENCE_TARGET.childRssMb}`, verdict(t['inference.child_rss_mb']), ''],
    ['  result latency max / samples', `${fmt(r.resultLatency.maxMs, 1)} ms / ${fmt(r.resultLatency.samples)}`, '', '', ''],
    ['  commit -> result in the agent: p50 / p99 at most', `${fmt(r.stageLatency.p50AtMostMs, 1)} / ${fmt(r.stageLatency.p99AtMostMs, 1)} ms`, '', '', ''],
    ['  commit -> result within 5 / 10 ms', `${fmt(r.stageLatency.within5Ms * 100, 1)}% / ${fmt(r.stageLatency.within10Ms * 100, 1)}%`, '', '', ''],
    ['  PUBACK p50 / p99 at 10k with inference', `${fmt(r.paced.p50Ms, 2)} / ${fmt(r.paced.p99Ms, 2)} ms`, '', '', ''],
    ['  paced achieved msg/s; max run msg/s', `${fmt(r.paced.achievedRatePerS)}; ${fmt(r.throughput.msgsPerS)}`, '', '', ''],
    ['  mean rows per batch: at 10k / max run', `${fmt(r.meanBatchRows.paced, 1)} / ${fmt(r.meanBatchRows.throughput, 1)}`, '', '', ''],
    ['  inference process RSS / anon / PSS, at 10k', mem(r.child.afterPaced), '', '', ''],
    ['  inference process RSS / anon / PSS, after max', mem(r.child.afterThroughput), '', '', ''],
    ['  agent RSS at 10k / after max run', `${fmt(r.agentRssMb.afterPaced, 1)} / ${fmt(r.agentRssMb.afterThroughput, 1)} MB`, '', '', ''],
    ['  CPU at 10k: agent / inference / publishers', `${fmt(r.pacedCores.agent, 2)} / ${fmt(r.pacedCores.child, 2)} / ${fmt(r.pacedCores.bench, 2)} cores`, '', '', ''],
    ['  CPU in max run: agent / inference / publishers', `${fmt(r.throughputCores.agent, 2)} / ${fmt(r.throughputCores.child, 2)} / ${fmt(r.throughputCores.bench, 2)} cores`, '', '', ''],
    ['  agent CPU per msg in max run', `${fmt(usPerMsg(r.throughputCores.agent, r.rowsPerS), 1)} µs`, '', '', ''],
    ['  unscored rows', fmt(r.unscored), '', '', ''],
  ];
}

function printInferenceNotes(): void {
  console.log('Inference methods: a PCA model (k = 2) over the six metrics of the bench payload, window 1, so every message is one row and');
  console.log('one result. Latency = publish call -> the result on devices/{id}/inference at the publishing device (its own subscription),');
  console.log('every message of the paced run; it includes the PUBACK path (the row is built after the outbox commit), the micro-batch');
  console.log('wait (maxBatchWaitMs 2), one IPC round trip and onnxruntime. RSS of the inference process counts the node binary and');
  console.log('libonnxruntime pages it maps (shared with the page cache and, for node, with the agent); anon is what only it holds; PSS');
  console.log('splits shared pages among the processes mapping them. "commit -> result in the agent" is the agent\'s own histogram');
  console.log('(outpost_inference_latency_seconds, bucket bounds): the inference stage without the ingest path before it.');
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

/** CPU µs per message from cores used at a rate. */
function usPerMsg(cores: number, msgsPerS: number): number {
  return msgsPerS === 0 ? 0 : (cores * 1e6) / msgsPerS;
}

function verdict(t: { ratio: number; met: boolean }): string {
  return `${fmt(t.ratio, 2)}x ${t.met ? 'met' : 'MISSED'}`;
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

function swapFigures(r: SwapResult) {
  return {
    'memory.swap_growth_pct': round(r.growthPct, 2),
    'memory.agent_rss_mb_after_first_swap': round(r.rssAfterFirstMb, 1),
    'memory.agent_rss_mb_after_last_swap': round(r.rssAfterLastMb, 1),
    'inference.swaps': r.swaps,
    'inference.processes_after_swaps': r.inferenceProcesses,
  };
}

/** The comparison at a glance: Outpost's bars against the limit and the peers of the same run. */
function throughputChart(figures: Record<string, unknown>, mode: string, cores: number, time: string): string {
  const n = (name: string): number => Number(figures[name] ?? 0);
  return renderBarChart('Outpost vs. limits and peers, same machine, same run', `${mode} run, ${cores} cores, Node ${process.version}, ${time}; QoS 1, 20 mqtt.js devices, same publishers`, [
    {
      title: 'Device -> durably acknowledged (PUBACK after the write)',
      unit: 'msg/s',
      target: TARGET.msgsPerS,
      bars: [
        { label: 'Outpost agent (SQLite, fsync)', value: n('ingest.qos1.msgs_per_s'), ours: true },
        { label: 'nats-server MQTT -> JetStream', value: n('peer.nats_mqtt.msgs_per_s'), ours: false },
        { label: 'raw aedes, no storage (limit)', value: n('aedes_raw.qos1.msgs_per_s'), ours: false },
      ],
    },
    {
      title: 'Device -> counted at the control plane / in JetStream',
      unit: 'msg/s',
      target: UPLINK_TARGET.e2eMsgsPerS,
      bars: [
        { label: 'Outpost end to end', value: n('e2e.msgs_per_s'), ours: true },
        { label: 'mosquitto + mqtt.js forwarder', value: n('peer.mosquitto_bridge.msgs_per_s'), ours: false },
      ],
    },
    {
      title: 'Backlog drain after an outage',
      unit: 'records/s',
      target: UPLINK_TARGET.drainRecordsPerS,
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
