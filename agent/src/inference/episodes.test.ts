import { describe, expect, it } from 'vitest';
import { EPISODE_CLOSE_AFTER_CLEAN_WINDOWS, EpisodeClosedSchema, EpisodeOpenedSchema } from '@outpost/shared';
import { createEpisodeTracker, metricEvidence, type EpisodeEvent, type MetricEvidence } from './episodes.js';

const MODEL = { name: 'anomaly-machine', version: '2.0.0' };
const THRESHOLD = 1;
/** Device time between two windows (hop 4 at 1 Hz), ms. */
const HOP_MS = 4_000;

/** Feeds one device's scores, a window every HOP_MS from ts 0 (and now 0, 1, 2, ...); returns every event. */
function run(scores: readonly number[], options: { evidence?: (i: number) => MetricEvidence[] } = {}): EpisodeEvent[] {
  let n = 0;
  const tracker = createEpisodeTracker({ silenceMs: 60_000, newId: () => `ep-${++n}` });
  const events = scores.flatMap((score, i) =>
    tracker.observe('d1', { ts: i * HOP_MS, score, anomaly: score > THRESHOLD, model: MODEL, threshold: THRESHOLD, evidence: options.evidence?.(i) }, i),
  );
  return [...events, ...tracker.closeAll('shutdown')];
}

/** `o` opened / `c:reason` closed, in order. */
const shape = (events: readonly EpisodeEvent[]): string[] => events.map((e) => (e.type === 'opened' ? 'o' : `c:${e.body.reason}`));

