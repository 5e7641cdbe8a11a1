import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { relative } from 'node:path';
import { DEFAULT_INFERENCE_SELF_TEST_TIMEOUT_MS } from '@outpost/shared';
import { AGENT_NODE_FLAGS } from '@outpost/agent';
import { resolveExecutable, waitFor } from '../harness/wait.js';
import { findNatsServer, startDemoNats, startDemoProcess, type ChildExit, type DemoProcess, type StartDemoProcessOptions, type StartedDemoProcess } from './processes.js';
import type { RestartLimit } from './restart-policy.js';
import { controlPlaneSecurityConfig, createDemoNatsSecurity, enrollDemoAgent, type DemoNatsSecurity } from './security.js';
import {
  agentConfig,
  BINARIES,
  controlPlaneConfig,
  generateOperatorToken,
  demoPaths,
  formatModelRef,
  generateDevicePasswords,
  MANUAL_DEVICE_ID,
  pinAgentPorts,
  planDemoAgents,
  prepareDemoModel,
  REPO_ROOT,
  simulatorArgs,
  type DemoAgentPlan,
  type DemoModel,
  type DemoNatsAccess,
  type DemoOptions,
  type DemoUplink,
} from './stack-config.js';
import { superviseProcess, type SupervisedProcess, type SupervisorEvent } from './supervisor.js';

/** A reason the demo cannot start that the user can fix; main prints the message only. */
export class DemoSetupError extends Error {
  override readonly name = 'DemoSetupError';
}

/**
 * Where everything runs, as printed for the user and in the JSON ready line. Paths to secrets,
 * never a secret: the demo prints none (the operator token is in `tokenFile`).
 */
export interface DemoEndpoints {
  /** The dashboard (it asks for the operator token). */
  dashboardUrl: string;
  apiUrl: string;
  /** The file (0600) holding the operator's bearer token for the API and dashboard. */
  tokenFile: string;
  /** `tls://` when secured. */
  natsUrl: string;
  /** How NATS is secured; null with --insecure (an open server). */
  security: {
    /** JWT auth (operator mode, agents in their own account) and TLS. */
    mode: 'jwt+tls';
    /** The CA clients check the server's certificate with. */
    caFile: string;
    /** What `outpost-control-plane setup` wrote (creds, signing keys: 0600). */
    authDir: string;
    /** Each agent's enrolment bundle (0600), by agent id. */
    bundles: Record<string, string>;
  } | null;
  dataDir: string;
  logsDir: string;
  agents: {
    agentId: string;
    mqttUrl: string;
    /** The agent's own HTTP server: /healthz, /metrics. */
    httpUrl: string;
    labels: Record<string, string>;
    devices: string[];
    /** The model the agent reports serving (`name@version`); null with --no-inference. */
    model: string | null;
  }[];
  /** The model files and signing key the agents were given; null with --no-inference. */
  model: DemoModel | null;
  /** Messages per second of each simulated device. */
  ratePerS: number;
  /** A device the simulator does not drive, for the user's own publishes. */
  device: { username: string; password: string; agentId: string; mqttUrl: string };
  simulatedDevices: number;
}

/** The figures of a simulator's JSON summary (its last line) that the demo prints when it ends. */
export interface SimulatorFigures {
  sent: number;
  acked: number;
  /** QoS 1 telemetry PUBACKed, over all its devices. */
  telemetryPubacked: number;
  unacked: number;
  problems: string[];
}

/** What happens to the demo's processes while it runs; main prints each one. */
export type DemoEvent =
  | Exclude<SupervisorEvent, { type: 'ended' | 'gave-up' }>
  /** A simulator given a duration (--sim-duration) ended; `summary` undefined when it printed none. */
  | { type: 'simulator-finished'; name: string; exit: ChildExit; summary: SimulatorFigures | undefined };

/** A process that kept dying: restarted as often as the limit allows, it stays down and the demo stops. */
export type DemoFailure = Extract<SupervisorEvent, { type: 'gave-up' }>;

export interface DemoStackHooks {
  onEvent?(event: DemoEvent): void;
  /** Default DEFAULT_RESTART_LIMIT (5 restarts in 60 s per process). */
  restartLimit?: RestartLimit;
}

