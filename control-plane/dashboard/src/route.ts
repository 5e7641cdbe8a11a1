// Hash routes, so every view has a URL an operator can share: `#/`,
// `#/agents/{agentId}`, `#/agents/{agentId}/devices/{deviceId}`, `#/rollouts`,
// `#/rollouts/{rolloutId}`. Pure.

export type Route =
  | { view: 'fleet' }
  | { view: 'agent'; agentId: string }
  | { view: 'device'; agentId: string; deviceId: string }
  | { view: 'rollouts' }
  | { view: 'rollout'; rolloutId: string }
  | { view: 'not-found'; fragment: string };

function decode(segment: string): string | undefined {
  try {
    const value = decodeURIComponent(segment);
    return value === '' ? undefined : value;
  } catch {
    return undefined;
  }
}

/** Reads a route from `location.hash` (with or without the leading `#`; a query after `?` is ignored). */
export function parseRoute(fragment: string): Route {
  const path = fragment.replace(/^#/, '').split('?')[0] ?? '';
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0) return { view: 'fleet' };
  if (parts[0] === 'agents') {
    const agentId = parts[1] === undefined ? undefined : decode(parts[1]);
    if (parts.length === 2 && agentId !== undefined) return { view: 'agent', agentId };
    const deviceId = parts[3] === undefined ? undefined : decode(parts[3]);
    if (parts.length === 4 && parts[2] === 'devices' && agentId !== undefined && deviceId !== undefined) return { view: 'device', agentId, deviceId };
  }
  if (parts[0] === 'rollouts') {
    if (parts.length === 1) return { view: 'rollouts' };
    const rolloutId = parts[1] === undefined ? undefined : decode(parts[1]);
    if (parts.length === 2 && rolloutId !== undefined) return { view: 'rollout', rolloutId };
  }
  return { view: 'not-found', fragment };
}

/** The `#...` link of a route. */
export function routeHref(route: Route): string {
  switch (route.view) {
    case 'fleet':
    case 'not-found':
      return '#/';
    case 'agent':
      return `#/agents/${encodeURIComponent(route.agentId)}`;
    case 'device':
      return `#/agents/${encodeURIComponent(route.agentId)}/devices/${encodeURIComponent(route.deviceId)}`;
    case 'rollouts':
      return '#/rollouts';
    case 'rollout':
      return `#/rollouts/${encodeURIComponent(route.rolloutId)}`;
  }
}
