// Applies JetStream messages to KV values with compare-and-set, so any replica may die at any
// moment without a message being counted twice (DESIGN sections 2 and 3):
//   1. queue the message under its key (one writer loop per key in this process),
//   2. take every message queued for the key (a group),
//   3. apply them to the cached value (or the value read from KV),
//   4. write the result with one CAS write (create for a new key, update at the read revision),
//   5. only then ack the group's messages.
// A conflict (another replica wrote the key) drops the cached value, re-reads and re-applies.
// A crash after 4 and before 5 redelivers the messages; the model recognises them.
// Nothing stalls on one bad value: a stored value that does not decode, or an item whose apply
// throws, is retried MAX_POISON_ATTEMPTS times, then its messages are terminated and reported
// (onGiveUp); the key's other messages and every other key go on. A key found poisoned is
// remembered at its revision, so later messages for it are terminated without the retries
// until the value changes (an operator fixed or removed it).
import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelayMs, ErrorCode, isOutpostError, OutpostError, type BackoffPolicy, type Logger } from '@outpost/shared';
import type { KvBucket } from './types.js';

/** How the values of one bucket are read, changed and written. */
export interface CasModel<S, I, D> {
  /** The state of a key never written, from the first item that touches it. */
  empty(key: string, item: I): S;
  /** @throws when the stored value is not a valid state. */
  decode(key: string, bytes: Uint8Array): S;
  encode(state: S): Uint8Array;
  /** Applies one item to `state` in place; undefined when it changed nothing (already applied). */
  apply(state: S, item: I, nowMs: number): D | undefined;
}

/** The part of a JetStream message the writer settles. */
export interface Ackable {
  ack(): void;
  nak(delayMs?: number): void;
  working(): void;
  /** Refused for good: never delivered again. */
  term(reason?: string): void;
}

/** Why messages were given up: the key's stored value, or one item that could not be applied. */
export type GiveUp =
  | { type: 'value-invalid'; key: string; error: OutpostError; messages: number }
  | { type: 'apply-failed'; key: string; error: OutpostError; messages: number };

export interface KvCasWriterOptions<S, I, D> {
  kv: KvBucket;
  model: CasModel<S, I, D>;
  logger: Logger;
  now?: () => number;
  /** Values kept in memory (least recently written dropped first); default 1024. */
  maxCachedKeys?: number;
  /** Messages applied per write at most; default 512. */
  maxItemsPerWrite?: number;
  /** After a write landed and its messages were acked: the state written, what each item changed. */
  onCommit?: (key: string, state: S, revision: number, deltas: readonly D[], messages: number) => void;
  onConflict?: () => void;
  onWriteError?: (error: unknown) => void;
  /** Messages were terminated after MAX_POISON_ATTEMPTS: count, log and show it. Must not throw. */
  onGiveUp?: (giveUp: GiveUp) => void;
  /** Pause before the n-th retry of a poisoned value or item (tests shorten it); default 100 ms doubling. */
  poisonRetryMs?: (attempt: number) => number;
}

export interface KvCasWriter<I> {
  /** Queues `item` for `key`; `message` is acked once the item's effect is written. */
  submit(key: string, item: I, message: Ackable): void;
  /** Items queued or being written. */
  pending(): number;
  /** Resolves once fewer than `limit` items are pending (back-pressure for the consumer loop). */
  belowLimit(limit: number): Promise<void>;
  /** Finishes the writes in flight; messages still queued are nak'ed (redelivered at once to any replica). */
  close(): Promise<void>;
}

export const DEFAULT_MAX_CACHED_KEYS = 1024;
export const DEFAULT_MAX_ITEMS_PER_WRITE = 512;
/**
 * A conflict means another replica wrote the key, i.e. made progress: retry soon, after a short
 * random pause (up to this) so two replicas on one key stop colliding in lockstep.
 */
const MAX_CONFLICT_PAUSE_MS = 20;
/** Other failures (NATS away, timeouts) back off exponentially, with equal jitter. */
const WRITE_RETRY_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 2_000, jitter: 'equal' };
/** A value that does not decode, or an item whose apply throws, is tried this often before its messages are terminated. */
export const MAX_POISON_ATTEMPTS = 3;
const POISON_RETRY_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 1_000, jitter: 'none' };

/** Thrown inside writeGroup when one item's apply throws: that item, not the whole group, is at fault. */
class ItemFailed extends Error {
  readonly index: number;
  readonly error: OutpostError;

