// The control plane's only fastify (and @fastify/static) import: routes are plain functions from
// request to response (./routes.ts), so the API is defined and tested without the framework's
// types. This file adds what needs the framework: the socket of an event stream, the
// dashboard's files, and the hooks that run before every route (auth) and after it (metrics).
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { TokenRole } from '@outpost/shared';

/**
 * Who may call a route: `viewer` and `operator` need a token (the auth hook checks that one is
 * known; the route checks its role: ./route-spec.ts); the others are groups the config can make
 * public (`http.auth.public`).
 */
export type RouteAccess = TokenRole | 'healthz' | 'metrics' | 'openapi' | 'dashboard';

/** Whom the auth hook found behind a request: a configured token's name and role. */
export interface Principal {
  name: string;
  role: TokenRole;
}

export interface HttpRequest {
  /** Path parameters, URL-decoded (`/api/agents/:agentId` -> `{ agentId }`). */
  params: Readonly<Record<string, string>>;
  /** Query parameters: a string, or an array when a name was given more than once. */
  query: Readonly<Record<string, string | string[] | undefined>>;
  /** Lower-case header names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON body of a POST (undefined without one). */
  body?: unknown;
  /** Who made the request: the token the auth hook accepted (undefined when auth is off, and on public routes). */
  principal?: Principal | undefined;
  /** The client's address (a proxy's, behind one). */
  remoteAddress?: string | undefined;
}

/** What the auth hook decides: let through (as whom), or answer instead. */
export type AuthDecision = { ok: true; principal?: Principal | undefined } | { ok: false; response: HttpResponse };

/** The socket of a streamed answer (server-sent events). */
export interface StreamSink {
  /** Writes a chunk; false when the socket buffer is full (wait for `onDrain`). */
  write(chunk: string): boolean;
  onDrain(listener: () => void): void;
  /** The client went away, or the stream was ended. */
  onClose(listener: () => void): void;
  /** Ends the stream after what was written. */
  end(): void;
  /** Cuts the connection at once, dropping what is still buffered for it (a client that does not read). */
  abort(): void;
}

export interface HttpResponse {
  status: number;
  /** Sent as JSON, or as is when it is a string with `contentType`. */
  body?: unknown;
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
  /** A streamed answer: the headers go out at once, then `stream` owns the socket until it ends it or the client leaves. */
  stream?: (sink: StreamSink) => void;
}

export interface Route {
  method: 'GET' | 'POST';
  /** fastify path syntax: `/api/agents/:agentId`. */
  path: string;
  access: RouteAccess;
  /** Largest JSON body accepted, bytes (fastify's default 1 MiB when absent). */
  bodyLimitBytes?: number | undefined;
  handle(request: HttpRequest): Promise<HttpResponse>;
  /**
   * Called when this adapter answered a request for the route instead of its handler, with that
   * answer, before it is sent: the auth hook refused it (`auth`: 401, before the body is read),
   * or its body could not be taken (`body`: not JSON, too large, another media type). The audit
   * log records these attempts on operator routes. Must not throw.
   */
  answeredInstead?(request: HttpRequest, response: HttpResponse, stage: 'auth' | 'body'): Promise<void>;
}

export interface RequestSample {
  method: string;
  /** The route pattern (`/api/agents/:agentId`), `unmatched` when no route matched. */
  route: string;
  status: number;
  durationMs: number;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  routes: readonly Route[];
  /** Runs before every route, before its body is read: lets the request through (naming who sent it), or answers it instead (401). */
  authorize(access: RouteAccess, request: HttpRequest): AuthDecision;
  /** The dashboard's built files, served at `/` (index.html for client-side routes). Missing: `/` says so in plain text. */
  dashboardDir: string | undefined;
  /** Answer for a path no route matches. */
  notFound(method: string, url: string): HttpResponse;
  /** Answer for a request that failed: `statusCode` set for a client error fastify found (bad URL encoding, ...). */
  failed(error: unknown, statusCode: number | undefined): HttpResponse;
  /** Called once per answered request (for an event stream: once its headers are out). */
  observe?(sample: RequestSample): void;
}

