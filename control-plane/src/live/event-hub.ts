// Server-sent events to every open `GET /api/events` stream of this replica. Each client has a
// bounded queue: a client that does not read (its socket buffer is full and `maxQueuedEvents`
// more events wait) is disconnected and counted, so a slow dashboard costs bounded memory and
// never slows the others. The fleet goes out on connect and then at most once per
// `agentsIntervalMs`, only when it changed (status depends on time, so it is compared, not watched).
import { ServerEventType, type AgentListResponse, type ServerEvent } from '@outpost/shared';

/** The write side of one event stream (the HTTP adapter's socket). */
export interface EventSink {
  /** Writes a chunk; false when the socket buffer is full (wait for `onDrain`). */
  write(chunk: string): boolean;
  onDrain(listener: () => void): void;
  /** The client went away (or `end` was called). */
  onClose(listener: () => void): void;
  end(): void;
  /** Cuts the connection, dropping what is buffered for it. */
  abort(): void;
}

/** What one client gets: only `types` (default all); telemetry and inference of `agentId` / `deviceId` only. */
export interface EventFilter {
  agentId?: string | undefined;
  deviceId?: string | undefined;
  types?: ReadonlySet<ServerEventType> | undefined;
}

export interface EventHubMetrics {
  clientsChanged(clients: number): void;
  clientDropped(reason: 'slow'): void;
}

export interface EventHubOptions {
  /** The fleet as `GET /api/agents` answers it now. */
  agents(): AgentListResponse;
  keepaliveMs: number;
  maxQueuedEvents: number;
  maxClients: number;
  /** Fleet changes go out at most this often; default 1 000 ms. */
  agentsIntervalMs?: number;
  metrics: EventHubMetrics;
}

export interface EventHub {
  /** Starts streaming to `sink`; false (nothing written) when `maxClients` streams are open. */
  connect(sink: EventSink, filter: EventFilter): boolean;
  publish(event: ServerEvent): void;
  clients(): number;
  /** True when a connect would be refused (`maxClients` streams open, or closed). */
  isFull(): boolean;
  /** Ends every stream; later connects are refused. */
  close(): void;
}

export const DEFAULT_AGENTS_INTERVAL_MS = 1_000;

/** `event: <type>` + one `data:` line (JSON has no raw newlines) + a blank line. */
export function formatServerEvent(event: ServerEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

const KEEPALIVE = ': keepalive\n\n';

interface Client {
  sink: EventSink;
  filter: EventFilter;
  queue: string[];
  /** The socket buffer is full: chunks wait in `queue` until it drains. */
  blocked: boolean;
  closed: boolean;
}

function wants(filter: EventFilter, event: ServerEvent): boolean {
  if (filter.types !== undefined && !filter.types.has(event.type)) return false;
  if (event.type !== ServerEventType.telemetry && event.type !== ServerEventType.inference) return true;
  return (filter.agentId === undefined || filter.agentId === event.data.agentId) && (filter.deviceId === undefined || filter.deviceId === event.data.deviceId);
}

/** A hub with no client; its timers run only while a client is connected. */
export function createEventHub(options: EventHubOptions): EventHub {
  const clients = new Set<Client>();
  let closed = false;
  let lastAgents: string | undefined;
  let agentsTimer: NodeJS.Timeout | undefined;
  let keepaliveTimer: NodeJS.Timeout | undefined;

  const drop = (client: Client, reason?: 'slow'): void => {
    if (client.closed) return;
    client.closed = true;
    client.queue.length = 0;
    clients.delete(client);
    options.metrics.clientsChanged(clients.size);
    if (reason === undefined) {
      client.sink.end();
    } else {
      // Ending would keep what its socket still buffers until it reads; cutting frees it now.
      options.metrics.clientDropped(reason);
      client.sink.abort();
    }
    if (clients.size === 0) stopTimers();
  };

  const send = (client: Client, chunk: string): void => {
    if (client.closed) return;
    if (client.blocked) {
      client.queue.push(chunk);
      if (client.queue.length > options.maxQueuedEvents) drop(client, 'slow');
      return;
    }
    if (!client.sink.write(chunk)) client.blocked = true;
  };

  const flush = (client: Client): void => {
    client.blocked = false;
    while (!client.closed && !client.blocked && client.queue.length > 0) {
      if (!client.sink.write(client.queue.shift()!)) client.blocked = true;
    }
  };


  const broadcastAgentsIfChanged = (): void => {
    const data = options.agents();
    const json = JSON.stringify(data);
    if (json === lastAgents) return;
    lastAgents = json;
    const event: ServerEvent = { type: ServerEventType.agents, data };
    const chunk = formatServerEvent(event);
    for (const client of clients) if (wants(client.filter, event)) send(client, chunk);
  };

  const startTimers = (): void => {
    agentsTimer ??= setInterval(broadcastAgentsIfChanged, options.agentsIntervalMs ?? DEFAULT_AGENTS_INTERVAL_MS);
    keepaliveTimer ??= setInterval(() => {
      for (const client of clients) send(client, KEEPALIVE);
    }, options.keepaliveMs);
    agentsTimer.unref();
    keepaliveTimer.unref();
  };

  function stopTimers(): void {
    clearInterval(agentsTimer);
    clearInterval(keepaliveTimer);
    agentsTimer = undefined;
    keepaliveTimer = undefined;
  }

  return {
    connect(sink, filter) {
      if (closed || clients.size >= options.maxClients) return false;
      const client: Client = { sink, filter, queue: [], blocked: false, closed: false };
      clients.add(client);
      options.metrics.clientsChanged(clients.size);
      sink.onDrain(() => flush(client));
      sink.onClose(() => drop(client));
      startTimers();
      const data = options.agents();
      // The others keep comparing against what they were sent last; a lone client starts the comparison afresh.
      if (clients.size === 1) lastAgents = JSON.stringify(data);
      if (wants(filter, { type: ServerEventType.agents, data })) send(client, formatServerEvent({ type: ServerEventType.agents, data }));
      return true;
    },
    publish(event) {
      if (clients.size === 0) return;
      let chunk: string | undefined;
      for (const client of clients) {
        if (!wants(client.filter, event)) continue;
        chunk ??= formatServerEvent(event);
        send(client, chunk);
      }
    },
    clients: () => clients.size,
    isFull: () => closed || clients.size >= options.maxClients,
    close() {
      closed = true;
      for (const client of [...clients]) drop(client);
      stopTimers();
    },
  };
}
