import { describe, expect, it } from 'vitest';
import { RolloutSpecSchema, type HistoryEntry, type RolloutView, type WaveProgress } from '@outpost/shared';
import { exitCodeForStatus } from './watch.js';
import { formatDuration, gateValues, progressBar, formatActionResult } from './rollout-format.js';
import { createStyle } from './style.js';
import { plainText } from './terminal.js';
import { createLogState, logLines, renderWatchFrame } from './watch-frame.js';

const T0 = Date.parse('2026-11-24T12:00:00Z');
const plain = createStyle(false);

function entry(seq: number, action: HistoryEntry['action'], extra: Partial<HistoryEntry> = {}): HistoryEntry {
  return { seq, atMs: T0 + seq * 1000, actor: 'controller', action, status: 'running', detail: '', ...extra };
}

function progress(index: number, p: Partial<WaveProgress>): WaveProgress {
  return { index, agents: 2, applied: 0, refused: 0, pending: 0, state: 'waiting', ...p };
}

function view(overrides: Partial<RolloutView> = {}): RolloutView {
  const spec = RolloutSpecSchema.parse({ id: 'r1', name: 'model 2', change: { model: { name: 'constant', version: '2.0.0' } }, strategy: { waves: [2, 2], soak: '30s' } });
  return {
    v: 1,
    id: 'r1',
    spec,
    model: { name: 'constant', version: '2.0.0', sha256: 'a'.repeat(64), rollback: false },
    configVersion: null,
    status: 'running',
    wave: 0,
    waves: [
      { index: 0, startedAtMs: T0, gates: [], failed: [] },
      { index: 1, gates: [], failed: [] },
    ],
    targets: [],
    history: [entry(1, 'created', { actor: 'operator:ops', status: 'pending', detail: 'model 2' }), entry(2, 'wave-started', { wave: 0, detail: '2 agent(s): gw-1, gw-2' })],
    createdAtMs: T0,
    createdBy: 'operator:ops',
    updatedAtMs: T0 + 2000,
    progress: [progress(0, { applied: 1, pending: 1, state: 'applying' }), progress(1, {})],
    plannedAgents: 4,
    ...overrides,
  };
}

describe('logLines (stdout not a terminal)', () => {
  it('prints the status, each history entry once with its gates, and a wave only when its progress changed', () => {
    const state = createLogState();
    expect(logLines(state, view(), T0, plain)).toEqual([
      'rollout r1: running, wave 1 of 2',
      '#1 2026-11-24T12:00:01Z operator:ops created: model 2',
      '#2 2026-11-24T12:00:02Z controller wave-started wave 1: 2 agent(s): gw-1, gw-2',
      'wave 1 [##########----------] 1/2 applied, 1 pending, applying',
      'wave 2 [--------------------] 0/2 applied, waiting',
    ]);
    expect(logLines(state, view(), T0 + 5_000, plain)).toEqual([]);

    // Soaking: the end time, not a countdown, so a second later prints nothing new.
    const soaking = view({ progress: [progress(0, { applied: 2, state: 'soaking', soakEndsAtMs: T0 + 40_000 }), progress(1, {})] });
    expect(logLines(state, soaking, T0 + 10_000, plain)).toEqual(['wave 1 [####################] 2/2 applied, soaking until 2026-11-24T12:00:40Z']);
    expect(logLines(state, soaking, T0 + 11_000, plain)).toEqual([]);

    const gates = [{ gate: 'applied' as const, outcome: 'pass' as const, values: { agents: 2, applied: 2, failed: 0, budget: 0 }, detail: 'all 2 applied' }];
    const passed = view({
      history: [...view().history, entry(3, 'wave-passed', { wave: 0, gates, detail: 'applied pass' }), entry(4, 'wave-started', { wave: 1, detail: '2 agent(s): gw-3, gw-4' })],
      wave: 1,
      progress: [progress(0, { applied: 2, state: 'passed' }), progress(1, { pending: 2, state: 'applying' })],
    });
    expect(logLines(state, passed, T0 + 12_000, plain)).toEqual([
      '#3 2026-11-24T12:00:03Z controller wave-passed wave 1: applied pass',
      '    applied pass: agents=2 applied=2 failed=0 (thresholds budget=0) all 2 applied',
      '#4 2026-11-24T12:00:04Z controller wave-started wave 2: 2 agent(s): gw-3, gw-4',
      'wave 1 [####################] 2/2 applied, passed',
      'wave 2 [--------------------] 0/2 applied, 2 pending, applying',
    ]);
    const paused = { ...passed, status: 'paused' as const, reason: 'paused by operator:ops' };
    expect(logLines(state, paused, T0 + 13_000, plain)).toEqual(['rollout r1: paused, wave 2 of 2 (paused by operator:ops)']);
  });
});

