// README, "Roll out a model", end to end: the demo started as `npm run demo` starts it (on a
// free HTTP port and its own data dir), then exactly the README's commands, each in bash from
// the repository root (the models CLI signing with the dev key, the built outpostctl): the
// per-kind machine model replaces the demo's first model on every agent in waves, and the model
// that flags everything fails its first wave's anomaly-rate gate and is rolled back on its own.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentListResponseSchema, RolloutViewSchema, type AgentListResponse, type RolloutView } from '@outpost/shared';
import { listDemoSecrets } from '../demo/demo-secrets.js';
import { REPO_ROOT } from '../demo/stack-config.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';
import { spawnOwned, waitFor, type OwnedProcess } from '../harness/wait.js';

const DEMO_MAIN = fileURLToPath(new URL('../../dist/demo/main.js', import.meta.url));
const README = join(REPO_ROOT, 'README.md');
/** What the README's commands assume: the demo's defaults. */
const README_ORIGIN = 'http://127.0.0.1:8080';
const README_DATA_DIR = '.data/demo';
const GOOD_MODEL = 'anomaly-machine@2.0.0';
/** One command: signing rebuilds the models package first (tsc -b) on cores other tests share. */
const COMMAND_TIMEOUT_MS = 240_000;

interface DemoReady {
  event: 'demo-ready';
  apiUrl: string;
  tokenFile: string;
  dataDir: string;
  agents: { agentId: string; model: string | null }[];
}

interface CommandRun {
  command: string;
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

let dir: TempDir | undefined;
let demo: OwnedProcess | undefined;
afterEach(async () => {
  await demo?.kill();
  demo = undefined;
  await dir?.remove();
});

/** The commands of each `sh` block of the README's "Roll out a model" section, in order. */
async function readmeRolloutBlocks(): Promise<string[][]> {
  const text = await readFile(README, 'utf8');
  const start = text.indexOf('\n## Roll out a model\n');
  expect(start, 'README has no "## Roll out a model" section').toBeGreaterThanOrEqual(0);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]!
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#')),
  );
}

/** Runs `command` in bash at the repository root after `exportLine`, as a user's shell would. */
function runCommand(exportLine: string, command: string): Promise<CommandRun> {
  const env = { ...process.env };
  delete env['OUTPOST_URL'];
  delete env['OUTPOST_TOKEN'];
  const startedAt = performance.now();
  return new Promise((resolve) => {
    execFile('bash', ['-c', `set -e\n${exportLine}\n${command}`], { cwd: REPO_ROOT, env, timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ command, code, stdout, stderr, ms: performance.now() - startedAt });
    });
  });
}

async function getJson(url: string, token: string): Promise<unknown> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return response.json();
}

const describeRun = (r: CommandRun): string => `$ ${r.command}\n(exit ${r.code} after ${(r.ms / 1000).toFixed(1)} s)\n${r.stdout}${r.stderr}`;

