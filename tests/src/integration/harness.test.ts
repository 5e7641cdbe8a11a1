import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, isOutpostError } from '@outpost/shared';
import {
  canConnect,
  createTempDir,
  startMosquitto,
  startNatsServer,
  waitFor,
} from '../harness/index.js';
import { metricSamples, metricValue, parseMetrics, sumOf } from '../harness/metrics.js';
import { seedFromEnv, seededRandom, testSeed } from '../harness/random.js';

const HOST = '127.0.0.1';

/** Everything a test started, stopped after it even when an assertion failed midway. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function nats(options?: Parameters<typeof startNatsServer>[0]) {
  const server = await startNatsServer(options);
  cleanups.push(() => server.stop());
  return server;
}

/**
 * True when the process is dead: no /proc entry, or a zombie (an orphan that died is reaped
 * by init a little later, and until then it still has a pid that answers kill(pid, 0)).
 */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * A bare TCP connection speaking the NATS text protocol by hand, so these tests check the
 * harness against the server itself and not against a client library's behaviour.
 */
class RawNats {
  received = '';
  readonly #socket: Socket;
  #inbox = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.received += chunk;
    });
  }

  static open(port: number): Promise<RawNats> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: HOST, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', () => {});
        const conn = new RawNats(socket);
        cleanups.push(async () => {
          socket.destroy();
        });
        resolve(conn);
      });
    });
  }

  /** Opens a connection, waits for INFO, sends CONNECT and checks a PING gets its PONG. */
  static async handshake(port: number): Promise<{ conn: RawNats; info: Record<string, unknown> }> {
    const conn = await RawNats.open(port);
    const infoLine = await conn.waitFor((r) => /^INFO (\{.*\}) *\r\n/.exec(r)?.[1], 5_000, 'INFO');
    conn.send('CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\nPING\r\n');
    await conn.waitFor((r) => conn.pongs(r) >= 1 || undefined, 5_000, 'the first PONG');
    return { conn, info: JSON.parse(infoLine) as Record<string, unknown> };
  }

  send(text: string): void {
    this.#socket.write(text);
  }

  pongs(received = this.received): number {
    return received.match(/PONG\r\n/g)?.length ?? 0;
  }

  /**
   * Resolves with the first defined result of `probe(received)`, or undefined when none came
   * within `timeoutMs`. Checked on every chunk that arrives, so no polling.
   */
  until<T>(probe: (received: string) => T | undefined, timeoutMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const check = (): void => {
        const value = probe(this.received);
        if (value === undefined) return;
        finish(value);
      };
      const finish = (value: T | undefined): void => {
        clearTimeout(timer);
        this.#socket.off('data', check);
        resolve(value);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      // Registered after the constructor's listener, so `received` already has the chunk.
      this.#socket.on('data', check);
      check();
    });
  }

  async waitFor<T>(probe: (received: string) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const value = await this.until(probe, timeoutMs);
    if (value === undefined) throw new Error(`no ${what} within ${timeoutMs} ms; got: ${this.received}`);
    return value;
  }

  /** Request/reply through a fresh inbox: used to drive the JetStream API by hand. */
  async request(subject: string, payload: string): Promise<Record<string, unknown>> {
    this.#inbox += 1;
    const inbox = `_INBOX.harness.${this.#inbox}`;
    this.send(`SUB ${inbox} ${this.#inbox}\r\n`);
    this.send(`PUB ${subject} ${inbox} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`);
    // MSG <subject> <sid> [reply-to] <#bytes>; the server pads a missing reply-to with a space.
    const pattern = new RegExp(`MSG ${inbox.replaceAll('.', '\\.')} \\d+ +(?:\\S+ +)?(\\d+)\\r\\n`);
    const body = await this.waitFor(
      (r) => {
        const match = pattern.exec(r);
        if (match === null || match[1] === undefined) return undefined;
        const start = match.index + match[0].length;
        const end = start + Number(match[1]);
        return r.length >= end ? r.slice(start, end) : undefined;
      },
      5_000,
      `reply to ${subject}`,
    );
    return JSON.parse(body) as Record<string, unknown>;
  }
}

