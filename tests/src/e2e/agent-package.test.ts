// The agent as a gateway gets it (issue [install]): the .deb that agent/packaging/build-package.js
// makes (`npm run package` without its `npm run build`, which the test command has done), unpacked
// with `dpkg-deb -x` into a temp root and run with nothing else: PATH is the package's usr/bin
// alone, cwd and HOME are outside the repo, no NODE_PATH or NODE_OPTIONS. It enrols on a NATS
// server secured like production, takes a device's publishes, scores them in its inference
// process with onnxruntime from the package, and the control plane counts every one. systemd
// is not PID 1 here: the unit is checked with systemd-analyze, and readiness and watchdog go to
// a datagram socket of the test's own, through the real systemd-notify.
import { execFile } from 'node:child_process';
import { mkdir, readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '@outpost/agent';
import { generateSigningKey } from '@outpost/shared';
import { signedConstantModel, testAgentConfig, testInferenceConfig, testUplinkConfig, writeModelFiles } from '../harness/agent-process.js';
import { controlPlaneApi, startInProcessControlPlane, testControlPlaneConfig } from '../harness/control-plane-process.js';
import { connectDevice, nextMessage, publish, telemetryPayload } from '../harness/devices.js';
import { startNatsServer } from '../harness/nats-server.js';
import { listDescendants } from '../harness/process-tree.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { resolveExecutable, spawnOwned, waitFor, type OwnedProcess } from '../harness/wait.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const BUILD_SCRIPT = join(REPO, 'agent/packaging/build-package.js');
const UNIT = 'usr/lib/systemd/system/outpost-agent.service';
const LIB = 'usr/lib/outpost-agent';
/** The build bundles, copies ~130 MB and compresses it twice: minutes on two loaded cores. */
const BUILD_TIMEOUT_MS = 15 * 60_000;

interface PackageSummary {
  version: string;
  deb: string;
  tarball: string;
  debBytes: number;
  tarballBytes: number;
  installedBytes: number;
  nodeFlags: string[];
}

let dir: TempDir;
let pkg: PackageSummary;
/** The .deb unpacked: what a gateway's / would hold of it. */
let root: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  dir = await createTempDir('outpost-package-');
  // --fast: gzip -1 instead of xz; the same files (`npm run package` uses xz).
  const { stdout } = await run(process.execPath, [BUILD_SCRIPT, '--out', join(dir.path, 'out'), '--fast'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  pkg = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as PackageSummary;
  root = join(dir.path, 'root');
  await run('dpkg-deb', ['-x', pkg.deb, root]);
}, BUILD_TIMEOUT_MS);
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});
afterAll(async () => {
  await dir?.remove();
});

/** `ls -l`-like lines (type and mode, size, path) of an archive listing, owner left out. */
function listing(text: string): string[] {
  return text
    .trim()
    .split('\n')
    .map((line) => line.split(/\s+/))
    .map((f) => `${f[0]} ${f[2]} ${f[5]}`)
    .sort();
}

