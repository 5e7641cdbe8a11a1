import { describe, expect, it } from 'vitest';
import type { Anomaly } from './api-types.js';
import { deviceEpisodes, episodeSpans } from './episodes.js';

const model = { name: 'anomaly-machine', version: '2.0.0' };
const episode = (deviceId: string, startTs: number, endTs: number | null): Anomaly => ({
  agentId: 'gw-1',
  deviceId,
  ts: startTs,
  score: 4,
  model,
  receivedAtMs: startTs,
  episode: {
    episodeId: `${deviceId}-${startTs}`,
    state: endTs === null ? 'open' : 'closed',
    startTs,
    lastSeenTs: endTs ?? startTs,
    endTs,
    windows: endTs === null ? null : 5,
    reason: endTs === null ? null : 'recovered',
    contributors: [{ metric: 'vibration', detector: 'run', evidence: 4 }],
  },
});

describe('device episodes', () => {
  it("lists the device's episodes newest first, leaves out other devices and single-window anomalies, and spans open ones to the newest data", () => {
    const single: Anomaly = { agentId: 'gw-1', deviceId: 'd1', ts: 5_000, score: 2, model, receivedAtMs: 5_000 };
    const rows = deviceEpisodes([episode('d1', 1_000, 3_000), single, episode('d2', 2_000, null), episode('d1', 8_000, null)], 'gw-1', 'd1');
    expect(rows.map((r) => [r.startTs, r.endTs, r.state, r.contributors])).toEqual([
      [8_000, null, 'open', ['vibration (run)']],
      [1_000, 3_000, 'closed', ['vibration (run)']],
    ]);
    expect(episodeSpans(rows, 12_000)).toEqual([
      [8_000, 12_000],
      [1_000, 3_000],
    ]);
    expect(episodeSpans(rows, undefined)[0]).toEqual([8_000, 8_000]);
  });
});
