import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { Lane } from '@outpost/shared';
import { loadAgentConfig, verifyPassword, OUTBOX_FILE_NAME } from '@outpost/agent';
import { AGENT_MAIN, startAgentProcess, startInProcessAgent, testAgentConfig, type AgentProcess } from '../harness/agent-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { fetchMetrics, metricValue } from '../harness/metrics.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

// The agent binary as an operator runs it: a child process of the built JavaScript
// (agent/dist/main.js, written by `npx tsc -b`), its exit codes, stderr, signals and HTTP.

const EXIT_CONFIG_INVALID = 2;
const EXAMPLE_CONFIG = fileURLToPath(new URL('../../../agent/examples/agent.yaml', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

let dir: TempDir;
const agents: AgentProcess[] = [];
const children: ChildProcess[] = [];

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `outpost-agent <args>` to completion (for commands that exit by themselves). */
function runCli(args: string[], options: { cwd?: string; stdin?: string } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [AGENT_MAIN, ...args], { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(options.stdin);
  // 'close', not 'exit': every byte the process wrote has been read by then.
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

/** Starts a long-running agent from a config file of the test's choosing, in `cwd`. */
function spawnAgent(configFile: string, cwd: string): { child: ChildProcess; ready: Promise<Record<string, unknown>>; closed: Promise<number | null> } {
  const child = spawn(process.execPath, [AGENT_MAIN, '--config', configFile], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolveClosed) => child.once('close', (code) => resolveClosed(code)));
  const ready = new Promise<Record<string, unknown>>((resolveReady, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['event'] === 'agent-ready') resolveReady(entry);
    });
    void closed.then((code) => reject(new Error(`agent exited before ready (code ${code}); stderr: ${stderr}`)));
  });
  return { child, ready, closed };
}

async function startAgent(): Promise<AgentProcess> {
  const agent = await startAgentProcess(testAgentConfig(join(dir.path, 'data'), { log: { level: 'info' } }));
  agents.push(agent);
  return agent;
}

async function publishTelemetry(agent: AgentProcess, deviceId: string, seqs: number[]): Promise<void> {
  const device = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: deviceId });
  try {
    for (const seq of seqs) await publish(device, `devices/${deviceId}/telemetry`, telemetryPayload(seq));
  } finally {
    device.end(true);
  }
}

beforeAll(() => {
  if (!existsSync(AGENT_MAIN)) throw new Error(`${AGENT_MAIN} is missing: build the agent first with \`npx tsc -b\``);
});

beforeEach(async () => {
  dir = await createTempDir('outpost-agent-process-');
});

afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.kill9();
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await dir.remove();
});

describe('outpost-agent config errors', () => {
  it('exits 2 and lists every bad key of an invalid config at once', async () => {
    const configFile = join(dir.path, 'agent.yaml');
    await writeFile(
      configFile,
      [
        'agentId: bad-config',
        'dataDir: ./data',
        'colour: red',
        'broker:',
        '  mode: embedded',
        '  port: "abc"',
        '  devices:',
        '    - id: "not a device id!"',
        "      passwordHash: 'scrypt$16384$8$1$w4YLIijZhW7yvBt6cZM6jA==$Bfcte0EVqRnhrve3Gu1hyhen0qejZnoAXrCUvapqKbc='",
        'outbox:',
        '  durability: fast',
        '',
      ].join('\n'),
    );
    const run = await runCli(['--config', configFile]);
    expect(run.code).toBe(EXIT_CONFIG_INVALID);
    expect(run.stderr).toContain(configFile);
    expect(run.stderr).toMatch(/^broker\.port: .*expected number.*$/m);
    expect(run.stderr).toMatch(/^outbox\.durability: .*"power".*"process".*$/m);
    expect(run.stderr).toMatch(/^broker\.devices\.0\.id: device id must match .+$/m);
    // zod reports an unknown key on the object holding it; either form names the key.
    expect(run.stderr).toMatch(/^(\(root\): Unrecognized key: "colour"|colour: .+)$/m);
    // Nothing started: no ready line, and the data dir was never created.
    expect(run.stdout).not.toContain('agent-ready');
    expect(existsSync(join(dir.path, 'data'))).toBe(false);
  });

  it('exits 2 with a clear message when the config file does not exist', async () => {
    const missing = join(dir.path, 'does-not-exist.yaml');
    const run = await runCli(['--config', missing]);
    expect(run.code).toBe(EXIT_CONFIG_INVALID);
    expect(run.stderr).toContain(`cannot read config file ${missing}`);
    expect(run.stderr).toMatch(/no such file or directory/);
  });

  it('exits 2 on a config file that is not valid YAML', async () => {
    const configFile = join(dir.path, 'broken.yaml');
    await writeFile(configFile, 'agentId: [unclosed\ndataDir: ./data\n');
    const run = await runCli(['--config', configFile]);
    expect(run.code).toBe(EXIT_CONFIG_INVALID);
    expect(run.stderr).toContain(`config file ${configFile} is not valid YAML`);
  });

  it('exits 2 without --config', async () => {
    const run = await runCli([]);
    expect(run.code).toBe(EXIT_CONFIG_INVALID);
    expect(run.stderr).toContain('--config');
  });
});

