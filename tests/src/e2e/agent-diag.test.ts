import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AgentDiagStatusSchema,
  diagSubject,
  DoctorReportSchema,
  EnrollmentBundleSchema,
  generateSigningKey,
  type DoctorCheck,
  type DoctorCheckId,
  type DoctorReport,
} from '@outpost/shared';
import { AGENT_MAIN, signedConstantModel, startAgentProcess, testAgentConfig, testInferenceConfig, testUplinkConfig, writeModelFiles, type AgentProcess, type ModelFilePaths } from '../harness/agent-process.js';
import { bundleConnectionOptions, controlPlaneApi, OUTPOSTCTL_MAIN, runOutpostctl, startControlPlaneProcess, testControlPlaneConfig, type CliRun, type ControlPlaneProcess } from '../harness/control-plane-process.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

// Remote diagnostics as an operator uses them: a production-secured nats-server (operator JWTs,
// TLS, agents in their own account), the control plane and the agent as processes, and
// `outpostctl agents doctor|status|logs` run as a child process. The remote doctor runs inside
// the agent (over the AGENTS account's export of `outpost.diag.>`, imported by OUTPOST) and must
// say what `outpost-agent doctor` says on the gateway.

const A = 'gw-diag-a';
const B = 'gw-diag-b';

let dir: TempDir;
let nats: NatsServer;
let cp: ControlPlaneProcess;
let agent: AgentProcess;
let modelFiles: ModelFilePaths;
/** The file the agent process was started with (the remote report names it). */
let agentConfigFile: string;
const closers: (() => Promise<unknown>)[] = [];

const ctl = (...args: string[]): Promise<CliRun> => runOutpostctl(args, { env: { OUTPOST_URL: `http://127.0.0.1:${cp.httpPort}` }, timeoutMs: 60_000 });