  constructor(index: number, error: OutpostError) {
    super(error.message, { cause: error });
    this.index = index;
    this.error = error;
  }
}
interface Queued<I> {
  item: I;
  message: Ackable;
}

interface Cached<S> {
  state: S;
  /** 0: the key does not exist yet. */
  revision: number;
}

export function createKvCasWriter<S, I, D>(options: KvCasWriterOptions<S, I, D>): KvCasWriter<I> {
  const { kv, model, logger } = options;
  const now = options.now ?? Date.now;
  const maxCached = options.maxCachedKeys ?? DEFAULT_MAX_CACHED_KEYS;
  const maxItems = options.maxItemsPerWrite ?? DEFAULT_MAX_ITEMS_PER_WRITE;
  const queues = new Map<string, Queued<I>[]>();
  const running = new Set<Promise<void>>();
  const cache = new Map<string, Cached<S>>();
  let pending = 0;
  let waiters: { limit: number; resolve: () => void }[] = [];
  let closing = false;
  const closeSignal = new AbortController();

  const settled = (count: number): void => {
    pending -= count;
    if (waiters.length === 0) return;
    waiters = waiters.filter((w) => {
      if (pending < w.limit) w.resolve();
      return pending >= w.limit;
    });
  };

  const remember = (key: string, value: Cached<S>): void => {
    cache.delete(key);
    cache.set(key, value);
    if (cache.size > maxCached) cache.delete(cache.keys().next().value as string);
  };

  const load = async (key: string, first: I): Promise<Cached<S>> => {
    const entry = await kv.get(key);
    if (entry === undefined) return { state: model.empty(key, first), revision: 0 };
    try {
      return { state: model.decode(key, entry.value), revision: entry.revision };
    } catch (cause) {
      throw isOutpostError(cause)
        ? cause
        : new OutpostError(ErrorCode.KV_VALUE_INVALID, `${kv.name}/${key} revision ${entry.revision} is not a valid value: ${(cause as Error).message}`, {
            cause,
            details: { bucket: kv.name, key, revision: entry.revision },
          });
    }
  };

  /** Keys whose stored value did not decode, at that revision: later messages are terminated at once while it stays. */
  const poisoned = new Map<string, number>();
  const poisonRetryMs = options.poisonRetryMs ?? ((attempt: number) => backoffDelayMs(POISON_RETRY_BACKOFF, attempt - 1));

  const giveUp = (queued: readonly Queued<I>[], event: GiveUp): void => {
    for (const q of queued) q.message.term(`${event.error.code}: ${event.error.message}`.slice(0, 256));
    try {
      options.onGiveUp?.(event);
    } catch (err) {
      logger.error({ err }, 'onGiveUp failed');
    }
  };

  const pause = (ms: number): Promise<void> => delay(ms, undefined, { signal: closeSignal.signal }).catch(() => undefined);
  const backoff = (failures: number): Promise<void> => pause(backoffDelayMs(WRITE_RETRY_BACKOFF, failures - 1));

  /** Step 3 for one item: a throw becomes ItemFailed, so the item alone is blamed. */
  const applyItem = (state: S, item: I, index: number, nowMs: number): D | undefined => {
    try {
      return model.apply(state, item, nowMs);
    } catch (cause) {
      throw new ItemFailed(
        index,
        isOutpostError(cause) ? cause : new OutpostError(ErrorCode.ACCOUNTING_FAILED, `${kv.name}: applying a message failed: ${(cause as Error).message}`, { cause }),
      );
    }
  };

  /** Steps 3 to 5 for one group, retried until written, given up or closing. */
  const writeGroup = async (key: string, group: Queued<I>[]): Promise<void> => {
    let conflicts = 0;
    let failures = 0;
    let valueAttempts = 0;
    const itemAttempts = new Map<Queued<I>, number>();
    const knownBad = poisoned.get(key);
    if (knownBad !== undefined) {
      const entry = await kv.get(key).catch(() => undefined);
      if (entry?.revision === knownBad) {
        const error = new OutpostError(ErrorCode.KV_VALUE_INVALID, `${kv.name}/${key} revision ${knownBad} is still not a valid value`, { details: { bucket: kv.name, key, revision: knownBad } });
        giveUp(group, { type: 'value-invalid', key, error, messages: group.length });
        return;
      }
      poisoned.delete(key);
    }
    for (;;) {
      if (group.length === 0) return;
      try {
        // Taken out of the cache while it is changed in place: a failed write leaves no half-applied state behind.
        const current = cache.get(key) ?? (await load(key, group[0]!.item));
        cache.delete(key);
        const nowMs = now();
        const deltas: D[] = [];
        group.forEach((queued, index) => {
          const delta = applyItem(current.state, queued.item, index, nowMs);
          if (delta !== undefined) deltas.push(delta);
        });
        let revision = current.revision;
        if (deltas.length > 0) {
          const bytes = model.encode(current.state);
          revision = revision === 0 ? await kv.create(key, bytes) : await kv.update(key, bytes, revision);
        }
        remember(key, { state: current.state, revision });
        for (const queued of group) queued.message.ack();
        try {
          options.onCommit?.(key, current.state, revision, deltas, group.length);
        } catch (err) {
          logger.error({ err, bucket: kv.name, key }, 'onCommit failed');
        }
        return;
      } catch (err) {
        if (err instanceof ItemFailed) {
          // The cached state was taken out above, so the item's half-done change is gone with it.
          const queued = group[err.index]!;
          const attempts = (itemAttempts.get(queued) ?? 0) + 1;
          itemAttempts.set(queued, attempts);
          logger.error({ err: err.error, bucket: kv.name, key, attempts }, 'applying a message failed');
          if (attempts >= MAX_POISON_ATTEMPTS) {
            group.splice(err.index, 1);
            settled(1);
            giveUp([queued], { type: 'apply-failed', key, error: err.error, messages: 1 });
          } else {
            await pause(poisonRetryMs(attempts));
          }
          if (closing) {
            for (const q of group) q.message.nak();
            return;
          }
          continue;
        }
        const conflict = isOutpostError(err, ErrorCode.KV_CONFLICT);
        if (conflict) options.onConflict?.();
        else options.onWriteError?.(err);
        if (closing) {
          // Another replica (or this one after a restart) takes them over at once.
          for (const queued of group) queued.message.nak();
          logger.warn({ bucket: kv.name, key, messages: group.length }, 'closing: unwritten messages returned for redelivery');
          return;
        }
        if (conflict) {
          conflicts++;
          // Keep the server from redelivering the group elsewhere while this replica retries.
          if (conflicts % 16 === 0) for (const queued of group) queued.message.working();
          if (conflicts > 1) await pause(Math.random() * Math.min(MAX_CONFLICT_PAUSE_MS, conflicts));
          continue;
        }
        if (isOutpostError(err, ErrorCode.KV_VALUE_INVALID)) {
          valueAttempts++;
          logger.error({ err, bucket: kv.name, key, attempts: valueAttempts }, 'stored value is not valid');
          if (valueAttempts >= MAX_POISON_ATTEMPTS) {
            const revision = typeof err.details.revision === 'number' ? err.details.revision : undefined;
            if (revision !== undefined) poisoned.set(key, revision);
            giveUp(group, { type: 'value-invalid', key, error: err, messages: group.length });
            return;
          }
          for (const queued of group) queued.message.working();
          await pause(poisonRetryMs(valueAttempts));
          continue;
        }
        failures++;
        logger.warn({ err, bucket: kv.name, key, failures }, 'KV write failed; retrying');
        for (const queued of group) queued.message.working();
        await backoff(failures);
      }
    }
  };

  const run = async (key: string, queue: Queued<I>[]): Promise<void> => {
    try {
      while (queue.length > 0) {
        if (closing) {
          for (const queued of queue) queued.message.nak();
          settled(queue.length);
          queue.length = 0;
          break;
        }
        const group = queue.splice(0, maxItems);
        try {
          await writeGroup(key, group);
        } finally {
          // Items given up one by one were settled as they went; the rest are settled here.
          settled(group.length);
        }
      }
    } finally {
      queues.delete(key);
    }
  };

  return {
    submit(key, item, message) {
      if (closing) {
        message.nak();
        return;
      }
      pending++;
      const queue = queues.get(key);
      if (queue !== undefined) {
        queue.push({ item, message });
        return;
      }
      const fresh: Queued<I>[] = [{ item, message }];
      queues.set(key, fresh);
      const loop = run(key, fresh).catch((err: unknown) => logger.error({ err, bucket: kv.name, key }, 'KV writer loop failed'));
      running.add(loop);
      void loop.finally(() => running.delete(loop));
    },
    pending: () => pending,
    belowLimit(limit) {
      if (pending < limit) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ limit, resolve }));
    },
    async close() {
      closing = true;
      closeSignal.abort();
      while (running.size > 0) await Promise.all([...running]);
      for (const w of waiters.splice(0)) w.resolve();
    },
  };
}
