#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=128
// Composition root of the agent process: the only place that reads argv, handles signals and
// calls process.exit (through runServiceMain).
import { Command } from 'commander';
import { createLogger, ExitCode, runServiceMain, type Logger } from '@outpost/shared';
import { OUTBOX_FILE_NAME, startAgent, type Agent } from './agent.js';
import { hashPassword } from './broker/device-auth.js';
import { loadAgentConfig } from './config.js';
import { createLogRing } from './diag/index.js';
import { doctorExitCode, formatDoctorReport, localDoctorEnvironment, runDoctor } from './doctor/index.js';
import { createHealthzProbe, createServiceNotifier, createSystemdNotify, findSystemdNotify, healthzUrl, readSystemdEnvironment, SYSTEMD_NOTIFY_VARIABLES, type ServiceNotifier } from './service/index.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * SIGHUP reloads the model files named in `inference.model`: replace both files (the .onnx and
 * its signed manifest), then signal. The swap is verified and self-tested like any other; its
 * outcome is logged (`model-swapped` or `model-refused` with the code) and counted in /metrics.
 * Installed before start, so a SIGHUP during start-up is logged, not fatal (node's default).
 */
let onSighup: () => void = () => process.stderr.write('outpost-agent: SIGHUP during start-up ignored\n');
process.on('SIGHUP', () => onSighup());

function handleSighup(agent: Agent, logger: Logger): () => void {
  return () => {
    const inference = agent.inference;
    if (inference === undefined) return logger.warn('SIGHUP: inference is not enabled; nothing to reload');
    logger.info('SIGHUP: reloading the model files');
    // Refusals are logged and counted by inference itself.
    inference.reloadModelFiles().catch(() => undefined);
  };
}

/**
 * Under systemd (Type=notify): READY=1 once started and a watchdog fed by the agent's health
 * (agent/src/service). Without NOTIFY_SOCKET nothing is signalled. The variables are removed
 * from the environment so the inference processes never signal in the agent's name.
 */
const systemd = readSystemdEnvironment(process.env, process.pid);
for (const name of SYSTEMD_NOTIFY_VARIABLES) delete process.env[name];
let notifier: ServiceNotifier | undefined;

function startNotifier(agent: Agent, httpHost: string, logger: Logger): ServiceNotifier | undefined {
  if (systemd === undefined) return undefined;
  const executable = findSystemdNotify(process.env['PATH']);
  if (executable === undefined) {
    logger.error('NOTIFY_SOCKET is set but systemd-notify is not installed: systemd gets no readiness or watchdog signal');
    return undefined;
  }
  // A health answer must come well within one feeding interval (half the watchdog period).
  const probeTimeoutMs = systemd.watchdogMs === undefined ? 5_000 : Math.max(1_000, systemd.watchdogMs / 4);
  return createServiceNotifier({
    notify: createSystemdNotify(executable, systemd.notifySocket),
    watchdogMs: systemd.watchdogMs,
    health: createHealthzProbe(healthzUrl(httpHost, agent.httpPort), probeTimeoutMs),
    logger,
  });
}

const program = new Command()
  .name('outpost-agent')
  .description('Outpost edge agent: MQTT ingest into a durable outbox, local inference, uplink')
  .option('-c, --config <file>', 'agent config file (YAML or JSON)')
  .action(async (opts: { config?: string }) => {
    if (opts.config === undefined) return program.error('missing --config <file>', { exitCode: ExitCode.configInvalid });
    const configFile = opts.config;
    const logLines = createLogRing();
    await runServiceMain(
      {
        name: 'outpost-agent',
        loadConfig: loadAgentConfig,
        // Every line also goes to a ring of the last ones, for `outpostctl agents logs`.
        logger: (config) => createLogger({ name: 'outpost-agent', level: config.log.level, base: { agentId: config.agentId }, onLine: (line) => logLines.push(line) }),
        // Fault injection (chaos tests) ends the process the hard way, as a power cut would.
        start: async (config, logger) => {
          const agent = await startAgent(config, { logger, crash: () => process.kill(process.pid, 'SIGKILL'), configFile, logLines });
          onSighup = handleSighup(agent, logger);
          const started = startNotifier(agent, config.http.host, logger);
          if (started === undefined) return agent;
          notifier = started;
          const close = (): Promise<void> => {
            started.close();
            return agent.close();
          };
          return { ...agent, close, [Symbol.asyncDispose]: close };
        },
        ready: (agent) => {
          void notifier?.ready(`ready: MQTT ${agent.mqttPort ?? 'bridge'}${agent.tlsPort === undefined ? '' : `, MQTT/TLS ${agent.tlsPort}`}, HTTP ${agent.httpPort}`);
          return { event: 'agent-ready', agentId: agent.agentId, mqttPort: agent.mqttPort, tlsPort: agent.tlsPort, httpPort: agent.httpPort, epoch: agent.epoch };
        },
      },
      opts.config,
    );
  });

program
  .command('doctor')
  .description('check this agent: config, data dir, outbox, NATS and its credentials, clock skew, MQTT port, model files, certificates; works while the agent runs. Exit code 0 all ok, 1 a warning, 2 a failure')
  .option('--json', 'print the report as JSON')
  .action(async (opts: { json?: boolean }, command: Command) => {
    const { config } = command.optsWithGlobals<{ config?: string }>();
    if (config === undefined) return program.error('missing --config <file>', { exitCode: ExitCode.configInvalid });
    const report = await runDoctor({ configFile: config, env: localDoctorEnvironment({ outboxFileName: OUTBOX_FILE_NAME }) });
    process.stdout.write(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report, { colour: process.stdout.isTTY && process.env['NO_COLOR'] === undefined }));
    // Exit now: an HTTP keep-alive socket of a probe must not hold the answer back.
    process.exit(doctorExitCode(report));
  });

program
  .command('hash-password')
  .description('print a passwordHash for a device entry of the config (password from the argument or stdin)')
  .argument('[password]', 'the device password; read from stdin when omitted')
  .action(async (password: string | undefined) => {
    const plain = password ?? (await readStdin());
    if (plain.length === 0) program.error('empty password', { exitCode: ExitCode.configInvalid });
    process.stdout.write(`${await hashPassword(plain)}\n`);
  });

await program.parseAsync(process.argv);