/** `outpost-agent doctor --config FILE --json` on the "gateway": the built binary, as an operator runs it. */
async function localDoctor(configFile: string): Promise<{ code: number | null; report: DoctorReport }> {
  const child = spawn(process.execPath, [AGENT_MAIN, 'doctor', '--config', configFile, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  try {
    return { code, report: DoctorReportSchema.parse(JSON.parse(stdout)) };
  } catch (error) {
    throw new Error(`local doctor printed no report (exit ${code}): ${stdout} ${stderr}`, { cause: error });
  }
}

async function remoteDoctor(agentId: string): Promise<{ code: number | null; report: DoctorReport; text: string }> {
  const [json, text] = await Promise.all([ctl('--json', 'agents', 'doctor', agentId), ctl('agents', 'doctor', agentId)]);
  expect(json.code, `--json: ${json.stderr}`).toBe(text.code);
  return { code: json.code, report: DoctorReportSchema.parse(JSON.parse(json.stdout)), text: text.stdout };
}

/**
 * What both doctors must agree on: each check's id, status and remedy, and the summary of the
 * checks whose words do not depend on timing or on where they ran (the NATS round trip, the
 * clock skew, the outbox's age and size and the data dir's free space move between two runs;
 * the MQTT port check says "held by this agent" in both, with how it knows).
 */
const STABLE_SUMMARIES: readonly DoctorCheckId[] = ['config', 'models', 'certificates'];
const comparable = (report: DoctorReport) =>
  report.checks.map((c: DoctorCheck) => ({ id: c.id, status: c.status, remedy: c.remedy, ...(STABLE_SUMMARIES.includes(c.id) ? { summary: c.summary, details: c.details } : {}) }));

const check = (report: DoctorReport, id: DoctorCheckId): DoctorCheck => {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no ${id} check in ${JSON.stringify(report)}`);
  return found;
};

/** The first server error on `nc` matching `match` (a permissions violation names its subject). */
function nextServerError(nc: NatsConnection, match: (message: string) => boolean): Promise<string> {
  return (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'error' && match(String(status.error))) return String(status.error);
    }
    return 'connection closed';
  })();
}

beforeAll(async () => {
  dir = await createTempDir('outpost-diag-');
  nats = await startNatsServer({ secure: true });
  cp = await startControlPlaneProcess(testControlPlaneConfig(nats), dir.path);
  closers.push(() => cp.stop());
  const key = generateSigningKey('diag-test-key');
  const model = signedConstantModel(0.25, '1.0.0', key);
  modelFiles = await writeModelFiles(dir.path, 'constant', model.onnx, model.signed);
  agent = await startAgentProcess(
    testAgentConfig(join(dir.path, 'data-a'), {
      agentId: A,
      uplink: await testUplinkConfig(nats, A),
      inference: testInferenceConfig(modelFiles, [key.trustedKey]),
      log: { level: 'info' },
    }),
  );
  closers.push(() => agent.stop());
  // The agent connects in the background: its diagnostics answer once it is on NATS.
  const status = await waitFor(
    async () => {
      const run = await ctl('--json', 'agents', 'status', A);
      return run.code === 0 && AgentDiagStatusSchema.parse(JSON.parse(run.stdout)).uplink.connected ? run : undefined;
    },
    { what: `agent ${A} answering agents status`, timeoutMs: 30_000, intervalMs: 200 },
  );
  expect(status.code).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await nats?.stop();
  await dir?.remove();
});

describe('outpostctl agents doctor ID through the control plane', () => {
  it('answers what outpost-agent doctor says on the gateway: a warning (the test CA ends within 30 days), exit 13 remotely and 1 locally', async () => {
    const remote = await remoteDoctor(A);
    expect(remote.report).toMatchObject({ agentId: A, origin: 'agent', status: 'warn' });
    expect(remote.report.configFile).toBeDefined();
    agentConfigFile = remote.report.configFile!;
    const local = await localDoctor(agentConfigFile);
    expect(local.report).toMatchObject({ agentId: A, origin: 'local', status: 'warn', configFile: agentConfigFile });

    expect(comparable(remote.report)).toEqual(comparable(local.report));
    expect(remote.report.checks.map((c) => [c.id, c.status])).toEqual([
      ['config', 'ok'],
      ['data-dir', 'ok'],
      ['outbox', 'ok'],
      ['nats', 'ok'],
      ['clock', 'ok'],
      ['mqtt-port', 'ok'],
      ['models', 'ok'],
      ['certificates', 'warn'],
    ]);
    expect(check(remote.report, 'certificates').summary).toMatch(/NATS CA from the enrolment bundle .*: expires in .* within 30 days/);
    expect(check(remote.report, 'nats').summary).toMatch(/over TLS/);
    expect(check(remote.report, 'clock').summary).toMatch(/in step with the control plane's clock/);
    expect([remote.code, local.code]).toEqual([13, 1]);
    // For people: one line per check, the remedy under the warning.
    expect(remote.text).toMatch(new RegExp(`^doctor agent ${A} \\(inside the running agent\\): WARN \\(7 ok, 1 warn\\)`));
    expect(remote.text).toMatch(/^ {2}WARN {2}certificates .*\n(?: +- .*\n)* +-> renew it before it expires/m);
  }, 60_000);

  it('a tampered model file: the same failed check with its remedy, exit 14 remotely and 2 locally', async () => {
    const original = await readFile(modelFiles.onnxPath);
    const backup = join(dir.path, 'constant.onnx.orig');
    await copyFile(modelFiles.onnxPath, backup);
    const tampered = Buffer.from(original);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1]! + 1) % 256;
    await writeFile(modelFiles.onnxPath, tampered);
    try {
      const remote = await remoteDoctor(A);
      const local = await localDoctor(agentConfigFile);
      expect(check(remote.report, 'models')).toMatchObject({ status: 'fail' });
      expect(check(remote.report, 'models').summary).toMatch(/MODEL_DIGEST_MISMATCH/);
      expect(check(remote.report, 'models').remedy).toMatch(/put both files back as published/);
      expect(remote.report.status).toBe('fail');
      expect(comparable(remote.report)).toEqual(comparable(local.report));
      expect([remote.code, local.code]).toEqual([14, 2]);
      expect(remote.text).toMatch(/^ {2}FAIL {2}model files .*MODEL_DIGEST_MISMATCH/m);
    } finally {
      await copyFile(backup, modelFiles.onnxPath);
    }
  }, 60_000);

  it('an agent never seen: 404 without asking it, exit 3', async () => {
    const run = await ctl('agents', 'doctor', 'gw-nobody');
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/AGENT_NOT_FOUND: no agent gw-nobody: it never sent a heartbeat/);
  });
});

describe('outpostctl agents status|logs ID', () => {
  it("status is the agent's own, asked now: its pid, the uplink connected, its ports", async () => {
    const json = await ctl('--json', 'agents', 'status', A);
    expect(json.code, json.stderr).toBe(0);
    const status = AgentDiagStatusSchema.parse(JSON.parse(json.stdout));
    expect(status).toMatchObject({ agentId: A, pid: agent.pid, uplink: { connected: true }, broker: { mode: 'embedded', mqttPort: agent.mqttPort } });
    const text = await ctl('agents', 'status', A);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`Agent +${A} \\(agent .*, pid ${agent.pid},`));
    expect(text.stdout).toMatch(/Uplink +connected/);
  });

  it('logs are the lines the agent wrote to stdout, in order; -n keeps the last n', async () => {
    const json = await ctl('--json', 'agents', 'logs', A);
    expect(json.code, json.stderr).toBe(0);
    const lines = json.stdout.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(0);
    // Each line as the agent printed it, in the same order.
    const printed = agent.output().split('\n');
    const positions = lines.map((line) => printed.indexOf(line));
    expect(positions.filter((p) => p < 0), 'lines the agent never printed').toEqual([]);
    expect([...positions].sort((x, y) => x - y)).toEqual(positions);
    expect(lines.map((l) => (JSON.parse(l) as { agentId?: string }).agentId)).toEqual(lines.map(() => A));

    const last = await ctl('agents', 'logs', A, '-n', '1');
    expect(last.code, last.stderr).toBe(0);
    expect(last.stdout.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(last.stdout).toMatch(/^\d{4}-\d\d-\d\dT\S+Z (INFO|WARN|ERROR|DEBUG) /);
  });

  it('logs --follow prints each new line as the agent writes it, and ends with 130 on Ctrl-C', async () => {
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OUTPOST_') && k !== 'NO_COLOR'));
    const child = spawn(process.execPath, [OUTPOSTCTL_MAIN, 'agents', 'logs', A, '--follow', '--interval', '100', '-n', '1'], {
      env: { ...env, OUTPOST_URL: `http://127.0.0.1:${cp.httpPort}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = (): string[] => stdout.split('\n').filter((l) => l !== '');
    const printed = new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (lines().length >= 1) resolve();
      });
    });
    try {
      // The last line kept is printed first; then the agent writes a new one (SIGHUP logs the reload).
      await printed;
      expect(stdout).not.toContain('SIGHUP: reloading the model files');
      process.kill(agent.pid, 'SIGHUP');
      await waitFor(() => stdout.includes('SIGHUP: reloading the model files'), { what: `the followed log to show the reload (stdout: ${stdout} stderr: ${stderr})`, timeoutMs: 20_000 });
      expect(lines().find((l) => l.includes('SIGHUP'))).toMatch(/^\d{4}-\d\d-\d\dT\S+Z INFO {2}SIGHUP: reloading the model files/);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(130);
    expect(stderr).toBe('');
  });
});

