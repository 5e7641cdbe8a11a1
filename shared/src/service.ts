import { ErrorCode, isOutpostError } from './errors.js';
import type { Logger } from './logger.js';

/** Exit codes of every Outpost binary. */
export const ExitCode = { ok: 0, startFailed: 1, configInvalid: 2 } as const;

/**
 * Closers of a service, run in reverse order of registration, each even if an earlier one
 * failed (the failure is logged). `closeAll` is what both `close()` and a failed start call.
 */
export function createCloseStack(logger: Logger) {
  const closers: (() => Promise<void>)[] = [];
  return {
    push(close: () => Promise<void>): void {
      closers.push(close);
    },
    async closeAll(): Promise<void> {
      for (const close of closers.splice(0).reverse()) {
        try {
          await close();
        } catch (err) {
          logger.error({ err }, 'error while closing');
        }
      }
    },
  };
}

export interface ServiceMainOptions<C, S extends { close(): Promise<void> }> {
  /** Binary name, for messages: `outpost-agent`. */
  name: string;
  loadConfig(file: string): Promise<C>;
  logger(config: C): Logger;
  start(config: C, logger: Logger): Promise<S>;
  /** Fields of the JSON ready line; `event` names it for launchers. */
  ready(service: S): { event: string } & Record<string, unknown>;
}

/**
 * The process lifecycle shared by the binaries' composition roots (their main.ts calls this
 * and nothing else touches the process): an invalid config exits 2 with every bad key; signal
 * handlers go in before the service starts, so a SIGTERM sent the moment the ready line
 * appears (or during start-up) still closes the service cleanly; then one JSON ready line on
 * stdout whatever the log level; SIGTERM/SIGINT close in reverse order and exit 0.
 */
export async function runServiceMain<C, S extends { close(): Promise<void> }>(options: ServiceMainOptions<C, S>, configFile: string): Promise<void> {
  let config: C;
  try {
    config = await options.loadConfig(configFile);
  } catch (error) {
    if (isOutpostError(error, ErrorCode.CONFIG_INVALID) || isOutpostError(error, ErrorCode.CONFIG_UNREADABLE)) {
      process.stderr.write(`${options.name}: ${error.message}\n`);
      process.exit(ExitCode.configInvalid);
    }
    throw error;
  }
  const logger = options.logger(config);
  let service: S | undefined;
  let stopRequested: NodeJS.Signals | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (service === undefined) {
      stopRequested ??= signal; // still starting: stop as soon as it has started
      return;
    }
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    service.close().then(
      () => process.exit(ExitCode.ok),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(ExitCode.startFailed);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    service = await options.start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${options.name} failed to start`);
    process.exitCode = ExitCode.startFailed;
    return;
  }
  if (stopRequested !== undefined) {
    stop(stopRequested);
    return;
  }
  process.stdout.write(`${JSON.stringify({ ...options.ready(service), pid: process.pid, time: Date.now(), msg: `${options.name} ready` })}\n`);
}
