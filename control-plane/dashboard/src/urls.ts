// API paths the dashboard calls, built in one place.
import { DEFAULT_WINDOW_MS } from './series-store.js';

const q = encodeURIComponent;

export const agentPath = (agentId: string): string => `/api/agents/${q(agentId)}`;
export const devicesPath = (agentId: string): string => `${agentPath(agentId)}/devices`;
export const devicePath = (agentId: string, deviceId: string): string => `${devicesPath(agentId)}/${q(deviceId)}`;

/** The last `windowMs` of a device; `nowMs` is rounded so a re-render does not change the URL. */
export const seriesPath = (agentId: string, deviceId: string, sinceMs: number): string => `${devicePath(agentId, deviceId)}/series?sinceMs=${sinceMs}`;
export const seriesSinceMs = (nowMs: number, windowMs = DEFAULT_WINDOW_MS): number => nowMs - windowMs;

export const anomaliesPath = (filter: { agentId?: string; deviceId?: string; limit: number }): string => {
  const params = new URLSearchParams();
  if (filter.agentId !== undefined) params.set('agentId', filter.agentId);
  if (filter.deviceId !== undefined) params.set('deviceId', filter.deviceId);
  params.set('limit', String(filter.limit));
  return `/api/anomalies?${params.toString()}`;
};

export const EVENTS_PATH = '/api/events';
export const fleetEventsUrl = (): string => EVENTS_PATH;
export const agentEventsUrl = (agentId: string): string => `${EVENTS_PATH}?agentId=${q(agentId)}`;
export const deviceEventsUrl = (agentId: string, deviceId: string): string => `${EVENTS_PATH}?agentId=${q(agentId)}&deviceId=${q(deviceId)}`;