describe('renderWatchFrame (a terminal)', () => {
  it('shows a bar per wave, a soak countdown, the reason and the newest history, and how fresh it is', () => {
    const frame = renderWatchFrame(
      view({ status: 'paused', reason: 'paused by operator:ops', progress: [progress(0, { applied: 2, state: 'soaking', soakEndsAtMs: T0 + 40_000 }), progress(1, {})] }),
      T0 + 10_000,
      plain,
      { state: 'live' },
    ).map(plainText);
    expect(frame[0]).toBe('Rollout r1 (model 2): paused, wave 1 of 2  model constant@2.0.0');
    expect(frame[1]).toMatch(/^ {2}wave 1 \[█{20}\] 2\/2 applied +soaking, 30s left$/);
    expect(frame[2]).toMatch(/^ {2}wave 2 \[░{20}\] 0\/2 applied +waiting$/);
    expect(frame.slice(3)).toEqual([
      '  paused by operator:ops',
      '  #1 2026-11-24T12:00:01Z operator:ops created: model 2',
      '  #2 2026-11-24T12:00:02Z controller wave-started wave 1: 2 agent(s): gw-1, gw-2',
      '  live (Ctrl-C stops watching)',
    ]);
    const down = renderWatchFrame(view(), T0, plain, { state: 'down', reason: 'ECONNREFUSED', retryInMs: 1500 }).map(plainText);
    expect(down.at(-1)).toBe('  event stream down (ECONNREFUSED), again in 2s; re-reading every second');
  });
});

describe('rollout output helpers', () => {
  it('splits gate values into measured values and thresholds', () => {
    expect(gateValues({ gate: 'inferenceErrorRate', outcome: 'pass', values: { rows: 500, errors: 1, errorRate: 0.002, max: 0.01, minRows: 100 }, detail: '' })).toEqual({
      measured: 'rows=500 errors=1 errorRate=0.002',
      thresholds: 'max=0.01 minRows=100',
    });
    expect(gateValues({ gate: 'anomalyRate', outcome: 'inconclusive', values: { rate: null, baselineSource: 'x' }, detail: '' })).toEqual({ measured: 'rate=n/a baselineSource="x"', thresholds: '-' });
  });

  it('draws bars in proportion, refusals apart', () => {
    const bar = (p: Partial<WaveProgress>) => progressBar(progress(0, p), plain, true, 10).map((s) => s.text).join('');
    expect(bar({ agents: 4, applied: 1, refused: 1, pending: 2 })).toBe('[###xx-----]');
    expect(bar({ agents: 3, applied: 3 })).toBe('[##########]');
    expect(bar({ agents: 0, state: 'passed' })).toBe('[##########]');
    expect(bar({ agents: 0 })).toBe('[----------]');
  });

  it('writes durations as a spec would', () => {
    expect([500, 3_000, 90_000, 3_600_000, 86_400_000 + 1_500].map(formatDuration)).toEqual(['500ms', '3s', '1m30s', '1h', '1d1s500ms']);
  });

  it('prints the entry an operator action added, not a controller step after it', () => {
    const v = view({
      status: 'paused',
      history: [...view().history, entry(3, 'paused', { actor: 'operator:ops', status: 'paused', wave: 0, detail: 'paused by operator:ops' }), entry(4, 'agents-joined', { wave: 0 })],
    });
    const out = formatActionResult(v, 'pause', plain);
    expect(out.split('\n')[0]).toBe('Rollout r1: paused, wave 1 of 2');
    expect(out).toMatch(/^ {2}3 +2026-11-24T12:00:03Z +operator:ops +paused +1 +paused +paused by operator:ops$/m);
    expect(out).not.toContain('agents-joined');
  });

  it('maps how a rollout ended to the exit code', () => {
    expect(['succeeded', 'failed', 'rolled-back', 'aborted'].map((s) => exitCodeForStatus(s as RolloutView['status']))).toEqual([0, 10, 11, 12]);
  });
});
