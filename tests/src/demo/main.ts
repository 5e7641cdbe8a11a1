#!/usr/bin/env node
// Composition root of `npm run demo`: the only demo file that reads argv, prints, handles
// signals and calls process.exit. It starts nats-server, the control plane, the agents and the
// device simulators (demo-stack.ts), prints where everything is and every restart of a process
// that died, and stops it all on Ctrl-C or when a process keeps dying.
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DemoSetupError, startDemoStack, type DemoEndpoints, type DemoEvent, type DemoFailure, type DemoStack } from './demo-stack.js';
import { describeExit } from './processes.js';
import { DEFAULT_RESTART_LIMIT, formatRestartLimit } from './restart-policy.js';
import {
  DEFAULT_DEMO_AGENTS,
  DEFAULT_DEMO_DATA_DIR,
  DEFAULT_DEMO_DEVICES,
  DEFAULT_DEMO_HTTP_PORT,
  DEFAULT_DEMO_RATE_PER_S,
  formatModelRef,
  type DemoOptions,
} from './stack-config.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const USAGE = `Usage: npm run demo -- [options]   (or: node tests/dist/demo/main.js [options])

Starts nats-server (JWT auth and TLS with a throwaway CA), the Outpost control plane, agents
enrolled through its API with embedded MQTT brokers and local inference (the shipped anomaly
model, signed with the dev key .keys/dev-signing-key.pem, created on first use), and simulated
devices on this machine; prints the dashboard URL and the endpoints (not the operator token:
it stays in <data-dir>/operator-token); Ctrl-C stops everything. A process that dies on its
own (kill -9 an agent) is restarted on its data dir, config and ports, and the restart is
printed; one that keeps dying (more than ${formatRestartLimit(DEFAULT_RESTART_LIMIT)}) stops the demo.

