#!/usr/bin/env node
// Composition root of outpost-sim: the only file that reads argv, writes to stdout/stderr,
// handles signals and calls process.exit.
import { appendFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { DeviceIdSchema, ErrorCode, ExitCode, isOutpostError, OutpostError } from '@outpost/shared';
import { ANOMALY_TYPES, formatTruthLine } from './anomalies/anomaly-types.js';
import { MALFORMED_KINDS } from './faults/message-faults.js';
import { PROFILE_NAMES } from './profiles/index.js';
import { defaultTruthFile, recordScenario, type RecordSummary } from './record/record-file.js';
import { loadScenario, type ScenarioOverrides } from './scenario/load-scenario.js';
import type { ResolvedScenario } from './scenario/resolve-scenario.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_DRAIN_TIMEOUT_MS, startLiveRun, type LiveRunStats, type LiveRunSummary } from './run/live-run.js';

/** Exit code of a run that did not go as planned (refused good devices, unacknowledged publishes, I/O errors). */
const EXIT_RUNTIME_FAILURE = ExitCode.startFailed;
const EXIT_USAGE = ExitCode.configInvalid;
const PROGRESS_INTERVAL_MS = 1_000;

function usageError(message: string): never {
  throw new CommanderError(EXIT_USAGE, 'outpost-sim.usage', message);
}

function numberArg(name: string, check: { min?: number; max?: number; integer?: boolean; positive?: boolean } = {}) {
  return (text: string): number => {
    const value = Number(text);
    const problems = [
      !Number.isFinite(value) || text.trim() === '' ? 'a number' : undefined,
      check.integer === true && !Number.isInteger(value) ? 'an integer' : undefined,
      check.positive === true && !(value > 0) ? 'greater than 0' : undefined,
      check.min !== undefined && value < check.min ? `at least ${check.min}` : undefined,
      check.max !== undefined && value > check.max ? `at most ${check.max}` : undefined,
    ].filter((p) => p !== undefined);
    if (problems.length > 0) throw new InvalidArgumentError(`${name} must be ${problems.join(', ')}`);
    return value;
  };
}

const listArg =
  (allowed: readonly string[]) =>
  (text: string): string[] => {
    const items = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    const unknown = items.filter((i) => !allowed.includes(i));
    if (items.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`expected a comma-separated list of ${allowed.join(', ')}`);
    return items;
  };

interface DevicesOptions {
  scenario?: string;
  url?: string;
  record?: string;
  truth?: string;
  json?: boolean;
  password?: string;
  credentials?: string;
  devices?: number;
  prefix?: string;
  startIndex?: number;
  profile?: string;
  rate?: number;
  totalRate?: number;
  qos?: number;
  duration?: number;
  count?: number;
  seed?: string;
  startTs?: string;
  anomalyRate?: number;
  anomalyTypes?: string[];
  malformed?: number;
  malformedKinds?: string[];
  oversize?: number;
  oversizeBytes?: number;
  badCredentials?: number;
  flaky?: number;
  flakyInterval?: number;
  flakyDown?: number;
  clockSkew?: number;
  clockSkewRatio?: number;
  connectTimeout?: number;
  drainTimeout?: number;
}

function toOverrides(o: DevicesOptions): ScenarioOverrides {
  const seed = o.seed === undefined ? undefined : /^-?\d+$/.test(o.seed) ? Number(o.seed) : o.seed;
  const startTs = o.startTs === undefined ? undefined : /^\d+$/.test(o.startTs) ? Number(o.startTs) : o.startTs;
  return {
    devices: o.devices,
    prefix: o.prefix,
    startIndex: o.startIndex,
    profile: o.profile,
    ratePerS: o.rate,
    totalRatePerS: o.totalRate,
    qos: o.qos,
    durationS: o.duration,
    count: o.count,
    seed,
    startTs,
    anomalyRatePerDeviceHour: o.anomalyRate,
    anomalyTypes: o.anomalyTypes,
    malformedProbability: o.malformed,
    malformedKinds: o.malformedKinds,
    oversizeProbability: o.oversize,
    oversizeBytes: o.oversizeBytes,
    badCredentialsRatio: o.badCredentials,
    flakyRatio: o.flaky,
    flakyIntervalS: o.flakyInterval,
    flakyDownS: o.flakyDown,
    clockSkewS: o.clockSkew,
    clockSkewRatio: o.clockSkewRatio,
  };
}

const CredentialsFileSchema = z.record(DeviceIdSchema, z.string().min(1, 'must be a non-empty password'));

async function loadPasswords(o: DevicesOptions, scenario: ResolvedScenario): Promise<(deviceId: string) => string | undefined> {
  if (o.password !== undefined && o.credentials !== undefined) usageError('use either --password or --credentials, not both');
  if (o.password !== undefined) {
    const password = o.password;
    return () => password;
  }
  if (o.credentials === undefined) return () => undefined;
  let value: unknown;
  try {
    value = JSON.parse(await readFile(o.credentials, 'utf8'));
  } catch (cause) {
    usageError(`cannot read --credentials ${o.credentials}: ${(cause as Error).message}`);
  }
  const parsed = CredentialsFileSchema.safeParse(value);
  if (!parsed.success) {
    usageError(`--credentials ${o.credentials}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  const passwords = parsed.data;
  const missing = scenario.devices.filter((d) => passwords[d.deviceId] === undefined).map((d) => d.deviceId);
  if (missing.length > 0) usageError(`--credentials ${o.credentials} has no password for ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  return (deviceId) => passwords[deviceId];
}

function formatProgress(stats: LiveRunStats, ratePerS: number): string {
  const answers = Object.values(stats.errorAnswers).reduce((a, b) => a + b, 0);
  const errors = stats.publishErrors + answers + stats.refused;
  return (
    `[outpost-sim] ${(stats.elapsedMs / 1000).toFixed(0)}s  rate ${ratePerS} msg/s  sent ${stats.sent}  acked ${stats.acked}  ` +
    `errors ${errors}  reconnects ${stats.reconnects}  connected ${stats.connected}/${stats.devices}\n`
  );
}

function formatLiveSummary(s: LiveRunSummary): string {
  const answers = Object.entries(s.errorAnswers).map(([reason, n]) => `${reason} ${n}`).join(', ') || 'none';
  const lines = [
    `[outpost-sim] done: scenario ${s.scenario}, seed ${s.seed}, ${s.devices} devices (${s.connected} connected, ${s.refused.length} refused) against ${s.url}, QoS ${s.qos}`,
    `  sent ${s.sent} in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.ratePerS} msg/s), acked ${s.acked}, unacked ${s.unacked}, publish errors ${s.publishErrors}`,
    `  malformed ${s.malformedSent}, oversize ${s.oversizeSent}, agent error answers: ${answers}`,
    `  link drops ${s.linkDrops}, reconnects ${s.reconnects}, resent after reconnect ${s.resent}, anomaly episodes ${s.episodes}`,
    ...s.problems.map((p) => `  problem: ${p}`),
  ];
  return `${lines.join('\n')}\n`;
}

function formatRecordSummary(s: RecordSummary): string {
  return (
    `[outpost-sim] recorded scenario ${s.scenario} (seed ${s.seed}): ${s.messages} messages of ${s.devices} devices ` +
    `(${s.malformed} malformed, ${s.oversize} oversize), ${s.episodes} anomaly episodes, ${s.bytes} bytes in ${s.elapsedMs} ms\n` +
    `  records: ${s.recordFile}\n  truth:   ${s.truthFile}\n`
  );
}

async function runDevices(o: DevicesOptions): Promise<number> {
  const scenario = await loadScenario(o.scenario, toOverrides(o));

  if (o.record !== undefined) {
    const truthFile = o.truth ?? defaultTruthFile(o.record);
    const summary = await recordScenario(scenario, { recordFile: o.record, truthFile });
    if (o.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stderr.write(formatRecordSummary(summary));
    return ExitCode.ok;
  }

  if (o.url === undefined) usageError('--url <mqtt://host:port> is required (or --record <file> to write traffic to a file)');
  if (!/^mqtts?:\/\/.+/.test(o.url)) usageError(`--url must be an mqtt:// or mqtts:// URL, got ${JSON.stringify(o.url)}`);
  const passwordFor = await loadPasswords(o, scenario);
  if (o.truth !== undefined) writeFileSync(o.truth, '');
  const truthFile = o.truth;

  const run = startLiveRun({
    scenario,
    url: o.url,
    passwordFor,
    connectTimeoutMs: o.connectTimeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : o.connectTimeout * 1_000,
    drainTimeoutMs: o.drainTimeout === undefined ? DEFAULT_DRAIN_TIMEOUT_MS : o.drainTimeout * 1_000,
    onEvent: (event) => {
      if (event.type === 'truth' && truthFile !== undefined) appendFileSync(truthFile, `${formatTruthLine(event.line)}\n`);
    },
  });
  const onSignal = (): void => run.stop();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let progress: NodeJS.Timeout | undefined;
  if (o.json !== true) {
    let previous = { atMs: Date.now(), sent: 0 };
    progress = setInterval(() => {
      const stats = run.stats();
      const atMs = Date.now();
      const ratePerS = Math.round(((stats.sent - previous.sent) * 1_000) / Math.max(1, atMs - previous.atMs));
      previous = { atMs, sent: stats.sent };
      process.stderr.write(formatProgress(stats, ratePerS));
    }, PROGRESS_INTERVAL_MS);
  }
  const summary = await run.done;
  clearInterval(progress);
  if (o.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stderr.write(formatLiveSummary(summary));
  return summary.problems.length === 0 ? ExitCode.ok : EXIT_RUNTIME_FAILURE;
}

const program = new Command()
  .name('outpost-sim')
  .description('Outpost simulators: devices with labelled anomalies and faults, recorded traffic')
  .exitOverride();

program
  .command('devices')
  .description('simulate MQTT devices against a broker (--url), or record their traffic to a file (--record)')
  .option('--scenario <file>', 'scenario file (YAML or JSON); flags below override its values')
  .option('--url <url>', 'broker to connect to, e.g. mqtt://127.0.0.1:1884')
  .option('--record <file>', 'write the traffic to a JSONL file instead, no broker, in simulated time (needs --duration or --count)')
  .option('--truth <file>', 'ground-truth JSONL (one line per anomaly episode); with --record default <file>.truth.jsonl')
  .option('--json', 'print one JSON summary on stdout and no progress lines')
  .option('--password <password>', 'password of every device (user name = device id)')
  .option('--credentials <file>', 'JSON file {"<deviceId>": "<password>"}')
  .option('--devices <n>', 'number of devices (replaces the scenario\'s device groups by one)', numberArg('--devices', { integer: true, min: 1 }))
  .option('--prefix <prefix>', 'device id prefix; ids are prefix + 4-digit index (default dev-0001, dev-0002...)')
  .option('--start-index <n>', 'index of the first device (default 1)', numberArg('--start-index', { integer: true, min: 0 }))
  .addOption(new Option('--profile <name>', 'device profile').choices(PROFILE_NAMES))
  .option('--rate <msgPerS>', 'messages per second of each device (default 1)', numberArg('--rate', { positive: true }))
  .option('--total-rate <msgPerS>', 'messages per second over all devices', numberArg('--total-rate', { positive: true }))
  .addOption(new Option('--qos <qos>', 'MQTT QoS of telemetry (default 1)').choices(['0', '1']).argParser(Number))
  .option('--duration <s>', 'run length in seconds (simulated seconds with --record)', numberArg('--duration', { positive: true }))
  .option('--count <n>', 'messages per device', numberArg('--count', { integer: true, min: 1 }))
  .option('--seed <seed>', 'seed of everything random (default 1)')
  .option('--start-ts <time>', 'simulated start with --record: epoch ms or ISO time (default 2026-01-01T00:00:00Z)')
  .option('--anomaly-rate <perDeviceHour>', 'anomaly episodes per device-hour (0: none)', numberArg('--anomaly-rate', { min: 0 }))
  .option('--anomaly-types <list>', `only these anomaly types: ${ANOMALY_TYPES.join(',')}`, listArg(ANOMALY_TYPES))
  .option('--malformed <probability>', 'chance that a message is malformed', numberArg('--malformed', { min: 0, max: 1 }))
  .option('--malformed-kinds <list>', `which malformations: ${MALFORMED_KINDS.join(',')}`, listArg(MALFORMED_KINDS))
  .option('--oversize <probability>', 'chance that a message is oversize (sent with QoS 0)', numberArg('--oversize', { min: 0, max: 1 }))
  .option('--oversize-bytes <n>', 'size of an oversize payload (default maxPacketBytes + 1 KiB)', numberArg('--oversize-bytes', { integer: true, min: 1024 }))
  .option('--bad-credentials <ratio>', 'share of devices that use a wrong password', numberArg('--bad-credentials', { min: 0, max: 1 }))
  .option('--flaky <ratio>', 'share of devices whose link drops (default 1 when --flaky-interval is set)', numberArg('--flaky', { min: 0, max: 1 }))
  .option('--flaky-interval <s>', 'a flaky link drops every this many seconds, right after a publish', numberArg('--flaky-interval', { positive: true }))
  .option('--flaky-down <s>', 'a dropped link reconnects after this many seconds (default 1)', numberArg('--flaky-down', { positive: true }))
  .option('--clock-skew <s>', 'device clocks off by this many seconds (sign per device)', numberArg('--clock-skew', { positive: true }))
  .option('--clock-skew-ratio <ratio>', 'share of devices with clock skew (default 1)', numberArg('--clock-skew-ratio', { min: 0, max: 1 }))
  .option('--connect-timeout <s>', `seconds devices get to connect (default ${DEFAULT_CONNECT_TIMEOUT_MS / 1000})`, numberArg('--connect-timeout', { positive: true }))
  .option('--drain-timeout <s>', `seconds to wait for outstanding acks at the end (default ${DEFAULT_DRAIN_TIMEOUT_MS / 1000})`, numberArg('--drain-timeout', { positive: true }))
  .action(async (o: DevicesOptions) => {
    process.exitCode = await runDevices(o);
  });

program
  .command('fleet')
  .description('simulate a fleet of agents (not implemented yet)')
  .allowUnknownOption()
  .action(() => usageError('outpost-sim fleet is not implemented yet (a later issue); use outpost-sim devices'));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version end with exit code 0; commander has already printed its own errors.
    if (error.code === 'outpost-sim.usage') process.stderr.write(`outpost-sim: ${error.message}\n`);
    process.exit(error.exitCode === 0 ? ExitCode.ok : EXIT_USAGE);
  }
  if (isOutpostError(error, ErrorCode.SCENARIO_INVALID) || isOutpostError(error, ErrorCode.CONFIG_UNREADABLE)) {
    process.stderr.write(`outpost-sim: ${error.message}\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`outpost-sim: ${error instanceof OutpostError ? error.message : (error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT_RUNTIME_FAILURE);
}
// Sockets and timers are closed; exit now rather than wait for a straggling handle.
process.exit(process.exitCode ?? ExitCode.ok);
