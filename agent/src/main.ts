#!/usr/bin/env node
// Composition root of the agent process: the only place that reads argv, handles signals and
// calls process.exit.
import { Command } from 'commander';
import { createLogger, isOutpostError, ErrorCode } from '@outpost/shared';
import { startAgent, type Agent } from './agent.js';
import { hashPassword } from './broker/device-auth.js';
import { loadAgentConfig } from './config.js';

const EXIT_CONFIG_INVALID = 2;
const EXIT_START_FAILED = 1;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function run(configFile: string): Promise<void> {
  let config;
  try {
    config = await loadAgentConfig(configFile);
  } catch (error) {
    if (isOutpostError(error, ErrorCode.CONFIG_INVALID) || isOutpostError(error, ErrorCode.CONFIG_UNREADABLE)) {
      process.stderr.write(`outpost-agent: ${error.message}\n`);
      process.exit(EXIT_CONFIG_INVALID);
    }
    throw error;
  }
  const logger = createLogger({ name: 'outpost-agent', level: config.log.level, base: { agentId: config.agentId } });

  // Signal handlers go in before anything starts: a launcher may send SIGTERM the moment it
  // reads the ready line (or while the agent is still starting), and without a handler that
  // signal kills the process outright instead of closing the outbox.
  let agent: Agent | undefined;
  let stopRequested: NodeJS.Signals | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (agent === undefined) {
      stopRequested ??= signal; // still starting: stop as soon as it has started
      return;
    }
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    agent.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(EXIT_START_FAILED);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    agent = await startAgent(config, { logger, crash: () => process.kill(process.pid, 'SIGKILL') });
  } catch (error) {
    logger.fatal({ err: error }, 'agent failed to start');
    process.exitCode = EXIT_START_FAILED;
    return;
  }
  if (stopRequested !== undefined) {
    stop(stopRequested);
    return;
  }
  // The ready line, printed whatever the log level: launchers and tests read the ports from it.
  const ready = { event: 'agent-ready', agentId: agent.agentId, mqttPort: agent.mqttPort, tlsPort: agent.tlsPort, httpPort: agent.httpPort, epoch: agent.epoch, pid: process.pid };
  process.stdout.write(`${JSON.stringify({ ...ready, time: Date.now(), msg: 'agent ready' })}\n`);
}

const program = new Command()
  .name('outpost-agent')
  .description('Outpost edge agent: MQTT ingest into a durable outbox, local inference, uplink')
  .option('-c, --config <file>', 'agent config file (YAML or JSON)')
  .action(async (opts: { config?: string }) => {
    if (opts.config === undefined) return program.error('missing --config <file>', { exitCode: EXIT_CONFIG_INVALID });
    await run(opts.config);
  });

program
  .command('hash-password')
  .description('print a passwordHash for a device entry of the config (password from the argument or stdin)')
  .argument('[password]', 'the device password; read from stdin when omitted')
  .action(async (password: string | undefined) => {
    const plain = password ?? (await readStdin());
    if (plain.length === 0) program.error('empty password', { exitCode: EXIT_CONFIG_INVALID });
    process.stdout.write(`${await hashPassword(plain)}\n`);
  });

await program.parseAsync(process.argv);