Options:
  --agents <n>       agents to start (default ${DEFAULT_DEMO_AGENTS})
  --devices <n>      simulated devices over all agents (default ${DEFAULT_DEMO_DEVICES})
  --rate <msgPerS>   messages per second of each simulated device (default ${DEFAULT_DEMO_RATE_PER_S}; the model scores
                     windows of 32 messages: a device's first inference result comes after 32 of them)
  --no-sim           start no device simulator (publish yourself with the printed credential)
  --sim-duration <s> simulators send for this many seconds, then end and print what was acknowledged;
                     the rest keeps running (default: they run until the demo stops)
  --no-inference     agents without local inference (no model is signed or loaded)
  --insecure         an open nats-server (no auth, no TLS) and agents with its URL, for debugging
  --http-port <p>    control-plane HTTP port: dashboard and API (default ${DEFAULT_DEMO_HTTP_PORT}; 0 = any free port)
  --data-dir <dir>   where configs, data and logs go; emptied on every start (default .data/demo)
  -h, --help         this text`;

class UsageError extends Error {}

function integer(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

function parseOptions(argv: string[]): DemoOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        agents: { type: 'string' },
        devices: { type: 'string' },
        rate: { type: 'string' },
        'no-sim': { type: 'boolean' },
        'sim-duration': { type: 'string' },
        'no-inference': { type: 'boolean' },
        insecure: { type: 'boolean' },
        'http-port': { type: 'string' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help === true) return 'help';
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0 && rate <= 10_000)) throw new UsageError(`--rate must be a number above 0 and at most 10000, got ${JSON.stringify(values.rate)}`);
  const simDuration = values['sim-duration'] === undefined ? undefined : Number(values['sim-duration']);
  if (simDuration !== undefined && !(Number.isFinite(simDuration) && simDuration > 0)) throw new UsageError(`--sim-duration must be a number of seconds above 0, got ${JSON.stringify(values['sim-duration'])}`);
  return {
    agents: integer('--agents', values.agents, 1, 50) ?? DEFAULT_DEMO_AGENTS,
    devices: integer('--devices', values.devices, 0, 100_000) ?? DEFAULT_DEMO_DEVICES,
    ratePerS: rate ?? DEFAULT_DEMO_RATE_PER_S,
    sim: values['no-sim'] !== true,
    simDurationS: simDuration,
    inference: values['no-inference'] !== true,
    secure: values.insecure !== true,
    httpPort: integer('--http-port', values['http-port'], 0, 65_535) ?? DEFAULT_DEMO_HTTP_PORT,
    dataDir: resolve(values['data-dir'] ?? DEFAULT_DEMO_DATA_DIR),
  };
}

const shown = (path: string): string => {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
};

function deviceRange(devices: string[]): string {
  if (devices.length === 0) return '-';
  return devices.length === 1 ? devices[0]! : `${devices[0]}..${devices[devices.length - 1]} (${devices.length})`;
}

/** A path as a shell word: quoted only when it needs to be. */
function shellWord(text: string): string {
  return /^[\w./@%+=:,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

function formatSeconds(seconds: number): string {
  return `${Number(seconds.toFixed(1))} s`;
}

function printReady(e: DemoEndpoints): void {
  const manual = e.device;
  const port = new URL(manual.mqttUrl).port;
  const header = ['agent', 'MQTT', 'labels', 'model', 'simulated devices'];
  const rows = e.agents.map((a) => [a.agentId, a.mqttUrl, Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(' '), a.model ?? '-', deviceRange(a.devices)]);
  const widths = header.map((h, i) => Math.max(...rows.map((r) => r[i]!.length), h.length));
  const row = (cells: string[]): string => `    ${cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i]!) : c)).join('   ')}`;
  const model = e.model;
  const modelLines =
    model === null
      ? ['  model       none: agents without local inference (--no-inference)']
      : [
          `  model       ${formatModelRef(model.ref)} on every agent, signed manifest ${shown(model.signedManifestPath)}`,
          `              (signed with the dev key ${shown(model.keyFile)}${model.keyGenerated ? ', created now' : ''}; agents trust only its public half)`,
          `              each device's first result after ${model.windowSamples} messages (${formatSeconds(model.windowSamples / e.ratePerS)} at ${e.ratePerS} msg/s); anomalies:`,
          `              curl -H "Authorization: Bearer $OUTPOST_TOKEN" ${e.apiUrl}/anomalies`,
        ];
  const security = e.security;
  const natsLines =
    security === null
      ? [`  NATS        ${e.natsUrl}: OPEN, no auth and no TLS (--insecure)`]
      : [
          `  NATS        ${e.natsUrl}: JWT auth (agents in an account of their own) + TLS; CA ${shown(security.caFile)}`,
          `              agents enrolled through the API, their bundles (0600): ${shown(join(dirname(Object.values(security.bundles)[0] ?? security.authDir), '<agent>.bundle.json'))}`,
          `              control plane creds and signing keys (0600): ${shown(security.authDir)}`,
        ];
  const tokenFile = shown(e.tokenFile);
  const lines = [
    '',
    `Outpost demo is running: ${e.agents.length} agent(s), ${e.simulatedDevices} simulated device(s). Ctrl-C stops everything.`,
    `A process that dies is restarted on its data dir and ports (try kill -9 on an agent); one that dies more than ${formatRestartLimit(DEFAULT_RESTART_LIMIT)} stops the demo.`,
    '',
    `  dashboard   ${e.dashboardUrl}   (sign in with the operator token, in ${tokenFile})`,
    `  CLI         export OUTPOST_URL=${new URL(e.apiUrl).origin} OUTPOST_TOKEN=$(cat ${shellWord(tokenFile)})`,
    `              node control-plane/dist/cli/main.js agents ls   (outpostctl; to roll out a model: README, "Roll out a model")`,
    `  HTTP API    ${e.apiUrl}/agents   (header Authorization: Bearer $OUTPOST_TOKEN; description at ${e.apiUrl}/openapi.json)`,
    ...natsLines,
    ...modelLines,
    '',
    row(header),
    ...rows.map(row),
    '',
    `  your device (not simulated, on ${manual.agentId}): user ${manual.username}, password ${manual.password}`,
    `    mosquitto_pub -h 127.0.0.1 -p ${port} -i ${manual.username} -u ${manual.username} -P ${manual.password} -q 1 -t devices/${manual.username}/telemetry \\`,
    `      -m "{\\"ts\\": $(date +%s000), \\"seq\\": 1, \\"metrics\\": {\\"temperature\\": 21.5}}"`,
    `    curl -H "Authorization: Bearer $OUTPOST_TOKEN" ${e.apiUrl}/agents/${manual.agentId}/devices/${manual.username}`,
    '',
    `  configs, data and logs: ${shown(e.dataDir)} (simulated devices' passwords: ${shown(e.dataDir)}/device-credentials.json, operator token: ${tokenFile})`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  // The machine-readable line, for scripts and tests: same endpoints.
  const ready = {
    event: 'demo-ready',
    dashboardUrl: e.dashboardUrl,
    apiUrl: e.apiUrl,
    tokenFile: e.tokenFile,
    natsUrl: e.natsUrl,
    security: e.security,
    dataDir: e.dataDir,
    agents: e.agents.map((a) => ({ agentId: a.agentId, mqttUrl: a.mqttUrl, httpUrl: a.httpUrl, labels: a.labels, devices: a.devices, model: a.model })),
    model:
      model === null
        ? null
        : {
            name: model.ref.name,
            version: model.ref.version,
            onnxPath: model.onnxPath,
            signedManifestPath: model.signedManifestPath,
            keyFile: model.keyFile,
            keyId: model.trustedKey.keyId,
            keyGenerated: model.keyGenerated,
          },
    ratePerS: e.ratePerS,
    device: e.device,
    simulatedDevices: e.simulatedDevices,
    pid: process.pid,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

/**
 * One human line on stderr (`demo: agent demo-agent-2 exited (signal SIGKILL); restarted in
 * 0.4 s (restart 1)`) and one JSON line on stdout for scripts, like the ready line.
 */
function printEvent(event: DemoEvent): void {
  switch (event.type) {
    case 'restarted':
      process.stderr.write(`demo: ${event.name} exited (${describeExit(event.exit)}); restarted in ${formatSeconds(event.downMs / 1_000)} (restart ${event.restarts})\n`);
      process.stdout.write(`${JSON.stringify({ event: 'demo-process-restarted', name: event.name, exit: event.exit, downMs: event.downMs, restarts: event.restarts, pid: event.pid })}\n`);
      break;
    case 'restart-failed':
      process.stderr.write(`demo: ${event.name} did not start again: ${event.error.split('\n')[0]}; trying again\n`);
      process.stdout.write(`${JSON.stringify({ event: 'demo-restart-failed', name: event.name, error: event.error })}\n`);
      break;
    case 'simulator-finished': {
      const s = event.summary;
      const figures =
        s === undefined
          ? 'it printed no summary'
          : `sent ${s.sent}, acknowledged ${s.acked} (telemetry PUBACKed ${s.telemetryPubacked}), unacknowledged ${s.unacked}${s.problems.length > 0 ? `; problems: ${s.problems.join('; ')}` : ''}`;
      process.stderr.write(`demo: ${event.name} finished (${describeExit(event.exit)}): ${figures}; the rest keeps running\n`);
      process.stdout.write(`${JSON.stringify({ event: 'demo-simulator-finished', name: event.name, exit: event.exit, summary: s ?? null })}\n`);
      break;
    }
  }
}

function describeFailure(f: DemoFailure): string {
  return `${f.name} died again (${f.why}) after ${f.recent} restart(s) within ${formatSeconds(f.limit.intervalMs / 1_000)}; the limit is ${formatRestartLimit(f.limit)}, so it stays down`;
}

async function main(): Promise<number> {
  let options: DemoOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`demo: ${(error as Error).message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }

  // Signals are handled from the start: a Ctrl-C during start-up stops the demo once the
  // stack is up (or has failed), a second one kills every child at once.
  let stack: DemoStack | undefined;
  let signalled: NodeJS.Signals | undefined;
  let onSignal: (() => void) | undefined;
  const handleSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      process.stderr.write('demo: second signal, killing every process now\n');
      stack?.kill();
      process.exit(EXIT_FAILED);
    }
    signalled = signal;
    onSignal?.();
  };
  process.on('SIGINT', handleSignal);
  process.on('SIGTERM', handleSignal);

  process.stderr.write(
    `demo: starting nats-server (${options.secure ? 'JWT auth + TLS' : 'open: --insecure'}), the control plane and ${options.agents} agent(s) (data in ${shown(options.dataDir)})...\n`,
  );
  try {
    stack = await startDemoStack(options, { onEvent: printEvent });
  } catch (error) {
    if (signalled !== undefined) return EXIT_OK;
    process.stderr.write(`demo: ${error instanceof DemoSetupError ? error.message : (error as Error).message}\n`);
    return EXIT_FAILED;
  }
  const running = stack;

  const outcome = await new Promise<{ type: 'signal' } | { type: 'failure'; failure: DemoFailure }>((resolveOutcome) => {
    onSignal = () => resolveOutcome({ type: 'signal' });
    if (signalled !== undefined) onSignal();
    void running.failure.then((failure) => resolveOutcome({ type: 'failure', failure }));
    if (signalled === undefined) printReady(running.endpoints);
  });

  if (outcome.type === 'failure') {
    const f = outcome.failure;
    process.stderr.write(`demo: ${describeFailure(f)}; its last output:\n${f.tail || '(none)'}\ndemo: stopping the rest (logs in ${shown(running.endpoints.logsDir)})\n`);
    process.stdout.write(`${JSON.stringify({ event: 'demo-failed', name: f.name, why: f.why, recent: f.recent, restarts: f.restarts, limit: f.limit })}\n`);
  } else {
    process.stderr.write('demo: stopping simulators, agents, control plane, nats-server...\n');
  }
  await running.close();
  process.stderr.write('demo: stopped\n');
  return outcome.type === 'signal' ? EXIT_OK : EXIT_FAILED;
}

process.exit(await main());
