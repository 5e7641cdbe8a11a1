import { describe, expect, it } from 'vitest';
import type { Anomaly, EpisodeClosed, EpisodeOpened } from '@outpost/shared';
import { createAnomalyLog, type EpisodeRecord } from './anomaly-log.js';

const T0 = 1_800_000_000_000;
const anomaly = (agentId: string, deviceId: string, ts: number): Anomaly => ({ agentId, deviceId, ts, score: 0.9, model: { name: 'm', version: '1' }, receivedAtMs: ts });

describe('createAnomalyLog', () => {
  it('lists matching anomalies newest first, up to the limit, each record once', () => {
    const log = createAnomalyLog({ retentionMs: 60_000, maxAnomalies: 100 });
    expect(log.add(anomaly('gw-1', 'd1', T0 + 1), 'gw-1:e:1', T0)).toBe(true);
    expect(log.add(anomaly('gw-1', 'd2', T0 + 3), 'gw-1:e:2', T0)).toBe(true);
    expect(log.add(anomaly('gw-2', 'd1', T0 + 2), 'gw-2:e:1', T0)).toBe(true);
    expect(log.add(anomaly('gw-1', 'd1', T0 + 1), 'gw-1:e:1', T0)).toBe(false);
    const q = (query: Partial<Parameters<typeof log.query>[0]>) => log.query({ sinceMs: 0, limit: 100, ...query }).map((a) => `${a.agentId}/${a.deviceId}`);
    expect(q({})).toEqual(['gw-1/d2', 'gw-2/d1', 'gw-1/d1']);
    expect(q({ agentId: 'gw-1' })).toEqual(['gw-1/d2', 'gw-1/d1']);
    expect(q({ deviceId: 'd1' })).toEqual(['gw-2/d1', 'gw-1/d1']);
    expect(q({ agentId: 'gw-1', deviceId: 'd1' })).toEqual(['gw-1/d1']);
    expect(q({ sinceMs: T0 + 2 })).toEqual(['gw-1/d2', 'gw-2/d1']);
    expect(q({ limit: 1 })).toEqual(['gw-1/d2']);
  });

  it('forgets anomalies past their retention or beyond maxAnomalies, oldest arrivals first', () => {
    const log = createAnomalyLog({ retentionMs: 1_000, maxAnomalies: 2 });
    log.add(anomaly('gw-1', 'd1', T0), 'a', T0);
    log.add(anomaly('gw-1', 'd2', T0), 'b', T0 + 500);
    log.add(anomaly('gw-1', 'd3', T0), 'c', T0 + 600);
    expect(log.query({ sinceMs: 0, limit: 10 }).map((a) => a.deviceId).sort()).toEqual(['d2', 'd3']);
    expect(log.add(anomaly('gw-1', 'd1', T0), 'a', T0 + 700)).toBe(true); // forgotten, so new again
    log.prune(T0 + 1_650);
    expect(log.query({ sinceMs: 0, limit: 10 }).map((a) => a.deviceId)).toEqual(['d1']);
    expect(log.size()).toBe(1);
  });

  it('keeps one entry per episode: opened, then closed with its end, windows, reason and contributors; resends change nothing', () => {
    const log = createAnomalyLog({ retentionMs: 60_000, maxAnomalies: 100 });
    const model = { name: 'anomaly-machine', version: '2.0.0' };
    const contributors = [{ metric: 'vibration', detector: 'jump', evidence: 4.2 }];
    const opened: EpisodeOpened = { episodeId: 'e1', model, startTs: T0, threshold: 1.8, contributors, score: 2.1 };
    const closed: EpisodeClosed = { ...opened, lastSeenTs: T0 + 40_000, endTs: T0 + 44_000, peakScore: 6.5, peakTs: T0 + 8_000, windows: 11, reason: 'recovered' };
    delete (closed as Partial<EpisodeOpened>).score;
    const record = <T extends EpisodeRecord['type']>(type: T, body: T extends 'opened' ? EpisodeOpened : EpisodeClosed): EpisodeRecord =>
      ({ type, agentId: 'gw-1', deviceId: 'press-1', receivedAtMs: T0 + 10, body }) as EpisodeRecord;

    expect(log.addEpisode(record('opened', opened), T0)).toMatchObject({ ts: T0, score: 2.1, episode: { episodeId: 'e1', state: 'open', endTs: null, windows: null, reason: null, contributors } });
    // An open episode is listed whatever `since` says: it is still going on.
    expect(log.query({ sinceMs: T0 + 3_600_000, limit: 10 }).map((a) => a.episode?.state)).toEqual(['open']);
    expect(log.addEpisode(record('opened', opened), T0 + 1)).toBeUndefined();
    const done = log.addEpisode(record('closed', closed), T0 + 50_000);
    expect(done).toEqual({
      agentId: 'gw-1',
      deviceId: 'press-1',
      ts: T0,
      score: 6.5,
      threshold: 1.8,
      model,
      receivedAtMs: T0 + 10,
      episode: { episodeId: 'e1', state: 'closed', startTs: T0, lastSeenTs: T0 + 40_000, endTs: T0 + 44_000, windows: 11, reason: 'recovered', contributors },
    });
    // Sent again (a re-cut batch), or the opened record read after the closed one: nothing changes.
    expect(log.addEpisode(record('closed', closed), T0 + 50_001)).toBeUndefined();
    expect(log.addEpisode(record('opened', opened), T0 + 50_002)).toBeUndefined();
    expect(log.size()).toBe(1);
    expect(log.query({ sinceMs: T0 + 44_000, limit: 10 })).toEqual([done]);
    expect(log.query({ sinceMs: T0 + 44_001, limit: 10 })).toEqual([]);
    // A closed record alone (its opened record evicted on the agent) is the whole episode.
    expect(log.addEpisode({ ...record('closed', { ...closed, episodeId: 'e2' }), agentId: 'gw-2' }, T0)).toMatchObject({ agentId: 'gw-2', episode: { episodeId: 'e2', state: 'closed' } });
    // Retention counts from the closed record's arrival.
    log.prune(T0 + 60_500);
    expect(log.query({ sinceMs: 0, limit: 10 }).map((a) => a.agentId)).toEqual(['gw-1']);
  });

  it('closes an open episode as superseded when a newer one of the same device arrives (the agent stopped without closing it)', () => {
    const log = createAnomalyLog({ retentionMs: 60_000, maxAnomalies: 100 });
    const model = { name: 'anomaly-machine', version: '2.0.0' };
    const opened = (episodeId: string, deviceId: string, startTs: number): EpisodeRecord => ({
      type: 'opened',
      agentId: 'gw-1',
      deviceId,
      receivedAtMs: startTs,
      body: { episodeId, model, startTs, threshold: 1.8, contributors: [], score: 2 },
    });
    log.addEpisode(opened('old', 'press-1', T0), T0);
    log.addEpisode(opened('other-device', 'press-2', T0), T0);
    log.addEpisode(opened('new', 'press-1', T0 + 90_000), T0 + 90_000);
    const states = Object.fromEntries(log.query({ sinceMs: 0, limit: 10 }).map((a) => [a.episode!.episodeId, [a.episode!.state, a.episode!.reason, a.episode!.endTs]]));
    expect(states).toEqual({ old: ['closed', 'superseded', T0], 'other-device': ['open', null, null], new: ['open', null, null] });
  });
});
