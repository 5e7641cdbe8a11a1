import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Socket } from 'node:net';
import { resolveExecutable, spawnOwned, waitFor, waitForTcp } from '../harness/wait.js';
import { natsSecurityConfig, type DemoNatsSecurity } from './security.js';

/** How a demo child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One process of the demo stack (nats-server, the control plane, an agent, a simulator). */
export interface DemoProcess {
  /** For messages: `agent demo-agent-2`. */
  readonly name: string;
  readonly pid: number;
  /** Resolves once the process has exited and its output is drained. */
  readonly exited: Promise<ChildExit>;
  isRunning(): boolean;
  /** The last lines it printed (stdout and stderr), for failure reports. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. Idempotent. */
  stop(graceMs?: number): Promise<ChildExit>;
  /** SIGKILL now (a second Ctrl-C). */
  kill(): void;
}

/** How long a child gets to stop cleanly on SIGTERM before it is killed. */
export const DEFAULT_STOP_GRACE_MS = 15_000;
const TAIL_LINES = 30;

export interface StartDemoProcessOptions {
  name: string;
  file: string;
  args: readonly string[];
  /** Every line the child prints is appended here. */
  logFile: string;
  /** `event` of the JSON ready line on stdout to wait for; none: ready once spawned. */
  readyEvent?: string;
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Aborting it before the ready line stops the child and rejects (the demo shuts down during a restart). */
  signal?: AbortSignal;
}

export interface StartedDemoProcess extends DemoProcess {
  /** The ready line's fields ({} without a ready event). */
  readonly ready: Record<string, unknown>;
}

/**
 * Spawns one child of the demo:
 * - in its own process group (`detached`), so the Ctrl-C a terminal sends to the demo's
 *   group reaches the demo only and the demo stops its children in order;
 * - under `setpriv --pdeathsig KILL` (the harness's spawnOwned), so none outlives a demo that
 *   is killed outright;
 * - with its output kept in `logFile` (appended: a restarted child's output follows the
 *   previous one's) and its last lines in memory.
 *
 * @throws Error when it exits or does not print its ready line in time, with its last output;
 *   the signal's reason when `options.signal` aborts first (the child is stopped).
 */
export async function startDemoProcess(options: StartDemoProcessOptions): Promise<StartedDemoProcess> {
  options.signal?.throwIfAborted();
  const log = createWriteStream(options.logFile, { flags: 'a' });
  // A log file that cannot be written must not take the demo down; the tail stays in memory.
  log.on('error', () => {});
  const lines: string[] = [];
  const remember = (line: string): void => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    if (!log.writableEnded) log.write(`${line}\n`);
  };
  const owned = await spawnOwned(options.file, options.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env });
  const { child } = owned;
  // spawnOwned lets a forgotten child not hold a script open; the demo lives as long as its children.
  child.ref();
  for (const pipe of [child.stdout, child.stderr]) (pipe as unknown as Socket | null)?.ref();

  const readyLine = new Promise<Record<string, unknown>>((resolve) => {
    if (options.readyEvent === undefined) resolve({});
    createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      if (options.readyEvent === undefined) return;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry['event'] === options.readyEvent) resolve(entry);
      } catch {
        // Not a JSON line: only logged.
      }
    });
  });
  createInterface({ input: child.stderr! }).on('line', remember);

  const exited = owned.closed.then((): ChildExit => {
    log.end();
    return { code: child.exitCode, signal: child.signalCode };
  });
  const demoProcess = toDemoProcess(options.name, child, exited, () => lines.join('\n'));

  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const outcome = await Promise.race([
    readyLine.then((ready) => ({ type: 'ready' as const, ready })),
    exited.then((exit) => ({ type: 'exited' as const, exit })),
    new Promise<{ type: 'timeout' }>((resolve) => (timer = setTimeout(() => resolve({ type: 'timeout' }), timeoutMs))),
    new Promise<{ type: 'aborted' }>((resolve) => {
      onAbort = () => resolve({ type: 'aborted' });
      options.signal?.addEventListener('abort', onAbort, { once: true });
    }),
  ]);
  clearTimeout(timer);
  if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
  if (outcome.type === 'ready') return Object.assign(demoProcess, { ready: outcome.ready });
  if (outcome.type === 'aborted') {
    await demoProcess.stop(1_000);
    throw options.signal?.reason ?? new Error(`${options.name}: start aborted`);
  }
  if (outcome.type === 'timeout') await demoProcess.stop(1_000);
  const why = outcome.type === 'exited' ? `exited (${describeExit(outcome.exit)})` : `printed no ready line within ${timeoutMs} ms`;
  throw new Error(`${options.name} ${why} while starting; its last output:\n${demoProcess.tail() || '(none)'}\n(full log: ${options.logFile})`);
}

