// The model store: a JetStream object store behind ObjectStoreBucket. Objects are written
// whole (putBlob) and read whole: model artifacts are a few MB at most.
import { StorageType } from '@nats-io/jetstream';
import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { Logger } from '@outpost/shared';
import type { ObjectInfo, ObjectStoreBucket, ObjectStoreSpec } from '../types.js';

/** Creates the object store, or opens it when it exists; safe when replicas race. */
export async function openObjectStore(js: JetStreamClient, spec: ObjectStoreSpec, logger: Logger): Promise<ObjectStoreBucket> {
  const open = (): Promise<ObjectStore> => new Objm(js).create(spec.bucket, { description: spec.description, replicas: spec.replicas, storage: StorageType.File });
  let store: ObjectStore;
  try {
    store = await open();
  } catch (err) {
    logger.debug({ err, bucket: spec.bucket }, 'object store create raced; opening again');
    store = await open();
  }
  return new Store(spec.bucket, store);
}

class Store implements ObjectStoreBucket {
  readonly name: string;
  readonly #store: ObjectStore;

  constructor(name: string, store: ObjectStore) {
    this.name = name;
    this.#store = store;
  }

  async put(name: string, data: Uint8Array, description?: string): Promise<ObjectInfo> {
    const info = await this.#store.putBlob({ name, ...(description === undefined ? {} : { description }) }, data);
    return { name: info.name, bytes: info.size, digest: info.digest, mtime: info.mtime, description: info.description };
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    return (await this.#store.getBlob(name)) ?? undefined;
  }

  async info(name: string): Promise<ObjectInfo | undefined> {
    const info = await this.#store.info(name);
    if (info === null || info.deleted) return undefined;
    return { name: info.name, bytes: info.size, digest: info.digest, mtime: info.mtime, description: info.description };
  }

  async list(): Promise<ObjectInfo[]> {
    return (await this.#store.list()).filter((i) => !i.deleted).map((info) => ({ name: info.name, bytes: info.size, digest: info.digest, mtime: info.mtime, description: info.description }));
  }
}