export interface DemoStack {
  readonly endpoints: DemoEndpoints;
  /**
   * Resolves when a process keeps dying: every process that dies on its own is restarted (same
   * command, config, data dir and ports) until it reaches the restart limit.
   */
  readonly failure: Promise<DemoFailure>;
  /**
   * Stops in reverse order of start: simulators, agents, control plane, nats-server; before it
   * stops any, it ends every supervision, so nothing is restarted during the shutdown. Idempotent.
   */
  close(): Promise<void>;
  /** SIGKILLs every child still running (a second Ctrl-C). */
  kill(): void;
}

/** The figures of the last JSON summary line (`"mode":"live"`) in a simulator's output. */
export function readSimulatorSummary(output: string): SimulatorFigures | undefined {
  for (const line of output.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      const s = JSON.parse(line) as { mode?: unknown; sent?: unknown; acked?: unknown; unacked?: unknown; problems?: unknown; perDevice?: Record<string, { telemetryPubacked?: unknown }> };
      if (s.mode !== 'live') continue;
      const count = (v: unknown): number => (typeof v === 'number' ? v : 0);
      return {
        sent: count(s.sent),
        acked: count(s.acked),
        telemetryPubacked: Object.values(s.perDevice ?? {}).reduce((sum, d) => sum + count(d.telemetryPubacked), 0),
        unacked: count(s.unacked),
        problems: Array.isArray(s.problems) ? s.problems.map(String) : [],
      };
    } catch {
      // Not a summary line.
    }
  }
  return undefined;
}

/** Fails with a message naming the port and the option when `port` is taken on 127.0.0.1. */
async function checkHttpPort(port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE' || error.code === 'EACCES'
          ? new DemoSetupError(`HTTP port ${port} is ${error.code === 'EACCES' ? 'not allowed' : 'already in use'} on 127.0.0.1 (another service, or another demo?). Choose another with --http-port <port>, or --http-port 0 for any free port.`)
          : error,
      );
    });
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve()));
  });
}

function checkPrerequisites(options: DemoOptions): string {
  const missing = Object.values(BINARIES).filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new DemoSetupError(`not built yet: ${missing.map((f) => relative(REPO_ROOT, f)).join(', ')}. Run \`npm run build\` first (\`npm run demo\` does).`);
  }
  const nats = findNatsServer();
  if (nats === undefined) {
    throw new DemoSetupError(
      'nats-server is not installed (not found on PATH nor in /usr/sbin). Install it, e.g. on Debian/Ubuntu: `sudo apt-get install nats-server` ' +
        '(or download a release from https://github.com/nats-io/nats-server/releases and put it on PATH), then run the demo again.',
    );
  }
  if (options.secure && resolveExecutable('openssl') === undefined) {
    throw new DemoSetupError(
      'openssl is not installed: the demo makes a throwaway CA and certificate for NATS TLS with it. Install it, e.g. `sudo apt-get install openssl`, ' +
        'or start the demo with --insecure (an open NATS, for debugging).',
    );
  }
  return nats;
}

/**
 * How long an agent's inference gets, after its ready line, to report its model serving: the
 * agent loads the model before it is ready, so this covers only a first inference process that
 * died and is restarting, which has its self-test time again.
 */
const DEMO_INFERENCE_UP_TIMEOUT_MS = DEFAULT_INFERENCE_SELF_TEST_TIMEOUT_MS + 5_000;

interface HealthCheckView {
  name: string;
  ok: boolean;
  detail?: string;
}

async function readAgentHealth(httpPort: number): Promise<HealthCheckView[] | undefined> {
  try {
    // 503 while any check fails: the body still lists every check.
    const response = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await response.json()) as { checks?: HealthCheckView[] };
    return Array.isArray(body.checks) ? body.checks : undefined;
  } catch {
    return undefined; // busy or not answering yet: probe again
  }
}

/** The agent's own reason for refusing its model (its `model-refused` log line), if it logged one. */
function findModelRefusal(tail: string): string | undefined {
  for (const line of tail.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { event?: unknown; code?: unknown; err?: { message?: unknown } };
      if (entry.event === 'model-refused') return `${String(entry.code)}: ${String(entry.err?.message ?? 'no reason given')}`;
    } catch {
      // not a log line of the agent's own
    }
  }
  return undefined;
}

