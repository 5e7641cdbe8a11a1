// The audit of the HTTP API: every call to an operator route (publish a model, create or steer
// a rollout, enrol or revoke an agent) is written to the audit log (./audit-log.ts) after it
// ran, with its outcome, refused attempts included; `GET /api/audit` lists the log for any
// token (a viewer may see who changed what: the entries hold nothing secret).
import {
  ANONYMOUS_ACTOR,
  AuditQuerySchema,
  DEFAULT_AUDIT_LIMIT,
  ErrorCode,
  TokenRole,
  type AuditEntry,
  type AuditListResponse,
} from '@outpost/shared';
import { MAX_AUDIT_SCAN, type AuditLog, type AuditSink } from './audit-log.js';
import { echo } from './errors.js';
import type { HttpRequest, HttpResponse } from './http-server.js';
import { defineRoute, type ApiRoute, type RouteAudit } from './route-spec.js';

/** Longest `detail` an entry keeps. */
const MAX_DETAIL_CHARS = 256;

/**
 * The routes, with every call to an operator route (a route that names its audit) written to
 * `log`: after the handler answered, or threw (a 500), or the role check refused it (403); and
 * when the adapter answered instead: the auth hook refused it (401, before the body is read),
 * or the body could not be taken (400 not JSON, 413 too large, 415). The answer leaves only once
 * the write settled, so a client never holds an answer whose entry is still on its way; a
 * write that failed is logged with the entry and counted by the log itself.
 */
export function withAuditLog(routes: readonly ApiRoute[], log: AuditSink): ApiRoute[] {
  return routes.map((route) => {
    const audit = route.audit;
    if (audit === undefined) return route;
    const record = (request: HttpRequest, atMs: number, response: HttpResponse | undefined, authenticated: boolean): Promise<void> =>
      log.append(auditEntry(route, audit, request, atMs, response, authenticated));
    return {
      ...route,
      async handle(request) {
        if (route.isReadOnly?.(request.body) === true) return route.handle(request);
        const atMs = Date.now();
        let response: HttpResponse;
        try {
          response = await route.handle(request);
        } catch (err) {
          // The adapter answers 500 and logs the error; the entry says a 500 happened.
          await record(request, atMs, undefined, true);
          throw err;
        }
        await record(request, atMs, response, true);
        return response;
      },
      answeredInstead: (request, response, stage) => record(request, Date.now(), response, stage !== 'auth'),
    };
  });
}

/** Path parameters for the audit log: as sent, each cut to the length an error message echoes. */
function auditParams(params: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([name, value]) => [echo(name), echo(String(value))]));
}

/** The stable code of an error answer (`{ error: { code } }`), when it has one. */
function errorCodeOf(response: HttpResponse): string | undefined {
  const code = (response.body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * One entry: who (the token's name and role, never the token), when, the route and its path
 * parameters, the action, the outcome and the route's detail. `authenticated` false: the auth
 * hook refused the call (401) before any token was accepted and before the body was read.
 */
function auditEntry(
  route: Pick<ApiRoute, 'method' | 'path'>,
  audit: RouteAudit,
  request: HttpRequest,
  atMs: number,
  response: HttpResponse | undefined,
  authenticated: boolean,
): AuditEntry {
  const status = response?.status ?? 500;
  const code = response === undefined ? ErrorCode.INTERNAL_ERROR : status >= 400 ? errorCodeOf(response) : undefined;
  const detail = audit.detail?.({ params: request.params, body: authenticated ? request.body : undefined, response });
  return {
    atMs,
    actor: request.principal?.name ?? ANONYMOUS_ACTOR,
    // No principal past the auth hook means auth is off: everyone acts as an operator.
    role: request.principal?.role ?? (authenticated ? TokenRole.operator : null),
    method: route.method,
    route: route.path,
    params: auditParams(request.params),
    action: typeof audit.action === 'string' ? audit.action : audit.action(request.params),
    outcome: { status, ...(code === undefined ? {} : { code }) },
    ...(detail === undefined ? {} : { detail: detail.slice(0, MAX_DETAIL_CHARS) }),
    ...(request.remoteAddress === undefined ? {} : { remoteAddress: request.remoteAddress.slice(0, 64) }),
  };
}

export interface AuditRouteDeps {
  audit: AuditLog;
}

export function createAuditRoutes(deps: AuditRouteDeps): ApiRoute[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/api/audit',
      access: 'viewer',
      summary: 'The audit log of mutating calls, newest first',
      description: [
        'One entry per call to an operator route (publish a model, create or steer a rollout, enrol or revoke an agent), whatever its outcome:',
        'done, refused with 4xx (a viewer token: 403 FORBIDDEN; no or an unknown token: 401 with actor `anonymous`), or failed with 5xx.',
        'Each names the token (`actor`, never the token itself), its role, the route and path parameters, the action, the outcome (status and error code) and what it was about (`detail`).',
        `Kept in NATS (stream OUTPOST_AUDIT, \`streams.auditMaxAgeMs\`, default 90 days), so every replica lists the same log and it outlives restarts. A listing reads at most the newest ${MAX_AUDIT_SCAN} entries.`,
      ].join(' '),
      query: AuditQuerySchema,
      response: { description: 'The entries', contentType: 'application/json', schemaName: 'AuditList' },
      async handle({ query }) {
        const body: AuditListResponse = {
          entries: await deps.audit.list({ limit: query.limit ?? DEFAULT_AUDIT_LIMIT, sinceMs: query.since, actor: query.actor }),
        };
        return { status: 200, body };
      },
    }),
  ];
}
