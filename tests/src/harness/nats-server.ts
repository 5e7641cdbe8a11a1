import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { mintEnrollmentBundle, setupNatsAuth, type SetupFiles } from '@outpost/control-plane';
import { AccountsFileSchema, ErrorCode, OutpostError, writeSecretFile, type TrustedKey } from '@outpost/shared';
import { createPki, type CertFiles } from './pki.js';
import { createTempDir } from './temp-dir.js';
import type { TempDir } from './temp-dir.js';
import { resolveExecutable, spawnOwned, waitFor, waitForTcp } from './wait.js';
import type { OwnedProcess } from './wait.js';

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream with a store in the server's temp dir; default true. */
  jetstream?: boolean;
  /** Appended verbatim to the generated config file (nats-server config syntax). */
  extraConfig?: string;
  /** Turn on the server's debug log and copy its log to this process's stderr. */
  debug?: boolean;
  /** Executable to run, a name looked up on PATH or a path; default `nats-server`. */
  binary?: string;
  /**
   * Environment of the server process, whose PATH is also where a bare `binary` name is
   * looked up. Default: this process's environment, and the lookup then also tries the sbin
   * directories, where Debian installs nats-server but which a non-root PATH often lacks.
   */
  env?: NodeJS.ProcessEnv;
  /** Give up starting (ports file and TCP connect) after this long; default 10 000 ms. */
  startTimeoutMs?: number;
  /**
   * Secured like production (DESIGN section 4): operator-mode JWT auth made by
   * `outpost-control-plane setup` (agents in an account of their own) and TLS with a
   * throwaway CA; `clientCerts` makes the server ask every client for a certificate too;
   * `hosts` are the names in its certificate (default 127.0.0.1 and localhost).
   */
  secure?: boolean | { tls?: boolean; clientCerts?: boolean; hosts?: readonly string[] };
}

/** What a secured server's clients need: the control plane's files and a way to enrol agents. */
export interface NatsSecurity {
  /** Everything `outpost-control-plane setup` wrote. */
  readonly files: SetupFiles;
  /** The CA the server's certificate is signed by; undefined without TLS. */
  readonly caFile: string | undefined;
  /** A client certificate signed by the CA (for `clientCerts`); undefined without TLS. */
  readonly clientCert: CertFiles | undefined;
  /** The control plane's `nats` connection settings (servers, creds, TLS). */
  controlPlaneNats(): { servers: string[]; credsFile: string; tls?: { caFile: string; certFile?: string; keyFile?: string } };
  /** The control plane's `security` section (enrolment and revocation). */
  controlPlaneSecurity(): { accountsFile: string; agentsSigningKeyFile: string; operatorSigningKeyFile: string; systemCredsFile: string };
  /**
   * Enrols `agentId` the way the control plane does (a new user of the AGENTS account) and
   * writes its bundle, 0600, to a file of the server's temp dir; returns the path.
   */
  enroll(agentId: string, options?: { labels?: Record<string, string>; trustedKeys?: readonly TrustedKey[] }): Promise<string>;
}

/** A nats-server child process owned by one test, on its own port and temp dir. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`, or `tls://...` with TLS. */
  readonly url: string;
  /** The port the server listens on; the same after `restart()`. */
  readonly port: number;
  /** PID of the current server process; changes on `restart()`. */
  readonly pid: number;
  /** JetStream store directory; kept across `restart()`, removed by `stop()`. */
  readonly storeDir: string;
  /** The generated config file. */
  readonly configFile: string;
  /** Set when started with `secure`. */
  readonly security: NatsSecurity | undefined;
  /**
   * Options for a nats.js client with the control plane's rights (the OUTPOST account, which
   * holds JetStream): just the URL on an open server.
   */
  clientOptions(): ConnectionOptions;
  /** The last few KiB the server wrote to stderr (its log), for failure messages. */
  logs(): string;
  /** SIGKILL the server and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: the process stays, its sockets stay open, nothing is answered. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
  /**
   * SIGKILL, then start again on the same port with the same store dir, so clients can
   * reconnect to the same URL and JetStream data survives (a crash, not a clean shutdown).
   */
  restart(): Promise<void>;
  /** SIGKILL, keeping port and store: the outage starts. */
  down(): Promise<void>;
  /** Starts again after `down()` on the same port with the same store: the outage ends. */
  up(): Promise<void>;
  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_BINARY = 'nats-server';
