// Streams and durable consumers, created or brought to their spec. Each declaration is safe
// when replicas start together: a create that loses the race verifies what the winner made.
import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { ConsumerConfig, JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import type { Logger } from '@outpost/shared';
import type { ConsumerSpec, StreamSpec } from '../types.js';
import { isApiError } from './api-errors.js';

const NS_PER_MS = 1_000_000;
const nanos = (ms: number): number => ms * NS_PER_MS;

/** Creates the stream, or updates an existing one whose limits or subjects differ from `spec`. */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec, logger: Logger): Promise<void> {
  const wanted = {
    subjects: spec.subjects,
    max_age: nanos(spec.maxAgeMs),
    max_bytes: spec.maxBytes ?? -1,
    duplicate_window: nanos(spec.duplicateWindowMs),
    num_replicas: spec.replicas,
  } satisfies Partial<StreamConfig>;
  let existing = await streamInfo(jsm, spec.name);
  if (existing === undefined) {
    try {
      await jsm.streams.add({
        name: spec.name,
        ...wanted,
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
      });
      logger.info({ stream: spec.name }, 'stream created');
      return;
    } catch (err) {
      // Another replica created it in between: 2.9 answers "name already in use" or "subjects
      // overlap with an existing stream", depending on timing. Verify what it created below.
      existing = await streamInfo(jsm, spec.name);
      if (existing === undefined) throw err;
    }
  }
  const c = existing.config;
  const differs =
    c.max_age !== wanted.max_age ||
    c.max_bytes !== wanted.max_bytes ||
    c.duplicate_window !== wanted.duplicate_window ||
    c.num_replicas !== wanted.num_replicas ||
    [...c.subjects].sort().join(' ') !== [...wanted.subjects].sort().join(' ');
  if (differs) {
    await jsm.streams.update(spec.name, { ...c, ...wanted });
    logger.warn({ stream: spec.name, was: { max_age: c.max_age, max_bytes: c.max_bytes, subjects: c.subjects }, now: wanted }, 'stream config updated');
  }
}

/** Creates the durable pull consumer (explicit ack, never gives a message up), or updates its ack wait and pending bound. */
export async function ensureConsumer(jsm: JetStreamManager, spec: ConsumerSpec, logger: Logger): Promise<void> {
  const wanted = { ack_wait: nanos(spec.ackWaitMs), max_ack_pending: spec.maxAckPending, description: spec.description };
  let info = await consumerInfo(jsm, spec.stream, spec.durable);
  if (info === undefined) {
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // Never give a batch up: an unaccounted batch would be silent loss.
      max_deliver: -1,
      ...wanted,
    };
    try {
      await jsm.consumers.add(spec.stream, config);
      logger.info({ stream: spec.stream, consumer: spec.durable }, 'consumer created');
      return;
    } catch (err) {
      info = await consumerInfo(jsm, spec.stream, spec.durable);
      if (info === undefined) throw err;
    }
  }
  const c = info.config;
  if (c.ack_wait !== wanted.ack_wait || c.max_ack_pending !== wanted.max_ack_pending) {
    await jsm.consumers.update(spec.stream, spec.durable, wanted);
    logger.warn({ stream: spec.stream, consumer: spec.durable, ...wanted }, 'consumer config updated');
  }
}

async function streamInfo(jsm: JetStreamManager, name: string) {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return undefined;
    throw err;
  }
}

async function consumerInfo(jsm: JetStreamManager, stream: string, durable: string) {
  try {
    return await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (isApiError(err, JetStreamApiCodes.ConsumerNotFound)) return undefined;
    throw err;
  }
}
