// What the control plane needs from NATS, as interfaces we own; adapter/ implements them with
// the @nats-io modules (the only folder importing them).

/** A stored KV value and its revision (the stream sequence of the write). */
export interface KvEntry {
  readonly value: Uint8Array;
  readonly revision: number;
}

export type KvChange = { type: 'put'; key: string; entry: KvEntry } | { type: 'delete'; key: string; revision: number };

export interface KvWatch {
  stop(): void;
}

export interface KvBucket {
  readonly name: string;
  /** The current value; undefined when the key was never written or is deleted. */
  get(key: string): Promise<KvEntry | undefined>;
  /**
   * Writes a key that does not exist yet; returns the new revision.
   * @throws OutpostError KV_CONFLICT when it exists (another writer was first).
   */
  create(key: string, value: Uint8Array): Promise<number>;
  /**
   * Writes a key only if its revision is still `revision` (compare-and-set); returns the new revision.
   * @throws OutpostError KV_CONFLICT when another write came in between.
   */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /** Writes a key whatever its revision (last writer wins: only for values no one counts on). */
  put(key: string, value: Uint8Array): Promise<number>;
  /** Keys matching a NATS subject filter below the bucket (`agent-1.>`), or all keys. */
  keys(filter?: string): Promise<string[]>;
  /** Current values first, then every change, until `stop()`; survives reconnects. */
  watch(onChange: (change: KvChange) => void): Promise<KvWatch>;
}

/** One JetStream message delivered by a durable pull consumer (explicit ack). */
export interface StreamMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  header(name: string): string | undefined;
  /** Sequence in the stream: the same for every redelivery of the message. */
  readonly streamSeq: number;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
  /** When the server stored the message (server clock), epoch ms. */
  readonly storedAtMs: number;
  /** Done: never deliver again. */
  ack(): void;
  /** Not done: deliver again (after `delayMs`). */
  nak(delayMs?: number): void;
  /** Still working on it: restart the ack-wait timer. */
  working(): void;
  /** Refused for good (a bad message): never deliver again. */
  term(reason?: string): void;
}

export interface StreamSpec {
  name: string;
  subjects: string[];
  maxAgeMs: number;
  maxBytes?: number | undefined;
  duplicateWindowMs: number;
  replicas: number;
}

export interface ConsumerSpec {
  stream: string;
  durable: string;
  description: string;
  ackWaitMs: number;
  maxAckPending: number;
}

export interface KvSpec {
  bucket: string;
  description: string;
  replicas: number;
}

export interface ConsumeOptions {
  /** Messages asked for per pull. */
  maxMessages: number;
  /** Called again (stream and consumer re-declared) when the consumer vanished from the server. */
  redeclare: () => Promise<void>;
}

/**
 * Called for each message in delivery order. It returns at once when the message was taken
 * over (acked later); a returned promise holds back the next message (back-pressure).
 */
export type MessageHandler = (message: StreamMessage) => void | Promise<void>;

export interface Consumption {
  /** Stops pulling; messages already handed to the handler stay the handler's. */
  stop(): Promise<void>;
}

/** One message read by a tail (no ack: an ordered consumer only reads). */
export interface TailMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  header(name: string): string | undefined;
  readonly streamSeq: number;
  /** When the server stored it (server clock), epoch ms. */
  readonly storedAtMs: number;
  /** Messages matching the filter still behind this one: 0 once the tail has caught up. */
  readonly pending: number;
}

export interface TailOptions {
  /** One subject filter (nats-server 2.9 takes only one per consumer), e.g. `outpost.uplink.*.events`. */
  filterSubject: string;
  /** Where reading starts (server clock), epoch ms; called again when no message was read before a restart. */
  startTimeMs: () => number;
}

export type NatsStatus =
  | { type: 'disconnected'; server: string }
  | { type: 'reconnecting' }
  | { type: 'reconnected'; server: string }
  | { type: 'stale-connection' }
  | { type: 'server-error'; message: string }
  | { type: 'closed' };

export interface ConsumerLag {
  /** Messages in the stream not yet delivered to the consumer. */
  pending: number;
  /** Delivered, not yet acked. */
  ackPending: number;
  redelivered: number;
}

/** A message as a stream holds it, read back (no consumer state, no ack). */
export interface StoredMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly streamSeq: number;
  /** When the server stored it (server clock), epoch ms. */
  readonly storedAtMs: number;
}

