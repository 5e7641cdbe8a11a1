import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DoctorReportSchema, EnrollmentBundleSchema, generateSigningKey, writeSecretFile, type AgentConfigInput, type DoctorCheckId, type DoctorReport } from '@outpost/shared';
import { localDoctorEnvironment, OUTBOX_FILE_NAME, runDoctor } from '@outpost/agent';
import type { ControlPlane } from '@outpost/control-plane';
import { AGENT_MAIN, signedConstantModel, startAgentProcess, testAgentConfig, testInferenceConfig, writeModelFiles, type AgentProcess, type ModelFilePaths } from '../harness/agent-process.js';
import { startInProcessControlPlane, testControlPlaneConfig } from '../harness/control-plane-process.js';
import { connectDevice, publish, telemetryPayload } from '../harness/devices.js';
import { getFreePort } from '../harness/free-port.js';
import { createPki } from '../harness/pki.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { resolveExecutable } from '../harness/wait.js';

// `outpost-agent doctor` as an operator runs it on a gateway: the built binary against a real
// nats-server with production auth (JWT, agents in their own account), a real control plane
// (its time service), a real agent process beside it, and one broken setup per check.

const AGENT_ID = 'gw-doc';
const TEN_MINUTES_MS = 10 * 60_000;

let dir: TempDir;
let nats: NatsServer;
let cp: ControlPlane;
let modelFiles: ModelFilePaths;
let healthy: AgentConfigInput;
let healthyFile: string;
const agents: AgentProcess[] = [];

interface DoctorRun {
  code: number | null;
  report: DoctorReport;
  stdout: string;
}

/**
 * Runs `outpost-agent doctor --config FILE --json`. `unprivileged`: without the capabilities
 * that let root write through any mode bits (root's own data dir 0555 is read-only to it then).
 */
async function doctor(configFile: string, options: { unprivileged?: boolean } = {}): Promise<DoctorRun> {
  const args = [AGENT_MAIN, 'doctor', '--config', configFile, '--json'];
  let command = process.execPath;
  let argv = args;
  if (options.unprivileged === true && process.getuid?.() === 0) {
    const setpriv = resolveExecutable('setpriv', process.env, ['/usr/bin', '/bin']);
    if (setpriv === undefined) throw new Error('running as root: the read-only data dir test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE');
    command = setpriv;
    argv = ['--bounding-set=-dac_override,-dac_read_search', process.execPath, ...args];
  }
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new Error(`doctor printed no JSON report (exit ${code}); stdout: ${stdout} stderr: ${stderr}`);
  }
  return { code, report: DoctorReportSchema.parse(json), stdout };
}