const LOG_TAIL_CHARS = 8 * 1024;
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * Starts a private nats-server the way nats.js's own tests do: a config with `port: -1`
 * (the server picks a free port itself, so there is no race for it) and `ports_file_dir`,
 * then wait for the ports file the server writes once it listens, and for a TCP connect.
 * It listens on 127.0.0.1 only and never on 4222, so the machine's shared server is untouched.
 *
 * @throws OutpostError HARNESS_MISSING_BINARY when the binary is not installed.
 * @throws OutpostError HARNESS_START_FAILED when it exits or is not ready in time; the
 *   message ends with the tail of the server's stderr.
 */
export function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  return NatsServerProcess.create(options);
}

let serverCounter = 0;

class NatsServerProcess implements NatsServer {
  readonly storeDir: string;
  readonly configFile: string;
  readonly #dir: TempDir;
  readonly #options: NatsServerOptions;
  readonly #serverName: string;
  #port = -1;
  #process: OwnedProcess | undefined;
  #secured: { security: NatsSecurity; serverConfig: string; tls: boolean } | undefined;
  #log = '';
  #stopping: Promise<void> | undefined;

  private constructor(dir: TempDir, options: NatsServerOptions) {
    this.#dir = dir;
    this.#options = options;
    this.storeDir = join(dir.path, 'js');
    this.configFile = join(dir.path, 'nats-server.conf');
    serverCounter += 1;
    this.#serverName = `outpost_test_${process.pid}_${serverCounter}`;
  }

