// The control plane's only fastify import: routes are plain functions from request to
// response (./routes.ts), so the API is defined and tested without the framework's types.
import Fastify, { type FastifyReply } from 'fastify';
import type { AddressInfo } from 'node:net';

export interface HttpRequest {
  /** Path parameters, URL-decoded (`/api/agents/:agentId` -> `{ agentId }`). */
  params: Readonly<Record<string, string>>;
}

export interface HttpResponse {
  status: number;
  /** Sent as JSON, or as is when it is a string with `contentType`. */
  body: unknown;
  contentType?: string;
}

export interface Route {
  method: 'GET' | 'POST';
  /** fastify path syntax: `/api/agents/:agentId`. */
  path: string;
  handle(request: HttpRequest): Promise<HttpResponse>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  routes: readonly Route[];
  /** Answer for a path no route matches. */
  notFound(method: string, url: string): HttpResponse;
  /** Answer for a request that failed: `statusCode` set for a client error fastify found (bad URL encoding, ...). */
  failed(error: unknown, statusCode: number | undefined): HttpResponse;
}

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Longest path parameter accepted before routing; longer ones reach the route and fail its validation (a 400, not a 404). */
const MAX_PARAM_LENGTH = 1024;

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const send = (reply: FastifyReply, response: HttpResponse): FastifyReply => {
    reply.code(response.status);
    if (response.contentType !== undefined) reply.type(response.contentType);
    return reply.send(response.body);
  };
  const app = Fastify({
    logger: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // A URL fastify cannot route (bad percent-encoding) fails before any route or error handler.
    frameworkErrors: (error, _request, reply) => send(reply, options.failed(error, 400)),
  });
  for (const route of options.routes) {
    app.route({
      method: route.method,
      url: route.path,
      handler: async (request, reply) => send(reply, await route.handle({ params: (request.params ?? {}) as Record<string, string> })),
    });
  }
  app.setNotFoundHandler((request, reply) => send(reply, options.notFound(request.method, request.url)));
  app.setErrorHandler((error: { statusCode?: number }, _request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : undefined;
    return send(reply, options.failed(error, status));
  });
  await app.listen({ host: options.host, port: options.port });
  let closing: Promise<void> | undefined;
  return {
    port: (app.server.address() as AddressInfo).port,
    close: () => (closing ??= app.close()),
  };
}