const check = (report: DoctorReport, id: DoctorCheckId) => {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no ${id} check in ${JSON.stringify(report)}`);
  return found;
};

/** Every check but `except` has `status`; a failure message shows the report. */
function expectOthers(report: DoctorReport, except: readonly DoctorCheckId[], statuses: readonly string[]): void {
  const others = report.checks.filter((c) => !except.includes(c.id)).map((c) => [c.id, c.status, c.summary]);
  for (const [checkId, status, summary] of others) expect(statuses, `${checkId}: ${summary}`).toContain(status);
}

async function writeConfig(name: string, config: AgentConfigInput): Promise<string> {
  const file = join(dir.path, `${name}.json`);
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

/** A CA and a server certificate for 127.0.0.1 valid for 400 days (the harness PKI's are valid for one day only). */
function longLivedServerCert(certDir: string): { cert: string; key: string } {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '400', '-subj', '/CN=doctor-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', '-new', ...ec, '-keyout', 'mqtt.key', '-out', 'mqtt.csr', '-subj', '/CN=127.0.0.1']);
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n" > mqtt.ext'], { cwd: certDir });
  openssl(['x509', '-req', '-in', 'mqtt.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'mqtt.crt', '-days', '400', '-extfile', 'mqtt.ext']);
  return { cert: join(certDir, 'mqtt.crt'), key: join(certDir, 'mqtt.key') };
}

beforeAll(async () => {
  dir = await createTempDir('outpost-doctor-');
  // Production auth (operator JWTs, agents in their own account); TLS on NATS is left out here
  // because the harness CA lives one day, which the certificate check rightly warns about (tested below).
  nats = await startNatsServer({ secure: { tls: false } });
  cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
  const key = generateSigningKey('doctor-test-key');
  const model = signedConstantModel(0.25, '1.0.0', key);
  modelFiles = await writeModelFiles(dir.path, 'constant', model.onnx, model.signed);
  const certDir = join(dir.path, 'certs');
  execFileSync('mkdir', ['-p', certDir]);
  const cert = longLivedServerCert(certDir);
  const [mqttPort, tlsPort, httpPort] = [await getFreePort(), await getFreePort(), await getFreePort()];
  healthy = testAgentConfig(join(dir.path, 'data'), {
    agentId: AGENT_ID,
    broker: { mode: 'embedded', host: '127.0.0.1', port: mqttPort, plaintext: true, allowAnonymous: true, tls: { port: tlsPort, certFile: cert.cert, keyFile: cert.key } },
    http: { host: '127.0.0.1', port: httpPort },
    uplink: { enrollmentFile: await nats.security!.enroll(AGENT_ID) },
    inference: testInferenceConfig(modelFiles, [key.trustedKey]),
  });
  healthyFile = await writeConfig('healthy', healthy);
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.stop().catch(() => undefined);
  await cp?.close();
  await nats?.stop();
  await dir?.remove();
});

describe('outpost-agent doctor on a healthy agent', () => {
  it('says all ok (exit 0) before the agent ever ran: no outbox yet, the MQTT ports free', async () => {
    const { code, report } = await doctor(healthyFile);
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['config', 'ok'],
      ['data-dir', 'ok'],
      ['outbox', 'ok'],
      ['nats', 'ok'],
      ['clock', 'ok'],
      ['mqtt-port', 'ok'],
      ['models', 'ok'],
      ['certificates', 'ok'],
    ]);
    expect(report).toMatchObject({ agentId: AGENT_ID, origin: 'local', status: 'ok' });
    expect(check(report, 'outbox').summary).toMatch(/no outbox yet/);
    expect(check(report, 'mqtt-port').summary).toMatch(/: free; .*: free/);
    expect(check(report, 'models').summary).toMatch(/constant@1\.0\.0 verified/);
    expect(check(report, 'clock').summary).toMatch(/in step with the control plane's clock/);
    expect(code).toBe(0);
  });

  it('says all ok while the agent runs: the outbox is read beside it, the ports are recognised as its own', async () => {
    const agent = await startAgentProcess(healthy);
    agents.push(agent);
    // Something in the outbox for the read-only connection to see.
    const device = await connectDevice(`mqtt://127.0.0.1:${agent.mqttPort}`, { clientId: 'dev-1' });
    await publish(device, 'devices/dev-1/telemetry', telemetryPayload(1));
    device.end();

    const { code, report } = await doctor(healthyFile);
    expect(report.checks.filter((c) => c.status !== 'ok').map((c) => [c.id, c.status, c.summary])).toEqual([]);
    expect(code).toBe(0);
    expect(check(report, 'outbox').summary).toMatch(/passes quick_check/);
    expect(check(report, 'mqtt-port').summary).toMatch(/held by this agent \(running/);
    await agent.stop();
  }, 120_000);
});

