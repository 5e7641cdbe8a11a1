// Reading streams: the durable pull consumer (`consume`, explicit ack) and the ordered tail
// (`tail`, an ephemeral ordered consumer that only reads). Both keep going across
// disconnects, server restarts and deleted consumers through the one loop of restart-loop.ts.
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Logger } from '@outpost/shared';
import type { ConsumeOptions, ConsumerLag, Consumption, MessageHandler, StreamMessage, TailMessage, TailOptions } from '../types.js';
import { runUntilStopped } from './restart-loop.js';

/** consume() reports the consumer missing this many times in a row: re-declare it. */
const CONSUMER_MISSING_REDECLARE_AFTER = 3;
/** Pause before a consumer or tail starts again, and the redelivery delay of a message whose handler threw, ms. */
const RESTART_WAIT_MS = 1_000;

/** What consume and tail need from the connection. */
export interface ConsumerContext {
  js: JetStreamClient;
  /** The connection is closed for good: no restart. */
  isClosed: () => boolean;
  logger: Logger;
}

/** Pulls from a durable consumer until stopped; see NatsClient.consume. */
export function consume(ctx: ConsumerContext, stream: string, durable: string, handler: MessageHandler, options: ConsumeOptions): Consumption {
  const log = ctx.logger.child({ stream, consumer: durable });
  return runUntilStopped({
    logger: log,
    failedMessage: 'consumer stopped; starting again',
    isClosed: ctx.isClosed,
    pauseMs: RESTART_WAIT_MS,
    redeclare: () => options.redeclare(),
    runOnce: async (attach) => {
      const consumer = await ctx.js.consumers.get(stream, durable);
      const iter = await consumer.consume({ max_messages: options.maxMessages });
      // Stopped already: attach stops it (not close(): its promise settles only once the
      // iterator is iterated to its end).
      if (!attach(iter)) return;
      (async () => {
        for await (const note of iter.status()) {
          if (note.type !== 'next' && note.type !== 'heartbeat') log.debug({ note }, 'consumer notification');
          if (note.type === 'consumer_not_found' || note.type === 'stream_not_found') {
            log.warn({ note: note.type }, 'consumer missing on the server');
            if (note.type === 'stream_not_found' || note.count >= CONSUMER_MISSING_REDECLARE_AFTER) iter.stop();
          } else if (note.type === 'heartbeats_missed') {
            log.debug({ count: note.count }, 'pull heartbeats missed; re-pulling');
          } else if (note.type === 'consumer_deleted') {
            log.warn('consumer deleted on the server');
            iter.stop();
          }
        }
      })().catch((err: unknown) => log.warn({ err }, 'consumer status watch ended'));
      for await (const msg of iter) {
        const wrapped = wrapMessage(msg);
        try {
          const held = handler(wrapped);
          if (held !== undefined) await held;
        } catch (err) {
          // A bug in a handler must not stop consumption; the message comes back later.
          log.error({ err, subject: msg.subject, streamSeq: msg.seq }, 'message handler failed');
          msg.nak(RESTART_WAIT_MS);
        }
      }
    },
  });
}

/** Reads a stream with an ordered consumer until stopped; see NatsClient.tail. */
export function tail(ctx: ConsumerContext, stream: string, options: TailOptions, handler: (message: TailMessage) => void): Consumption {
  const log = ctx.logger.child({ stream, tail: options.filterSubject });
  let lastSeq = 0;
  return runUntilStopped({
    logger: log,
    failedMessage: 'tail stopped; starting again',
    isClosed: ctx.isClosed,
    pauseMs: RESTART_WAIT_MS,
    onRunEnded: () => log.debug({ lastSeq }, 'tail ended; starting again after the last message read'),
    runOnce: async (attach) => {
      // nats.js resets an ordered consumer by itself after a missed heartbeat, but a consumer
      // created with a start time fails every reset (it keeps the start time next to the start
      // sequence) and its iterator ends; it also ends when the consumer is deleted. Each new
      // consumer therefore starts after the last message read, by sequence.
      const start = lastSeq > 0 ? { opt_start_seq: lastSeq + 1 } : { opt_start_time: new Date(options.startTimeMs()).toISOString() };
      const consumer = await ctx.js.consumers.get(stream, { filter_subjects: options.filterSubject, ...start });
      const iter = await consumer.consume();
      if (!attach(iter)) return;
      for await (const msg of iter) {
        lastSeq = msg.seq;
        try {
          handler({
            subject: msg.subject,
            data: msg.data,
            header: (name) => (msg.headers?.has(name) ? msg.headers.get(name) : undefined),
            streamSeq: msg.seq,
            storedAtMs: Number(msg.timestampNanos / 1_000_000n),
            pending: msg.info.pending,
          });
        } catch (err) {
          log.error({ err, subject: msg.subject, streamSeq: msg.seq }, 'tail handler failed');
        }
      }
    },
  });
}

/** Where a durable consumer stands. @throws the JetStream API error when it does not exist. */
export async function readConsumerLag(jsm: JetStreamManager, stream: string, durable: string): Promise<ConsumerLag> {
  const info = await jsm.consumers.info(stream, durable);
  return { pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
}

function wrapMessage(msg: JsMsg): StreamMessage {
  const info = msg.info;
  return {
    subject: msg.subject,
    data: msg.data,
    header: (name) => (msg.headers?.has(name) ? msg.headers.get(name) : undefined),
    streamSeq: info.streamSequence,
    deliveryCount: info.deliveryCount,
    storedAtMs: Number(msg.timestampNanos / 1_000_000n),
    ack: () => msg.ack(),
    nak: (delayMs) => msg.nak(delayMs),
    working: () => msg.working(),
    term: (reason) => msg.term(reason),
  };
}