describe('the outpost-agent package', () => {
  it('is a .deb and a .tar.gz with the same files: the agent, its runtime and addons, the unit, a valid example config', async () => {
    const fields = await run('dpkg-deb', ['-f', pkg.deb, 'Package', 'Version', 'Architecture', 'Depends']);
    const agentVersion = (JSON.parse(await readFile(join(REPO, 'agent/package.json'), 'utf8')) as { version: string }).version;
    expect(fields.stdout).toContain('Package: outpost-agent\n');
    expect(fields.stdout).toContain(`Version: ${agentVersion}\n`);
    expect(fields.stdout).toContain('Architecture: amd64\n');
    expect(fields.stdout).toMatch(/Depends: libc6 \(>= 2\.\d+\), libgcc-s1, libstdc\+\+6/);

    const deb = listing((await run('dpkg-deb', ['-c', pkg.deb])).stdout);
    const tar = listing((await run('tar', ['-tvzf', pkg.tarball])).stdout);
    expect(tar).toEqual(deb);
    const paths = deb.map((line) => line.split(' ')[2]);
    for (const path of [
      './usr/bin/outpost-agent',
      `./${LIB}/bin/node`,
      `./${LIB}/main.js`,
      `./${LIB}/inference-child.js`,
      `./${LIB}/native/node_sqlite3.node`,
      `./${LIB}/native/onnxruntime_binding.node`,
      `./${LIB}/native/libonnxruntime.so.1`,
      `./${UNIT}`,
      './usr/lib/sysusers.d/outpost-agent.conf',
      './usr/share/outpost-agent/agent.example.yaml',
    ]) {
      expect(paths).toContain(path);
    }
    // Nothing of the workspace came along: no node_modules, no sources.
    expect(paths.filter((p) => /node_modules|\.ts$/.test(p ?? ''))).toEqual([]);

    // The maintainer scripts are shell that parses.
    const control = join(dir.path, 'control');
    await run('dpkg-deb', ['-e', pkg.deb, control]);
    for (const script of ['postinst', 'prerm', 'postrm']) await run('sh', ['-n', join(control, script)]);

    // The example config for /etc/outpost is one the agent accepts.
    const example = await loadAgentConfig(join(root, 'usr/share/outpost-agent/agent.example.yaml'));
    expect(example).toMatchObject({ dataDir: '/var/lib/outpost', uplink: { enrollmentFile: '/etc/outpost/enrollment.json' } });
  });

  it('has a unit that systemd-analyze verify passes, with an exposure level of at most 2.0', async () => {
    const shipped = await readFile(join(root, UNIT), 'utf8');
    // verify checks that ExecStart= exists; the package is unpacked, not installed, so the one
    // path of the package in the unit points into the temp root (nothing else changes).
    expect(shipped.match(/\/usr\/bin\/outpost-agent/g)).toHaveLength(1);
    const unitDir = join(dir.path, 'unit');
    await mkdir(unitDir, { recursive: true });
    const unit = join(unitDir, 'outpost-agent.service');
    await writeFile(unit, shipped.replace('ExecStart=/usr/bin/outpost-agent', `ExecStart=${root}/usr/bin/outpost-agent`));
    const verify = await run('systemd-analyze', ['verify', unit]);
    expect(`${verify.stdout}${verify.stderr}`.trim()).toBe('');

    const security = await run('systemd-analyze', ['security', '--offline=yes', unit]);
    const level = /Overall exposure level for outpost-agent\.service: ([\d.]+)/.exec(security.stdout);
    expect(level, security.stdout.slice(-500)).not.toBeNull();
    expect(Number(level?.[1])).toBeLessThanOrEqual(2.0);
  });

  it('runs from the unpacked .deb alone: enrols, ingests a device, scores in its inference process, the control plane counts every message; READY=1 and WATCHDOG=1 reach the notify socket', async () => {
    const nats = await startNatsServer({ secure: true });
    cleanups.push(() => nats.stop());
    const cp = await startInProcessControlPlane(testControlPlaneConfig(nats));
    cleanups.push(() => cp.close());

    const agentId = 'gw-packaged';
    const work = join(dir.path, 'gateway');
    await mkdir(join(work, 'etc'), { recursive: true });
    const key = generateSigningKey('package-test-key');
    const model = signedConstantModel(0.25, '1.0.0', key);
    const modelFiles = await writeModelFiles(join(work, 'etc'), 'constant-1.0.0', model.onnx, model.signed);
    const config = testAgentConfig(join(work, 'var-lib-outpost'), {
      agentId,
      // Enrolled like production: its own NATS user, TLS with the server's CA.
      uplink: await testUplinkConfig(nats, agentId, { heartbeatIntervalMs: 1_000 }),
      inference: testInferenceConfig(modelFiles, [key.trustedKey], { upstream: 'every-score' }),
      log: { level: 'info' },
    });
    const configFile = join(work, 'etc', 'agent.json');
    await writeFile(configFile, JSON.stringify(config, null, 2));

    const notify = await startNotifyReceiver(join(work, 'notify.sock'));
    cleanups.push(() => notify.process.kill());
    // Only the package: its usr/bin on PATH (the wrapper's #!/bin/sh is found by the kernel,
    // not on PATH); no NODE_PATH, NODE_OPTIONS or workspace anywhere above cwd.
    const env = { PATH: join(root, 'usr/bin'), HOME: work, LANG: 'C.UTF-8', NOTIFY_SOCKET: notify.socket, WATCHDOG_USEC: '2000000' };
    const agent = await spawnOwned('outpost-agent', ['--config', configFile], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => agent.kill());
    const output = collectOutput(agent);
    const ready = await waitFor(() => output.lines.find((l) => l['event'] === 'agent-ready'), { what: "the packaged agent's ready line", timeoutMs: 60_000, intervalMs: 50 }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; its output:\n${output.text().slice(-3000)}`);
    });
    const pid = ready['pid'] as number;
    const mqttPort = ready['mqttPort'] as number;

    // systemd would have been told: ready (with the ports), then the watchdog fed by /healthz.
    await waitFor(() => notify.messages().length > 0, { what: 'READY=1 on the notify socket', timeoutMs: 30_000 });
    expect(notify.messages()[0]).toBe(`READY=1\nSTATUS=ready: MQTT ${mqttPort}, HTTP ${ready['httpPort'] as number}`);
    await waitFor(() => notify.messages().some((m) => m.split('\n').includes('WATCHDOG=1')), { what: 'WATCHDOG=1 on the notify socket', timeoutMs: 30_000 });

    const device = await connectDevice(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'dev-1' });
    cleanups.push(async () => device.endAsync(true));
    const firstResult = nextMessage(device, 'devices/dev-1/inference');
    const TOTAL = 20;
    for (let seq = 1; seq <= TOTAL; seq++) await publish(device, 'devices/dev-1/telemetry', telemetryPayload(seq));
    expect(JSON.parse((await firstResult).toString('utf8'))).toMatchObject({ model: { name: 'constant', version: '1.0.0' }, score: 0.25 });

    // The control plane counts each message once, and each one's score (every-score upstream).
    const api = controlPlaneApi(cp.httpPort);
    const counted = await waitFor(
      async () => {
        const { status, body } = await api.device(agentId, 'dev-1');
        return status === 200 && body.kinds['telemetry'] === TOTAL && body.kinds['inference'] === TOTAL ? body : undefined;
      },
      { what: `${TOTAL} telemetry records and ${TOTAL} scores of dev-1 at the control plane`, timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(counted).toMatchObject({ duplicates: 0, deviceSeq: { min: 1, max: TOTAL, gapRanges: [] } });

    // What ran is the package: its node (with the agent's flags), its addons, nothing from the repo.
    const packagedNode = await realpath(join(root, LIB, 'bin/node'));
    expect(await readlink(`/proc/${pid}/exe`)).toBe(packagedNode);
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    for (const flag of pkg.nodeFlags) expect(cmdline).toContain(flag);
    const agentMaps = await mappedFiles(pid);
    expect(agentMaps).toContain(join(root, LIB, 'native/node_sqlite3.node'));
    const child = listDescendants(pid).find((p) => p.command.includes('inference-child.js'));
    expect(child, 'the inference process').toBeDefined();
    expect(await readlink(`/proc/${child!.pid}/exe`)).toBe(packagedNode);
    const childMaps = await mappedFiles(child!.pid);
    expect(childMaps).toEqual(expect.arrayContaining([join(root, LIB, 'native/onnxruntime_binding.node'), join(root, LIB, 'native/libonnxruntime.so.1')]));
    expect([...agentMaps, ...childMaps].filter((f) => f.startsWith(`${REPO}/`))).toEqual([]);

    // SIGTERM: a clean stop, announced to systemd.
    agent.child.kill('SIGTERM');
    await agent.closed;
    expect(agent.child.exitCode).toBe(0);
    await waitFor(() => notify.messages().includes('STOPPING=1'), { what: 'STOPPING=1 on the notify socket', timeoutMs: 30_000 });
  });
});

/** Files mapped into a process (its executable, shared libraries, addons), from /proc/<pid>/maps. */
async function mappedFiles(pid: number): Promise<string[]> {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  return [...new Set(maps.split('\n').map((line) => line.split(/\s+/).slice(5).join(' ')).filter((path) => path.startsWith('/')))];
}

interface Output {
  /** Every JSON line on stdout so far. */
  lines: Record<string, unknown>[];
  /** stdout and stderr so far, for failure messages. */
  text(): string;
}

function collectOutput(owned: OwnedProcess): Output {
  const lines: Record<string, unknown>[] = [];
  let text = '';
  owned.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    text = (text + d).slice(-20_000);
  });
  createInterface({ input: owned.child.stdout! }).on('line', (line) => {
    text = (text + line + '\n').slice(-20_000);
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // Not a log line; kept in text.
    }
  });
  return { lines, text: () => text };
}

/**
 * What systemd's notify socket would receive: an AF_UNIX datagram socket (Node has none, so a
 * few lines of Python) that prints each message as a JSON string and closes the file
 * descriptors systemd-notify sends with BARRIER=1, which is what lets it return.
 */
const NOTIFY_RECEIVER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    msg, fds, _flags, _addr = socket.recv_fds(s, 65536, 16)
    for fd in fds:
        os.close(fd)
    print(json.dumps(msg.decode()), flush=True)
`;

interface NotifyReceiver {
  socket: string;
  /** The messages so far, in order; BARRIER=1 (systemd-notify's own handshake) left out. */
  messages(): string[];
  process: OwnedProcess;
}

async function startNotifyReceiver(socket: string): Promise<NotifyReceiver> {
  const python = resolveExecutable('python3');
  if (python === undefined) throw new Error('python3 is needed for the notify socket (a README prerequisite)');
  const owned = await spawnOwned(python, ['-c', NOTIFY_RECEIVER, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  const received: string[] = [];
  createInterface({ input: owned.child.stdout! }).on('line', (line) => received.push(JSON.parse(line) as string));
  let stderr = '';
  owned.child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await waitFor(
    () => {
      if (!owned.isRunning()) throw new Error(`the notify receiver exited: ${stderr}`);
      return received[0] === 'listening';
    },
    { what: 'the notify receiver to listen', timeoutMs: 30_000 },
  );
  return { socket, messages: () => received.slice(1).filter((m) => m !== 'BARRIER=1'), process: owned };
}
