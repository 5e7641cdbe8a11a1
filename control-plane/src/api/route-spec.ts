// One definition per route serves three readers: the server (validated parameters in, typed
// values to the handler), the OpenAPI document (./openapi.ts) and the sync test that keeps the
// two equal. Path and query parameters are checked with the shared zod schemas before a
// handler runs; a bad one is a 400 REQUEST_INVALID naming it, never a 500.
import { ErrorCode, type ApiErrorCode, type ApiSchema } from '@outpost/shared';
import { apiError, echo } from './errors.js';
import type { HttpRequest, HttpResponse, Route, RouteAccess } from './http-server.js';

/** One error answer a route documents, beyond those every route of its kind has (see `commonErrors`). */
export interface RouteError {
  status: number;
  code: ApiErrorCode;
  /** When it happens. */
  when: string;
}

export interface RouteResponseDoc {
  description: string;
  /** `application/json` (with `schema`), `text/plain`, `text/event-stream`, `text/html`. */
  contentType: string;
  /** Name of the body's schema in `components.schemas` (a JSON body). */
  schemaName?: string;
}

/** What the OpenAPI document says of a route. */
export interface RouteDoc {
  method: 'GET' | 'POST';
  /** fastify path syntax. */
  path: string;
  access: RouteAccess;
  summary: string;
  description?: string;
  params?: ApiSchema;
  query?: ApiSchema;
  /** The JSON request body (POST). */
  body?: { schema: ApiSchema; description: string };
  response: RouteResponseDoc;
  /** Every error answer, the common ones included. */
  errors: readonly RouteError[];
}

export interface ApiRoute extends Route {
  readonly doc: RouteDoc;
}

export interface RouteInput<P, Q, B = undefined> {
  params: P;
  query: Q;
  /** The validated body (undefined for a route without one). */
  body: B;
  request: HttpRequest;
  /** `operator:<token name>`, or `operator` when auth is off: who did it, for history and audit. */
  actor: string;
}

export interface RouteDefinition<P, Q, B = undefined> extends Omit<RouteDoc, 'params' | 'query' | 'errors' | 'body'> {
  params?: ApiSchema<P, unknown>;
  query?: ApiSchema<Q, unknown>;
  body?: { schema: ApiSchema<B, unknown>; description: string; limitBytes?: number };
  /** Errors of this route beyond the common ones. */
  errors?: readonly RouteError[];
  handle(input: RouteInput<P, Q, B>): Promise<HttpResponse>;
}

/** The error answers any route may give: by its access, and whether it has parameters. */
export function commonErrors(access: RouteAccess, hasParameters: boolean): RouteError[] {
  const errors: RouteError[] = [];
  if (hasParameters) errors.push({ status: 400, code: ErrorCode.REQUEST_INVALID, when: 'a path or query parameter is malformed; `details.param` names it' });
  if (access === 'operator') {
    errors.push({ status: 401, code: ErrorCode.AUTH_REQUIRED, when: 'no `Authorization: Bearer <token>` header, or a malformed one (tokens are configured)' });
    errors.push({ status: 401, code: ErrorCode.AUTH_INVALID, when: 'the bearer token is not one of the configured tokens' });
  }
  errors.push({ status: 500, code: ErrorCode.INTERNAL_ERROR, when: 'a bug or an unreachable NATS; see the control plane log' });
  return errors;
}

type Checked<T> = { ok: true; value: T } | { ok: false; response: HttpResponse };

/**
 * Parses path or query parameters with `schema`; the first problem becomes a 400 naming the
 * parameter (`limit: must be an integer from 1 to 1000`), with `details.param` and `details.value`.
 */
export function parseParameters<T>(
  schema: ApiSchema<T, unknown> | undefined,
  values: Readonly<Record<string, string | string[] | undefined>>,
  where: 'path' | 'query',
): Checked<T> {
  if (schema === undefined) return { ok: true, value: {} as T };
  const single: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      return { ok: false, response: apiError(400, ErrorCode.REQUEST_INVALID, `${echo(name)}: given more than once`, { param: echo(name), in: where }) };
    }
    single[name] = value;
  }
  const result = schema.safeParse(single);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const name = issue?.path[0] === undefined ? where : String(issue.path[0]);
  const value = single[name];
  return {
    ok: false,
    response: apiError(400, ErrorCode.REQUEST_INVALID, `${name}: ${issue?.message ?? 'invalid'}`, {
      param: name,
      in: where,
      ...(value === undefined ? {} : { value: echo(value) }),
    }),
  };
}

/**
 * Parses a JSON body with `schema`; every problem (at most five) becomes one 400 naming its
 * path (`strategy.waves.0: must be ...`), `details.issues` listing them.
 */
export function parseBody<B>(schema: ApiSchema<B, unknown>, body: unknown): Checked<B> {
  if (body === undefined) return { ok: false, response: apiError(400, ErrorCode.REQUEST_INVALID, 'a JSON body is required (content-type: application/json)', { in: 'body' }) };
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const issues = result.error.issues.slice(0, 5).map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message }));
  return {
    ok: false,
    response: apiError(400, ErrorCode.REQUEST_INVALID, issues.map((i) => `${i.path}: ${i.message}`).join('; '), { in: 'body', issues }),
  };
}

/** A route whose parameters (and body) are validated before `handle` runs, with its OpenAPI description. */
export function defineRoute<P = Record<string, never>, Q = Record<string, never>, B = undefined>(definition: RouteDefinition<P, Q, B>): ApiRoute {
  const { handle, errors = [], params, query, body, ...rest } = definition;
  const doc: RouteDoc = {
    ...rest,
    ...(params === undefined ? {} : { params }),
    ...(query === undefined ? {} : { query }),
    ...(body === undefined ? {} : { body: { schema: body.schema, description: body.description } }),
    errors: [
      ...errors,
      ...(body === undefined ? [] : [{ status: 400, code: ErrorCode.REQUEST_INVALID, when: 'the body is not JSON or does not match its schema; `details.issues` lists the paths' } satisfies RouteError]),
      ...commonErrors(definition.access, params !== undefined || query !== undefined),
    ]
      .filter((e, i, all) => all.findIndex((x) => x.status === e.status && x.code === e.code) === i)
      .sort((a, b) => a.status - b.status),
  };
  return {
    method: definition.method,
    path: definition.path,
    access: definition.access,
    bodyLimitBytes: body?.limitBytes,
    doc,
    async handle(request) {
      const p = parseParameters(params, request.params, 'path');
      if (!p.ok) return p.response;
      const q = parseParameters(query, request.query, 'query');
      if (!q.ok) return q.response;
      let parsedBody = undefined as B;
      if (body !== undefined) {
        const b = parseBody(body.schema, request.body);
        if (!b.ok) return b.response;
        parsedBody = b.value;
      }
      const actor = request.principal === undefined ? 'operator' : `operator:${request.principal}`;
      return handle({ params: p.value, query: q.value, body: parsedBody, request, actor });
    },
  };
}
