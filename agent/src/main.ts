#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=128
// Composition root of the agent process: the only place that reads argv, handles signals and
// calls process.exit (through runServiceMain).
import { Command } from 'commander';
import { createLogger, ExitCode, runServiceMain, type Logger } from '@outpost/shared';
import { startAgent, type Agent } from './agent.js';
import { hashPassword } from './broker/device-auth.js';
import { loadAgentConfig } from './config.js';

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

const program = new Command()
  .name('outpost-agent')
  .description('Outpost edge agent: MQTT ingest into a durable outbox, local inference, uplink')
  .option('-c, --config <file>', 'agent config file (YAML or JSON)')
  .action(async (opts: { config?: string }) => {
    if (opts.config === undefined) return program.error('missing --config <file>', { exitCode: ExitCode.configInvalid });
    await runServiceMain(
      {
        name: 'outpost-agent',
        loadConfig: loadAgentConfig,
        logger: (config) => createLogger({ name: 'outpost-agent', level: config.log.level, base: { agentId: config.agentId } }),
        // Fault injection (chaos tests) ends the process the hard way, as a power cut would.
        start: async (config, logger) => {
          const agent = await startAgent(config, { logger, crash: () => process.kill(process.pid, 'SIGKILL') });
          onSighup = handleSighup(agent, logger);
          return agent;
        },
        ready: (agent) => ({ event: 'agent-ready', agentId: agent.agentId, mqttPort: agent.mqttPort, tlsPort: agent.tlsPort, httpPort: agent.httpPort, epoch: agent.epoch }),
      },
      opts.config,
    );
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