export interface HttpServer {
  readonly port: number;
  /** Whether the dashboard's files were found at start. */
  readonly dashboardServed: boolean;
  /** Every route registered (HEAD twins of GET routes left out), in registration order. */
  registeredRoutes(): { method: string; path: string }[];
  /** Ends every open stream, then closes the server (open connections are cut, so it never waits on a client). */
  close(): Promise<void>;
}

/** Longest path parameter accepted before routing; longer ones reach the route and fail its validation (a 400, not a 404). */
const MAX_PARAM_LENGTH = 1024;

/** Paths that are never a page of the dashboard: an unknown one is a 404, not index.html. */
const NON_DASHBOARD_PREFIXES = ['/api/', '/api?', '/healthz', '/metrics'];
const isDashboardPath = (url: string): boolean => url !== '/api' && !NON_DASHBOARD_PREFIXES.some((p) => url.startsWith(p));

const DASHBOARD_INDEX = 'index.html';
const DASHBOARD_MISSING =
  'Outpost control plane. The dashboard was not built (run `npm run build`); the HTTP API is under /api (described at /api/openapi.json).\n';

/** The principal the auth hook found, kept on the request for the route. */
const principals = new WeakMap<FastifyRequest, Principal>();
/** Requests whose route handler ran: an error after that is the handler's (a 500), not the body's. */
const handled = new WeakSet<FastifyRequest>();

function toHttpRequest(request: FastifyRequest): HttpRequest {
  return {
    params: (request.params ?? {}) as Record<string, string>,
    query: (request.query ?? {}) as Record<string, string | string[] | undefined>,
    headers: request.headers,
    body: request.body,
    principal: principals.get(request),
    remoteAddress: request.ip,
  };
}

/** What a route keeps in fastify's route config for the hooks. */
interface RouteConfig {
  access?: RouteAccess;
  answeredInstead?: Route['answeredInstead'];
}

const routeConfig = (request: FastifyRequest): RouteConfig => (request.routeOptions.config as RouteConfig | undefined) ?? {};

function accessOf(request: FastifyRequest): RouteAccess | undefined {
  const access = routeConfig(request).access;
  if (access !== undefined) return access;
  // Static files and unknown paths: the dashboard's, unless they are API paths (a plain 404).
  return isDashboardPath(request.url) ? 'dashboard' : undefined;
}