describe('startNatsServer', () => {
  it('serves NATS with JetStream on its own port, and stop() kills it and removes its dir', async () => {
    const server = await nats();
    const dir = dirname(server.configFile);

    expect(server.url).toBe(`nats://${HOST}:${server.port}`);
    expect(server.port).not.toBe(4222);
    const { info } = await RawNats.handshake(server.port);
    expect(info).toMatchObject({ jetstream: true, port: server.port });
    expect(existsSync(server.storeDir)).toBe(true);

    await server.stop();
    expect(processGone(server.pid)).toBe(true);
    expect(await canConnect(HOST, server.port)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await expect(server.stop()).resolves.toBeUndefined();
  });

  it('runs without JetStream and applies extraConfig when asked', async () => {
    const server = await nats({ jetstream: false, extraConfig: 'max_payload: 4096' });
    const { info } = await RawNats.handshake(server.port);
    expect(info['jetstream']).not.toBe(true);
    expect(info['max_payload']).toBe(4096);
  });

  it('gives two servers at once different ports, neither of them 4222', async () => {
    const [a, b] = await Promise.all([nats(), nats()]);
    expect(a.port).not.toBe(b.port);
    expect([a.port, b.port]).not.toContain(4222);
    const [infoA, infoB] = await Promise.all([RawNats.handshake(a.port), RawNats.handshake(b.port)]);
    expect(infoA.info['server_name']).not.toBe(infoB.info['server_name']);
  });

  it('restart() comes back on the same port with the JetStream data kept', async () => {
    const server = await nats();
    const { port, url, pid } = server;
    const before = (await RawNats.handshake(port)).conn;
    const created = await before.request(
      '$JS.API.STREAM.CREATE.HARNESS',
      JSON.stringify({ name: 'HARNESS', subjects: ['harness.>'], storage: 'file' }),
    );
    expect(created['error']).toBeUndefined();
    expect(await before.request('harness.one', 'hello')).toMatchObject({ stream: 'HARNESS', seq: 1 });

    await server.restart();

    expect(server.port).toBe(port);
    expect(server.url).toBe(url);
    expect(server.pid).not.toBe(pid);
    expect(processGone(pid)).toBe(true);
    const after = (await RawNats.handshake(port)).conn;
    const streamInfo = await after.request('$JS.API.STREAM.INFO.HARNESS', '');
    expect(streamInfo).toMatchObject({ state: { messages: 1 } });
  });

  it('pause() leaves a PING unanswered until resume()', async () => {
    const server = await nats({ jetstream: false });
    const { conn } = await RawNats.handshake(server.port);
    expect(conn.pongs()).toBe(1);

    server.pause();
    conn.send('PING\r\n');
    // Proving an absence needs a bounded wait; a running server answers in well under 1 ms.
    expect(await conn.until((r) => conn.pongs(r) >= 2 || undefined, 300)).toBeUndefined();

    server.resume();
    expect(await conn.until((r) => conn.pongs(r) >= 2 || undefined, 5_000)).toBe(true);
  });

  it('reports a missing binary as HARNESS_MISSING_BINARY', async () => {
    await using emptyDir = await createTempDir();
    const onEmptyPath = startNatsServer({ binary: 'nats-server', env: { PATH: emptyDir.path } });
    await expect(onEmptyPath).rejects.toMatchObject({
      code: ErrorCode.HARNESS_MISSING_BINARY,
      message: expect.stringContaining('apt-get install nats-server'),
    });
    await expect(startNatsServer({ binary: `${emptyDir.path}/nats-server` })).rejects.toSatisfy(
      (err: unknown) => isOutpostError(err, ErrorCode.HARNESS_MISSING_BINARY),
    );
  });

  it('reports a server that exits at start as HARNESS_START_FAILED with its stderr', async () => {
    const error: unknown = await startNatsServer({ extraConfig: 'this is { not valid' }).catch(
      (err: unknown) => err,
    );
    expect(isOutpostError(error, ErrorCode.HARNESS_START_FAILED)).toBe(true);
    // The message carries the server's own complaint from its stderr.
    expect((error as Error).message).toMatch(/Parse error on line \d+/);
  });

  it('is disposable with await using', async () => {
    let port: number;
    {
      await using server = await startNatsServer({ jetstream: false });
      port = server.port;
      expect(await canConnect(HOST, port)).toBe(true);
    }
    expect(await canConnect(HOST, port)).toBe(false);
  });
});

describe('startMosquitto', () => {
  it('accepts an MQTT CONNECT and routes a message, and stop() kills it', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    expect(broker.url).toBe(`mqtt://${HOST}:${broker.port}`);
    expect(broker.port).not.toBe(1883);

    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 5_000 });
    cleanups.push(() => client.endAsync(true));
    expect(client.connected).toBe(true); // the CONNACK arrived and was accepted

    const received: string[] = [];
    client.on('message', (_topic, payload) => received.push(payload.toString()));
    await client.subscribeAsync('harness/t', { qos: 1 });
    await client.publishAsync('harness/t', 'hello', { qos: 1 });
    await waitFor(() => received.length > 0, { what: 'the message back from mosquitto', timeoutMs: 5_000 });
    expect(received).toEqual(['hello']);

    await broker.stop();
    expect(processGone(broker.pid)).toBe(true);
    expect(await canConnect(HOST, broker.port)).toBe(false);
    expect(existsSync(dirname(broker.configFile))).toBe(false);
    await expect(broker.stop()).resolves.toBeUndefined();
  });

  it('reports a missing binary as HARNESS_MISSING_BINARY', async () => {
    await using emptyDir = await createTempDir();
    await expect(
      startMosquitto({ binary: 'mosquitto', env: { PATH: emptyDir.path } }),
    ).rejects.toMatchObject({
      code: ErrorCode.HARNESS_MISSING_BINARY,
      message: expect.stringContaining('apt-get install mosquitto'),
    });
  });

  it('reports a bad config line as HARNESS_START_FAILED with the broker log', async () => {
    const error: unknown = await startMosquitto({ configLines: ['no_such_option 1'] }).catch(
      (err: unknown) => err,
    );
    expect(isOutpostError(error, ErrorCode.HARNESS_START_FAILED)).toBe(true);
    expect((error as Error).message).toMatch(/no_such_option/);
  });
});

