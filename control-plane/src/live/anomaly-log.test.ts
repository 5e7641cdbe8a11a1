import { describe, expect, it } from 'vitest';
import type { Anomaly } from '@outpost/shared';
import { createAnomalyLog } from './anomaly-log.js';

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
});