/**
 * Waits until the agent's /healthz reports inference serving `model`, and returns what it
 * reports (`name@version`). An agent that refused its model starts anyway, degraded, so that
 * ingest goes on; the demo is there to show inference, so it stops with the agent's reason.
 *
 * @throws DemoSetupError naming the agent, its reason (or last health detail) and its last output.
 */
export async function waitForAgentInference(agent: StartedDemoProcess, model: DemoModel): Promise<string> {
  const expected = formatModelRef(model.ref);
  const httpPort = agent.ready['httpPort'] as number;
  const manifest = model.signedManifestPath.startsWith(REPO_ROOT) ? relative(REPO_ROOT, model.signedManifestPath) : model.signedManifestPath;
  // The agent's own reason says it all; without one, its last output may.
  const fail = (why: string, withTail = true): DemoSetupError =>
    new DemoSetupError(
      `${agent.name} does not run the model ${expected} (${manifest}): ${why}.${withTail ? ` Its last output:\n${agent.tail() || '(none)'}` : ''}\n` +
        'Fix the model (models/README.md), or start the demo without local inference: --no-inference.',
    );
  let last = 'its /healthz did not answer';
  let serving: string;
  try {
    serving = await waitFor(
      async () => {
        const refusal = findModelRefusal(agent.tail());
        if (refusal !== undefined) throw fail(`it refused it, ${refusal}`, false);
        if (!agent.isRunning()) throw fail('it exited');
        const checks = await readAgentHealth(httpPort);
        if (checks === undefined) return undefined;
        const inference = checks.find((c) => c.name === 'inference');
        if (inference === undefined) throw fail('its /healthz has no inference check (inference not enabled)');
        last = `inference ${inference.ok ? 'ok' : 'not ok'}: ${inference.detail ?? '-'}`;
        return inference.ok ? (inference.detail ?? expected) : undefined;
      },
      { what: `local inference of ${agent.name}`, timeoutMs: DEMO_INFERENCE_UP_TIMEOUT_MS, intervalMs: 100 },
    );
  } catch (error) {
    if (error instanceof DemoSetupError) throw error;
    throw fail(`not up within ${DEMO_INFERENCE_UP_TIMEOUT_MS / 1000} s (${last})`);
  }
  if (serving !== expected) throw fail(`it serves ${serving}`);
  return serving;
}

/**
 * Empties the data dir for a fresh demo. A directory that holds something but is not a demo
 * data dir (no marker file) is left alone: a mistyped --data-dir must not wipe anything.
 */
async function prepareDataDir(dataDir: string): Promise<void> {
  const paths = demoPaths(dataDir);
  if (existsSync(dataDir) && (await readdir(dataDir)).length > 0 && !existsSync(paths.marker)) {
    throw new DemoSetupError(`${dataDir} is not empty and was not made by the demo; choose another --data-dir (it is emptied on every start).`);
  }
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(paths.nats, { recursive: true });
  await mkdir(paths.logs, { recursive: true });
  await mkdir(paths.agents, { recursive: true });
  await writeFile(paths.marker, 'Made by `npm run demo`; emptied on every start.\n');
}

/**
 * Starts the whole demo: nats-server (JetStream), the control plane, the agents, and one
 * device simulator per agent, each supervised: one that dies on its own is restarted (see
 * DemoStack.failure), a simulator given a duration ends on its own and is reported. If any
 * step fails, what already started is stopped again and the error (with the failed child's
 * last output) is thrown.
 */