describe('README: roll out a model over the demo', () => {
  it("the README's commands roll anomaly-machine@2.0.0 out over every demo agent in waves, and roll the flag-everything model back after its first wave", async () => {
    expect(existsSync(DEMO_MAIN), `${DEMO_MAIN} missing: run npm run build first`).toBe(true);
    const blocks = await readmeRolloutBlocks();
    expect(blocks.map((b) => b.length)).toEqual([5, 4]);
    const [good, bad] = blocks as [string[], string[]];
    expect(good[0]).toMatch(/^export OUTPOST_URL=/);
    expect(good.at(-1)).toMatch(/rollout status \S+ --watch$/);
    expect(bad.at(-1)).toMatch(/rollout status \S+ --watch$/);

    dir = await createTempDir('outpost-demo-rollout-e2e-');
    const dataDir = join(dir.path, 'demo');
    // As `npm run demo` runs it (after its build), on any free HTTP port and in the test's own data dir.
    demo = await spawnOwned(process.execPath, [DEMO_MAIN, '--http-port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
    const { child } = demo;
    let stdout = '';
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let ready: DemoReady | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      stdout += `${line}\n`;
      if (!line.startsWith('{"event":"demo-ready"')) return;
      ready = JSON.parse(line) as DemoReady;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const startedAt = performance.now();
    const up = await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the demo exited before it was ready; stderr:\n${stderr}`);
        return ready;
      },
      { what: 'the demo-ready line', timeoutMs: 180_000, intervalMs: 100 },
    );
    const readyMs = performance.now() - startedAt;
    const origin = new URL(up.apiUrl).origin;
    const token = (await readFile(up.tokenFile, 'utf8')).trim();

    // The README's first line, pointed at this demo: the very line the demo printed for it.
    const exportLine = good[0]!.replaceAll(README_ORIGIN, origin).replaceAll(`${README_DATA_DIR}/`, `${dataDir}/`);
    expect(stdout).toContain(`  CLI         ${exportLine}\n`);

    const agents = async (): Promise<AgentListResponse['agents']> => AgentListResponseSchema.parse(await getJson(`${up.apiUrl}/agents`, token)).agents;
    const rollout = async (id: string): Promise<RolloutView> => RolloutViewSchema.parse(await getJson(`${up.apiUrl}/rollouts/${id}`, token));
    const runs: CommandRun[] = [];
    /** Runs a block's commands in order; each must exit as expected before the next one runs. */
    const runBlock = async (commands: readonly string[], lastExitCode: number): Promise<CommandRun[]> => {
      const done: CommandRun[] = [];
      for (const [i, command] of commands.entries()) {
        const run = await runCommand(exportLine, command);
        done.push(run);
        runs.push(run);
        expect(run.code, describeRun(run)).toBe(i === commands.length - 1 ? lastExitCode : 0);
      }
      return done;
    };

    // The good model: every command succeeds and the watch ends with the rollout's success (exit 0).
    const goodRuns = await runBlock(good.slice(1), 0);
    const goodId = /rollout status (\S+) --watch$/.exec(good.at(-1)!)![1]!;
    const goodWatch = goodRuns.at(-1)!;
    expect(goodWatch.stdout).toContain(`rollout ${goodId} succeeded`);
    const succeeded = await rollout(goodId);
    expect(succeeded.status).toBe('succeeded');
    expect(succeeded.history.map((h) => [h.action, h.wave])).toEqual([
      ['created', undefined],
      ['wave-started', 0],
      ['wave-passed', 0],
      ['wave-started', 1],
      ['succeeded', 1],
    ]);
    // In waves: one agent, then the other two; every gate passed at each.
    expect(succeeded.waves.map((w) => succeeded.targets.filter((t) => t.wave === w.index).length)).toEqual([1, 2]);
    for (const entry of succeeded.history.filter((h) => h.action === 'wave-passed' || h.action === 'succeeded')) {
      expect(entry.gates!.map((g) => [g.gate, g.outcome])).toEqual([
        ['applied', 'pass'],
        ['healthy', 'pass'],
        ['inferenceErrorRate', 'pass'],
        ['anomalyRate', 'pass'],
      ]);
    }
    // Every agent reports the new version (heartbeats every 5 s).
    await waitFor(async () => (await agents()).every((a) => a.versions?.model === GOOD_MODEL && a.inference?.up === true), {
      what: `every demo agent on ${GOOD_MODEL}`,
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect((await agents()).map((a) => a.agentId).sort()).toEqual(up.agents.map((a) => a.agentId).sort());
    const goodCreateToEndMs = goodRuns.at(-2)!.ms + goodWatch.ms;

    // The bad model: its first wave fails the anomaly-rate gate, the rollout rolls back on its own (exit 11).
    const badRuns = await runBlock(bad, 11);
    const badId = /rollout status (\S+) --watch$/.exec(bad.at(-1)!)![1]!;
    const badWatch = badRuns.at(-1)!;
    expect(badWatch.stdout).toContain(`rollout ${badId} rolled-back`);
    const rolledBack = await rollout(badId);
    expect(rolledBack.status).toBe('rolled-back');
    const failed = rolledBack.history.at(-1)!;
    expect(failed).toMatchObject({ action: 'wave-failed', wave: 0, status: 'rolled-back' });
    const gate = failed.gates!.find((g) => g.gate === 'anomalyRate')!;
    expect(gate.outcome).toBe('fail');
    expect(gate.values['rate']).toBe(1);
    // Only the first wave's agent ever got it; it is back on the previous version, by a rollback it applied.
    expect(rolledBack.targets).toHaveLength(1);
    const victim = rolledBack.targets[0]!.agentId;
    await waitFor(
      async () => {
        const list = await agents();
        const back = list.find((a) => a.agentId === victim);
        return (
          list.every((a) => a.versions?.model === GOOD_MODEL) &&
          back?.desired?.status === 'applied' &&
          back.desired.origin?.rolloutId === badId &&
          back.desired.origin.action === 'rollback'
        );
      },
      { what: `${victim} back on ${GOOD_MODEL} by the rollback of ${badId}, every other agent still on it`, timeoutMs: 60_000, intervalMs: 500 },
    );
    for (const a of (await agents()).filter((x) => x.agentId !== victim)) expect(a.desired?.origin?.rolloutId, a.agentId).toBe(goodId);
    const badCreateToEndMs = badRuns.at(-2)!.ms + badWatch.ms;

    // None of the demo's secrets in what the commands or the demo printed.
    const secrets = await listDemoSecrets(dataDir);
    const printed = [stdout, stderr, ...runs.flatMap((r) => [r.stdout, r.stderr])].join('\n');
    expect([...secrets].filter(([, secret]) => printed.includes(secret)).map(([what]) => what)).toEqual([]);

    console.log(
      `demo rollout e2e: demo ready in ${(readyMs / 1000).toFixed(1)} s; ${runs.map((r) => `${r.command.split(' ').slice(0, 4).join(' ')}... ${(r.ms / 1000).toFixed(1)} s`).join('; ')}; ` +
        `${goodId}: create to succeeded ${(goodCreateToEndMs / 1000).toFixed(1)} s; ${badId}: create to rolled back ${(badCreateToEndMs / 1000).toFixed(1)} s (${String(gate.values['rows'])} rows, ${String(gate.values['anomalies'])} flagged)`,
    );

    child.kill('SIGINT');
    expect(await exited, stderr).toEqual({ code: 0, signal: null });
  }, 900_000);
});
