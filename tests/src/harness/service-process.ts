import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ErrorCode, OutpostError } from '@outpost/shared';
import { spawnOwned } from './wait.js';

/** How long a service may take to print its ready line; generous: six agents with their inference processes may start at once on two shared cores. */
export const DEFAULT_SERVICE_START_TIMEOUT_MS = 45_000;

const OUTPUT_MAX_CHARS = 8 * 1024 * 1024;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The ready line's fields. */
  readonly ready: Record<string, unknown>;
  /** Every JSON log line the service printed so far. */
  readonly logs: Record<string, unknown>[];
  /** Everything it wrote to stdout and stderr so far, as text (the first 8 MiB): what a log collector would keep. */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** SIGKILL: the crash a test wants; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGSTOP / SIGCONT: a hung process whose sockets stay open. */
  pause(): void;
  resume(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartServiceOptions {
  /** The built `main.js` of the service. */
  main: string;
  /** Written as JSON and passed as `--config <file>`. */
  config: unknown;
  configFile: string;
  /** The `event` field of the ready line, e.g. `agent-ready`. */
  readyEvent: string;
  timeoutMs?: number;
  /** Node flags before `main`, as the binary's own shebang gives them (e.g. AGENT_NODE_FLAGS). */
  nodeFlags?: readonly string[];
}

/**
 * Runs one of our binaries (`node <main> --config <file>`) as a child the kernel kills if the
 * test worker dies, and waits for its JSON ready line on stdout.
 */
export async function startServiceProcess(options: StartServiceOptions): Promise<ServiceProcess> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SERVICE_START_TIMEOUT_MS;
  await writeFile(options.configFile, JSON.stringify(options.config, null, 2));
  const { child } = await spawnOwned(process.execPath, [...(options.nodeFlags ?? []), options.main, '--config', options.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { stdout, stderr } = child;
  if (stdout === null || stderr === null) throw new Error('service child has no stdout/stderr pipes');
  const logs: Record<string, unknown>[] = [];
  let stderrTail = '';
  let output = '';
  const keep = (d: string): void => {
    if (output.length < OUTPUT_MAX_CHARS) output += d;
  };
  stderr.setEncoding('utf8').on('data', (d: string) => {
    stderrTail = (stderrTail + d).slice(-4000);
    keep(d);
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new OutpostError(ErrorCode.HARNESS_START_FAILED, `${options.main} did not print its ready line within ${timeoutMs} ms; stderr: ${stderrTail}`));
    }, timeoutMs);
    createInterface({ input: stdout }).on('line', (line) => {
      keep(`${line}\n`);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry['event'] === options.readyEvent) {
        clearTimeout(timer);
        resolve(entry);
      }
    });
    // 'close', not 'exit': the last lines it wrote (its reason, as a log line) are read by then.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      reject(new OutpostError(ErrorCode.HARNESS_START_FAILED, `${options.main} exited before ready (code ${code}, signal ${signal}); its output: ${output.slice(-4000)}`));
    });
  });

  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  // spawnOwned unrefs the child so a forgotten one never holds a test run open; while we wait
  // for its exit, it must hold the event loop, or a script (the bench) ends mid-await.
  const waitExit = async (): Promise<ExitStatus> => {
    child.ref();
    try {
      return await exited;
    } finally {
      child.unref();
    }
  };
  const kill9 = async (): Promise<void> => {
    if (running()) child.kill('SIGKILL');
    await waitExit();
  };
  return {
    child,
    pid: child.pid ?? -1,
    ready,
    logs,
    output: () => output,
    exited,
    kill9,
    async stop() {
      if (running()) child.kill('SIGTERM');
      return (await waitExit()).code;
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    [Symbol.asyncDispose]: kill9,
  };
}
