// The rollouts pages of the dashboard in real headless Chromium: nats-server, the control plane
// binary (operator token required, dashboard served at /), three agent processes running local
// inference on a signed constant model v1, devices publishing all along. A second model goes
// out in waves 1 / 2 while the page is open. It asserts on what an operator sees and does: the
// rollout appears in the list when created, its waves progress on its page without a reload
// (wave 1 applied and judged with its gate values, then wave 2 starting), pause and resume from
// the page (each behind a confirmation) do what they say as the API reads them back, the fleet
// view shows each agent's model and config version, and a rollback from the page brings every
// agent back to v1.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKey, type AgentListResponse } from '@outpost/shared';
import { signedConstantModel } from '../harness/agent-process.js';
import { controlPlaneApi, operatorAuth, startControlPlaneProcess, testControlPlaneConfig } from '../harness/control-plane-process.js';
import { startNatsServer } from '../harness/nats-server.js';
import { BASE_MODEL, rolloutApi, startTestFleet } from '../harness/rollout-fleet.js';
import { createTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const DASHBOARD_DIR = fileURLToPath(new URL('../../../control-plane/dist/dashboard', import.meta.url));
const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output', import.meta.url));
const CHROMIUM = { executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] };
/** How long one UI condition may take to show; generous because the machine is shared. */
const UI_TIMEOUT_MS = 30_000;
/** How long a wave may take: the agents fetch, verify, self-test and swap the model, then the soak. */
const WAVE_TIMEOUT_MS = 90_000;
const OPERATOR = 'e2e-operator';
const ROLLOUT_ID = 'dash-constant-2';
const NEW_MODEL = 'constant@2.0.0';
const OLD_MODEL = `constant@${BASE_MODEL.version}`;
const AGENTS = ['gw-0', 'gw-1', 'gw-2'];

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Marks the page, so a later check can tell that it was never reloaded. */
async function markPage(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as Record<string, unknown>)['outpostNotReloaded'] = true;
  });
}
async function stillSamePage(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as Record<string, unknown>)['outpostNotReloaded'] === true);
}

/** The `data-action` of every history row the page shows, in order. */
async function historyOnPage(page: Page): Promise<(string | null)[]> {
  return page.$$eval('[data-testid^="history-"]', (rows) => rows.map((r) => r.getAttribute('data-action')));
}

/** Clicks an action button, checks the confirmation it opens, and confirms. */
async function confirmAction(page: Page, action: string, expectInDialog: string, screenshot?: string): Promise<void> {
  await page.click(`[data-testid="action-${action}"]`, { timeout: UI_TIMEOUT_MS });
  await page.waitForSelector('[data-testid="confirm-dialog"][open]', { timeout: UI_TIMEOUT_MS });
  expect(await page.textContent('[data-testid="confirm-dialog"]')).toContain(expectInDialog);
  if (screenshot !== undefined) await page.screenshot({ path: join(OUTPUT_DIR, screenshot) });
  await page.click('[data-testid="confirm-ok"]');
  await page.waitForSelector('[data-testid="confirm-dialog"]', { state: 'detached', timeout: UI_TIMEOUT_MS });
}

