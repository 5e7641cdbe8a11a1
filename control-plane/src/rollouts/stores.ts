// The two KV buckets of rollouts, each with a view kept current by a watch (any replica's
// writes show up here): ROLLOUTS_BUCKET (one document per rollout) and DESIRED_BUCKET (one
// desired state per agent). Every write is a compare-and-set at the revision last seen.
import { DesiredStateSchema, ErrorCode, isOutpostError, OutpostError, RolloutDocSchema, type DesiredState, type Logger, type RolloutDoc } from '@outpost/shared';
import { decodeKvJson, encodeKvJson } from '../nats/kv-json.js';
import type { KvBucket, KvChange, KvWatch } from '../nats/types.js';

export interface Versioned<T> {
  value: T;
  revision: number;
}

/** A view of one bucket of JSON documents, by key, kept by a watch. */
interface WatchedBucket<T> {
  start(): Promise<void>;
  /** From the view (no I/O). */
  current(key: string): Versioned<T> | undefined;
  all(): Versioned<T>[];
  /** Read from KV now (not the view). */
  read(key: string): Promise<Versioned<T> | undefined>;
  /** Writes `value` if the key is still at `revision` (0: does not exist yet); returns the new revision. @throws KV_CONFLICT */
  write(key: string, value: T, revision: number): Promise<number>;
  onChange(listener: (key: string, value: Versioned<T> | undefined) => void): void;
  close(): void;
}

function watchedBucket<T>(kv: KvBucket, parse: (value: unknown) => T, logger: Logger): WatchedBucket<T> {
  const view = new Map<string, Versioned<T>>();
  const listeners: ((key: string, value: Versioned<T> | undefined) => void)[] = [];
  let watch: KvWatch | undefined;

  const decode = (key: string, bytes: Uint8Array, revision: number): Versioned<T> | undefined => {
    try {
      return { value: parse(decodeKvJson(bytes, `${kv.name}/${key}`)), revision };
    } catch (err) {
      logger.error({ err, bucket: kv.name, key, revision }, 'KV value is not valid; left out of the view');
      return undefined;
    }
  };
  const remember = (key: string, entry: Versioned<T> | undefined, revision: number): void => {
    const known = view.get(key);
    if (known !== undefined && known.revision >= revision) return;
    if (entry === undefined) view.delete(key);
    else view.set(key, entry);
    for (const listener of listeners) listener(key, entry);
  };

  return {
    async start() {
      watch = await kv.watch((change: KvChange) => {
        if (change.type === 'delete') remember(change.key, undefined, change.revision);
        else remember(change.key, decode(change.key, change.entry.value, change.entry.revision), change.entry.revision);
      });
    },
    current: (key) => view.get(key),
    all: () => [...view.values()],
    async read(key) {
      const entry = await kv.get(key);
      if (entry === undefined) return undefined;
      const decoded = decode(key, entry.value, entry.revision);
      if (decoded !== undefined) remember(key, decoded, entry.revision);
      return decoded;
    },
    async write(key, value, revision) {
      const bytes = encodeKvJson(value);
      const next = revision === 0 ? await kv.create(key, bytes) : await kv.update(key, bytes, revision);
      remember(key, { value, revision: next }, next);
      return next;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    close() {
      watch?.stop();
    },
  };
}

export type RolloutStore = WatchedBucket<RolloutDoc>;
export type DesiredStore = WatchedBucket<DesiredState>;

export function createRolloutStore(kv: KvBucket, logger: Logger): RolloutStore {
  return watchedBucket(kv, (v) => RolloutDocSchema.parse(v), logger);
}

export function createDesiredStore(kv: KvBucket, logger: Logger): DesiredStore {
  return watchedBucket(kv, (v) => DesiredStateSchema.parse(v), logger);
}

/**
 * Runs `change` on the document as it is in KV now and writes the result with compare-and-set,
 * again on a conflict (another replica wrote in between), at most `attempts` times.
 * @throws whatever `change` throws; OutpostError KV_CONFLICT when every attempt lost.
 */
export async function updateRollout(store: RolloutStore, id: string, change: (doc: RolloutDoc) => RolloutDoc, attempts = 5): Promise<RolloutDoc> {
  for (let attempt = 1; ; attempt++) {
    const current = await store.read(id);
    if (current === undefined) throw new OutpostError(ErrorCode.ROLLOUT_NOT_FOUND, `no rollout ${JSON.stringify(id)}`, { details: { rolloutId: id } });
    const next = change(current.value);
    try {
      await store.write(id, next, current.revision);
      return next;
    } catch (err) {
      if (!isOutpostError(err, ErrorCode.KV_CONFLICT) || attempt >= attempts) throw err;
    }
  }
}
