// The compare-and-set writer against an in-memory bucket with the semantics of a JetStream KV
// (revisions, create-if-absent, update-at-revision), so conflicts, lost acks and failed writes
// can be forced exactly. The real bucket is exercised by tests/src/integration/control-plane.test.ts.
import { setImmediate as tick } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ErrorCode, OutpostError, type UplinkBatch } from '@outpost/shared';
import { accountingModel } from '../ingest/accounting-ingest.js';
import { summarizeLane, type AccountingDelta, type AccountingInput } from '../ingest/accounting.js';
import { createKvCasWriter, MAX_POISON_ATTEMPTS, type Ackable, type GiveUp } from './kv-cas-writer.js';
import type { KvBucket, KvEntry } from './types.js';

const logger = pino({ level: 'silent' });

class MemoryBucket implements KvBucket {
  readonly name = 'memory';
  readonly #values = new Map<string, KvEntry>();
  #seq = 0;
  writes = 0;
  /** The next `failNext` writes throw a non-conflict error (a timeout, say) after landing or not. */
  failNext = 0;
  failAfterLanding = false;

  async get(key: string) {
    await tick();
    return this.#values.get(key);
  }

  async create(key: string, value: Uint8Array) {
    return this.#write(key, value, 0);
  }

  async update(key: string, value: Uint8Array, revision: number) {
    return this.#write(key, value, revision);
  }

  async #write(key: string, value: Uint8Array, expected: number) {
    await tick();
    const current = this.#values.get(key)?.revision ?? 0;
    if (current !== expected) throw new OutpostError(ErrorCode.KV_CONFLICT, `wrong revision ${expected}, is ${current}`);
    if (this.failNext > 0 && !this.failAfterLanding) {
      this.failNext--;
      throw new Error('timeout');
    }
    this.#values.set(key, { value, revision: ++this.#seq });
    this.writes++;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('timeout after the write landed');
    }
    return this.#seq;
  }

  async put(key: string, value: Uint8Array) {
    this.#values.set(key, { value, revision: ++this.#seq });
    return this.#seq;
  }

  async keys() {
    return [...this.#values.keys()];
  }

  async watch() {
    return { stop() {} };
  }

  read(key: string) {
    const entry = this.#values.get(key);
    return entry === undefined ? undefined : accountingModel.decode(key, entry.value);
  }
}

class Message implements Ackable {
  acks = 0;
  naks = 0;
  terms: string[] = [];
  ack() {
    this.acks++;
  }
  nak() {
    this.naks++;
  }
  working() {}
  term(reason = '') {
    this.terms.push(reason);
  }
}

const KEY = 'gw-1.epoch0001.telemetry';

function batchInput(first: number, last: number, streamSeq: number): AccountingInput {
  const records = Array.from({ length: last - first + 1 }, (_, k) => ({ seq: first + k, deviceId: 'd1', ts: 1, receivedAtMs: 1, kind: 'telemetry', body: {} }));
  const batch: UplinkBatch = { agentId: 'gw-1', epoch: 'epoch0001', lane: 'telemetry', firstSeq: first, lastSeq: last, records };
  return { type: 'batch', batch, streamSeq };
}

function writer(kv: MemoryBucket, deltas: AccountingDelta[] = [], conflicts = { n: 0 }, givenUp: GiveUp[] = [], model = accountingModel) {
  return createKvCasWriter({
    kv,
    model,
    logger,
    onCommit: (_k, _s, _r, d) => deltas.push(...d),
    onConflict: () => conflicts.n++,
    onGiveUp: (g) => givenUp.push(g),
    poisonRetryMs: () => 1,
  });
}

async function settle(...writers: { pending(): number }[]) {
  while (writers.some((w) => w.pending() > 0)) await tick();
}

