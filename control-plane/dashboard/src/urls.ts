// API paths the dashboard calls, built in one place.
import type { OperatorAction } from './rollout-actions.js';
import { DEFAULT_WINDOW_MS } from './series-store.js';

const q = encodeURIComponent;

/** `GET` one agent. */
export const agentPath = (agentId: string): string => `/api/agents/${q(agentId)}`;
/** `GET` an agent's devices. */
export const devicesPath = (agentId: string): string => `${agentPath(agentId)}/devices`;
/** `GET` one device of an agent. */
export const devicePath = (agentId: string, deviceId: string): string => `${devicesPath(agentId)}/${q(deviceId)}`;

/**
 * A device's records since `sinceMs` (epoch ms). The caller keeps `sinceMs` in state, so a
 * re-render (the clock ticks every second) does not change the URL and refetch.
 */
export const seriesPath = (agentId: string, deviceId: string, sinceMs: number): string => `${devicePath(agentId, deviceId)}/series?sinceMs=${sinceMs}`;
/** The start of the window ending at `nowMs`; `windowMs` default DEFAULT_WINDOW_MS (5 min). */
export const seriesSinceMs = (nowMs: number, windowMs = DEFAULT_WINDOW_MS): number => nowMs - windowMs;

/** `GET` the newest `limit` anomalies, of one agent or device when given. */
export const anomaliesPath = (filter: { agentId?: string; deviceId?: string; limit: number }): string => {
  const params = new URLSearchParams();
  if (filter.agentId !== undefined) params.set('agentId', filter.agentId);
  if (filter.deviceId !== undefined) params.set('deviceId', filter.deviceId);
  params.set('limit', String(filter.limit));
  return `/api/anomalies?${params.toString()}`;
};

/** `GET` every rollout, newest first. */
export const ROLLOUTS_PATH = '/api/rollouts';
/** `GET` one rollout with its progress now. */
export const rolloutPath = (rolloutId: string): string => `${ROLLOUTS_PATH}/${q(rolloutId)}`;
/** `POST` an operator action on a rollout. */
export const rolloutActionPath = (rolloutId: string, action: OperatorAction): string => `${rolloutPath(rolloutId)}/${action}`;

/** The live feed (SSE). */
export const EVENTS_PATH = '/api/events';
/** The live feed of the whole fleet. */
export const fleetEventsUrl = (): string => EVENTS_PATH;
/** The live feed of one agent. */
export const agentEventsUrl = (agentId: string): string => `${EVENTS_PATH}?agentId=${q(agentId)}`;
/** The live feed of one device. */
export const deviceEventsUrl = (agentId: string, deviceId: string): string => `${EVENTS_PATH}?agentId=${q(agentId)}&deviceId=${q(deviceId)}`;