export async function startDemoStack(options: DemoOptions, hooks: DemoStackHooks = {}): Promise<DemoStack> {
  const natsBinary = checkPrerequisites(options);
  await checkHttpPort(options.httpPort);
  await prepareDataDir(options.dataDir);
  const paths = demoPaths(options.dataDir);
  // Before any process starts: a model that cannot be signed stops the demo with nothing to undo.
  let model: DemoModel | undefined;
  if (options.inference) {
    try {
      model = await prepareDemoModel(options.dataDir);
    } catch (error) {
      throw new DemoSetupError(`cannot prepare the model for the agents: ${(error as Error).message}`);
    }
  }

  // Also before any process starts: the NATS auth material and TLS certificates, made fresh.
  let security: DemoNatsSecurity | undefined;
  if (options.secure) {
    try {
      security = await createDemoNatsSecurity(paths.natsAuth, paths.natsTls);
    } catch (error) {
      throw new DemoSetupError(`cannot set up NATS auth and TLS: ${(error as Error).message} (or start the demo with --insecure)`);
    }
  }

  /** In start order; close stops them in reverse, layer by layer. */
  const layers: SupervisedProcess[][] = [];
  let reportFailure: (failure: DemoFailure) => void = () => {};
  const failure = new Promise<DemoFailure>((resolve) => (reportFailure = resolve));
  const onSupervisorEvent = (event: SupervisorEvent): void => {
    if (event.type === 'gave-up') reportFailure(event);
    else if (event.type === 'ended') hooks.onEvent?.({ type: 'simulator-finished', name: event.name, exit: event.exit, summary: readSimulatorSummary(event.tail) });
    else hooks.onEvent?.(event);
  };
  /**
   * Supervises a started process; `restart` starts it again with the same command (undefined:
   * it is not restarted). A restart reuses the config file, so the same data dir and ports.
   */
  const supervise = (first: DemoProcess, restart: ((signal: AbortSignal) => Promise<DemoProcess>) | undefined): SupervisedProcess =>
    superviseProcess({ first, restart, onEvent: onSupervisorEvent, limit: hooks.restartLimit });
  const restartWith = (spec: StartDemoProcessOptions) => (signal: AbortSignal) => startDemoProcess({ ...spec, signal });

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      // Supervision ends everywhere first: a process that dies while the others stop stays down.
      for (const layer of layers) for (const p of layer) p.retire();
      for (const layer of layers.slice().reverse()) await Promise.all(layer.map((p) => p.stop()));
    })();
    return closed;
  };

  try {
    const nats = await startDemoNats(natsBinary, paths.nats, paths.log('nats-server'), { ...(security === undefined ? {} : { security }) });
    // Restarted on the port its clients have, on its store and with its auth and certificate: agents and control plane reconnect by themselves.
    layers.push([supervise(nats, (signal) => startDemoNats(natsBinary, paths.nats, paths.log('nats-server'), { port: nats.port, signal, ...(security === undefined ? {} : { security }) }))]);

    const operatorToken = generateOperatorToken();
    await writeFile(paths.operatorToken, `${operatorToken}\n`, { mode: 0o600 });
    const natsAccess: DemoNatsAccess = { url: nats.url, security: security === undefined ? undefined : controlPlaneSecurityConfig(security, nats.url) };
    // Uploads must be signed with the dev key, and enrolment bundles tell agents to trust it.
    const trustedKeys = model === undefined ? [] : [model.trustedKey];
    await writeFile(paths.controlPlaneConfig, JSON.stringify(controlPlaneConfig(natsAccess, options.httpPort, operatorToken, trustedKeys), null, 2));
    const controlPlaneSpec: StartDemoProcessOptions = {
      name: 'control-plane',
      file: process.execPath,
      args: [BINARIES.controlPlane, '--config', paths.controlPlaneConfig],
      readyEvent: 'control-plane-ready',
      logFile: paths.log('control-plane'),
    };
    const controlPlane = await startDemoProcess(controlPlaneSpec);
    layers.push([supervise(controlPlane, restartWith(controlPlaneSpec))]);
    const httpPort = controlPlane.ready['httpPort'] as number;
    // A restart serves the dashboard and API where the user has them open.
    if (options.httpPort !== httpPort) await writeFile(paths.controlPlaneConfig, JSON.stringify(controlPlaneConfig(natsAccess, httpPort, operatorToken, trustedKeys), null, 2));
    const base = `http://127.0.0.1:${httpPort}`;

    const plans = planDemoAgents(options);
    const passwords = generateDevicePasswords([...plans.flatMap((p) => p.deviceIds), MANUAL_DEVICE_ID]);
    await writeFile(paths.credentials, JSON.stringify(passwords, null, 2), { mode: 0o600 });

    const startAgent = async (plan: DemoAgentPlan): Promise<{ agent: StartedDemoProcess; spec: StartDemoProcessOptions }> => {
      const file = paths.agentConfig(plan.agentId);
      let uplink: DemoUplink = { servers: [nats.url] };
      if (security !== undefined) {
        // Enrolled as an operator would (outpostctl agents enroll): its bundle, written once, serves every restart.
        const bundleFile = paths.agentBundle(plan.agentId);
        try {
          await enrollDemoAgent(`${base}/api`, operatorToken, plan.agentId, plan.labels, bundleFile);
        } catch (error) {
          throw new DemoSetupError(`${(error as Error).message}; the control plane's log: ${paths.log('control-plane')}`);
        }
        uplink = { enrollmentFile: bundleFile };
      }
      const config = await agentConfig(plan, uplink, options.dataDir, passwords, model);
      await writeFile(file, JSON.stringify(config, null, 2));
      const spec: StartDemoProcessOptions = {
        name: `agent ${plan.agentId}`,
        file: process.execPath,
        args: [...AGENT_NODE_FLAGS, BINARIES.agent, '--config', file],
        readyEvent: 'agent-ready',
        logFile: paths.log(plan.agentId),
      };
      const agent = await startDemoProcess(spec);
      try {
        await writeFile(file, JSON.stringify(pinAgentPorts(config, { mqttPort: agent.ready['mqttPort'] as number, httpPort: agent.ready['httpPort'] as number }), null, 2));
      } catch (error) {
        await agent.stop(1_000);
        throw error;
      }
      return { agent, spec };
    };
    const agentStarts = await Promise.allSettled(plans.map(startAgent));
    const agentLayer = agentStarts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    layers.push(agentLayer.map(({ agent, spec }) => supervise(agent, restartWith(spec))));
    const failed = agentStarts.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const agents = agentLayer.map((a) => a.agent);
    const mqttUrls = agents.map((a) => `mqtt://127.0.0.1:${a.ready['mqttPort'] as number}`);
    const servingModels = model === undefined ? agents.map(() => null) : await Promise.all(agents.map((a) => waitForAgentInference(a, model)));

    const simulatorSpecs = plans.flatMap((plan, i): StartDemoProcessOptions[] =>
      plan.deviceIds.length === 0
        ? []
        : [
            {
              name: `simulator for ${plan.agentId}`,
              file: process.execPath,
              args: simulatorArgs(plan, mqttUrls[i] as string, paths.credentials, options.ratePerS, options.simDurationS),
              logFile: paths.log(`simulator-${plan.agentId}`),
            },
          ],
    );
    const simulatorStarts = await Promise.allSettled(simulatorSpecs.map((spec) => startDemoProcess(spec)));
    // A simulator with a duration ends on its own: reported, not restarted. One without runs as long as the demo.
    layers.push(
      simulatorStarts.flatMap((s, i) => (s.status === 'fulfilled' ? [supervise(s.value, options.simDurationS === undefined ? restartWith(simulatorSpecs[i]!) : undefined)] : [])),
    );
    const failedSimulator = simulatorStarts.find((s) => s.status === 'rejected');
    if (failedSimulator !== undefined) throw failedSimulator.reason;

    const manualAgent = plans.findIndex((p) => p.hasManualDevice);
    const endpoints: DemoEndpoints = {
      dashboardUrl: `${base}/`,
      apiUrl: `${base}/api`,
      tokenFile: paths.operatorToken,
      natsUrl: nats.url,
      security:
        security === undefined
          ? null
          : { mode: 'jwt+tls', caFile: security.caFile, authDir: paths.natsAuth, bundles: Object.fromEntries(plans.map((p) => [p.agentId, paths.agentBundle(p.agentId)])) },
      dataDir: options.dataDir,
      logsDir: paths.logs,
      agents: plans.map((plan, i) => ({
        agentId: plan.agentId,
        mqttUrl: mqttUrls[i] as string,
        httpUrl: `http://127.0.0.1:${agents[i]!.ready['httpPort'] as number}`,
        labels: plan.labels,
        devices: plan.deviceIds,
        model: servingModels[i] ?? null,
      })),
      model: model ?? null,
      ratePerS: options.ratePerS,
      device: {
        username: MANUAL_DEVICE_ID,
        password: passwords[MANUAL_DEVICE_ID] as string,
        agentId: plans[manualAgent]?.agentId as string,
        mqttUrl: mqttUrls[manualAgent] as string,
      },
      simulatedDevices: plans.reduce((sum, p) => sum + p.deviceIds.length, 0),
    };
    return {
      endpoints,
      failure,
      close,
      kill() {
        for (const layer of layers) for (const p of layer) p.kill();
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

