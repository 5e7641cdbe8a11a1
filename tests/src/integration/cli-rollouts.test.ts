// The built `outpostctl` for models and rollouts against a control plane and a real
// nats-server. Agents are fake (heartbeats over NATS, as tests/src/harness/control-plane-process.ts
// publishes them): they make agents known with their labels, and answer a rollout (applied or
// refused) when the test says so, so each rollout moves exactly when the test wants it to.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  ModelEntrySchema,
  ModelListResponseSchema,
  RolloutListResponseSchema,
  RolloutPlanSchema,
  RolloutViewSchema,
  type AgentListResponse,
  type Heartbeat,
  type RolloutView,
} from '@outpost/shared';
import type { ControlPlane } from '@outpost/control-plane';
import { signedConstantModel, writeModelFiles } from '../harness/agent-process.js';
import {
  connectFakeAgent,
  controlPlaneApi,
  openEventStream,
  operatorAuth,
  OUTPOSTCTL_MAIN,
  runOutpostctl,
  startInProcessControlPlane,
  testControlPlaneConfig,
  type CliRun,
  type FakeAgent,
} from '../harness/control-plane-process.js';
import { startNatsServer, type NatsServer } from '../harness/nats-server.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { resolveExecutable, waitFor } from '../harness/wait.js';

const TOKEN = 'cli-rollouts-token-4Kp9';
const OPERATOR = 'operator:cli-operator';
const key = generateSigningKey('cli-key');
const MODEL = 'constant@2.0.0';

/** Agents by id with their labels: one group per rollout, so rollouts never select the same agents. */
const AGENTS: Record<string, Record<string, string>> = {
  'gw-a1': { site: 'lab', group: 'actions' },
  'gw-a2': { site: 'lab', group: 'actions' },
  'gw-w1': { site: 'lab', group: 'watch' },
  'gw-w2': { site: 'lab', group: 'watch' },
  'gw-f1': { site: 'lab', group: 'fail' },
  'gw-t1': { site: 'lab', group: 'tty' },
  'gw-x1': { site: 'field', group: 'watch' },
};

let server: NatsServer;
let cp: ControlPlane;
let dir: TempDir;
let url: string;
/** constant@2.0.0, the model every rollout here changes to: published in beforeAll through the API. */
let onnx: Uint8Array;
const agents = new Map<string, FakeAgent>();

beforeAll(async () => {
  server = await startNatsServer();
  dir = await createTempDir('outpost-cli-rollouts-');
  cp = await startInProcessControlPlane(
    testControlPlaneConfig(server.url, { http: { host: '127.0.0.1', port: 0, auth: operatorAuth(TOKEN, 'cli-operator'), dashboardDir: '/nonexistent' }, rollouts: { tickMs: 100 } }),
    pino({ level: process.env['OUTPOST_TEST_LOG'] ?? 'silent' }),
  );
  url = `http://127.0.0.1:${cp.httpPort}`;
  const v2 = signedConstantModel(0.2, '2.0.0', key, { threshold: 0.5 });
  onnx = v2.onnx;
  const upload = await fetch(`${url}/api/models`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ manifest: v2.signed, onnxBase64: Buffer.from(v2.onnx).toString('base64') }),
  });
  expect(upload.status).toBe(201);
  for (const agentId of Object.keys(AGENTS)) agents.set(agentId, await connectFakeAgent(server.url, agentId));
  await Promise.all(Object.keys(AGENTS).map((id) => beat(id)));
  await waitFor(
    async () => {
      const { body } = await controlPlaneApi(cp.httpPort, TOKEN).get<AgentListResponse>('/api/agents');
      return body.agents.filter((a) => a.status === 'online').length === Object.keys(AGENTS).length;
    },
    { what: 'every fake agent online', timeoutMs: 20_000 },
  );
}, 120_000);

afterAll(async () => {
  for (const agent of agents.values()) await agent.close();
  await cp?.close();
  await server?.stop();
  await dir?.remove();
});

/** A heartbeat of `agentId` with its labels; `answer` reports what it did with a rollout's change. */
function beat(agentId: string, answer?: { rolloutId: string; wave: number; status: 'applied' | 'refused' }): Promise<unknown> {
  const overrides: Partial<Heartbeat> = { labels: AGENTS[agentId]! };
  if (answer !== undefined) {
    overrides.versions = answer.status === 'applied' ? { agent: '0.1.0', model: MODEL } : { agent: '0.1.0' };
    overrides.desired = {
      revision: 1,
      status: answer.status,
      origin: { rolloutId: answer.rolloutId, wave: answer.wave, action: 'apply' },
      atMs: Date.now(),
      ...(answer.status === 'refused' ? { code: 'CONFIG_INVALID', reason: 'ingest.rateLimitMsgsPerS: must be at least 0' } : {}),
    };
  }
  return agents.get(agentId)!.heartbeat(overrides);
}

