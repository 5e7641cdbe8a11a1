#!/usr/bin/env node
// Composition root of the control-plane process: the only place that reads argv, handles
// signals and calls process.exit.
import { Command } from 'commander';
import { createLogger, ErrorCode, isOutpostError } from '@outpost/shared';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';

const EXIT_CONFIG_INVALID = 2;
const EXIT_START_FAILED = 1;

async function run(configFile: string): Promise<void> {
  let config;
  try {
    config = await loadControlPlaneConfig(configFile);
  } catch (error) {
    if (isOutpostError(error, ErrorCode.CONFIG_INVALID) || isOutpostError(error, ErrorCode.CONFIG_UNREADABLE)) {
      process.stderr.write(`outpost-control-plane: ${error.message}\n`);
      process.exit(EXIT_CONFIG_INVALID);
    }
    throw error;
  }
  const logger = createLogger({ name: 'outpost-control-plane', level: config.log.level });
  let controlPlane;
  try {
    controlPlane = await startControlPlane(config, { logger });
  } catch (error) {
    logger.fatal({ err: error }, 'control plane failed to start');
    process.exitCode = EXIT_START_FAILED;
    return;
  }
  // The ready line, printed whatever the log level: launchers and tests read the port from it.
  const ready = { event: 'control-plane-ready', httpPort: controlPlane.httpPort, pid: process.pid };
  process.stdout.write(`${JSON.stringify({ ...ready, time: Date.now(), msg: 'control plane ready' })}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    controlPlane.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(EXIT_START_FAILED);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const program = new Command()
  .name('outpost-control-plane')
  .description('Outpost control plane: fleet registry, uplink ingest with exact accounting, HTTP API')
  .option('-c, --config <file>', 'control-plane config file (YAML or JSON)')
  .action(async (opts: { config?: string }) => {
    if (opts.config === undefined) return program.error('missing --config <file>', { exitCode: EXIT_CONFIG_INVALID });
    await run(opts.config);
  });

await program.parseAsync(process.argv);
