import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { relative } from 'node:path';
import { findNatsServer, startDemoNats, startDemoProcess, type ChildExit, type DemoProcess } from './processes.js';
import {
  agentConfig,
  BINARIES,
  controlPlaneConfig,
  generateOperatorToken,
  demoPaths,
  generateDevicePasswords,
  MANUAL_DEVICE_ID,
  planDemoAgents,
  REPO_ROOT,
  simulatorArgs,
  type DemoOptions,
} from './stack-config.js';

/** A reason the demo cannot start that the user can fix; main prints the message only. */
export class DemoSetupError extends Error {
  override readonly name = 'DemoSetupError';
}

/** Where everything runs, as printed for the user and in the JSON ready line. */
export interface DemoEndpoints {
  /** The dashboard with the operator token in its fragment. */
  dashboardUrl: string;
  apiUrl: string;
  /** The operator's bearer token for the API (also in `<dataDir>/operator-token`). */
  token: string;
  natsUrl: string;
  dataDir: string;
  logsDir: string;
  agents: { agentId: string; mqttUrl: string; labels: Record<string, string>; devices: string[] }[];
  /** A device the simulator does not drive, for the user's own publishes. */
  device: { username: string; password: string; agentId: string; mqttUrl: string };
  simulatedDevices: number;
}

export interface UnexpectedExit {
  name: string;
  exit: ChildExit;
  tail: string;
}

export interface DemoStack {
  readonly endpoints: DemoEndpoints;
  /** Resolves when a child exits while the demo runs: which one, how, its last output. */
  readonly unexpectedExit: Promise<UnexpectedExit>;
  /** Stops in reverse order of start: simulators, agents, control plane, nats-server. Idempotent. */
  close(): Promise<void>;
  /** SIGKILLs every child still running (a second Ctrl-C). */
  kill(): void;
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

function checkPrerequisites(): string {
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
  return nats;
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
 * device simulator per agent. If any step fails, what already started is stopped again and
 * the error (with the failed child's last output) is thrown.
 */
export async function startDemoStack(options: DemoOptions): Promise<DemoStack> {
  const natsBinary = checkPrerequisites();
  await checkHttpPort(options.httpPort);
  await prepareDataDir(options.dataDir);
  const paths = demoPaths(options.dataDir);

  /** In start order; close stops them in reverse, layer by layer. */
  const layers: DemoProcess[][] = [];
  let closing = false;
  let reportExit: (exit: UnexpectedExit) => void = () => {};
  const unexpectedExit = new Promise<UnexpectedExit>((resolve) => (reportExit = resolve));
  const supervise = (p: DemoProcess): void => {
    void p.exited.then((exit) => {
      if (!closing) reportExit({ name: p.name, exit, tail: p.tail() });
    });
  };
  const started = (layer: DemoProcess[]): void => {
    layers.push(layer);
    layer.forEach(supervise);
  };

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing = true;
    closed ??= (async () => {
      for (const layer of layers.slice().reverse()) await Promise.all(layer.map((p) => p.stop()));
    })();
    return closed;
  };

  try {
    const nats = await startDemoNats(natsBinary, paths.nats, paths.log('nats-server'));
    started([nats]);

    const operatorToken = generateOperatorToken();
    await writeFile(paths.operatorToken, `${operatorToken}\n`, { mode: 0o600 });
    await writeFile(paths.controlPlaneConfig, JSON.stringify(controlPlaneConfig(nats.url, options.httpPort, operatorToken), null, 2));
    const controlPlane = await startDemoProcess({
      name: 'control-plane',
      file: process.execPath,
      args: [BINARIES.controlPlane, '--config', paths.controlPlaneConfig],
      readyEvent: 'control-plane-ready',
      logFile: paths.log('control-plane'),
    });
    started([controlPlane]);
    const httpPort = controlPlane.ready['httpPort'] as number;

    const plans = planDemoAgents(options);
    const passwords = generateDevicePasswords([...plans.flatMap((p) => p.deviceIds), MANUAL_DEVICE_ID]);
    await writeFile(paths.credentials, JSON.stringify(passwords, null, 2), { mode: 0o600 });

    const agentStarts = await Promise.allSettled(
      plans.map(async (plan) => {
        const file = paths.agentConfig(plan.agentId);
        await writeFile(file, JSON.stringify(await agentConfig(plan, nats.url, options.dataDir, passwords), null, 2));
        return startDemoProcess({
          name: `agent ${plan.agentId}`,
          file: process.execPath,
          args: [BINARIES.agent, '--config', file],
          readyEvent: 'agent-ready',
          logFile: paths.log(plan.agentId),
        });
      }),
    );
    const agents = agentStarts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    started(agents);
    const failed = agentStarts.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const mqttUrls = agents.map((a) => `mqtt://127.0.0.1:${a.ready['mqttPort'] as number}`);

    const simulators = await Promise.all(
      plans.flatMap((plan, i) =>
        plan.deviceIds.length === 0
          ? []
          : [
              startDemoProcess({
                name: `simulator for ${plan.agentId}`,
                file: process.execPath,
                args: simulatorArgs(plan, mqttUrls[i] as string, paths.credentials, options.ratePerS),
                logFile: paths.log(`simulator-${plan.agentId}`),
              }),
            ],
      ),
    );
    started(simulators);

    const base = `http://127.0.0.1:${httpPort}`;
    const manualAgent = plans.findIndex((p) => p.hasManualDevice);
    const endpoints: DemoEndpoints = {
      // The dashboard takes the token from the fragment (never sent to a server) and forgets the URL's copy.
      dashboardUrl: `${base}/#token=${operatorToken}`,
      apiUrl: `${base}/api`,
      token: operatorToken,
      natsUrl: nats.url,
      dataDir: options.dataDir,
      logsDir: paths.logs,
      agents: plans.map((plan, i) => ({ agentId: plan.agentId, mqttUrl: mqttUrls[i] as string, labels: plan.labels, devices: plan.deviceIds })),
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
      unexpectedExit,
      close,
      kill() {
        closing = true;
        for (const layer of layers) for (const p of layer) p.kill();
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