/**
 * Starts fastify on `options.host:options.port` (port 0: any free port) with the routes, the
 * auth hook, the dashboard's files and the error answers.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const dashboardDir = options.dashboardDir !== undefined && existsSync(join(options.dashboardDir, DASHBOARD_INDEX)) ? options.dashboardDir : undefined;
  const streams = new Set<StreamSink>();
  const registered: { method: string; path: string }[] = [];

  const send = (request: FastifyRequest, reply: FastifyReply, response: HttpResponse): FastifyReply => {
    if (response.stream !== undefined) return sendStream(request, reply, response, response.stream);
    reply.code(response.status);
    if (response.headers !== undefined) reply.headers(response.headers);
    if (response.contentType !== undefined) reply.type(response.contentType);
    return reply.send(response.body);
  };

  const sendStream = (request: FastifyRequest, reply: FastifyReply, response: HttpResponse, stream: (sink: StreamSink) => void): FastifyReply => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(response.status, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Proxies such as nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
      ...response.headers,
    });
    options.observe?.({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: response.status, durationMs: reply.elapsedTime });
    if (request.method === 'HEAD') {
      // The headers are the whole answer; a stream would keep the connection for nothing.
      raw.end();
      return reply;
    }
    raw.flushHeaders();
    let ended = false;
    const sink: StreamSink = {
      write: (chunk) => (ended ? false : raw.write(chunk)),
      onDrain: (listener) => raw.on('drain', listener),
      onClose: (listener) => raw.once('close', listener),
      end() {
        if (ended) return;
        ended = true;
        streams.delete(sink);
        raw.end();
      },
      abort() {
        ended = true;
        streams.delete(sink);
        raw.destroy();
      },
    };
    streams.add(sink);
    raw.once('close', () => {
      ended = true;
      streams.delete(sink);
    });
    stream(sink);
    return reply;
  };

  const app = Fastify({
    logger: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Event streams never end by themselves: close() cuts every connection instead of waiting.
    forceCloseConnections: true,
    // A URL fastify cannot route (bad percent-encoding) fails before any route or error handler.
    frameworkErrors: (error, request, reply) => send(request, reply, options.failed(error, 400)),
  });

  // An empty body with `content-type: application/json` (curl -X POST -H ..., a client that sets
  // the header always) is no body, not a 400; anything else must be JSON.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    const body = typeof text === 'string' ? text : text.toString('utf8');
    if (body.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body));
    } catch (err) {
      // V8 quotes the text around the fault ("...secret-val"...): say where, never what, so a
      // body holding a secret is not echoed into an answer or a log.
      const position = /at position (\d+)/.exec((err as Error).message)?.[1];
      done(Object.assign(new Error(`the body is not JSON${position === undefined ? '' : ` (at character ${position})`}`), { statusCode: 400 }), undefined);
    }
  });
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) if (method !== 'HEAD') registered.push({ method, path: route.url });
  });
  app.addHook('onRequest', async (request, reply) => {
    const access = accessOf(request);
    if (access === undefined) return;
    const decision = options.authorize(access, toHttpRequest(request));
    // Answering from an async hook: return the reply, so fastify runs nothing further.
    if (!decision.ok) {
      await routeConfig(request).answeredInstead?.(toHttpRequest(request), decision.response, 'auth');
      return send(request, reply, decision.response);
    }
    if (decision.principal !== undefined) principals.set(request, decision.principal);
    return undefined;
  });
  app.addHook('onResponse', async (request, reply) => {
    options.observe?.({ method: request.method, route: request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched'), status: reply.statusCode, durationMs: reply.elapsedTime });
  });

  for (const route of options.routes) {
    app.route({
      method: route.method,
      url: route.path,
      config: { access: route.access, answeredInstead: route.answeredInstead } satisfies RouteConfig,
      ...(route.bodyLimitBytes === undefined ? {} : { bodyLimit: route.bodyLimitBytes }),
      handler: async (request, reply) => {
        handled.add(request);
        return send(request, reply, await route.handle(toHttpRequest(request)));
      },
    });
  }

  if (dashboardDir !== undefined) {
    // `wildcard` serves whatever the folder holds now (a rebuilt dashboard needs no restart);
    // a missing file goes to the not-found handler below, which answers index.html for a
    // client-side route of the dashboard.
    await app.register(fastifyStatic, { root: dashboardDir, prefix: '/', wildcard: true, index: false });
  }
  app.route({
    method: 'GET',
    url: '/',
    config: { access: 'dashboard' satisfies RouteAccess },
    handler: async (_request, reply) => (dashboardDir !== undefined ? reply.sendFile(DASHBOARD_INDEX) : reply.type('text/plain; charset=utf-8').send(DASHBOARD_MISSING)),
  });

  app.setNotFoundHandler((request, reply) => {
    if (dashboardDir !== undefined && (request.method === 'GET' || request.method === 'HEAD') && isDashboardPath(request.url)) {
      return reply.sendFile(DASHBOARD_INDEX);
    }
    return send(request, reply, options.notFound(request.method, request.url));
  });
  app.setErrorHandler(async (error: { statusCode?: number }, request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : undefined;
    const response = options.failed(error, status);
    // Failed before its handler ran (the body could not be read): the route never saw it.
    if (!handled.has(request)) await routeConfig(request).answeredInstead?.(toHttpRequest(request), response, 'body');
    return send(request, reply, response);
  });

  await app.listen({ host: options.host, port: options.port });
  let closing: Promise<void> | undefined;
  return {
    port: (app.server.address() as AddressInfo).port,
    dashboardServed: dashboardDir !== undefined,
    registeredRoutes: () => registered.map((r) => ({ ...r })),
    close: () =>
      (closing ??= (async () => {
        for (const sink of [...streams]) sink.end();
        await app.close();
      })()),
  };
}
