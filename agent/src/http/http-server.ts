// The agent's only fastify import: /healthz and /metrics for the gateway's operator.
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface AgentHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface AgentHttpOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Current health; `/healthz` answers 200 when every check is ok, else 503. */
  health: () => HealthCheck[];
}

export async function startAgentHttpServer(options: AgentHttpOptions): Promise<AgentHttpServer> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async (_request, reply) => {
    const checks = options.health();
    const ok = checks.every((c) => c.ok);
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', checks });
  });
  app.get('/metrics', async (_request, reply) => {
    const body = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(body);
  });
  await app.listen({ host: options.host, port: options.port });
  let closing: Promise<void> | undefined;
  return {
    port: (app.server.address() as AddressInfo).port,
    close: () => (closing ??= app.close()),
  };
}