describe("an agent's diagnostics subjects on NATS", () => {
  it("another agent may neither ask an agent's diagnostics nor listen on them", async () => {
    const bundle = EnrollmentBundleSchema.parse(JSON.parse(await readFile(await nats.security!.enroll(B), 'utf8')));
    const nc = await connect(bundleConnectionOptions(bundle));
    closers.push(() => nc.close());
    // Listening on A's subjects (to answer in A's name, or read what the control plane asks).
    for (const subject of [diagSubject(A, 'doctor'), 'outpost.diag.>']) {
      const closed = await nc.subscribe(subject).closed;
      expect(String(closed)).toContain(`Permissions Violation for Subscription to "${subject}"`);
    }
    // Asking A directly (only the control plane may).
    const pubRefused = nextServerError(nc, (m) => m.includes('Publish'));
    nc.publish(diagSubject(A, 'status'), '');
    expect(await pubRefused).toMatch(new RegExp(`Permissions Violation for Publish to "outpost\\.diag\\.${A}\\.status"`));
    // Nor its own: the control plane asks it, it does not ask itself.
    const ownRefused = nextServerError(nc, (m) => m.includes('Publish'));
    nc.publish(diagSubject(B, 'status'), '');
    expect(await ownRefused).toMatch(new RegExp(`Permissions Violation for Publish to "outpost\\.diag\\.${B}\\.status"`));
  });
});

describe('an agent that is offline', () => {
  it("answers 504 AGENT_UNREACHABLE once its status went unanswered (through the account export NATS reports no 'no responders'), exit 1", async () => {
    // The control plane knows it (its heartbeats): offline, not unknown.
    await waitFor(async () => (await controlPlaneApi(cp.httpPort).agent(A)).status === 200, { what: `${A} in the fleet registry`, timeoutMs: 30_000 });
    expect(await agent.stop()).toBe(0);
    const run = await ctl('agents', 'doctor', A);
    expect(run.stderr).toMatch(new RegExp(`AGENT_UNREACHABLE: agent ${A} did not answer status within 5000 ms: it is offline`));
    expect(run.code).toBe(1);
  });
});