describe('createKvCasWriter', () => {
  it('acks a message only after its write, one write per group of messages of a key', async () => {
    const kv = new MemoryBucket();
    const w = writer(kv);
    const messages = Array.from({ length: 10 }, () => new Message());
    messages.forEach((m, k) => w.submit(KEY, batchInput(k * 10 + 1, k * 10 + 10, k + 1), m));
    expect(messages.every((m) => m.acks === 0)).toBe(true);
    await settle(w);
    expect(messages.every((m) => m.acks === 1)).toBe(true);
    // The first message alone (its loop started at once), then the other nine together.
    expect(kv.writes).toBe(2);
    expect(summarizeLane(kv.read(KEY)!)).toMatchObject({ received: 100, duplicates: 0 });
    await w.close();
  });

  it('two replicas writing the same key concurrently: conflicts are retried and totals stay exact', async () => {
    const kv = new MemoryBucket();
    const conflicts = { n: 0 };
    const a = writer(kv, [], conflicts);
    const b = writer(kv, [], conflicts);
    for (let k = 0; k < 200; k++) {
      // Overlapping re-cuts: each batch resends the last 5 records of the one before.
      const input = batchInput(Math.max(1, k * 10 - 4), k * 10 + 10, k + 1);
      (k % 2 === 0 ? a : b).submit(KEY, input, new Message());
      if (k % 7 === 0) await tick();
    }
    await settle(a, b);
    expect(conflicts.n).toBeGreaterThan(0);
    const summary = summarizeLane(kv.read(KEY)!);
    expect(summary.received).toBe(2000);
    expect(summary.duplicates).toBe(199 * 5);
    await Promise.all([a.close(), b.close()]);
  });

  it('a message redelivered after its write landed and its ack was lost is not counted again', async () => {
    const kv = new MemoryBucket();
    const first = writer(kv);
    first.submit(KEY, batchInput(1, 10, 1), new Message());
    await settle(first);
    // "Another replica" gets the redelivery of stream seq 1 with an empty cache.
    const deltas: AccountingDelta[] = [];
    const second = writer(kv, deltas);
    const redelivery = new Message();
    second.submit(KEY, batchInput(1, 10, 1), redelivery);
    await settle(second);
    expect(redelivery.acks).toBe(1);
    expect(deltas).toEqual([]);
    expect(summarizeLane(kv.read(KEY)!)).toMatchObject({ received: 10, duplicates: 0 });
    await Promise.all([first.close(), second.close()]);
  });

  it('retries a failed write; when the failed write had landed, the retry does not count twice', async () => {
    const kv = new MemoryBucket();
    kv.failNext = 1;
    kv.failAfterLanding = true;
    const deltas: AccountingDelta[] = [];
    const w = writer(kv, deltas);
    const m = new Message();
    w.submit(KEY, batchInput(1, 10, 1), m);
    await settle(w);
    expect(m.acks).toBe(1);
    expect(summarizeLane(kv.read(KEY)!)).toMatchObject({ received: 10, duplicates: 0 });
    await w.close();
  });

  it('close() returns queued messages for redelivery instead of dropping them', async () => {
    const kv = new MemoryBucket();
    kv.failNext = 1000; // NATS away
    const w = writer(kv);
    const messages = [new Message(), new Message(), new Message()];
    messages.forEach((m, k) => w.submit(KEY, batchInput(k + 1, k + 1, k + 1), m));
    await tick();
    await w.close();
    expect(messages.map((m) => [m.acks, m.naks])).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    expect(w.pending()).toBe(0);
  });

  it('a stored value that does not decode: its messages are terminated after bounded retries, other keys go on, later ones are terminated at once', async () => {
    const kv = new MemoryBucket();
    const reads = { n: 0 };
    const get = kv.get.bind(kv);
    kv.get = async (key: string) => {
      if (key === KEY) reads.n++;
      return get(key);
    };
    await kv.put(KEY, new TextEncoder().encode('{"v":1,"not":"an accounting value"}'));
    const givenUp: GiveUp[] = [];
    const w = writer(kv, [], { n: 0 }, givenUp);
    const poisoned = new Message();
    const other = new Message();
    w.submit(KEY, batchInput(1, 10, 1), poisoned);
    w.submit('gw-2.epoch0001.telemetry', batchInput(1, 10, 2), other);
    await settle(w);
    expect(other.acks).toBe(1);
    expect(poisoned.acks).toBe(0);
    expect(poisoned.terms).toHaveLength(1);
    expect(poisoned.terms[0]).toMatch(/^KV_VALUE_INVALID: /);
    expect(reads.n).toBe(MAX_POISON_ATTEMPTS);
    expect(givenUp).toEqual([expect.objectContaining({ type: 'value-invalid', key: KEY, messages: 1 })]);
    expect(givenUp[0]!.error.code).toBe('KV_VALUE_INVALID');

    // Known bad at this revision: the next message is terminated after one look, without retries.
    const next = new Message();
    w.submit(KEY, batchInput(11, 20, 3), next);
    await settle(w);
    expect(next.terms).toHaveLength(1);
    expect(reads.n).toBe(MAX_POISON_ATTEMPTS + 1);

    // Fixed by an operator (the key removed and written anew): counting resumes.
    await kv.put(KEY, accountingModel.encode(accountingModel.empty(KEY, batchInput(1, 1, 1))));
    const after = new Message();
    w.submit(KEY, batchInput(21, 30, 4), after);
    await settle(w);
    expect(after.acks).toBe(1);
    expect(summarizeLane(kv.read(KEY)!)).toMatchObject({ received: 10 });
    await w.close();
  });

  it('an item whose apply throws is terminated alone after bounded retries; the rest of its group is written', async () => {
    const kv = new MemoryBucket();
    const givenUp: GiveUp[] = [];
    const applyCalls = { bad: 0 };
    const model = {
      ...accountingModel,
      apply(state: Parameters<typeof accountingModel.apply>[0], item: AccountingInput, nowMs: number) {
        if (item.type === 'batch' && item.streamSeq === 2) {
          applyCalls.bad++;
          throw new Error('boom');
        }
        return accountingModel.apply(state, item, nowMs);
      },
    };
    const w = writer(kv, [], { n: 0 }, givenUp, model);
    const messages = [new Message(), new Message(), new Message()];
    messages.forEach((m, k) => w.submit(KEY, batchInput(k * 10 + 1, k * 10 + 10, k + 1), m));
    await settle(w);
    expect(messages.map((m) => [m.acks, m.terms.length])).toEqual([
      [1, 0],
      [0, 1],
      [1, 0],
    ]);
    expect(applyCalls.bad).toBe(MAX_POISON_ATTEMPTS);
    expect(givenUp).toEqual([expect.objectContaining({ type: 'apply-failed', key: KEY, messages: 1 })]);
    expect(givenUp[0]!.error.code).toBe('ACCOUNTING_FAILED');
    // The third message's records are counted, the second's are not (a visible gap, not silence).
    expect(summarizeLane(kv.read(KEY)!)).toMatchObject({ received: 20, gaps: 10 });
    expect(w.pending()).toBe(0);
    await w.close();
  });
});
