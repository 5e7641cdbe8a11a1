// KV buckets: opened or created (history 1, file storage), behind KvBucket. A failed
// compare-and-set becomes OutpostError KV_CONFLICT; every other error passes through as is.
import { JetStreamApiCodes, StorageType } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { ErrorCode, OutpostError, type Logger } from '@outpost/shared';
import type { KvBucket, KvChange, KvSpec } from '../types.js';
import { isApiError } from './api-errors.js';

/** nats.js names a bucket's stream `KV_<bucket>`. */
const KV_STREAM_PREFIX = 'KV_';

/** Creates the bucket, or opens it when it exists; safe when replicas race. */
export async function openKvBucket(js: JetStreamClient, jsm: JetStreamManager, spec: KvSpec, logger: Logger): Promise<KvBucket> {
  const open = (): Promise<KV> => new Kvm(js).create(spec.bucket, { history: 1, replicas: spec.replicas, storage: StorageType.File, description: spec.description });
  let kv: KV;
  try {
    kv = await open();
  } catch (err) {
    // Two replicas racing: both saw no bucket, the other's create won. Opening again finds it.
    logger.debug({ err, bucket: spec.bucket }, 'KV create raced; opening again');
    kv = await open();
  }
  return new Bucket(spec.bucket, kv, jsm, logger);
}

class Bucket implements KvBucket {
  readonly name: string;
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #logger: Logger;

  constructor(name: string, kv: KV, jsm: JetStreamManager, logger: Logger) {
    this.name = name;
    this.#kv = kv;
    this.#jsm = jsm;
    this.#logger = logger;
  }

  async get(key: string) {
    const entry = await this.#kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return { value: entry.value, revision: entry.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    try {
      return await this.#kv.create(key, value);
    } catch (err) {
      throw this.#mapConflict(err, key);
    }
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.#kv.put(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    try {
      return await this.#kv.update(key, value, revision);
    } catch (err) {
      throw this.#mapConflict(err, key, revision);
    }
  }

  #mapConflict(err: unknown, key: string, revision?: number): unknown {
    if (isApiError(err, JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown)) {
      return new OutpostError(ErrorCode.KV_CONFLICT, `${this.name}/${key} was written by someone else (expected revision ${revision ?? 'none'})`, {
        cause: err,
        details: { bucket: this.name, key, revision },
      });
    }
    return err;
  }

  /**
   * Lists keys with one stream-info request filtered by subject (paged by nats.js), not with
   * `kv.keys()`: that push consumer ends on `pending === 0` or an idle heartbeat, and while
   * keys are being overwritten (history 1) it can miss the former and wait for the latter,
   * about 30 s. Deleted keys are listed too; `get` returns undefined for them.
   */
  async keys(filter = '>'): Promise<string[]> {
    const prefix = `$KV.${this.name}.`;
    const info = await this.#jsm.streams.info(`${KV_STREAM_PREFIX}${this.name}`, { subjects_filter: `${prefix}${filter}` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }

  async watch(onChange: (change: KvChange) => void) {
    const iter = await this.#kv.watch();
    void (async () => {
      try {
        for await (const e of iter) {
          onChange(
            e.operation === 'PUT'
              ? { type: 'put', key: e.key, entry: { value: e.value, revision: e.revision } }
              : { type: 'delete', key: e.key, revision: e.revision },
          );
        }
      } catch (err) {
        this.#logger.warn({ err, bucket: this.name }, 'KV watch ended');
      }
    })();
    return { stop: () => iter.stop() };
  }
}