function ctl(...args: string[]): Promise<CliRun> {
  return runOutpostctl(args, { env: { OUTPOST_URL: url, OUTPOST_TOKEN: TOKEN } });
}

async function apiGet<T>(path: string): Promise<T> {
  const { status, body } = await controlPlaneApi(cp.httpPort, TOKEN).get<T>(path);
  expect(status, path).toBe(200);
  return body;
}

/** Writes a spec file into the test's directory and returns its path. */
async function specFile(name: string, text: string): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, text);
  return path;
}

/** A model rollout spec (YAML) over one group of agents (and `site`, when given). */
function rolloutYaml(id: string, group: string, extra = '', site?: string): string {
  return `id: ${id}
name: ${MODEL} to the ${group} group
selector:
  labels:
${site === undefined ? '' : `    site: ${site}\n`}    group: ${group}
change:
  model: { name: constant, version: 2.0.0 }
${extra}`;
}

/** Cells of a table line: runs of text separated by two or more spaces. */
function table(stdout: string): Record<string, string>[] {
  const [headerLine, ...lines] = stdout.trimEnd().split('\n');
  const header = [...headerLine!.matchAll(/\S+(?: \S+)*/g)].map((m) => m[0]);
  return lines.map((line) => {
    const row = [...line.matchAll(/\S+(?: \S+)*/g)].map((m) => m[0]);
    expect(row.length, line).toBe(header.length);
    return Object.fromEntries(header.map((h, k) => [h, row[k]!]));
  });
}

/** The agents of a rollout's wave `wave` (0-based) in the order the control plane must use: sha256("id:agent"). */
function plannedOrder(rolloutId: string, agentIds: readonly string[]): { agentId: string; orderKey: string }[] {
  return agentIds
    .map((agentId) => ({ agentId, orderKey: createHash('sha256').update(`${rolloutId}:${agentId}`).digest('hex') }))
    .sort((a, b) => (a.orderKey < b.orderKey ? -1 : 1));
}

/** Waits until rollout `id` has a target in `wave` (0-based) and returns its agent ids. */
async function targetsOf(id: string, wave: number): Promise<string[]> {
  return waitFor(
    async () => {
      const view = await apiGet<RolloutView>(`/api/rollouts/${id}`);
      const ids = view.targets.filter((t) => t.wave === wave).map((t) => t.agentId);
      return ids.length > 0 ? ids : undefined;
    },
    { what: `rollout ${id} to target wave ${wave + 1}` },
  );
}

// Escape sequences a terminal gets (ECMA-48): any control sequence, cursor up (CUU), a colour (SGR).
// eslint-disable-next-line no-control-regex
const stripAnsi = (text: string): string => text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
// eslint-disable-next-line no-control-regex
const CURSOR_UP = /\r\u001b\[(\d+)A/;
// eslint-disable-next-line no-control-regex
const SGR_COLOUR = /\u001b\[3\dm/;

/** A long-running outpostctl (a watch): its output so far, a wait for some output, its end. */
interface RunningCli {
  output(): string;
  waitForOutput(pattern: RegExp, what: string): Promise<void>;
  write(text: string): void;
  signal(name: NodeJS.Signals): void;
  readonly done: Promise<CliRun>;
}

function startCli(command: string, args: readonly string[], env: Record<string, string>): RunningCli {
  // Node's styleText also leaves colour out when CI is set (or FORCE_COLOR=0, TERM=dumb): the
  // CLI runs here as on an operator's terminal, whatever the test runner's environment says.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OUTPOST_') && !['NO_COLOR', 'CI', 'FORCE_COLOR', 'TERM'].includes(k)));
  const child = spawn(command, args, { env: { ...base, TERM: 'xterm-256color', ...env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000 });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      exited = true;
      resolve({ code, stdout, stderr });
    });
  });
  return {
    output: () => stdout,
    async waitForOutput(pattern, what) {
      await waitFor(
        () => {
          if (pattern.test(stripAnsi(stdout))) return true;
          if (exited) throw new Error(`outpostctl ended before ${what}:\n${stdout}\n${stderr}`);
          return undefined;
        },
        { what, timeoutMs: 60_000 },
      );
    },
    write: (text) => child.stdin.write(text),
    signal: (name) => child.kill(name),
    done,
  };
}

function watch(id: string, ...flags: string[]): RunningCli {
  return startCli(process.execPath, [OUTPOSTCTL_MAIN, 'rollout', 'status', id, '--watch', ...flags], { OUTPOST_URL: url, OUTPOST_TOKEN: TOKEN });
}

/** Each test runs a dozen CLI processes (about a second each on a busy machine); the watches wait for rollouts. */
const SLOW_TEST_MS = 180_000;

const TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';

describe('outpostctl models', { timeout: SLOW_TEST_MS }, () => {
  it('publish: the manifest and the .onnx beside it; again with the same bytes; --json is the stored entry', async () => {
    const v3 = signedConstantModel(0.3, '3.0.0', key, { threshold: 0.5 });
    const model = await writeModelFiles(dir.path, 'constant-3.0.0', v3.onnx, v3.signed);
    const sha256 = createHash('sha256').update(v3.onnx).digest('hex');
    const first = await ctl('models', 'publish', model.manifestPath);
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect(first.stdout).toMatch(/^Model +constant@3\.0\.0 \(published\)$/m);
    expect(first.stdout).toMatch(new RegExp(`^SHA-256 +${sha256.slice(0, 12)} \\(${sha256}\\)$`, 'm'));
    expect(first.stdout).toMatch(new RegExp(`^Size +${v3.onnx.length} B$`, 'm'));
    expect(first.stdout).toMatch(/^Key +cli-key$/m);
    expect(first.stdout).toMatch(/^Expires +2036-01-01T00:00:00Z$/m);

    const again = await ctl('models', 'publish', model.manifestPath, '--json');
    expect(again.code).toBe(0);
    const entry = ModelEntrySchema.parse(JSON.parse(again.stdout));
    expect(entry).toMatchObject({ name: 'constant', version: '3.0.0', sha256, sizeBytes: v3.onnx.length, keyId: 'cli-key' });
    // Nothing stored twice: the entry is the first one, stored when it was.
    expect(entry).toEqual(ModelListResponseSchema.parse(await apiGet('/api/models')).models.find((m) => m.version === '3.0.0'));

    // Another name for the manifest: the .onnx must be given.
    const renamed = join(dir.path, 'manifest-copy.json');
    await writeFile(renamed, await readFile(model.manifestPath));
    const [unnamed, given] = await Promise.all([ctl('models', 'publish', renamed), ctl('models', 'publish', renamed, '--onnx', model.onnxPath)]);
    expect([unnamed.code, unnamed.stdout]).toEqual([2, '']);
    expect(unnamed.stderr).toMatch(/is not named \*\.manifest\.json; give the model with --onnx PATH/);
    expect(given.code).toBe(0);
  });

  it('publish refuses: a missing .onnx (2), bytes that do not match the manifest (7), the same version with other bytes (6)', async () => {
    const lost = signedConstantModel(0.3, '2.1.0', key);
    const lostPaths = await writeModelFiles(dir.path, 'lost', lost.onnx, lost.signed);
    // Bytes beside the manifest that are not the ones it signed.
    await writeFile(lostPaths.onnxPath, Buffer.alloc(0));
    const missing = await ctl('models', 'publish', join(dir.path, 'nowhere.manifest.json'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^outpostctl: cannot read the manifest .*nowhere\.manifest\.json: ENOENT/);
    const noOnnx = await ctl('models', 'publish', lostPaths.manifestPath, '--onnx', join(dir.path, 'lost-elsewhere.onnx'));
    expect(noOnnx.code).toBe(2);
    expect(noOnnx.stderr).toMatch(/cannot read the model .*lost-elsewhere\.onnx: ENOENT/);

    const tampered = await ctl('models', 'publish', lostPaths.manifestPath);
    expect([tampered.code, tampered.stdout]).toEqual([7, '']);
    expect(tampered.stderr).toMatch(/^outpostctl: MODEL_DIGEST_MISMATCH: /);

    const other = signedConstantModel(0.9, '2.0.0', key, { threshold: 0.5 });
    const otherPaths = await writeModelFiles(dir.path, 'other-2.0.0', other.onnx, other.signed);
    const exists = await ctl('models', 'publish', otherPaths.manifestPath);
    expect(exists.code).toBe(6);
    expect(exists.stderr).toMatch(/^outpostctl: MODEL_EXISTS: /);
  });

  it('ls: one row per version; --json is the API body', async () => {
    const run = await ctl('models', 'ls');
    expect(run.code).toBe(0);
    const sha256 = createHash('sha256').update(onnx).digest('hex');
    const rows = table(run.stdout);
    expect(rows.find((r) => r['VERSION'] === '2.0.0')).toEqual({
      NAME: 'constant',
      VERSION: '2.0.0',
      SHA256: sha256.slice(0, 12),
      SIZE: `${onnx.length} B`,
      KEY: 'cli-key',
      STORED: expect.stringMatching(new RegExp(`^${TIME}$`)),
      EXPIRES: '2036-01-01T00:00:00Z',
    });
    const json = await ctl('models', 'ls', '--json');
    const body = ModelListResponseSchema.parse(JSON.parse(json.stdout));
    expect(body).toEqual(await apiGet('/api/models'));
    expect(rows.map((r) => `${r['NAME']}@${r['VERSION']} ${r['SHA256']}`)).toEqual(body.models.map((m) => `${m.name}@${m.version} ${m.sha256.slice(0, 12)}`));
  });
});

describe('outpostctl rollout create', { timeout: SLOW_TEST_MS }, () => {
  it('--dry-run: which agent goes in which wave (rank, order key, labels) and which are left out and why; nothing created', async () => {
    const file = await specFile('plan.yaml', rolloutYaml('plan-watch', 'watch', 'strategy:\n  waves: [1, "100%"]\n', 'lab'));
    const run = await ctl('rollout', 'create', '-f', file, '--dry-run');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(run.stdout).toMatch(/^Dry run, nothing created: rollout plan-watch would change model constant@2\.0\.0 on 2 agent\(s\) in 2 wave\(s\)\.$/m);
    const order = plannedOrder('plan-watch', ['gw-w1', 'gw-w2']);
    const rows = table(run.stdout.slice(run.stdout.indexOf('WAVE'), run.stdout.indexOf('\nSelector')));
    expect(rows).toEqual(
      order.map((a, rank) => ({ WAVE: String(rank + 1), RANK: String(rank), AGENT: a.agentId, 'ORDER KEY': a.orderKey.slice(0, 12), LABELS: 'site=lab,group=watch' })),
    );
    const excluded = table(run.stdout.slice(run.stdout.indexOf('AGENT  REASON')));
    expect(excluded.sort((a, b) => a['AGENT']!.localeCompare(b['AGENT']!))).toEqual([
      { AGENT: 'gw-a1', REASON: 'label group is "actions", not "watch"' },
      { AGENT: 'gw-a2', REASON: 'label group is "actions", not "watch"' },
      { AGENT: 'gw-f1', REASON: 'label group is "fail", not "watch"' },
      { AGENT: 'gw-t1', REASON: 'label group is "tty", not "watch"' },
      { AGENT: 'gw-x1', REASON: 'label site is "field", not "lab"' },
    ]);

    // The same spec as JSON on stdin, --json: the plan as the API answers it.
    const yamlValue = { id: 'plan-watch', name: 'x', selector: { labels: { site: 'lab', group: 'watch' } }, change: { model: { name: 'constant', version: '2.0.0' } }, strategy: { waves: [1, '100%'] } };
    const json = await runOutpostctl(['rollout', 'create', '-f', '-', '--dry-run', '--json'], { env: { OUTPOST_URL: url, OUTPOST_TOKEN: TOKEN }, stdin: JSON.stringify(yamlValue) });
    expect(json.code).toBe(0);
    const plan = RolloutPlanSchema.parse(JSON.parse(json.stdout));
    expect(plan.waves.map((w) => w.agents.map((a) => a.agentId))).toEqual([[order[0]!.agentId], [order[1]!.agentId]]);

    const list = RolloutListResponseSchema.parse(await apiGet('/api/rollouts'));
    expect(list.rollouts.map((r) => r.id)).not.toContain('plan-watch');
  });

  it('a bad spec: every bad key with its path and line (7); not YAML, no file, no -f (2); an unknown model (3)', async () => {
    const file = await specFile('bad.yaml', rolloutYaml('bad-spec', 'watch', 'strategy:\n  waves: [1, 2]\n  soak: soon\nonFailure: explode\n'));
    const run = await ctl('rollout', 'create', '-f', file);
    expect([run.code, run.stdout]).toEqual([7, '']);
    expect(run.stderr).toBe(
      [
        `outpostctl: the control plane refused the rollout spec in ${file} (REQUEST_INVALID):`,
        `  ${file}:10: strategy.soak: must be a duration like 30s, 5m or 1h, or a number of ms (got "soon")`,
        `  ${file}:11: onFailure: Invalid option: expected one of "pause"|"rollback"`,
        '',
      ].join('\n'),
    );
    const [notYaml, noFile, noFlag, unknownModel] = await Promise.all([
      specFile('broken.yaml', 'name: [unclosed\n').then((f) => ctl('rollout', 'create', '-f', f)),
      ctl('rollout', 'create', '-f', join(dir.path, 'absent.yaml')),
      ctl('rollout', 'create'),
      specFile('unknown-model.yaml', rolloutYaml('unknown-model', 'watch').replace('version: 2.0.0', 'version: 9.9.9')).then((f) => ctl('rollout', 'create', '-f', f)),
    ]);
    expect([notYaml.code, noFile.code, noFlag.code]).toEqual([2, 2, 2]);
    expect(notYaml.stderr).toMatch(/^outpostctl: .*broken\.yaml:\d+:\d+: not valid YAML or JSON: /);
    expect(noFile.stderr).toMatch(/^outpostctl: cannot read the rollout spec .*absent\.yaml: ENOENT/);
    expect(noFlag.stderr).toMatch(/required option '-f, --file <path>' not specified/);
    expect(unknownModel.code).toBe(3);
    expect(unknownModel.stderr).toMatch(/^outpostctl: MODEL_NOT_FOUND: model constant@9\.9\.9 is not in the model store/);
    // A selector that matches nobody is refused as invalid, without issues to place in the file.
    const nobody = await ctl('rollout', 'create', '-f', await specFile('nobody.yaml', rolloutYaml('nobody', 'nobody')));
    expect(nobody.code).toBe(7);
    expect(nobody.stderr).toBe('outpostctl: REQUEST_INVALID: the selector matches no agent\n');
  });
});

describe('outpostctl rollout operations', { timeout: SLOW_TEST_MS }, () => {
  it('create, ls, status; pause, resume, abort, rollback with their history entries; 409 (6) when the status does not allow it; 404 (3); a watch ends with 12 on abort', async () => {
    const file = await specFile('actions.yaml', rolloutYaml('r-actions', 'actions', 'strategy:\n  waves: [1, 1]\n  waveDeadline: 10m\n'));
    const events = await openEventStream(cp.httpPort, { token: TOKEN });
    try {
      const created = await ctl('rollout', 'create', '-f', file);
      expect([created.code, created.stderr]).toEqual([0, '']);
      expect(created.stdout).toBe('Created rollout r-actions: pending, 2 wave(s), 2 agent(s) selected now.\nFollow it: outpostctl rollout status r-actions --watch\n');
      await events.next((e) => e.type === 'rollout' && e.data.id === 'r-actions' && e.data.status === 'running', 'r-actions running');
    } finally {
      events.close();
    }
    const [first] = await targetsOf('r-actions', 0);

    const watcher = watch('r-actions');
    await watcher.waitForOutput(/wave-started wave 1/, 'the watch to print the first wave');

    const conflict = await ctl('rollout', 'create', '-f', await specFile('conflict.yaml', rolloutYaml('r-conflict', 'actions')));
    expect(conflict.code).toBe(6);
    expect(conflict.stderr).toMatch(/^outpostctl: ROLLOUT_CONFLICT: rollout r-actions \(running\) already selects /);

    const ls = await ctl('rollout', 'ls');
    expect(ls.code).toBe(0);
    expect(table(ls.stdout).find((r) => r['ID'] === 'r-actions')).toEqual({
      ID: 'r-actions',
      NAME: `${MODEL} to the actions group`,
      STATUS: 'running',
      WAVE: '1/2',
      TARGETS: '1',
      CHANGE: `model ${MODEL}`,
      CREATED: expect.stringMatching(/^(now|\d+s ago)$/),
      BY: OPERATOR,
    });
    const lsJson = await ctl('rollout', 'ls', '--json');
    expect(RolloutListResponseSchema.parse(JSON.parse(lsJson.stdout)).rollouts.map((r) => r.id)).toContain('r-actions');

    const status = await ctl('rollout', 'status', 'r-actions');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^Rollout +r-actions \(constant@2\.0\.0 to the actions group\)$/m);
    expect(status.stdout).toMatch(/^Status +running, wave 1 of 2$/m);
    expect(status.stdout).toMatch(/^Change +model constant@2\.0\.0 \(sha256 [0-9a-f]{12}\)$/m);
    expect(status.stdout).toMatch(/^Strategy +waves 1, 1; soak 1m; wave deadline 10m; failure budget 0; on failure rollback$/m);
    expect(status.stdout).toMatch(/^Gates +applied; healthy$/m);
    const waves = table(status.stdout.slice(status.stdout.indexOf('WAVE  AGENTS'), status.stdout.indexOf('\nHistory:')));
    expect(waves.map((w) => [w['WAVE'], w['AGENTS'], w['APPLIED'], w['PENDING'], w['STATE']])).toEqual([
      ['1', '1', '0', '1', 'applying'],
      ['2', '1', '0', '0', 'waiting'],
    ]);
    const history = table(status.stdout.slice(status.stdout.indexOf('SEQ')));
    expect(history.map((h) => [h['SEQ'], h['ACTOR'], h['ACTION'], h['WAVE'], h['STATUS'], h['DETAIL']])).toEqual([
      ['1', OPERATOR, 'created', '-', 'pending', `${MODEL} to the actions group`],
      ['2', 'controller', 'wave-started', '1', 'running', expect.stringContaining(first!)],
    ]);

    const pause = await ctl('rollout', 'pause', 'r-actions');
    expect([pause.code, pause.stderr]).toEqual([0, '']);
    const [pauseLine, ...pauseEntry] = pause.stdout.trimEnd().split('\n');
    expect(pauseLine).toBe(`Rollout r-actions: paused, wave 1 of 2 (paused by ${OPERATOR})`);
    expect(table(pauseEntry.join('\n'))).toEqual([{ SEQ: '3', TIME: expect.stringMatching(new RegExp(`^${TIME}$`)), ACTOR: OPERATOR, ACTION: 'paused', WAVE: '1', STATUS: 'paused', DETAIL: '-' }]);
    await watcher.waitForOutput(/^rollout r-actions: paused, wave 1 of 2 \(paused by operator:cli-operator\)$/m, 'the watch to see the pause');

    const pauseAgain = await ctl('rollout', 'pause', 'r-actions');
    expect([pauseAgain.code, pauseAgain.stdout, pauseAgain.stderr]).toEqual([6, '', 'outpostctl: ROLLOUT_STATE_INVALID: cannot pause a rollout that is paused\n']);

    const resume = await ctl('rollout', 'resume', 'r-actions', '--json');
    expect(resume.code).toBe(0);
    const resumed = RolloutViewSchema.parse(JSON.parse(resume.stdout));
    expect(resumed.status).toBe('running');
    expect(resumed.history.at(-1)).toMatchObject({ seq: 4, actor: OPERATOR, action: 'resumed' });

    const abort = await ctl('rollout', 'abort', 'r-actions');
    expect(abort.code).toBe(0);
    expect(abort.stdout).toMatch(/^Rollout r-actions: aborted, wave 1 of 2 \(aborted by operator:cli-operator\)\n/);
    expect(table(abort.stdout.slice(abort.stdout.indexOf('SEQ'))).map((h) => [h['SEQ'], h['ACTOR'], h['ACTION'], h['WAVE'], h['STATUS']])).toEqual([['5', OPERATOR, 'aborted', '1', 'aborted']]);
    const watched = await watcher.done;
    expect([watched.code, watched.stderr]).toEqual([12, '']);
    expect(watched.stdout.trimEnd().split('\n').at(-1)).toBe(`rollout r-actions aborted: aborted by ${OPERATOR}`);

    const resumeAborted = await ctl('rollout', 'resume', 'r-actions');
    expect([resumeAborted.code, resumeAborted.stderr]).toEqual([6, 'outpostctl: ROLLOUT_STATE_INVALID: cannot resume a rollout that is aborted\n']);

    const rollback = await ctl('rollout', 'rollback', 'r-actions');
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(/^Rollout r-actions: rolled-back, wave 1 of 2 \(rolled back by operator:cli-operator\)\n/);
    expect(table(rollback.stdout.slice(rollback.stdout.indexOf('SEQ'))).map((h) => [h['SEQ'], h['ACTOR'], h['ACTION'], h['WAVE'], h['STATUS']])).toEqual([['6', OPERATOR, 'rollback', '1', 'rolled-back']]);

    const [rollbackAgain, abortAgain, unknown, badId] = await Promise.all([
      ctl('rollout', 'rollback', 'r-actions'),
      ctl('rollout', 'abort', 'r-actions'),
      ctl('rollout', 'pause', 'r-nowhere'),
      ctl('rollout', 'status', 'Not_An_Id'),
    ]);
    expect([rollbackAgain.code, abortAgain.code]).toEqual([6, 6]);
    expect(rollbackAgain.stderr).toBe('outpostctl: ROLLOUT_STATE_INVALID: cannot rollback a rollout that is rolled-back\n');
    expect([unknown.code, unknown.stderr]).toEqual([3, 'outpostctl: ROLLOUT_NOT_FOUND: no rollout "r-nowhere"\n']);
    expect([badId.code, badId.stdout]).toEqual([2, '']);

    // A watch of a rollout that has ended says how at once.
    const ended = await ctl('rollout', 'status', 'r-actions', '--watch');
    expect(ended.code).toBe(11);
    expect(ended.stdout.trimEnd().split('\n').at(-1)).toBe(`rollout r-actions rolled-back: rolled back by ${OPERATOR}`);
  });

  it('status --watch (not a terminal): a line per change, gate values, exit 0 when the rollout succeeds; --json one view per line', async () => {
    const file = await specFile('watch.yaml', rolloutYaml('r-watch', 'watch', 'strategy:\n  waves: [1, 1]\n  soak: 0\n  waveDeadline: 5m\n', 'lab'));
    expect((await ctl('rollout', 'create', '-f', file)).code).toBe(0);
    const plain = watch('r-watch');
    const json = watch('r-watch', '--json');
    await plain.waitForOutput(/wave-started wave 1: 1 agent\(s\)/, 'the first wave in the watch');
    await json.waitForOutput(/"wave-started"/, 'the first wave in the JSON watch');

    const [first] = await targetsOf('r-watch', 0);
    await beat(first!, { rolloutId: 'r-watch', wave: 0, status: 'applied' });
    const [second] = await targetsOf('r-watch', 1);
    await beat(second!, { rolloutId: 'r-watch', wave: 1, status: 'applied' });

    const run = await plain.done;
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(run.stdout).not.toContain('\u001b[');
    const lines = run.stdout.trimEnd().split('\n');
    const expected = [
      new RegExp(`^#2 ${TIME} controller wave-started wave 1: 1 agent\\(s\\): ${first}$`),
      new RegExp(`^#3 ${TIME} controller wave-passed wave 1: applied pass, healthy pass$`),
      /^ {4}applied pass: agents=1 applied=1 failed=0 \(thresholds budget=0\) all 1 applied$/,
      /^ {4}healthy pass: applied=1 unhealthy=0 failed=0 \(thresholds budget=0\) every updated agent online and not degraded$/,
      new RegExp(`^#4 ${TIME} controller wave-started wave 2: 1 agent\\(s\\): ${second}$`),
      new RegExp(`^#5 ${TIME} controller succeeded wave 2: applied pass, healthy pass$`),
      /^wave 2 \[#{20}\] 1\/1 applied, passed$/,
      /^rollout r-watch succeeded$/,
    ];
    // Each expected line appears, in this order (progress lines may come in between).
    let at = 0;
    for (const pattern of expected) {
      const found = lines.findIndex((l, k) => k >= at && pattern.test(l));
      expect(found, `${pattern} after line ${at} in\n${run.stdout}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
    expect(lines.at(-1)).toBe('rollout r-watch succeeded');
    // Wave 1's bar full once its agent applied (before or after its pass was written, as the reads fell).
    expect(lines).toContainEqual(expect.stringMatching(/^wave 1 \[#{20}\] 1\/1 applied, (soaking until .*|passed)$/));
    // Every history entry printed once.
    expect(lines.filter((l) => /^#\d+ /.test(l)).map((l) => l.split(' ')[0])).toEqual(['#1', '#2', '#3', '#4', '#5']);

    const jsonRun = await json.done;
    expect(jsonRun.code).toBe(0);
    const views = jsonRun.stdout.trimEnd().split('\n').map((l) => RolloutViewSchema.parse(JSON.parse(l)));
    expect(views.length).toBeGreaterThanOrEqual(2);
    expect(views.at(-1)!.status).toBe('succeeded');
    expect(new Set(views.map((v) => JSON.stringify(v))).size, 'one line per change').toBe(views.length);
  });

  it('status --watch exits 11 when a refused change rolls the rollout back; status shows the failed gate with its thresholds and the agent', async () => {
    const file = await specFile('fail.yaml', rolloutYaml('r-fail', 'fail', 'strategy:\n  soak: 0\n'));
    expect((await ctl('rollout', 'create', '-f', file)).code).toBe(0);
    const watcher = watch('r-fail');
    await watcher.waitForOutput(/wave-started wave 1/, 'the wave in the watch');
    await beat('gw-f1', { rolloutId: 'r-fail', wave: 0, status: 'refused' });
    const run = await watcher.done;
    expect([run.code, run.stderr]).toEqual([11, '']);
    expect(run.stdout).toMatch(/^wave 1 \[x{20}\] 0\/1 applied, 1 refused, (applying|failed)$/m);
    expect(run.stdout).toMatch(/^ {4}applied fail: agents=1 applied=0 failed=1 \(thresholds budget=0\) 1 of 1 did not apply \(budget 0\)$/m);
    expect(run.stdout.trimEnd().split('\n').at(-1)).toMatch(/^rollout r-fail rolled-back: wave 1 failed: applied: 1 of 1 did not apply \(budget 0\)/);

    const status = await ctl('rollout', 'status', 'r-fail');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^Status +rolled-back, wave 1 of 1$/m);
    expect(status.stdout).toMatch(/^Reason +wave 1 failed: applied: 1 of 1 did not apply \(budget 0\)/m);
    const gates = table(status.stdout.slice(status.stdout.indexOf('GATE'), status.stdout.indexOf('Failed agents')));
    expect(gates).toEqual([
      { GATE: 'applied', OUTCOME: 'fail', MEASURED: 'agents=1 applied=0 failed=1', THRESHOLDS: 'budget=0', DETAIL: '1 of 1 did not apply (budget 0)' },
      { GATE: 'healthy', OUTCOME: expect.any(String), MEASURED: 'applied=0 unhealthy=0 failed=1', THRESHOLDS: 'budget=0', DETAIL: 'every updated agent online and not degraded' },
    ]);
    expect(status.stdout).toMatch(/^Failed agents: gw-f1 \(refused: CONFIG_INVALID ingest\.rateLimitMsgsPerS: must be at least 0\)$/m);

    const json = await ctl('rollout', 'status', 'r-fail', '--json');
    const body = RolloutViewSchema.parse(JSON.parse(json.stdout));
    const api = RolloutViewSchema.parse(await apiGet('/api/rollouts/r-fail'));
    // --json is the API's body: the same document (progress aside, which is computed at read time).
    expect({ ...body, progress: [] }).toEqual({ ...api, progress: [] });
  });

  it('status --watch ends on Ctrl-C with 130 and says where the rollout stands: on a terminal (redrawn in place) and in a log', async () => {
    const file = await specFile('tty.yaml', rolloutYaml('r-tty', 'tty', 'strategy:\n  soak: 1h\n'));
    expect((await ctl('rollout', 'create', '-f', file)).code).toBe(0);
    await targetsOf('r-tty', 0);

    // A log: SIGINT as Ctrl-C sends it.
    const log = watch('r-tty');
    await log.waitForOutput(/^wave 1 \[-{20}\] 0\/1 applied, 1 pending, applying$/m, 'the wave in the log');
    log.signal('SIGINT');
    const logRun = await log.done;
    expect([logRun.code, logRun.stderr]).toEqual([130, '']);
    expect(logRun.stdout.trimEnd().split('\n').at(-1)).toBe('stopped watching; rollout r-tty is running, wave 1 of 1 and goes on');

    // A terminal: script(1) gives the CLI a pty of 120 x 40; \x03 on it is Ctrl-C.
    const script = resolveExecutable('script');
    expect(script, 'script(1) from util-linux').toBeDefined();
    const tty = startCli(script!, ['-q', '-e', '-c', `stty cols 120 rows 40; exec ${process.execPath} ${OUTPOSTCTL_MAIN} rollout status r-tty --watch`, '/dev/null'], {
      OUTPOST_URL: url,
      OUTPOST_TOKEN: TOKEN,
    });
    await tty.waitForOutput(/wave 1 \[░{20}\] 0\/1 applied, 1 pending +applying/, 'the first frame');
    await tty.waitForOutput(/live \(Ctrl-C stops watching\)/, 'the event stream live');
    await beat('gw-t1', { rolloutId: 'r-tty', wave: 0, status: 'applied' });
    await tty.waitForOutput(/wave 1 \[█{20}\] 1\/1 applied +soaking, (1h|59m\d+s) left/, 'the frame after the agent applied');
    tty.write('\u0003');
    const run = await tty.done;
    expect(run.code).toBe(130);
    const out = run.stdout.replace(/\r\n/g, '\n');
    expect(out.startsWith('\u001b[?25l'), 'the cursor hidden while watching').toBe(true);
    expect(out.endsWith('\u001b[?25h'), 'and shown again at the end').toBe(true);
    expect(stripAnsi(out)).toMatch(/stopped watching; rollout r-tty is running, wave 1 of 1 and goes on\n$/);
    // Redrawn in place: each frame starts by going back up exactly the lines the frame before wrote.
    const frames = out.split(CURSOR_UP);
    expect(frames.length, 'more than one frame').toBeGreaterThan(3);
    for (let k = 1; k < frames.length; k += 2) {
      const previous = frames[k - 1]!;
      expect(Number(frames[k]), `frame ${(k + 1) / 2}`).toBe(previous.split('\n').length - 1);
    }
    // Colour on a terminal, and no line longer than the terminal.
    expect(out).toMatch(SGR_COLOUR);
    for (const line of stripAnsi(out).split('\n')) expect(line.length).toBeLessThan(120);
    expect((await ctl('rollout', 'abort', 'r-tty')).code).toBe(0);
  });

  it('--help lists the rollout commands and every exit code', async () => {
    const [top, rollout, status] = await Promise.all([runOutpostctl(['--help']), runOutpostctl(['rollout', '--help']), runOutpostctl(['rollout', 'status', '--help'])]);
    expect(top.stdout).toMatch(/^ {2}6 {2}conflict: /m);
    expect(top.stdout).toMatch(/^ {2}7 {2}the control plane refused the input as invalid/m);
    expect(top.stdout).toMatch(/^ 10 {2}rollout status --watch: the rollout failed\n 11 {2}.*rolled back\n 12 {2}.*aborted\n 13 {2}agents doctor: a check warned.*\n 14 {2}agents doctor: a check failed\n130 {2}interrupted/m);
    for (const command of ['create', 'ls', 'status', 'pause', 'resume', 'abort', 'rollback']) expect(rollout.stdout).toMatch(new RegExp(`^ {2}${command}\\b`, 'm'));
    expect(status.stdout).toMatch(/^ {4}0 {2}the rollout succeeded\n {3}10 .*\n {3}11 .*rolled back\n {3}12 .*aborted\n {2}130 {2}Ctrl-C/m);
  });
});
