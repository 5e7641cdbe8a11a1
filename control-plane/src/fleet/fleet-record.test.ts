import { describe, expect, it } from 'vitest';
import type { Heartbeat } from '@outpost/shared';
import { agentStatus, applyHeartbeat, toAgentSummary } from './fleet-record.js';

const T0 = 1_700_000_000_000;
const thresholds = { offlineAfterMs: 30_000, degradedBufferAgeMs: 300_000, degradedBufferFillRatio: 0.9 };

function heartbeat(overrides: Partial<Heartbeat> = {}): Heartbeat {
  return {
    agentId: 'gw-1',
    epoch: 'epoch0001',
    ts: T0,
    labels: { site: 'a' },
    versions: { agent: '0.1.0' },
    buffer: { records: { events: 0, telemetry: 0 }, bytes: 0, maxBytes: 1000, evictedRecords: { events: 0, telemetry: 0 } },
    ingest: { accepted: 0, rejected: 0, devicesConnected: 0 },
    ...overrides,
  };
}

describe('applyHeartbeat', () => {
  it('creates the record on the first heartbeat and moves lastSeen forward on newer ones', () => {
    const record = applyHeartbeat(undefined, { heartbeat: heartbeat(), storedAtMs: T0 })!;
    expect(record).toMatchObject({ firstSeenMs: T0, lastSeenMs: T0, heartbeats: 1 });
    applyHeartbeat(record, { heartbeat: heartbeat({ labels: { site: 'b' } }), storedAtMs: T0 + 10_000 });
    expect(record).toMatchObject({ firstSeenMs: T0, lastSeenMs: T0 + 10_000, heartbeats: 2, heartbeat: { labels: { site: 'b' } } });
  });

  it('ignores a heartbeat stored before the newest one (redelivered or consumed late)', () => {
    const record = applyHeartbeat(undefined, { heartbeat: heartbeat({ labels: { site: 'new' } }), storedAtMs: T0 + 10_000 })!;
    expect(applyHeartbeat(record, { heartbeat: heartbeat({ labels: { site: 'old' } }), storedAtMs: T0 })).toBeUndefined();
    expect(applyHeartbeat(record, { heartbeat: heartbeat(), storedAtMs: T0 + 10_000 })).toBeUndefined();
    expect(record).toMatchObject({ lastSeenMs: T0 + 10_000, heartbeats: 1, heartbeat: { labels: { site: 'new' } } });
  });
});

describe('agentStatus', () => {
  const at = (storedAtMs: number, hb: Heartbeat = heartbeat()) => applyHeartbeat(undefined, { heartbeat: hb, storedAtMs })!;

  it('is online within offlineAfterMs of the last heartbeat, offline after', () => {
    expect(agentStatus(at(T0), T0 + 30_000, thresholds)).toEqual({ status: 'online', reasons: [] });
    expect(agentStatus(at(T0), T0 + 30_001, thresholds)).toEqual({ status: 'offline', reasons: ['heartbeat-missed'] });
  });

  it('reads a heartbeat consumed from an old backlog as offline', () => {
    // Stored by NATS 5 minutes ago, applied now: the agent is not online.
    expect(agentStatus(at(T0 - 300_000), T0, thresholds).status).toBe('offline');
  });

  it('is degraded when online with a backlog, a nearly full buffer or inference down', () => {
    const buffer = heartbeat().buffer;
    expect(agentStatus(at(T0, heartbeat({ buffer: { ...buffer, oldestRecordAgeMs: 600_000 } })), T0, thresholds)).toEqual({ status: 'degraded', reasons: ['buffer-backlog'] });
    expect(agentStatus(at(T0, heartbeat({ buffer: { ...buffer, bytes: 950 } })), T0, thresholds)).toEqual({ status: 'degraded', reasons: ['buffer-nearly-full'] });
    expect(agentStatus(at(T0, heartbeat({ inference: { up: false } })), T0, thresholds)).toEqual({ status: 'degraded', reasons: ['inference-down'] });
    expect(agentStatus(at(T0, heartbeat({ inference: { up: true } })), T0, thresholds).status).toBe('online');
    expect(agentStatus(at(T0, heartbeat({ buffer: { ...buffer, storageOk: false } })), T0, thresholds)).toEqual({ status: 'degraded', reasons: ['storage-failing'] });
    expect(agentStatus(at(T0, heartbeat({ buffer: { ...buffer, storageOk: true } })), T0, thresholds).status).toBe('online');
  });

  it('summarises an agent known only from its data as unknown', () => {
    expect(toAgentSummary('gw-9', undefined, T0, thresholds)).toMatchObject({ agentId: 'gw-9', status: 'unknown', reasons: ['no-heartbeat'], epoch: null });
  });
});