function toDemoProcess(name: string, child: ChildProcess, exited: Promise<ChildExit>, tail: () => string): DemoProcess {
  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<ChildExit> | undefined;
  return {
    name,
    pid: child.pid ?? -1,
    exited,
    isRunning,
    tail,
    stop(graceMs = DEFAULT_STOP_GRACE_MS) {
      stopping ??= (async () => {
        if (isRunning()) child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (isRunning()) child.kill('SIGKILL');
        }, graceMs);
        const exit = await exited;
        clearTimeout(timer);
        return exit;
      })();
      return stopping;
    },
    kill() {
      if (isRunning()) child.kill('SIGKILL');
    },
  };
}

export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** Where Debian and others put nats-server when PATH lacks the sbin directories. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** The nats-server executable, or undefined when it is not installed. */
export function findNatsServer(): string | undefined {
  return resolveExecutable('nats-server', process.env, SBIN_DIRS);
}

export interface DemoNats extends DemoProcess {
  /** `tls://127.0.0.1:<port>` when secured, `nats://...` when open. */
  readonly url: string;
  readonly port: number;
}

export interface StartDemoNatsOptions {
  /** Listen here (a restart: the port of the first start, which every client has); default -1, any free port. */
  port?: number;
  /** Aborting it before the server is up stops it and rejects. */
  signal?: AbortSignal;
  /** JWT auth and TLS (security.ts); undefined: an open server (--insecure). */
  security?: DemoNatsSecurity;
}

/**
 * Starts nats-server with JetStream from a config written into `dir` (`nats-server.conf`,
 * store in `dir/jetstream`), with `options.security`'s auth and TLS when given. `port: -1` lets the server pick a free port and report it in its
 * ports file, so the demo never takes 4222 nor races anyone for a port; a restart passes the
 * port it got, on the same store.
 */
export async function startDemoNats(binary: string, dir: string, logFile: string, options: StartDemoNatsOptions = {}): Promise<DemoNats> {
  const configFile = join(dir, 'nats-server.conf');
  await writeFile(configFile, renderNatsConfig(dir, options.port ?? -1, options.security));
  // A server that was killed leaves its ports file behind: read only the new server's.
  for (const name of await readdir(dir)) if (name.endsWith('.ports')) await rm(join(dir, name), { force: true });
  const nats = await startDemoProcess({ name: 'nats-server', file: binary, args: ['-c', configFile], logFile, signal: options.signal });
  try {
    const port = await waitFor(
      async () => {
        options.signal?.throwIfAborted();
        if (!nats.isRunning()) throw new Error(`nats-server exited while starting; its last output:\n${nats.tail()}`);
        return readPortsFile(dir, nats.pid);
      },
      { what: 'the nats-server ports file', timeoutMs: 15_000 },
    );
    await waitForTcp('127.0.0.1', port, 10_000);
    options.signal?.throwIfAborted();
    return Object.assign(nats, { url: `${options.security === undefined ? 'nats' : 'tls'}://127.0.0.1:${port}`, port });
  } catch (error) {
    await nats.stop(1_000);
    throw error;
  }
}

function renderNatsConfig(dir: string, port: number, security: DemoNatsSecurity | undefined): string {
  return [
    '# Written by `npm run demo` (tests/src/demo); rewritten on every start.',
    'host: "127.0.0.1"',
    `port: ${port}`,
    'server_name: "outpost_demo"',
    `ports_file_dir: ${JSON.stringify(dir)}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`,
    '}',
    ...(security === undefined ? [] : natsSecurityConfig(security, dir)),
    '',
  ].join('\n');
}

async function readPortsFile(dir: string, pid: number): Promise<number | undefined> {
  const name = (await readdir(dir)).find((n) => n.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  try {
    const parsed = JSON.parse(await readFile(join(dir, name), 'utf8')) as { nats?: unknown };
    const first = Array.isArray(parsed.nats) ? parsed.nats[0] : undefined;
    const port = typeof first === 'string' ? Number(new URL(first).port) : NaN;
    return Number.isInteger(port) && port > 0 ? port : undefined;
  } catch {
    return undefined; // half-written: read again on the next probe
  }
}
