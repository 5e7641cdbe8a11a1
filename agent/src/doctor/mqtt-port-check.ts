// The MQTT ports of the embedded broker: free (this process can bind them), or held by this very
// agent. Outside the agent a port in use is recognised as the agent's when the agent's own HTTP
// endpoint (http.host:http.port of the same config) answers /metrics as this agent id: the agent
// binds its broker before its HTTP server, so a running agent of this config holds its port.
// In bridge mode there is no local port: the site broker is reached over TCP instead.
import { createConnection, createServer } from 'node:net';
import { DoctorCheckId, type AgentConfig } from '@outpost/shared';
import { checkFail, checkOk, checkSkip, type DoctorStep } from './check.js';

const id = DoctorCheckId.mqttPort;

/** How long the site broker or the agent's /metrics may take to answer, ms. */
const PROBE_TIMEOUT_MS = 3_000;

type BindOutcome = { type: 'free' } | { type: 'in-use' } | { type: 'refused'; code: string };

function tryBind(host: string, port: number): Promise<BindOutcome> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' ? { type: 'in-use' } : { type: 'refused', code: error.code ?? error.message }));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve({ type: 'free' })));
  });
}

/** True when the agent's HTTP endpoint of `config` answers /metrics as this agent. */
async function runningAgentAnswers(config: AgentConfig): Promise<boolean> {
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host === '::' ? '[::1]' : config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  if (config.http.port === 0) return false;
  try {
    const response = await fetch(`http://${host}:${config.http.port}/metrics`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return response.ok && (await response.text()).includes(`agent_id="${config.agentId}"`);
  } catch {
    return false;
  }
}

function tcpReachable(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port, timeout: PROBE_TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(`no answer within ${PROBE_TIMEOUT_MS} ms`);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

export const mqttPortCheck: DoctorStep = {
  id,
  async run(ctx) {
    const config = ctx.config;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    const broker = config.broker;
    if (broker.mode === 'bridge') {
      const url = new URL(broker.url);
      const port = Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883));
      const refused = await tcpReachable(url.hostname, port);
      if (refused === undefined) return checkOk(id, `bridge mode: the site broker ${url.hostname}:${port} accepts TCP connections`);
      return checkFail(id, { summary: `bridge mode: the site broker ${url.hostname}:${port} cannot be reached (${refused})`, remedy: 'check broker.url and that the site broker runs and lets the gateway in' });
    }
    const listeners = [
      ...(broker.plaintext ?? broker.tls === undefined ? [{ what: 'MQTT', port: broker.port }] : []),
      ...(broker.tls === undefined ? [] : [{ what: 'MQTT over TLS', port: broker.tls.port }]),
    ];
    const findings: string[] = [];
    for (const { what, port } of listeners) {
      const where = `${what} ${broker.host}:${port}`;
      if (port === 0) {
        findings.push(`${where}: any free port (0)`);
        continue;
      }
      if (ctx.env.ownMqttPorts?.has(port) === true) {
        findings.push(`${where}: held by this agent`);
        continue;
      }
      const bound = await tryBind(broker.host, port);
      if (bound.type === 'free') {
        findings.push(`${where}: free`);
        continue;
      }
      if (bound.type === 'in-use') {
        if (await runningAgentAnswers(config)) {
          findings.push(`${where}: held by this agent (running: http ${config.http.host}:${config.http.port} answers as ${config.agentId})`);
          continue;
        }
        return checkFail(id, {
          summary: `${where} is in use by another program (this agent's /metrics on ${config.http.host}:${config.http.port} does not answer as ${config.agentId})`,
          remedy: `stop the other program (ss -ltnp 'sport = :${port}' names it) or choose another broker port`,
        });
      }
      if (bound.code === 'EACCES') {
        return checkFail(id, { summary: `${where}: this user may not bind it (EACCES)`, remedy: 'ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it): run as the service, or use a port from 1024' });
      }
      return checkFail(id, { summary: `${where} cannot be bound (${bound.code})`, remedy: bound.code === 'EADDRNOTAVAIL' ? `${broker.host} is not an address of this machine: fix broker.host` : 'check broker.host and broker.port' });
    }
    return checkOk(id, findings.join('; '));
  },
};
