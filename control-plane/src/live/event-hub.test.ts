import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AgentListResponse, ServerEvent } from '@outpost/shared';
import { createEventHub, type EventSink } from './event-hub.js';

/** An in-memory socket: `capacity` chunks fit before write() says "full" until drain(). */
class MemorySink implements EventSink {
  readonly chunks: string[] = [];
  ended = false;
  aborted = false;
  #buffered = 0;
  #drain: (() => void)[] = [];
  #close: (() => void)[] = [];
  readonly #capacity: number;
  constructor(capacity = Number.POSITIVE_INFINITY) {
    this.#capacity = capacity;
  }
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    this.#buffered++;
    return this.#buffered < this.#capacity;
  }
  onDrain(listener: () => void): void {
    this.#drain.push(listener);
  }
  onClose(listener: () => void): void {
    this.#close.push(listener);
  }
  end(): void {
    this.ended = true;
    for (const l of this.#close) l();
  }
  abort(): void {
    this.aborted = true;
    for (const l of this.#close) l();
  }
  /** The client read everything. */
  drain(): void {
    this.#buffered = 0;
    for (const l of this.#drain) l();
  }
  /** The client went away. */
  hangUp(): void {
    for (const l of this.#close) l();
  }
  events(): string[] {
    return this.chunks.map((c) => (c.startsWith(':') ? 'keepalive' : c.slice('event: '.length, c.indexOf('\n'))));
  }
}

const telemetry = (deviceId: string, agentId = 'gw-1'): ServerEvent => ({ type: 'telemetry', data: { agentId, deviceId, ts: 1, receivedAtMs: 2, metrics: { t: 1 } } });
const anomaly = (deviceId: string): ServerEvent => ({ type: 'anomaly', data: { agentId: 'gw-9', deviceId, ts: 1, score: 0.9, anomaly: true, model: { name: 'm', version: '1' } } });

describe('createEventHub', () => {
  let fleet: AgentListResponse;
  const counts = { clients: 0, dropped: 0 };
  const hub = (options: { maxQueuedEvents?: number; maxClients?: number } = {}) =>
    createEventHub({
      agents: () => fleet,
      keepaliveMs: 15_000,
      maxQueuedEvents: options.maxQueuedEvents ?? 100,
      maxClients: options.maxClients ?? 10,
      metrics: { clientsChanged: (n) => (counts.clients = n), clientDropped: () => counts.dropped++ },
    });

  beforeEach(() => {
    vi.useFakeTimers();
    fleet = { agents: [] };
    counts.clients = 0;
    counts.dropped = 0;
  });
  afterEach(() => vi.useRealTimers());

  it('sends the fleet on connect and again only when it changed, at most once per second', () => {
    const h = hub();
    const sink = new MemorySink();
    h.connect(sink, {});
    expect(sink.chunks).toEqual(['event: agents\ndata: {"agents":[]}\n\n']);
    vi.advanceTimersByTime(3_000);
    expect(sink.events()).toEqual(['agents']);
    fleet = { agents: [{ agentId: 'gw-1' } as AgentListResponse['agents'][number]] };
    vi.advanceTimersByTime(999);
    expect(sink.events()).toEqual(['agents']);
    vi.advanceTimersByTime(1);
    expect(sink.events()).toEqual(['agents', 'agents']);
    vi.advanceTimersByTime(15_000);
    expect(sink.events().filter((e) => e === 'agents')).toHaveLength(2);
    expect(sink.events().filter((e) => e === 'keepalive')).toHaveLength(1);
    h.close();
  });

  it('filters telemetry and inference by agent and device; anomalies always flow', () => {
    const h = hub();
    const all = new MemorySink();
    const d2 = new MemorySink();
    h.connect(all, {});
    h.connect(d2, { agentId: 'gw-1', deviceId: 'd2' });
    for (const event of [telemetry('d1'), telemetry('d2'), telemetry('d2', 'gw-2'), anomaly('d7')]) h.publish(event);
    expect(all.events()).toEqual(['agents', 'telemetry', 'telemetry', 'telemetry', 'anomaly']);
    expect(d2.events()).toEqual(['agents', 'telemetry', 'anomaly']);
    expect(d2.chunks[1]).toContain('"deviceId":"d2"');
    h.close();
  });

  it('sends only the types a client asked for, the fleet on connect included', () => {
    const h = hub();
    const rollouts = new MemorySink();
    const anomalies = new MemorySink();
    h.connect(rollouts, { types: new Set(['rollout'] as const) });
    h.connect(anomalies, { types: new Set(['anomaly', 'agents'] as const) });
    h.publish(telemetry('d1'));
    h.publish(anomaly('d7'));
    h.publish({ type: 'rollout', data: { id: 'r1' } } as unknown as ServerEvent);
    fleet = { agents: [{ agentId: 'gw-1' } as AgentListResponse['agents'][number]] };
    vi.advanceTimersByTime(1_000);
    expect(rollouts.events()).toEqual(['rollout']);
    expect(anomalies.events()).toEqual(['agents', 'anomaly', 'agents']);
    h.close();
  });

  it('queues for a client whose socket is full, flushes on drain, and cuts it off beyond maxQueuedEvents', () => {
    const h = hub({ maxQueuedEvents: 3 });
    const slow = new MemorySink(2);
    const fast = new MemorySink();
    h.connect(slow, {});
    h.connect(fast, {});
    h.publish(telemetry('d1')); // fills the slow socket (agents + this one)
    for (let k = 0; k < 3; k++) h.publish(telemetry('d1')); // queued
    expect(slow.chunks).toHaveLength(2);
    slow.drain();
    expect(slow.chunks).toHaveLength(4); // two flushed before the socket filled again, one still queued
    for (let k = 0; k < 3; k++) h.publish(telemetry('d1'));
    expect([slow.aborted, counts.dropped, counts.clients, h.clients()]).toEqual([true, 1, 1, 1]);
    expect(fast.events()).toHaveLength(1 + 7);
    expect(fast.ended || fast.aborted).toBe(false);
    h.close();
  });

  it('forgets a client that hung up, refuses beyond maxClients, and ends every stream on close', () => {
    const h = hub({ maxClients: 2 });
    const a = new MemorySink();
    const b = new MemorySink();
    expect(h.connect(a, {})).toBe(true);
    expect(h.connect(b, {})).toBe(true);
    expect(h.isFull()).toBe(true);
    expect(h.connect(new MemorySink(), {})).toBe(false);
    a.hangUp();
    expect([h.clients(), counts.clients, counts.dropped]).toEqual([1, 1, 0]);
    h.close();
    expect([b.ended, h.clients(), h.isFull()]).toEqual([true, 0, true]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
