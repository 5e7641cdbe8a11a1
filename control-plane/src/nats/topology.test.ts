import { describe, expect, it } from 'vitest';
import { LANES_IN_DRAIN_ORDER, parseAgentSubject, uplinkSubject } from '@outpost/shared';
import { uplinkLaneFilter } from './topology.js';

describe('uplinkLaneFilter', () => {
  it('matches the uplink subject of every agent for its lane and nothing else', () => {
    for (const lane of LANES_IN_DRAIN_ORDER) {
      const filter = uplinkLaneFilter(lane);
      const tokens = filter.split('.');
      const concrete = uplinkSubject('gw-1', lane).split('.');
      expect(tokens).toHaveLength(concrete.length);
      expect(tokens.map((t, k) => (t === '*' ? concrete[k] : t))).toEqual(concrete);
      expect(parseAgentSubject(filter.replace('*', 'gw-1'))).toEqual({ type: 'uplink', agentId: 'gw-1', lane });
    }
  });
});
