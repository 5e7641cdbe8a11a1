#!/usr/bin/env node
// Composition root of the control-plane process: the only place that reads argv, handles
// signals and calls process.exit (through runServiceMain).
import { Command } from 'commander';
import { createLogger, ExitCode, runServiceMain } from '@outpost/shared';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';
import { setupNatsAuth } from './fleet/setup.js';

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

program
  .command('setup')
  .description('make the NATS operator, accounts, signing keys and users of an Outpost installation (secrets written 0600, nothing printed but file names)')
  .requiredOption('--out <dir>', 'directory to write into')
  .action(async (opts: { out: string }) => {
    const files = await setupNatsAuth(opts.out);
    process.stdout.write(
      [
        `nats-server: include ${files.natsAuthConfig}`,
        `control plane config: nats.credsFile: ${files.controlPlaneCredsFile}`,
        `  security: { accountsFile: ${files.accountsFile}, agentsSigningKeyFile: ${files.agentsSigningKeyFile}, operatorSigningKeyFile: ${files.operatorSigningKeyFile}, systemCredsFile: ${files.systemCredsFile} }`,
        '',
      ].join('\n'),
    );
  });

await program.parseAsync(process.argv);