describe('rollouts in the dashboard, headless Chromium', () => {
  it('lists a rollout as it is created, shows its waves progress live, pauses, resumes and rolls it back from the page; the fleet shows each agent’s model', async () => {
    const dir = await createTempDir('outpost-dashboard-rollouts-');
    cleanups.push(() => dir.remove());
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const token = randomBytes(24).toString('base64url');
    const cp = await startControlPlaneProcess(
      testControlPlaneConfig(nats.url, {
        http: { host: '127.0.0.1', port: 0, dashboardDir: DASHBOARD_DIR, auth: operatorAuth(token, OPERATOR) },
        rollouts: { tickMs: 200 },
      }),
      dir.path,
    );
    cleanups.push(() => cp.kill9());
    const key = generateSigningKey('dashboard-rollout-key');
    const fleet = await startTestFleet({ dir: dir.path, nats, key, count: AGENTS.length, ratePerDevicePerS: 10 });
    cleanups.push(() => fleet.close());
    const agentsApi = controlPlaneApi(cp.httpPort, token);
    const agentModels = async (): Promise<Record<string, string | undefined>> => {
      const { body } = await agentsApi.get<AgentListResponse>('/api/agents');
      return Object.fromEntries(body.agents.map((a) => [a.agentId, a.versions?.model]));
    };
    await waitFor(
      async () => {
        const models = await agentModels();
        return AGENTS.every((id) => models[id] === OLD_MODEL);
      },
      { what: `${AGENTS.length} agents serving ${OLD_MODEL}`, timeoutMs: 60_000, intervalMs: 250 },
    );
    const api = rolloutApi(cp.httpPort, token);
    const model = signedConstantModel(0.2, '2.0.0', key, { threshold: 0.5 });
    expect((await api.publishModel(model.signed, model.onnx)).status).toBe(201);

    const browser = await chromium.launch(CHROMIUM);
    cleanups.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    // Any script error or failed request the page logs fails the test at the end.
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    await mkdir(OUTPUT_DIR, { recursive: true });

    // The rollouts page, reached from the top bar, before any rollout exists.
    const base = `http://127.0.0.1:${cp.httpPort}/`;
    await page.goto(`${base}#token=${token}`);
    await page.click('[data-testid="nav-rollouts"]');
    expect(page.url()).toBe(`${base}#/rollouts`);
    await page.waitForSelector('[data-testid="live-status"][data-state="live"]', { timeout: UI_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="empty"]', { timeout: UI_TIMEOUT_MS });
    await markPage(page);

    // Created through the API while the page is open: the `rollout` event brings the row.
    const created = await api.create({
      id: ROLLOUT_ID,
      name: 'constant 2.0.0 in two waves',
      selector: { labels: { site: 'lab' } },
      change: { model: { name: 'constant', version: '2.0.0' } },
      // A soak long enough for the page to pause the second wave before it is judged.
      strategy: { waves: [1, 2], soak: '8s', waveDeadline: '60s' },
      gates: { anomalyRate: { minRows: 20 }, inferenceErrorRate: { max: 0.01, minRows: 20 } },
    });
    expect(created.status).toBe(201);
    const row = `[data-testid="rollout-row-${ROLLOUT_ID}"]`;
    await page.waitForSelector(`${row}[data-status="running"]`, { timeout: UI_TIMEOUT_MS });
    const rowText = await page.textContent(row);
    expect(rowText).toContain('constant 2.0.0 in two waves');
    expect(rowText).toContain(NEW_MODEL);
    expect(rowText).toContain(`by operator:${OPERATOR}`);
    expect(await page.textContent(`${row} [data-testid="rollout-wave"]`)).toBe('1 of 2');
    expect(await stillSamePage(page)).toBe(true);
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-rollouts.png'), fullPage: true });

    // Its page: wave 1 applies (one agent), soaks with a countdown, passes with its gate values;
    // then wave 2 starts. Every step arrives by events, the page is never reloaded.
    await page.click(`${row} [data-testid="rollout-link"]`);
    expect(page.url()).toBe(`${base}#/rollouts/${ROLLOUT_ID}`);
    await page.waitForSelector('[data-testid="wave-0"][data-agents="1"]', { timeout: UI_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="wave-0"][data-state="soaking"][data-applied="1"]', { timeout: WAVE_TIMEOUT_MS });
    expect(await page.textContent('[data-testid="wave-0"] [data-testid="wave-timing"]')).toMatch(/^soak ends in \d+ s$/);
    expect(await page.getAttribute('[data-testid="wave-1"]', 'data-state')).toBe('waiting');
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-rollout-soaking.png'), fullPage: true });
    await page.waitForSelector('[data-testid="wave-0"][data-state="passed"]', { timeout: WAVE_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="wave-1"][data-state="applying"], [data-testid="wave-1"][data-state="soaking"]', { timeout: WAVE_TIMEOUT_MS });
    expect(await page.getAttribute('[data-testid="wave-1"]', 'data-agents')).toBe('2');
    // Gate values beside their thresholds: the base model never flags, so the bound is the 1 % floor.
    expect(await page.getAttribute('[data-testid="wave-0"] [data-testid="gate-anomalyRate"]', 'data-outcome')).toBe('pass');
    expect(await page.textContent('[data-testid="wave-0"] [data-testid="gate-anomalyRate"]')).toContain('anomaly rate 0 % vs max 1 %');
    expect(await page.textContent('[data-testid="wave-0"] [data-testid="gate-inferenceErrorRate"]')).toContain('error rate 0 % vs max 1 %');
    expect(await page.textContent('[data-testid="wave-0"] [data-testid="gate-applied"]')).toContain('applied 1 of 1');
    expect(await stillSamePage(page)).toBe(true);

    // A confirmation cancelled does nothing.
    await page.click('[data-testid="action-abort"]');
    await page.waitForSelector('[data-testid="confirm-dialog"][open]', { timeout: UI_TIMEOUT_MS });
    await page.click('[data-testid="confirm-cancel"]');
    await page.waitForSelector('[data-testid="confirm-dialog"]', { state: 'detached', timeout: UI_TIMEOUT_MS });

    // Pause from the page while wave 2 is in progress; the API reads it back.
    expect(await page.isDisabled('[data-testid="action-resume"]')).toBe(true);
    await confirmAction(page, 'pause', 'No further step until it is resumed', 'dashboard-rollout-confirm.png');
    await page.waitForSelector('[data-testid="rollout-status"][data-status="paused"]', { timeout: UI_TIMEOUT_MS });
    const paused = (await api.get(ROLLOUT_ID)).body;
    expect(paused.status).toBe('paused');
    expect(paused.wave).toBe(1);
    expect(paused.history.at(-1)).toMatchObject({ action: 'paused', actor: `operator:${OPERATOR}`, wave: 1 });
    await page.waitForSelector(`[data-testid="history-${paused.history.at(-1)!.seq}"][data-action="paused"]`, { timeout: UI_TIMEOUT_MS });
    expect(await page.textContent('[data-testid="rollout-reason"]')).toBe(`paused by operator:${OPERATOR}`);
    expect(await page.isDisabled('[data-testid="action-pause"]')).toBe(true);
    expect(await page.isEnabled('[data-testid="action-resume"]')).toBe(true);
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-rollout-paused.png'), fullPage: true });

    // Resume from the page: the rollout goes on and finishes, the page following it live.
    await confirmAction(page, 'resume', 'It goes on from wave 2');
    const resumed = await api.waitFor(ROLLOUT_ID, ['running', 'succeeded'], UI_TIMEOUT_MS);
    expect(resumed.history.find((h) => h.action === 'resumed')).toMatchObject({ actor: `operator:${OPERATOR}`, wave: 1 });
    await page.waitForSelector('[data-testid="rollout-status"][data-status="succeeded"]', { timeout: WAVE_TIMEOUT_MS });
    await page.waitForSelector('[data-testid="wave-1"][data-state="passed"][data-applied="2"]', { timeout: UI_TIMEOUT_MS });
    const done = (await api.get(ROLLOUT_ID)).body;
    expect(done.status).toBe('succeeded');
    const actions = done.history.map((h) => h.action);
    expect(actions).toEqual(['created', 'wave-started', 'wave-passed', 'wave-started', 'paused', 'resumed', 'succeeded']);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid^="history-"]').length === n, actions.length, { timeout: UI_TIMEOUT_MS });
    expect(await historyOnPage(page)).toEqual(actions);
    expect(await page.isDisabled('[data-testid="action-pause"]')).toBe(true);
    expect(await page.isEnabled('[data-testid="action-rollback"]')).toBe(true);
    expect(await stillSamePage(page)).toBe(true);
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-rollout.png'), fullPage: true });

    // The fleet view: every agent's model and config version.
    await page.click('[data-testid="nav-fleet"]');
    for (const agentId of AGENTS) {
      await page.waitForSelector(`[data-testid="agent-row-${agentId}"] [data-testid="agent-model"][data-model="${NEW_MODEL}"]`, { timeout: UI_TIMEOUT_MS });
      // No config rollout yet: each runs its own config.
      expect(await page.getAttribute(`[data-testid="agent-row-${agentId}"] [data-testid="agent-config"]`, 'data-config')).toBe('local');
    }
    await page.screenshot({ path: join(OUTPUT_DIR, 'dashboard-fleet-models.png'), fullPage: true });

    // Roll back from the page: the API reads it back, and the fleet view shows every agent on v1 again.
    await page.goBack();
    await page.waitForSelector('[data-testid="rollout-status"][data-status="succeeded"]', { timeout: UI_TIMEOUT_MS });
    await confirmAction(page, 'rollback', 'All 3 agents this rollout touched go back to what they ran before');
    await page.waitForSelector('[data-testid="rollout-status"][data-status="rolled-back"]', { timeout: UI_TIMEOUT_MS });
    const rolledBack = (await api.get(ROLLOUT_ID)).body;
    expect(rolledBack.status).toBe('rolled-back');
    expect(rolledBack.history.at(-1)).toMatchObject({ action: 'rollback', actor: `operator:${OPERATOR}` });
    for (const action of ['pause', 'resume', 'abort', 'rollback']) expect(await page.isDisabled(`[data-testid="action-${action}"]`)).toBe(true);
    await page.click('[data-testid="nav-fleet"]');
    for (const agentId of AGENTS) {
      await page.waitForSelector(`[data-testid="agent-row-${agentId}"] [data-testid="agent-model"][data-model="${OLD_MODEL}"]`, { timeout: WAVE_TIMEOUT_MS });
    }
    expect(await stillSamePage(page)).toBe(true);
    expect(problems).toEqual([]);
  }, 300_000);
});
