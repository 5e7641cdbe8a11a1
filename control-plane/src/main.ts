#!/usr/bin/env node
// Composition root of the control-plane process: the only place that reads argv, handles
// signals and calls process.exit (through runServiceMain).
import { Command } from 'commander';
import { createLogger, ExitCode, runServiceMain } from '@outpost/shared';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';

const program = new Command()
  .name('outpost-control-plane')
  .description('Outpost control plane: fleet registry, uplink ingest with exact accounting, HTTP API')
  .option('-c, --config <file>', 'control-plane config file (YAML or JSON)')
  .action(async (opts: { config?: string }) => {
    if (opts.config === undefined) return program.error('missing --config <file>', { exitCode: ExitCode.configInvalid });
    await runServiceMain(
      {
        name: 'outpost-control-plane',
        loadConfig: loadControlPlaneConfig,
        logger: (config) => createLogger({ name: 'outpost-control-plane', level: config.log.level }),
        start: (config, logger) => startControlPlane(config, { logger }),
        ready: (controlPlane) => ({ event: 'control-plane-ready', httpPort: controlPlane.httpPort }),
      },
      opts.config,
    );
  });

await program.parseAsync(process.argv);
