import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { accessSync, constants, readlinkSync, realpathSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** What is awaited, for the timeout message, e.g. "the ports file of nats-server". */
  what: string;
  /** Give up after this long; default 10 000 ms. */
  timeoutMs?: number;
  /** Pause between two probes; default 20 ms. */
  intervalMs?: number;
}

/**
 * Polls `probe` until it returns a value other than `false`, `undefined` or `null`, and
 * returns that value. Meant for cheap probes of a condition that an event will make true
 * (a file appears, a port opens), never as a disguised fixed sleep.
 *
 * If `probe` throws, the wait ends at once with that error: a probe can abort a hopeless
 * wait, e.g. when the process it waits for has already exited.
 *
 * @throws Error naming `what` when the condition is not met within `timeoutMs`.
 */
export async function waitFor<T>(
  probe: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  options: WaitForOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== false && value !== undefined && value !== null) return value;
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${options.what}`);
    }
    await delay(intervalMs);
  }
}

/**
 * One connection attempt: true when a TCP connect to `host:port` succeeds within
 * `timeoutMs`, false when it is refused, fails or times out. The socket is closed at once.
 */
export function canConnect(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Waits until a TCP connect to `host:port` succeeds.
 *
 * @throws Error when no connect succeeded within `timeoutMs` (default 10 000 ms).
 */
export async function waitForTcp(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => canConnect(host, port, Math.min(1_000, timeoutMs)), {
    what: `a TCP connect to ${host}:${port}`,
    timeoutMs,
  });
}

/**
 * Waits until a freshly spawned child process has really started (`spawn` event), or
 * rejects with the spawn error (`ENOENT` when the binary is missing, `EACCES`, ...).
 * Node reports both asynchronously, so a caller cannot tell them apart any earlier.
 */
export function waitForSpawn(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSpawn = (): void => {
      child.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      child.off('spawn', onSpawn);
      reject(err);
    };
    child.once('spawn', onSpawn);
    child.once('error', onError);
  });
}

// ---------------------------------------------------------------------------------------
// Server processes owned by the test process, shared by nats-server.ts and mosquitto.ts:
// they must die with the test, however the test process or worker ends.
// ---------------------------------------------------------------------------------------

/** A child process started by {@link spawnOwned}. */
export interface OwnedProcess {
  readonly child: ChildProcess;
  /** Resolves once the process has exited and its stdio is drained (its 'close' event). */
  readonly closed: Promise<void>;
  /** True until the process has exited. */
  isRunning(): boolean;
  /** SIGKILL (works on a SIGSTOPped process too) and wait for `closed`. Idempotent. */
  kill(): Promise<void>;
}

const ownedChildren = new Set<ChildProcess>();
let childExitHookInstalled = false;
let setprivPath: string | null | undefined;

function killOwnedOnExit(child: ChildProcess): void {
  ownedChildren.add(child);
  if (childExitHookInstalled) return;
  childExitHookInstalled = true;
  // 'exit' listeners must be synchronous: kill() is.
  process.on('exit', () => {
    for (const owned of ownedChildren) {
      try {
        owned.kill('SIGKILL');
      } catch {
        // Already gone; nothing to do while exiting.
      }
    }
  });
}

/**
 * Finds an executable like a shell would: `name` with a slash is taken as a path, a bare
 * name is looked up on `env.PATH`, then in `extraDirs`. Undefined when there is none.
 */
export function resolveExecutable(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  extraDirs: readonly string[] = [],
): string | undefined {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : [...(env['PATH'] ?? '').split(delimiter), ...extraDirs]
        .filter((dir) => isAbsolute(dir))
        .map((dir) => join(dir, name));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/** True once process `pid` no longer runs `setpriv`: it exec'd its target, or it is gone. */
function execedPast(pid: number, setpriv: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) !== setpriv;
  } catch {
    // Exited (exec failed, or the server died at once): the caller's own checks report it.
    return true;
  }
}

/**
 * Spawns `file` so that it cannot outlive the test process:
 * - on Linux it runs under `setpriv --pdeathsig KILL` (util-linux, always installed on
 *   Debian), so the kernel SIGKILLs it when the spawning thread dies, even when the test
 *   worker is terminated or killed and no 'exit' handler runs (vitest ends its workers that
 *   way). setpriv execs the server, so the pid is the server's own;
 * - on a normal process exit an 'exit' handler SIGKILLs it too.
 * Neither the child nor its pipes keep the event loop alive, so a forgotten server does not
 * hang a script; `kill()` holds them again while it waits.
 *
 * @throws the spawn error (ENOENT, EACCES, ...) when the process could not be started.
 */
export async function spawnOwned(
  file: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<OwnedProcess> {
  setprivPath ??=
    process.platform === 'linux' ? (resolveExecutable('setpriv', process.env, ['/usr/bin', '/bin']) ?? null) : null;
  const child =
    setprivPath === null
      ? spawn(file, args, options)
      : spawn(setprivPath, ['--pdeathsig', 'KILL', '--', file, ...args], options);
  // A later 'error' (e.g. a failed kill) must not crash the test process as unhandled.
  child.on('error', () => {});
  const closed = new Promise<void>((resolveClosed) => {
    child.once('close', () => {
      ownedChildren.delete(child);
      resolveClosed();
    });
  });
  await waitForSpawn(child);
  killOwnedOnExit(child);
  if (setprivPath !== null && child.pid !== undefined) {
    // 'spawn' means setpriv runs, not that it has set the parent-death signal yet. A spawner
    // that dies before then leaves an orphan nobody kills, so wait until setpriv has exec'd
    // the server (it sets the signal first).
    const pid = child.pid;
    const setpriv = realpathSync(setprivPath);
    await waitFor(() => execedPast(pid, setpriv), {
      what: `setpriv (pid ${pid}) to exec ${file}`,
      intervalMs: 2,
    });
  }

  const pipes = [child.stdin, child.stdout, child.stderr].filter((p) => p !== null) as unknown as Socket[];
  child.unref();
  for (const pipe of pipes) pipe.unref();
  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child,
    closed,
    isRunning,
    async kill() {
      child.ref();
      for (const pipe of pipes) pipe.ref();
      if (isRunning()) child.kill('SIGKILL');
      await closed;
    },
  };
}