describe('spawnOwned', () => {
  /**
   * A spawner that is not this test process: plain Node running wait.ts compiled to
   * JavaScript, so it can be killed or terminated the way vitest ends its workers, without
   * any 'exit' handler running.
   */
  async function spawnerScript(): Promise<string> {
    const dir = await createTempDir();
    cleanups.push(() => dir.remove());
    const source = await readFile(new URL('../harness/wait.ts', import.meta.url), 'utf8');
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    await writeFile(join(dir.path, 'wait.mjs'), js);
    const script = join(dir.path, 'spawner.mjs');
    await writeFile(
      script,
      [
        "import { parentPort } from 'node:worker_threads';",
        `const { spawnOwned } = await import(${JSON.stringify(join(dir.path, 'wait.mjs'))});`,
        "const owned = await spawnOwned('/bin/sleep', ['600'], { stdio: 'ignore' });",
        'if (parentPort) parentPort.postMessage(owned.child.pid);',
        'else console.log(owned.child.pid);',
        // Keep the spawner alive until it is killed or terminated.
        'setInterval(() => {}, 1000);',
      ].join('\n'),
    );
    return script;
  }

  it('kills the child when the spawning process is SIGKILLed', async () => {
    const script = await spawnerScript();
    const spawner = runNode(script);
    const pid = await spawner.firstLine;
    expect(processGone(pid)).toBe(false);

    spawner.kill();
    await waitFor(() => processGone(pid), { what: `sleep (pid ${pid}) to die with its spawner` });
  });

  it('kills the child when the spawning worker thread is terminated', async () => {
    const script = await spawnerScript();
    const worker = new Worker(script);
    cleanups.push(async () => {
      await worker.terminate();
    });
    const pid = await new Promise<number>((resolve, reject) => {
      worker.once('message', (value: number) => resolve(value));
      worker.once('error', reject);
    });
    expect(processGone(pid)).toBe(false);

    await worker.terminate();
    await waitFor(() => processGone(pid), { what: `sleep (pid ${pid}) to die with its worker` });
  });
});

/** Runs `node script`, resolving `firstLine` with the number it prints first. */
function runNode(script: string): { firstLine: Promise<number>; kill(): void } {
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(async () => {
    child.kill('SIGKILL');
  });
  const firstLine = new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const line = /^(\d+)\n/.exec(out);
      if (line?.[1] !== undefined) resolve(Number(line[1]));
    });
    child.once('exit', (code) => reject(new Error(`spawner exited early (${code}): ${out}`)));
  });
  return { firstLine, kill: () => child.kill('SIGKILL') };
}

