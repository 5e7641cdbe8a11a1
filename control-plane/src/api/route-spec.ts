// One definition per route serves three readers: the server (validated parameters in, typed
// values to the handler), the OpenAPI document (./openapi.ts) and the sync test that keeps the
// two equal. Path and query parameters are checked with the shared zod schemas before a
// handler runs; a bad one is a 400 REQUEST_INVALID naming it, never a 500.
// Roles are checked here too (a viewer on an operator route: 403 FORBIDDEN), and an operator
// route names how its calls are audited (./audit-routes.ts writes the entries).
import { ErrorCode, TokenRole, type ApiErrorCode, type ApiSchema } from '@outpost/shared';
import { forbidden, roleAllows } from './auth.js';
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
  /** An operator route a viewer may still call in one case (a dry run): says when. */
  viewerMay?: string;
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
  /** An operator route's audit: what its calls are called and about (entries written by `withAuditLog`). */
  readonly audit?: RouteAudit;
  /** An operator route: whether a call only reads (a dry run; raw body): a viewer may make it, and it is not audited. */
  readonly isReadOnly?: (body: unknown) => boolean;
}

export interface RouteInput<P, Q, B = undefined> {
  params: P;
  query: Q;
  /** The validated body (undefined for a route without one). */
  body: B;
  request: HttpRequest;
  /** `operator:<token name>`, or `operator` when auth is off: who did it, for a rollout's history. */
  actor: string;
}

/** What goes into the audit entry of a call, besides who, when, the route and its outcome. */
export interface AuditInput {
  /** Path parameters as sent (not validated: the call may have been refused before). */
  params: Readonly<Record<string, string>>;
  /** The request body as sent (not validated; undefined on a 401, which comes before the body is read). */
  body: unknown;
  /** The answer; undefined when the route threw (a 500). */
  response: HttpResponse | undefined;
}

/**
 * How an operator route is audited. `action` and `detail` read the raw request, so they must
 * take only what they check themselves (an id matching its pattern, never a free string), and
 * never a token, password, key or body field that could hold one.
 */
export interface RouteAudit {
  /** `rollout.create`, `model.publish`, ...; a function when the path says which (`rollout.pause`). */
  action: string | ((params: Readonly<Record<string, string>>) => string);
  /** What the call was about: the rollout id, the model `name@version`, ... */
  detail?(input: AuditInput): string | undefined;
}

interface RouteDefinitionBase<P, Q, B> extends Omit<RouteDoc, 'params' | 'query' | 'errors' | 'body' | 'access' | 'viewerMay'> {
  params?: ApiSchema<P, unknown>;
  query?: ApiSchema<Q, unknown>;
  body?: { schema: ApiSchema<B, unknown>; description: string; limitBytes?: number };
  /** Errors of this route beyond the common ones. */
  errors?: readonly RouteError[];
  handle(input: RouteInput<P, Q, B>): Promise<HttpResponse>;
}

/** An operator route changes something: it names its audit action, so no such route goes unaudited. */
interface OperatorRouteDefinition<P, Q, B> extends RouteDefinitionBase<P, Q, B> {
  access: typeof TokenRole.operator;
  audit: RouteAudit;
  /**
   * A call that only reads although the route can change things (a dry run): viewers may make
   * it, and it is not audited. Reads the raw body, before it is validated.
   */
  readOnlyWhen?: { description: string; test(body: unknown): boolean };
}

interface OtherRouteDefinition<P, Q, B> extends RouteDefinitionBase<P, Q, B> {
  access: Exclude<RouteAccess, typeof TokenRole.operator>;
  audit?: never;
  readOnlyWhen?: never;
}

export type RouteDefinition<P, Q, B = undefined> = OperatorRouteDefinition<P, Q, B> | OtherRouteDefinition<P, Q, B>;

/** The error answers any route may give: by its access, and whether it has parameters. */
export function commonErrors(access: RouteAccess, hasParameters: boolean): RouteError[] {
  const errors: RouteError[] = [];
  if (hasParameters) errors.push({ status: 400, code: ErrorCode.REQUEST_INVALID, when: 'a path or query parameter is malformed; `details.param` names it' });
  if (access === TokenRole.viewer || access === TokenRole.operator) {
    errors.push({ status: 401, code: ErrorCode.AUTH_REQUIRED, when: 'no `Authorization: Bearer <token>` header, or a malformed one (tokens are configured)' });
    errors.push({ status: 401, code: ErrorCode.AUTH_INVALID, when: 'the bearer token is not one of the configured tokens' });
  }
  if (access === TokenRole.operator) {
    errors.push({ status: 403, code: ErrorCode.FORBIDDEN, when: "the token's role is viewer: this call needs an operator token" });
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
  const { handle, errors = [], params, query, body, readOnlyWhen } = definition;
  const doc: RouteDoc = {
    method: definition.method,
    path: definition.path,
    access: definition.access,
    summary: definition.summary,
    ...(definition.description === undefined ? {} : { description: definition.description }),
    response: definition.response,
    ...(readOnlyWhen === undefined ? {} : { viewerMay: readOnlyWhen.description }),
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

  /** Validates the parameters and the body, then runs the handler. */
  const run = async (request: HttpRequest): Promise<HttpResponse> => {
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
    const actor = request.principal === undefined ? 'operator' : `operator:${request.principal.name}`;
    return handle({ params: p.value, query: q.value, body: parsedBody, request, actor });
  };

  const route = { method: definition.method, path: definition.path, access: definition.access, bodyLimitBytes: body?.limitBytes, doc };
  if (definition.access !== TokenRole.operator) return { ...route, handle: run };
  const isReadOnly = readOnlyWhen === undefined ? () => false : (b: unknown) => readOnlyWhen.test(b);
  return {
    ...route,
    audit: definition.audit,
    isReadOnly,
    async handle(request) {
      // The role before anything else: a viewer learns nothing from validation of a call it may not make.
      if (isReadOnly(request.body) || roleAllows(request.principal, TokenRole.operator)) return run(request);
      return forbidden(request.principal!, TokenRole.operator);
    },
  };
}
