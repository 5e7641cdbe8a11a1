// The watchdog reads the agent's health where an operator does: its own GET /healthz. That is
// the same list of checks, and it proves the HTTP server answers too.
import type { HealthCheck } from '../http/http-server.js';
import { HEALTHZ_CHECK } from './watchdog-policy.js';

/**
 * The URL of the agent's /healthz as seen from the agent itself: a wildcard listen address
 * (`0.0.0.0`, `::`) is reached on loopback; an IPv6 literal gets its brackets.
 */
export function healthzUrl(listenHost: string, port: number): string {
  let host = listenHost;
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return `http://${host}:${port}/healthz`;
}

function isHealthCheck(value: unknown): value is HealthCheck {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v['name'] === 'string' && typeof v['ok'] === 'boolean' && (v['detail'] === undefined || typeof v['detail'] === 'string');
}

/**
 * A function that fetches `url` and returns its checks. Never rejects: no answer within
 * `timeoutMs`, or an answer that is not the /healthz shape, is one failing `healthz` check.
 */
export function createHealthzProbe(url: string, timeoutMs: number): () => Promise<HealthCheck[]> {
  return async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      const body = (await response.json()) as { checks?: unknown };
      if (!Array.isArray(body.checks) || !body.checks.every(isHealthCheck)) {
        return [{ name: HEALTHZ_CHECK, ok: false, detail: `GET ${url} answered ${response.status} without a list of checks` }];
      }
      return body.checks;
    } catch (error) {
      return [{ name: HEALTHZ_CHECK, ok: false, detail: `GET ${url}: ${(error as Error).message}` }];
    }
  };
}