describe('waitFor', () => {
  it('returns the first truthy probe value', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? 'ready' : undefined), { what: 'three calls' });
    expect(value).toBe('ready');
    expect(calls).toBe(3);
  });

  it('names what it waited for when it times out', async () => {
    await expect(waitFor(() => false, { what: 'Godot', timeoutMs: 50 })).rejects.toThrow(
      /Timed out after 50 ms waiting for Godot/,
    );
  });

  it('ends at once with the error a probe throws', async () => {
    const started = Date.now();
    await expect(
      waitFor(
        () => {
          throw new Error('gave up');
        },
        { what: 'nothing', timeoutMs: 10_000 },
      ),
    ).rejects.toThrow('gave up');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('parseMetrics', () => {
  const text = [
    '# HELP outpost_ingest_rejected_total Device publishes rejected, by reason',
    '# TYPE outpost_ingest_rejected_total counter',
    'outpost_ingest_rejected_total{reason="invalid-json",agent_id="a"} 3',
    'outpost_ingest_rejected_total{reason="invalid-payload",agent_id="a"} 4',
    'outpost_cp_sse_clients 2',
    '',
    'outpost_odd{path="a}b \\"q\\" \\\\ c\\nd",empty=""} 1.5 1700000000000',
    'outpost_latency_seconds_bucket{le="0.5"} 7',
    'outpost_latency_seconds_bucket{le="+Inf"} 9',
    'outpost_gauge{a="1",} -Inf',
    'outpost_lag_seconds Nan',
  ].join('\n');

  it('reads names, labels (escapes, a brace inside a value, a trailing comma), values (Inf and NaN in any case) and skips comments', () => {
    expect(parseMetrics(text)).toEqual([
      { name: 'outpost_ingest_rejected_total', labels: { reason: 'invalid-json', agent_id: 'a' }, value: 3 },
      { name: 'outpost_ingest_rejected_total', labels: { reason: 'invalid-payload', agent_id: 'a' }, value: 4 },
      { name: 'outpost_cp_sse_clients', labels: {}, value: 2 },
      { name: 'outpost_odd', labels: { path: 'a}b "q" \\ c\nd', empty: '' }, value: 1.5 },
      { name: 'outpost_latency_seconds_bucket', labels: { le: '0.5' }, value: 7 },
      { name: 'outpost_latency_seconds_bucket', labels: { le: '+Inf' }, value: 9 },
      { name: 'outpost_gauge', labels: { a: '1' }, value: -Infinity },
      { name: 'outpost_lag_seconds', labels: {}, value: NaN },
    ]);
  });

  it('finds one sample by a subset of its labels, sums several, and is undefined or 0 for none', () => {
    expect(metricValue(text, 'outpost_ingest_rejected_total', { reason: 'invalid-payload' })).toBe(4);
    expect(metricValue(text, 'outpost_cp_sse_clients')).toBe(2);
    expect(metricValue(text, 'outpost_ingest_rejected_total', { reason: 'rate-limited' })).toBeUndefined();
    expect(metricValue(text, 'outpost_ingest_rejected')).toBeUndefined();
    expect(sumOf(text, 'outpost_ingest_rejected_total')).toBe(7);
    expect(sumOf(text, 'outpost_ingest_rejected_total', { agent_id: 'b' })).toBe(0);
    expect(metricSamples(text, 'outpost_latency_seconds_bucket').map((s) => s.labels['le'])).toEqual(['0.5', '+Inf']);
  });

  it('refuses labels that do not name one series, and a body it cannot read', () => {
    expect(() => metricValue(text, 'outpost_ingest_rejected_total')).toThrow(/2 samples of outpost_ingest_rejected_total/);
    expect(() => parseMetrics('outpost_x{reason=unquoted} 1')).toThrow(/line 1: labels unreadable/);
    expect(() => parseMetrics('# ok\n<html>')).toThrow(/line 2 is not a sample/);
    expect(() => parseMetrics('outpost_x one')).toThrow(/value one is not a number/);
  });
});

describe('seededRandom', () => {
  it('gives the same choices for the same seed and purpose, other ones for another purpose', () => {
    const draw = (purpose: string) => {
      const rng = seededRandom(purpose);
      return Array.from({ length: 8 }, () => rng.int(0, 1_000_000));
    };
    expect(Number.isSafeInteger(testSeed())).toBe(true);
    expect(draw('kill points')).toEqual(draw('kill points'));
    expect(draw('kill points')).not.toEqual(draw('cut points'));
  });

  it('takes an integer seed from the environment and refuses anything else', () => {
    const name = 'OUTPOST_TEST_SEED_PROBE';
    try {
      expect(seedFromEnv(name, () => 5)).toBe(5);
      process.env[name] = '';
      expect(seedFromEnv(name, () => 5)).toBe(5);
      process.env[name] = '123';
      expect(seedFromEnv(name, () => 5)).toBe(123);
      process.env[name] = '1.5';
      expect(() => seedFromEnv(name, () => 5)).toThrow(`${name} must be an integer, got 1.5`);
    } finally {
      delete process.env[name];
    }
  });
});
