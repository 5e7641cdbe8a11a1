import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, OutpostError } from '@outpost/shared';
import { getFreePort } from './free-port.js';
import { createTempDir } from './temp-dir.js';
import type { TempDir } from './temp-dir.js';
import { canConnect, resolveExecutable, spawnOwned, waitFor } from './wait.js';
import type { OwnedProcess } from './wait.js';

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /** Extra lines appended to the generated mosquitto.conf (after the listener). */
  configLines?: string[];
  /** Copy the broker's log to this process's stderr. */
  debug?: boolean;
  /** Executable to run, a name looked up on PATH or a path; default `mosquitto`. */
  binary?: string;
  /**
   * Environment of the broker process, whose PATH is also where a bare `binary` name is
   * looked up. Default: this process's environment, and the lookup then also tries the sbin
   * directories (Debian puts mosquitto in /usr/sbin, which a non-root PATH often lacks).
   */
  env?: NodeJS.ProcessEnv;
  /** Give up on one start attempt after this long; default 10 000 ms. */
  startTimeoutMs?: number;
}

/** A mosquitto broker child process owned by one test, on its own port and temp dir. */
export interface Mosquitto {
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** The generated config file (in the broker's temp dir, removed by `stop()`). */
  readonly configFile: string;
  /** The last few KiB of the broker's log, for failure messages. */
  logs(): string;
  /** SIGKILL the broker and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_BINARY = 'mosquitto';
const LOG_TAIL_CHARS = 8 * 1024;
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const MAX_ATTEMPTS = 3;

/**
 * Starts a private mosquitto 2 broker on 127.0.0.1 with anonymous access and no persistence.
 *
 * mosquitto cannot pick its own port and report it, so a free port is chosen first; another
 * process may take it before mosquitto binds, in which case the start is retried on a new
 * port. Ready means: mosquitto logged "running" (it does so only after all listeners are
 * bound, so a connect is not answered by whoever else holds the port) and a TCP connect works.
 *
 * @throws OutpostError HARNESS_MISSING_BINARY when the binary is not installed.
 * @throws OutpostError HARNESS_START_FAILED when it exits or is not ready in time; the
 *   message ends with the tail of the broker's log.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const { binary = DEFAULT_BINARY } = options;
  const env = options.env ?? process.env;
  const file = resolveExecutable(binary, env, options.env === undefined ? SBIN_DIRS : []);
  if (file === undefined) {
    throw new OutpostError(
      ErrorCode.HARNESS_MISSING_BINARY,
      `mosquitto binary "${binary}" not found; install it with \`apt-get install mosquitto\``,
      { details: { binary } },
    );
  }
  const dir = await createTempDir('outpost-mosquitto-');
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await getFreePort(HOST);
      const started = await startOnce(dir, port, file, env, options);
      if (started.kind === 'ready') return started.broker;
      if (attempt >= MAX_ATTEMPTS) throw started.error;
    }
  } catch (err) {
    await dir.remove();
    throw err;
  }
}

type StartResult =
  | { kind: 'ready'; broker: Mosquitto }
  /** The port was taken between getFreePort() and mosquitto's bind: worth another try. */
  | { kind: 'port-taken'; error: OutpostError };

async function startOnce(
  dir: TempDir,
  port: number,
  file: string,
  env: NodeJS.ProcessEnv,
  options: MosquittoOptions,
): Promise<StartResult> {
  const { startTimeoutMs = 10_000 } = options;
  const configFile = join(dir.path, 'mosquitto.conf');
  const config = [
    '# Written by the Outpost test harness; one broker per test, removed by stop().',
    `listener ${port} ${HOST}`,
    'allow_anonymous true',
    'persistence false',
    'log_dest stderr',
    // Includes "notice", the level of the "running" line that tells the broker is ready.
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    // Started as root, mosquitto switches to the "mosquitto" user; that would clear the
    // parent-death signal that kills it with the test, and lock it out of files a test
    // writes into its 0700 temp dir for configLines.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    ...(options.configLines ?? []),
  ];
  await writeFile(configFile, `${config.join('\n')}\n`);

  let log = '';
  const startFailed = (reason: string, cause?: unknown): OutpostError => {
    const stderr = lastLines(log, 20);
    return new OutpostError(
      ErrorCode.HARNESS_START_FAILED,
      `mosquitto did not start on port ${port}: ${reason}\n--- mosquitto log (tail) ---\n${stderr}`,
      { cause, details: { configFile, port, stderr } },
    );
  };
  let owned: OwnedProcess;
  try {
    owned = await spawnOwned(file, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'], env });
  } catch (err) {
    throw startFailed(`could not spawn "${file}"`, err);
  }
  const { child } = owned;
  let closed = false;
  void owned.closed.then(() => {
    closed = true;
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    log = (log + chunk).slice(-LOG_TAIL_CHARS);
    if (options.debug === true) process.stderr.write(chunk);
  });

  try {
    await waitFor(
      async () => {
        if (closed) throw startFailed(`it exited (${exitStatus(child)}) before it was ready`);
        return /mosquitto version \S+ running/.test(log) && (await canConnect(HOST, port));
      },
      { what: `mosquitto to listen on ${HOST}:${port}`, timeoutMs: startTimeoutMs },
    );
  } catch (err) {
    await owned.kill();
    if (/Address already in use/i.test(log)) {
      return { kind: 'port-taken', error: startFailed('the port was taken', err) };
    }
    throw err instanceof OutpostError ? err : startFailed((err as Error).message, err);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await owned.kill();
      await dir.remove();
    })();
    return stopping;
  };
  const broker: Mosquitto = {
    url: `mqtt://${HOST}:${port}`,
    port,
    pid: child.pid ?? -1,
    configFile,
    logs: () => log,
    stop,
    [Symbol.asyncDispose]: stop,
  };
  return { kind: 'ready', broker };
}

function exitStatus(child: ChildProcess): string {
  return child.signalCode !== null ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`;
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}