describe('outpost-agent lifecycle', () => {
  it('stops cleanly on SIGTERM and resumes the same outbox after a restart', async () => {
    const first = await startAgent();
    await publishTelemetry(first, 'd1', [0, 1, 2]);
    expect(metricValue(await fetchMetrics(first.httpPort), 'outpost_outbox_records', { lane: Lane.telemetry })).toBe(3);

    expect(await first.stop()).toBe(0);
    // Graceful: the shutdown ran to its end, and the outbox (closed last) checkpointed and
    // removed its WAL, which a killed process leaves behind.
    await waitFor(() => first.logs.some((l) => l['msg'] === 'agent stopped'), { what: 'the "agent stopped" log line' });
    const messages = first.logs.map((l) => l['msg']);
    expect(messages.indexOf('stopping')).toBeGreaterThan(messages.indexOf('agent ready'));
    expect(messages.indexOf('agent stopped')).toBeGreaterThan(messages.indexOf('stopping'));
    expect(first.logs.find((l) => l['msg'] === 'stopping')).toMatchObject({ signal: 'SIGTERM' });
    expect(existsSync(join(dir.path, 'data', OUTBOX_FILE_NAME))).toBe(true);
    expect(existsSync(join(dir.path, 'data', `${OUTBOX_FILE_NAME}-wal`))).toBe(false);

    const second = await startAgent();
    expect(second.epoch).toBe(first.epoch);
    expect(metricValue(await fetchMetrics(second.httpPort), 'outpost_outbox_records', { lane: Lane.telemetry })).toBe(3);
    await publishTelemetry(second, 'd1', [3, 4]);
    expect(await second.stop()).toBe(0);

    // Read what the two runs left, in this process.
    await using agent = await startInProcessAgent(testAgentConfig(join(dir.path, 'data')));
    expect(agent.epoch).toBe(first.epoch);
    const records = await agent.outbox.read(Lane.telemetry, 0, 100);
    expect(records.map((r) => r.deviceSeq)).toEqual([0, 1, 2, 3, 4]);
    const firstRunMax = Math.max(...records.slice(0, 3).map((r) => r.seq));
    for (const record of records.slice(3)) expect(record.seq).toBeGreaterThan(firstRunMax);
  });

  it('exits 0 on a SIGTERM sent the moment the ready line appears', async () => {
    // A launcher may stop the agent as soon as it reads the ready line: the signal handlers
    // must already be there, or the default action kills the process (exit by signal).
    const configFile = join(dir.path, 'agent.json');
    await writeFile(configFile, JSON.stringify(testAgentConfig(join(dir.path, 'data'))));
    for (let run = 0; run < 3; run++) {
      const agent = spawnAgent(configFile, dir.path);
      await agent.ready;
      agent.child.kill('SIGTERM');
      expect(await agent.closed).toBe(0);
    }
  });

  it('serves /healthz and /metrics with the ingest and outbox counts', async () => {
    const agent = await startAgent();
    const health = await fetch(`http://127.0.0.1:${agent.httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });

    const before = await fetchMetrics(agent.httpPort);
    expect(metricValue(before, 'outpost_ingest_accepted_total')).toBe(0);
    expect(metricValue(before, 'outpost_outbox_records', { lane: Lane.telemetry })).toBe(0);

    await publishTelemetry(agent, 'd1', [0, 1, 2, 3]);
    await publishTelemetry(agent, 'd2', [0, 1, 2]);
    const after = await fetchMetrics(agent.httpPort);
    expect(metricValue(after, 'outpost_ingest_accepted_total', { agent_id: 'test-agent' })).toBe(7);
    expect(metricValue(after, 'outpost_outbox_records', { lane: Lane.telemetry })).toBe(7);
    expect(metricValue(after, 'outpost_outbox_records', { lane: Lane.events })).toBe(0);
  });

  it('resolves a relative dataDir against the config file folder, not the working directory', async () => {
    const configDir = join(dir.path, 'conf');
    const cwd = join(dir.path, 'elsewhere');
    await mkdir(configDir);
    await mkdir(cwd);
    await writeFile(
      join(configDir, 'agent.yaml'),
      [
        'agentId: relative-agent',
        'dataDir: ./rel-data',
        'broker:',
        '  mode: embedded',
        '  host: 127.0.0.1',
        '  port: 0',
        '  allowAnonymous: true',
        'http:',
        '  host: 127.0.0.1',
        '  port: 0',
        'log:',
        '  level: warn',
        '',
      ].join('\n'),
    );
    // The config path itself is relative to the working directory.
    const agent = spawnAgent('../conf/agent.yaml', cwd);
    await agent.ready;
    expect(existsSync(join(configDir, 'rel-data', OUTBOX_FILE_NAME))).toBe(true);
    expect(existsSync(join(cwd, 'rel-data'))).toBe(false);
    agent.child.kill('SIGTERM');
    expect(await agent.closed).toBe(0);
  });
});

describe('outpost-agent hash-password', () => {
  it('prints a hash that verifyPassword accepts for that password only', async () => {
    const run = await runCli(['hash-password', 'secret']);
    expect(run.code).toBe(0);
    const hash = run.stdout.trim();
    expect(run.stdout).toBe(`${hash}\n`);
    expect(hash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('secret', hash)).toBe(true);
    expect(await verifyPassword('Secret', hash)).toBe(false);
  });

  it('reads the password from stdin when no argument is given', async () => {
    const run = await runCli(['hash-password'], { stdin: 'from-stdin\n' });
    expect(run.code).toBe(0);
    expect(await verifyPassword('from-stdin', run.stdout.trim())).toBe(true);
  });
});

describe('the shipped example config', () => {
  it('validates, with dataDir resolved against its own folder', async () => {
    const config = await loadAgentConfig(EXAMPLE_CONFIG);
    expect(config.agentId).toBe('example-gateway');
    expect(config.dataDir).toBe(resolve(REPO_ROOT, '.data/example-gateway'));
    expect(config.broker.mode).toBe('embedded');
  });

  it('holds hashes of the device passwords its comment documents', async () => {
    const config = await loadAgentConfig(EXAMPLE_CONFIG);
    if (config.broker.mode !== 'embedded') throw new Error('the example config is expected to embed the broker');
    const hashes = new Map(config.broker.devices.map((d) => [d.id, d.passwordHash]));
    expect([...hashes.keys()]).toEqual(['sensor-1', 'sensor-2']);
    expect(await verifyPassword('sensor-1-secret', hashes.get('sensor-1')!)).toBe(true);
    expect(await verifyPassword('sensor-2-secret', hashes.get('sensor-2')!)).toBe(true);
    expect(await verifyPassword('sensor-2-secret', hashes.get('sensor-1')!)).toBe(false);
  });
});