describe('the episode state machine', () => {
  it('turns one fault (a run of flagged windows) into one opened and one closed event with its start, end, peak and window count', () => {
    const events = run([0.2, 0.3, 1.5, 2.5, 1.8, 0.4, 0.2, 0.3, 0.1, 0.2]);
    expect(shape(events)).toEqual(['o', 'c:recovered']);
    const [opened, closed] = events;
    expect(opened!.type === 'opened' && EpisodeOpenedSchema.parse(opened!.body)).toEqual({ episodeId: 'ep-1', model: MODEL, startTs: 2 * HOP_MS, threshold: THRESHOLD, contributors: [], score: 1.5 });
    expect(closed!.type === 'closed' && EpisodeClosedSchema.parse(closed!.body)).toEqual({
      episodeId: 'ep-1',
      model: MODEL,
      startTs: 2 * HOP_MS,
      threshold: THRESHOLD,
      contributors: [],
      lastSeenTs: 4 * HOP_MS,
      // The first of the clean windows that closed it.
      endTs: 5 * HOP_MS,
      peakScore: 2.5,
      peakTs: 3 * HOP_MS,
      windows: 3,
      reason: 'recovered',
    });
  });

  it(`closes after exactly ${EPISODE_CLOSE_AFTER_CLEAN_WINDOWS} clean windows in a row, not before`, () => {
    const clean = Array.from({ length: EPISODE_CLOSE_AFTER_CLEAN_WINDOWS - 1 }, () => 0.1);
    expect(shape(run([2, ...clean]))).toEqual(['o', 'c:shutdown']);
    expect(shape(run([2, ...clean, 0.1]))).toEqual(['o', 'c:recovered']);
  });

  it('keeps a score flickering around the threshold inside the gap as one episode', () => {
    const gap = Array.from({ length: EPISODE_CLOSE_AFTER_CLEAN_WINDOWS - 1 }, () => 0.5);
    const events = run([1.4, ...gap, 1.2, 0.9, 1.1, ...gap, 3, 0.1, 0.1, 0.1, 0.1]);
    expect(shape(events)).toEqual(['o', 'c:recovered']);
    const closed = events[1]!;
    expect(closed.type === 'closed' && closed.body).toMatchObject({ startTs: 0, peakScore: 3, windows: 4 });
  });

  it('gives two faults far apart two episodes, each opened and closed once, with ids of their own', () => {
    const quiet = Array.from({ length: 20 }, () => 0.2);
    const events = run([...quiet, 2, 2.2, ...quiet, 1.7, ...quiet]);
    expect(shape(events)).toEqual(['o', 'c:recovered', 'o', 'c:recovered']);
    const ids = events.map((e) => e.body.episodeId);
    expect(ids).toEqual(['ep-1', 'ep-1', 'ep-2', 'ep-2']);
    expect(events.map((e) => e.body.startTs)).toEqual([20, 20, 42, 42].map((i) => i * HOP_MS));
  });

  it('opens nothing on clean traffic, and tracks devices apart', () => {
    expect(run(Array.from({ length: 50 }, () => 0.5))).toEqual([]);
    const tracker = createEpisodeTracker({ silenceMs: 60_000, newId: () => 'x' });
    const window = (ts: number, score: number) => ({ ts, score, anomaly: score > THRESHOLD, model: MODEL, threshold: THRESHOLD });
    expect(shape(tracker.observe('a', window(0, 2), 0))).toEqual(['o']);
    expect(shape(tracker.observe('b', window(0, 0.1), 0))).toEqual([]);
    for (let i = 1; i <= EPISODE_CLOSE_AFTER_CLEAN_WINDOWS; i++) expect(tracker.observe('b', window(i, 0.1), i)).toEqual([]);
    expect(tracker.openCount).toBe(1);
  });

  it('closes an episode whose device went silent, and one whose device is scored by another model', () => {
    const tracker = createEpisodeTracker({ silenceMs: 10_000, newId: () => 'x' });
    tracker.observe('quiet', { ts: 1_000, score: 2, anomaly: true, model: MODEL, threshold: THRESHOLD }, 0);
    tracker.observe('busy', { ts: 1_000, score: 2, anomaly: true, model: MODEL, threshold: THRESHOLD }, 0);
    tracker.observe('busy', { ts: 5_000, score: 0.1, anomaly: false, model: MODEL, threshold: THRESHOLD }, 6_000);
    expect(tracker.closeSilent(9_999)).toEqual([]);
    const silent = tracker.closeSilent(10_000);
    expect(silent.map((e) => [e.deviceId, e.type === 'closed' && e.body.reason, e.body.startTs, e.type === 'closed' && e.body.endTs])).toEqual([['quiet', 'silent', 1_000, 1_000]]);
    const swapped = tracker.observe('busy', { ts: 9_000, score: 5, anomaly: true, model: { ...MODEL, version: '2.0.1' }, threshold: THRESHOLD }, 12_000);
    expect(shape(swapped)).toEqual(['c:model-changed', 'o']);
    expect(swapped[1]!.body.model.version).toBe('2.0.1');
  });

  it('names the metrics whose evidence crossed the threshold, strongest first, or else the strongest one', () => {
    const ev = (vibration: number, current: number): MetricEvidence[] => [
      { metric: 'vibration', detector: 'jump', evidence: vibration },
      { metric: 'current', detector: 'level0', evidence: current },
    ];
    const events = run([2, 1.5, 0.1, 0.1, 0.1], { evidence: (i) => (i === 0 ? ev(2, 0.5) : ev(0.3, 1.5)) });
    const [opened, closed] = events;
    expect(opened!.body.contributors).toEqual([{ metric: 'vibration', detector: 'jump', evidence: 2 }]);
    expect(closed!.body.contributors).toEqual([
      { metric: 'vibration', detector: 'jump', evidence: 2 },
      { metric: 'current', detector: 'level0', evidence: 1.5 },
    ]);
    // A threshold overridden above every evidence still names the strongest metric.
    const tracker = createEpisodeTracker({ silenceMs: 1, newId: () => 'x' });
    const [only] = tracker.observe('d', { ts: 0, score: 9, anomaly: true, model: MODEL, threshold: 5, evidence: ev(0.2, 0.4) }, 0);
    expect(only!.body.contributors).toEqual([{ metric: 'current', detector: 'level0', evidence: 0.4 }]);
  });
});

describe('metricEvidence', () => {
  it('maps feature j to metric floor(j / features) and detector j % features, keeping each metric its strongest detector', () => {
    const spec = { metrics: ['temperature', 'humidity'], features: ['jump', 'run', 'level0'] as const };
    expect(metricEvidence(Float32Array.from([0.1, 3, 0.5, 2, Number.NaN, 0.25]), { metrics: spec.metrics, features: [...spec.features] })).toEqual([
      { metric: 'temperature', detector: 'run', evidence: 3 },
      { metric: 'humidity', detector: 'jump', evidence: 2 },
    ]);
  });
});
