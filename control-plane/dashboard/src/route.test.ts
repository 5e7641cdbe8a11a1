import { describe, expect, it } from 'vitest';
import { parseRoute, routeHref, type Route } from './route.js';

describe('hash routes', () => {
  it('round-trip every view, ids with reserved characters included', () => {
    const routes: Route[] = [{ view: 'fleet' }, { view: 'agent', agentId: 'gw-1' }, { view: 'device', agentId: 'gw_2', deviceId: 'a.b-c' }, { view: 'device', agentId: 'x', deviceId: 'd/e?f' }, { view: 'rollouts' }, { view: 'rollout', rolloutId: 'model-2-0-0-lq3x' }];
    for (const route of routes) expect(parseRoute(routeHref(route))).toEqual(route);
  });

  it('read the fleet for an empty fragment and not-found for anything else', () => {
    expect(parseRoute('')).toEqual({ view: 'fleet' });
    expect(parseRoute('#/')).toEqual({ view: 'fleet' });
    expect(parseRoute('#/agents/gw-1?x=1')).toEqual({ view: 'agent', agentId: 'gw-1' });
    expect(parseRoute('#/agents')).toEqual({ view: 'not-found', fragment: '#/agents' });
    expect(parseRoute('#/agents/a/devices')).toEqual({ view: 'not-found', fragment: '#/agents/a/devices' });
    expect(parseRoute('#/agents/%E0%A4%A')).toEqual({ view: 'not-found', fragment: '#/agents/%E0%A4%A' });
    expect(parseRoute('#/rollouts/')).toEqual({ view: 'rollouts' });
    expect(parseRoute('#/rollouts/r-1/history')).toEqual({ view: 'not-found', fragment: '#/rollouts/r-1/history' });
  });
});
