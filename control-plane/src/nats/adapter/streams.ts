// Writing into a stream with its ack, and reading a stream's last messages back: what a log
// kept in JetStream (the audit log) needs beyond the consumers of consumers.ts.
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { StoredMessage, StreamAck, StreamPublishOptions } from '../types.js';

/** How long a stream publish waits for its ack by default, ms. */
const DEFAULT_PUBLISH_TIMEOUT_MS = 5_000;
/**
 * A read's pull waits at most this long for messages the stream info promised (nats.js refuses
 * less than 1 s). It only runs out when messages went away between the info and the read
 * (max age): the read then answers what it got.
 */
const READ_EXPIRES_MS = 2_000;
/** The server forgets a read's ordered consumer after this idle time if deleting it failed, ms. */
const READ_INACTIVE_THRESHOLD_MS = 30_000;

/** Publishes into a stream and waits for its ack; see NatsClient.publishToStream. */
export async function publishToStream(js: JetStreamClient, subject: string, data: Uint8Array, options: StreamPublishOptions = {}): Promise<StreamAck> {
  const ack = await js.publish(subject, data, {
    timeout: options.timeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS,
    ...(options.msgId === undefined ? {} : { msgID: options.msgId }),
    ...(options.expectStream === undefined ? {} : { expect: { streamName: options.expectStream } }),
  });
  return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
}

/**
 * The last `count` messages before `beforeSeq`, newest first; see NatsClient.readLast. Limits
 * retention drops messages only from the front, so the range [first, last] the stream info
 * names holds every message still stored in it.
 */
export async function readLast(js: JetStreamClient, jsm: JetStreamManager, stream: string, count: number, beforeSeq?: number): Promise<StoredMessage[]> {
  const { state } = await jsm.streams.info(stream);
  const last = beforeSeq === undefined ? state.last_seq : Math.min(state.last_seq, beforeSeq - 1);
  if (count <= 0 || state.messages === 0 || last < state.first_seq) return [];
  const first = Math.max(state.first_seq, last - count + 1);
  const consumer = await js.consumers.get(stream, { opt_start_seq: first, inactive_threshold: READ_INACTIVE_THRESHOLD_MS });
  const messages: StoredMessage[] = [];
  try {
    const iter = await consumer.fetch({ max_messages: last - first + 1, expires: READ_EXPIRES_MS });
    try {
      for await (const msg of iter) {
        if (msg.seq > last) break;
        messages.push({ subject: msg.subject, data: msg.data, streamSeq: msg.seq, storedAtMs: Number(msg.timestampNanos / 1_000_000n) });
        if (msg.seq === last || msg.info.pending === 0) break;
      }
    } finally {
      iter.stop();
    }
  } finally {
    // An ordered consumer lives on the server until deleted or idle; a read leaves none behind.
    await consumer.delete().catch(() => undefined);
  }
  return messages.reverse();
}