  static async create(options: NatsServerOptions): Promise<NatsServer> {
    const dir = await createTempDir('outpost-nats-');
    const server = new NatsServerProcess(dir, options);
    try {
      if (options.secure !== undefined && options.secure !== false) await server.#secure(options.secure === true ? {} : options.secure);
      await server.#start(-1);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `${this.#secured?.tls === true ? 'tls' : 'nats'}://${HOST}:${this.#port}`;
  }

  get security(): NatsSecurity | undefined {
    return this.#secured?.security;
  }

  clientOptions(): ConnectionOptions {
    const security = this.#secured?.security;
    if (security === undefined) return { servers: this.url };
    const nats = security.controlPlaneNats();
    return {
      servers: this.url,
      authenticator: credsAuthenticator(readFileSync(nats.credsFile)),
      ...(nats.tls === undefined ? {} : { tls: { caFile: nats.tls.caFile, ...(nats.tls.certFile === undefined ? {} : { certFile: nats.tls.certFile, keyFile: nats.tls.keyFile }) } }),
    };
  }

  /** Writes the operator, accounts and keys (as `outpost-control-plane setup` does) and, with TLS, a CA and certificates. */
  async #secure(options: { tls?: boolean; clientCerts?: boolean; hosts?: readonly string[] }): Promise<void> {
    const { tls = true, clientCerts = false, hosts } = options;
    const files = await setupNatsAuth(join(this.#dir.path, 'auth'));
    const lines = [await readFile(files.natsAuthConfig, 'utf8')];
    let caFile: string | undefined;
    let clientCert: CertFiles | undefined;
    if (tls) {
      const pkiDir = join(this.#dir.path, 'pki');
      await mkdir(pkiDir, { mode: 0o700 });
      const pki = createPki(pkiDir);
      const server = pki.server('nats-server', hosts);
      caFile = pki.caCert;
      if (clientCerts) clientCert = pki.client('control-plane', 'control-plane');
      // timeout: the handshake of a client on two busy shared cores.
      lines.push('tls {', `  cert_file: ${JSON.stringify(server.cert)}`, `  key_file: ${JSON.stringify(server.key)}`, `  ca_file: ${JSON.stringify(caFile)}`, `  verify: ${clientCerts}`, '  timeout: 10', '}');
    }
    const bundlesDir = join(this.#dir.path, 'bundles');
    const url = (): string => this.url;
    const security: NatsSecurity = {
      files,
      caFile,
      clientCert,
      controlPlaneNats: () => ({
        servers: [url()],
        credsFile: files.controlPlaneCredsFile,
        ...(caFile === undefined ? {} : { tls: { caFile, ...(clientCert === undefined ? {} : { certFile: clientCert.cert, keyFile: clientCert.key }) } }),
      }),
      controlPlaneSecurity: () => ({
        accountsFile: files.accountsFile,
        agentsSigningKeyFile: files.agentsSigningKeyFile,
        operatorSigningKeyFile: files.operatorSigningKeyFile,
        systemCredsFile: files.systemCredsFile,
      }),
      enroll: async (agentId, enrolOptions = {}) => {
        const accounts = AccountsFileSchema.parse(JSON.parse(await readFile(files.accountsFile, 'utf8')));
        const { bundle } = await mintEnrollmentBundle(
          {
            agentsAccount: accounts.agentsAccount,
            agentsSigningSeed: (await readFile(files.agentsSigningKeyFile, 'utf8')).trim(),
            servers: [url()],
            ...(caFile === undefined ? {} : { caPem: await readFile(caFile, 'utf8') }),
          },
          agentId,
          enrolOptions.labels ?? {},
          enrolOptions.trustedKeys ?? [],
        );
        const path = join(bundlesDir, `${agentId}.json`);
        await writeSecretFile(path, JSON.stringify(bundle));
        return path;
      },
    };
    this.#secured = { security, serverConfig: lines.join('\n'), tls };
  }

  get pid(): number {
    return this.#process?.child.pid ?? -1;
  }

  logs(): string {
    return this.#log;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#process?.kill();
      await this.#dir.remove();
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  pause(): void {
    this.#signal('SIGSTOP');
    // kill() only queues the signal; each thread stops when the kernel next schedules it.
    // A request sent right after pause() could still be answered, so wait for the stop.
    waitForThreadsSync(this.pid, true);
  }

  resume(): void {
    this.#signal('SIGCONT');
    waitForThreadsSync(this.pid, false);
  }

  async restart(): Promise<void> {
    await this.down();
    await this.up();
  }

  async down(): Promise<void> {
    if (this.#stopping !== undefined) throw new Error('nats-server was stopped; cannot take it down');
    await this.#process?.kill();
  }

  async up(): Promise<void> {
    if (this.#stopping !== undefined) throw new Error('nats-server was stopped; cannot start it again');
    if (this.#process?.isRunning() === true) throw new Error('nats-server is already up');
    await this.#start(this.#port);
  }

  #signal(signal: NodeJS.Signals): void {
    const owned = this.#process;
    if (this.#stopping !== undefined || owned === undefined || !owned.isRunning()) {
      throw new Error(`nats-server is not running; cannot send ${signal}`);
    }
    owned.child.kill(signal);
  }

  /** Spawns the server on `port` (-1: let it choose) and waits until it accepts connections. */
  async #start(port: number): Promise<void> {
    const { binary = DEFAULT_BINARY, startTimeoutMs = 10_000 } = this.#options;
    const deadline = Date.now() + startTimeoutMs;
    await this.#removePortsFiles();
    await writeFile(this.configFile, this.#renderConfig(port));

    const env = this.#options.env ?? process.env;
    const file = resolveExecutable(binary, env, this.#options.env === undefined ? SBIN_DIRS : []);
    if (file === undefined) {
      throw new OutpostError(
        ErrorCode.HARNESS_MISSING_BINARY,
        `nats-server binary "${binary}" not found; install it with \`apt-get install nats-server\``,
        { details: { binary } },
      );
    }

    this.#log = '';
    let owned: OwnedProcess;
    try {
      owned = await spawnOwned(file, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'], env });
    } catch (err) {
      throw this.#startFailed(`could not spawn "${file}"`, err);
    }
    this.#process = owned;
    const { child } = owned;
    let closed = false;
    void owned.closed.then(() => {
      closed = true;
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#log = (this.#log + chunk).slice(-LOG_TAIL_CHARS);
      if (this.#options.debug === true) process.stderr.write(chunk);
    });

    const pid = child.pid;
    let actualPort: number;
    try {
      actualPort = await waitFor(
        async () => {
          if (closed) throw this.#startFailed(`it exited (${exitStatus(child)}) before it was ready`);
          return this.#readPortsFile(pid);
        },
        { what: 'the nats-server ports file', timeoutMs: startTimeoutMs },
      );
      await waitForTcp(HOST, actualPort, Math.max(deadline - Date.now(), 1));
    } catch (err) {
      await owned.kill();
      throw err instanceof OutpostError ? err : this.#startFailed((err as Error).message, err);
    }
    if (port !== -1 && actualPort !== port) {
      // Cannot happen with `port: <n>` in the config, but a restart on another port would
      // silently break every test that reconnects to the old URL.
      await owned.kill();
      throw this.#startFailed(`it listens on port ${actualPort}, expected ${port}`);
    }
    this.#port = actualPort;
  }

  #renderConfig(port: number): string {
    const { jetstream = true, debug = false, extraConfig } = this.#options;
    const lines = [
      '# Written by the Outpost test harness; one server per test, removed by stop().',
      `host: ${JSON.stringify(HOST)}`,
      // -1: the server binds a random free port and reports it in the ports file.
      `port: ${port}`,
      `server_name: ${JSON.stringify(this.#serverName)}`,
      `ports_file_dir: ${JSON.stringify(this.#dir.path)}`,
    ];
    if (jetstream) lines.push(`jetstream {`, `  store_dir: ${JSON.stringify(this.storeDir)}`, `}`);
    if (this.#secured !== undefined) lines.push(this.#secured.serverConfig);
    if (debug) lines.push('debug: true');
    if (extraConfig !== undefined) lines.push(extraConfig);
    return `${lines.join('\n')}\n`;
  }

  /** The port from `<binary>_<pid>.ports` (`{"nats":["nats://127.0.0.1:PORT"]}`), once written. */
  async #readPortsFile(pid: number | undefined): Promise<number | undefined> {
    const names = await readdir(this.#dir.path);
    // The file is named after the executable's basename, which `binary` may change.
    const name = names.find((n) => n.endsWith(`_${pid}.ports`));
    if (name === undefined) return undefined;
    try {
      const parsed = JSON.parse(await readFile(join(this.#dir.path, name), 'utf8')) as {
        nats?: unknown;
      };
      const first = Array.isArray(parsed.nats) ? parsed.nats[0] : undefined;
      if (typeof first !== 'string') return undefined;
      const value = Number(new URL(first).port);
      return Number.isInteger(value) && value > 0 ? value : undefined;
    } catch {
      // Caught half-written: read it again on the next probe.
      return undefined;
    }
  }

  /** A killed server leaves its ports file behind; remove it so it is never mistaken as fresh. */
  async #removePortsFiles(): Promise<void> {
    const names = await readdir(this.#dir.path);
    await Promise.all(
      names.filter((n) => n.endsWith('.ports')).map((n) => rm(join(this.#dir.path, n), { force: true })),
    );
  }

  #startFailed(reason: string, cause?: unknown): OutpostError {
    const stderr = lastLines(this.#log, 20);
    return new OutpostError(
      ErrorCode.HARNESS_START_FAILED,
      `nats-server did not start: ${reason}\n--- nats-server stderr (tail) ---\n${stderr}`,
      { cause, details: { configFile: this.configFile, stderr } },
    );
  }
}

/**
 * Blocks until every thread of `pid` is stopped (`stopped` true) or none is, read from
 * /proc/<pid>/task/<tid>/stat. Synchronous so pause() and resume() can keep their plain
 * signatures; the wait is normally well under a millisecond and bounded by one second.
 * Without /proc (not Linux) it returns at once: the signal is still sent.
 */
function waitForThreadsSync(pid: number, stopped: boolean): void {
  const taskDir = `/proc/${pid}/task`;
  if (!existsSync('/proc/self/task')) return;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 1_000;
  for (;;) {
    let states: string[];
    try {
      states = readdirSync(taskDir).map((tid) => threadState(join(taskDir, tid, 'stat')));
    } catch {
      throw new Error(`nats-server (pid ${pid}) is gone; cannot ${stopped ? 'pause' : 'resume'} it`);
    }
    // T: stopped by a signal, t: stopped by a tracer; '' a thread that exited meanwhile.
    const isStopped = (state: string): boolean => state === 'T' || state === 't';
    const live = states.filter((state) => state !== '');
    if (stopped ? live.every(isStopped) : !live.some(isStopped)) return;
    if (Date.now() > deadline) {
      throw new Error(`nats-server (pid ${pid}) did not ${stopped ? 'stop' : 'continue'} within 1 s`);
    }
    // A 1 ms synchronous sleep between reads, instead of spinning a core.
    Atomics.wait(sleeper, 0, 0, 1);
  }
}

/** The state letter of one /proc stat file (the field after the parenthesised name). */
function threadState(statFile: string): string {
  try {
    const stat = readFileSync(statFile, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}

function exitStatus(child: ChildProcess): string {
  return child.signalCode !== null ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`;
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}