describe('outpost-agent doctor on a broken setup fails the right check with its remedy', () => {
  it('a bad config key: the config check names it by path (exit 2), nothing else can run', async () => {
    const file = await writeConfig('bad-key', { ...healthy, broker: { ...healthy.broker, shape: 'round' } } as unknown as AgentConfigInput);
    const { code, report } = await doctor(file);
    expect(check(report, 'config')).toMatchObject({ status: 'fail', details: ['broker.shape: unknown key'] });
    expect(check(report, 'config').summary).toContain('broker.shape: unknown key');
    expect(check(report, 'config').remedy).toMatch(/fix each key named/);
    expectOthers(report, ['config'], ['skip']);
    expect(report.status).toBe('fail');
    expect(code).toBe(2);
  });

  it('a read-only data dir: the data-dir check fails with how to make it writable', async () => {
    const dataDir = join(dir.path, 'data');
    // The agent ran before: the outbox is there.
    await readFile(join(dataDir, OUTBOX_FILE_NAME));
    await chmod(dataDir, 0o555);
    try {
      const { code, report } = await doctor(healthyFile, { unprivileged: true });
      expect(check(report, 'data-dir')).toMatchObject({ status: 'fail' });
      expect(check(report, 'data-dir').summary).toMatch(/is not writable by this user \(EACCES\)/);
      expect(check(report, 'data-dir').remedy).toMatch(/give the agent's user write access/);
      expect(code).toBe(2);
    } finally {
      await chmod(dataDir, 0o755);
    }
  });

  it('wrong credentials (a revoked NATS user): the nats check fails with how to enrol again, the clock is not measured', async () => {
    const enrol = await fetch(`http://127.0.0.1:${cp.httpPort}/api/agents/gw-revoked/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(enrol.status).toBe(201);
    const bundleFile = join(dir.path, 'gw-revoked.bundle.json');
    await writeSecretFile(bundleFile, JSON.stringify(EnrollmentBundleSchema.parse(await enrol.json())));
    expect((await fetch(`http://127.0.0.1:${cp.httpPort}/api/agents/gw-revoked/revoke`, { method: 'POST' })).status).toBe(200);
    const file = await writeConfig('revoked', { ...healthy, agentId: 'gw-revoked', dataDir: join(dir.path, 'revoked-data'), uplink: { enrollmentFile: bundleFile } });

    const { code, report } = await doctor(file);
    expect(check(report, 'nats')).toMatchObject({ status: 'fail' });
    expect(check(report, 'nats').summary).toMatch(/refused the enrolment bundle .*Authorization Violation/);
    expect(check(report, 'nats').remedy).toMatch(/enrol it again \(outpostctl agents enroll gw-revoked --out FILE\)/);
    expect(check(report, 'clock').status).toBe('skip');
    expectOthers(report, ['nats', 'clock'], ['ok']);
    expect(code).toBe(2);
  });

  it('a tampered model file: the models check fails with MODEL_DIGEST_MISMATCH and how to restore it', async () => {
    const onnxPath = join(dir.path, 'tampered.onnx');
    const manifestPath = join(dir.path, 'tampered.manifest.json');
    await copyFile(modelFiles.manifestPath, manifestPath);
    const bytes = await readFile(modelFiles.onnxPath);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1]! + 1) % 256;
    await writeFile(onnxPath, bytes);
    const file = await writeConfig('tampered', { ...healthy, inference: { ...healthy.inference, model: { onnxPath, manifestPath } } });

    const { code, report } = await doctor(file);
    expect(check(report, 'models')).toMatchObject({ status: 'fail' });
    expect(check(report, 'models').summary).toMatch(/^the config's model \(inference\.model\): MODEL_DIGEST_MISMATCH: /);
    expect(check(report, 'models').remedy).toMatch(/put both files back as published/);
    expectOthers(report, ['models'], ['ok']);
    expect(code).toBe(2);
  });

  it('a clock 10 minutes off (the doctor\'s clock injected, the machine\'s untouched): the clock check fails with how to turn on time sync', async () => {
    const report = await runDoctor({ configFile: healthyFile, env: localDoctorEnvironment({ outboxFileName: OUTBOX_FILE_NAME, now: () => Date.now() + TEN_MINUTES_MS }) });
    expect(check(report, 'clock')).toMatchObject({ status: 'fail' });
    expect(check(report, 'clock').summary).toMatch(/^this clock is 10\.0 min ahead of the control plane's/);
    expect(check(report, 'clock').remedy).toMatch(/timedatectl set-ntp true/);
    expectOthers(report, ['clock'], ['ok']);
    // Behind works the same way.
    const behind = await runDoctor({ configFile: healthyFile, env: localDoctorEnvironment({ outboxFileName: OUTBOX_FILE_NAME, now: () => Date.now() - TEN_MINUTES_MS }) });
    expect(check(behind, 'clock').summary).toMatch(/^this clock is 10\.0 min behind the control plane's/);
  });

  it('certificates: one that ends within 30 days warns, an expired one fails (by the doctor\'s clock)', async () => {
    const pkiDir = join(dir.path, 'short-pki');
    execFileSync('mkdir', ['-p', pkiDir]);
    // The harness PKI makes certificates valid for one day.
    const short = createPki(pkiDir).server('mqtt-short');
    const file = await writeConfig('short-cert', { ...healthy, broker: { ...healthy.broker, tls: { port: 0, certFile: short.cert, keyFile: short.key } } as AgentConfigInput['broker'] });
    const { code, report } = await doctor(file);
    expect(check(report, 'certificates')).toMatchObject({ status: 'warn' });
    expect(check(report, 'certificates').summary).toMatch(/MQTT server certificate .* CN=127\.0\.0\.1: expires in .* h .*within 30 days/);
    expect(code).toBe(1);
    const twoDaysOn = await runDoctor({ configFile: file, env: localDoctorEnvironment({ outboxFileName: OUTBOX_FILE_NAME, now: () => Date.now() + 2 * 86_400_000 }) });
    expect(check(twoDaysOn, 'certificates')).toMatchObject({ status: 'fail' });
    expect(check(twoDaysOn, 'certificates').summary).toMatch(/expired .* ago/);
    expect(check(twoDaysOn, 'certificates').remedy).toMatch(/renew the certificate/);
  });

  it('NATS down: the nats check fails with what to look at, the clock is not measured', async () => {
    await nats.down();
    try {
      const { code, report } = await doctor(healthyFile);
      expect(check(report, 'nats')).toMatchObject({ status: 'fail' });
      expect(check(report, 'nats').summary).toMatch(/^cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      expect(check(report, 'nats').remedy).toMatch(/check that nats-server runs there/);
      expect(check(report, 'clock').status).toBe('skip');
      expectOthers(report, ['nats', 'clock'], ['ok']);
      expect(code).toBe(2);
    } finally {
      await nats.up();
    }
  });
});