export interface StreamPublishOptions {
  /** Nats-Msg-Id: the same id again inside the stream's duplicate window is stored once (a retry after a lost ack). */
  msgId?: string;
  /** Refuse the publish unless the subject belongs to this stream. */
  expectStream?: string;
  /** Give up waiting for the stream's ack after this, ms (default 5 s). */
  timeoutMs?: number;
}

/** The stream's acknowledgement of a publish: the message is stored (file storage: on disk). */
export interface StreamAck {
  readonly stream: string;
  readonly seq: number;
  /** The msgId was seen inside the duplicate window: stored before, not again. */
  readonly duplicate: boolean;
}

export interface ObjectStoreSpec {
  bucket: string;
  description: string;
  replicas: number;
}

export interface ObjectInfo {
  name: string;
  bytes: number;
  /** The store's own digest (`SHA-256=<base64url>`). */
  digest: string;
  /** When it was stored (server clock), ISO 8601. */
  mtime: string;
  description?: string | undefined;
}

/** A JetStream object store: named blobs, written and read whole. */
export interface ObjectStoreBucket {
  readonly name: string;
  put(name: string, data: Uint8Array, description?: string): Promise<ObjectInfo>;
  /** The object's bytes; undefined when there is no such object. */
  get(name: string): Promise<Uint8Array | undefined>;
  info(name: string): Promise<ObjectInfo | undefined>;
  list(): Promise<ObjectInfo[]>;
}

/** One request to a service the control plane answers (request/reply on core NATS). */
export interface ServiceRequest {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Answers once; `headers` travel as NATS headers. */
  respond(data: Uint8Array, headers?: Readonly<Record<string, string>>): void;
}

export interface Subscription {
  stop(): void;
}

/** A reply to a request this client made. */
export interface RequestReply {
  readonly data: Uint8Array;
  header(name: string): string | undefined;
}

/** How a request ended: a reply, nobody subscribed to the subject (NATS 503), or no reply in time. */
export type RequestOutcome = { type: 'reply'; reply: RequestReply } | { type: 'no-responders' } | { type: 'timeout' };

export interface NatsClient {
  isConnected(): boolean;
  onStatus(listener: (status: NatsStatus) => void): void;
  /** Creates the stream, or brings an existing one to `spec` (retention is config). Safe when replicas race. */
  ensureStream(spec: StreamSpec): Promise<void>;
  /** Creates the durable pull consumer (explicit ack), or updates its ack wait and pending bound. */
  ensureConsumer(spec: ConsumerSpec): Promise<void>;
  /** Creates or opens a KV bucket (history 1, file storage). */
  openKv(spec: KvSpec): Promise<KvBucket>;
  /** Creates or opens an object store (file storage). */
  openObjectStore(spec: ObjectStoreSpec): Promise<ObjectStoreBucket>;
  /** A core NATS publish (no stream, no ack): for notices. */
  publish(subject: string, data?: Uint8Array): void;
  /**
   * Publishes into a JetStream stream and waits for its ack (the message is stored).
   * @throws the NATS error when no ack came within the timeout or the stream refused it.
   */
  publishToStream(subject: string, data: Uint8Array, options?: StreamPublishOptions): Promise<StreamAck>;
  /**
   * The last `count` messages of a stream before sequence `beforeSeq` (default: the end),
   * newest first; fewer when the stream holds fewer. Reads with a short-lived ordered
   * consumer, deleted after the read.
   */
  readLast(stream: string, count: number, options?: { beforeSeq?: number }): Promise<StoredMessage[]>;
  /**
   * A core NATS request (to an agent's diagnostics, through the AGENTS account's export).
   * @throws only when the connection is closed; no responder and no reply in time are outcomes.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<RequestOutcome>;
  /** Answers requests on `subject` (wildcards allowed) in queue group `queue`: each request reaches one replica. */
  serve(subject: string, queue: string, handler: (request: ServiceRequest) => void): Subscription;
  /** Pulls from a durable consumer until stopped; keeps going across disconnects and server restarts. */
  consume(stream: string, durable: string, handler: MessageHandler, options: ConsumeOptions): Consumption;
  consumerLag(stream: string, durable: string): Promise<ConsumerLag>;
  /**
   * Reads a stream from a point in time on with an ephemeral ordered consumer (server-side
   * state dies with it), until stopped. Keeps going across disconnects, server restarts and a
   * deleted consumer, resuming after the last message read: no message twice, none skipped
   * unless the stream's retention dropped it meanwhile. `handler` runs for each message in order.
   */
  tail(stream: string, options: TailOptions, handler: (message: TailMessage) => void): Consumption;
  /** Drains and closes the connection. Idempotent. */
  close(): Promise<void>;
}
