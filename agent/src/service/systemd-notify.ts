// The agent's sd_notify(3), through the `systemd-notify` binary. Node cannot open the
// AF_UNIX datagram socket NOTIFY_SOCKET names (net speaks stream sockets, dgram only UDP), and
// a native addon for one sendmsg is not worth its build. systemd-notify sends with its own PID,
// so the unit needs NotifyAccess=all; since systemd 246 it then waits (BARRIER=1) until the
// manager has read the message, so the message is never lost to the race where the sender
// exits before systemd looked up its cgroup.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** Where a system without systemd-notify on the service's PATH still has it. */
const FALLBACK_DIRS: readonly string[] = ['/usr/bin', '/bin'];
/** One systemd-notify call, barrier included, ms: far above the few ms it takes. */
const NOTIFY_TIMEOUT_MS = 10_000;

/** What systemd gives a Type=notify service in its environment, parsed. */
export interface SystemdEnvironment {
  /** NOTIFY_SOCKET: a path, or `@name` for an abstract socket. */
  notifySocket: string;
  /**
   * The watchdog period (WatchdogSec=), ms; undefined when the unit sets none or when
   * WATCHDOG_PID names another process (then the watchdog is not ours to feed).
   */
  watchdogMs: number | undefined;
}

/**
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID the way sd_watchdog_enabled(3) does.
 * Undefined without NOTIFY_SOCKET: not started by systemd as a notify service, so nothing is
 * ever signalled.
 */
export function readSystemdEnvironment(env: Readonly<Record<string, string | undefined>>, pid: number): SystemdEnvironment | undefined {
  const notifySocket = env['NOTIFY_SOCKET'];
  if (notifySocket === undefined || notifySocket === '') return undefined;
  const usec = Number(env['WATCHDOG_USEC']);
  const watchdogPid = env['WATCHDOG_PID'];
  const ours = watchdogPid === undefined || watchdogPid === '' || Number(watchdogPid) === pid;
  const watchdogMs = Number.isInteger(usec) && usec > 0 && ours ? usec / 1000 : undefined;
  return { notifySocket, watchdogMs };
}

/** Environment variables systemd set for this process alone; children must not act on them (sd_notify's unset_environment). */
export const SYSTEMD_NOTIFY_VARIABLES: readonly string[] = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'];

/** Finds `systemd-notify` on `pathVariable`, then in /usr/bin and /bin. */
export function findSystemdNotify(pathVariable: string | undefined): string | undefined {
  const dirs = [...(pathVariable ?? '').split(delimiter).filter((d) => isAbsolute(d)), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const file = join(dir, 'systemd-notify');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here; try the next directory.
    }
  }
  return undefined;
}

/** Sends `VARIABLE=value` assignments (READY=1, WATCHDOG=1, STATUS=...) to the service manager. */
export type Notify = (assignments: readonly string[]) => Promise<void>;

/**
 * A Notify over the `systemd-notify` binary at `executable`. Calls go out one at a time, in
 * order (each waits for its barrier). Rejects with the tool's stderr when it fails.
 */
export function createSystemdNotify(executable: string, notifySocket: string): Notify {
  let previous: Promise<unknown> = Promise.resolve();
  return (assignments) => {
    const sent = previous.then(
      () =>
        new Promise<void>((resolve, reject) => {
          // Only the socket: the tool needs nothing else from the agent's environment.
          execFile(executable, [...assignments], { env: { NOTIFY_SOCKET: notifySocket }, timeout: NOTIFY_TIMEOUT_MS }, (error, _stdout, stderr) => {
            if (error === null) resolve();
            else reject(new Error(`${executable} ${assignments.map((a) => a.split('=')[0]).join(' ')} failed: ${stderr.trim() || error.message}`, { cause: error }));
          });
        }),
    );
    previous = sent.catch(() => undefined);
    return sent;
  };
}
