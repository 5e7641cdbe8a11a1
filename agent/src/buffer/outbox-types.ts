import type { Lane, Logger } from '@outpost/shared';

/**
 * Called once when the transaction holding an appended record committed (`error` null, with
 * the record's seq) or failed. Must not throw.
 */
export type AppendDone = (error: Error | null, seq: number) => void;

/** One record to append; `body` is the JSON text of the validated body (it is stored as JSON, so it must be valid JSON). */
export interface OutboxRecordInput {
  lane: Lane;
  deviceId: string;
  /** Device time, epoch ms. */
  ts: number;
  /** The device's own seq, when it sent one. */
  deviceSeq?: number | undefined;
  /** `telemetry`, `inference`, `anomaly`, ... */
  kind: string;
  body: string;
}

export interface StoredRecord extends OutboxRecordInput {
  seq: number;
  /** Agent time of the commit, epoch ms. */
  receivedAtMs: number;
  /** Bytes this record counts against `maxBytes`. */
  bytes: number;
  /**
   * Set when the row cannot be sent as it is (a body that is not JSON, a column of the wrong
   * type: disk corruption or a hand edit): why. Such a row is discarded and reported, never sent.
   */
  corrupt?: string | undefined;
}

export interface DeadLetterInput {
  /** Null when the publish could not be tied to a device. */
  deviceId: string | null;
  topic: string;
  /** A RejectReason from shared. */
  reason: string;
  detail: string;
  payload: Buffer;
  /** The device's seq, when the payload had a readable one. */
  deviceSeq?: number | undefined;
}

export interface StoredDeadLetter extends DeadLetterInput {
  id: number;
  atMs: number;
}

/** Why records were dropped: the byte bound (oldest first), or rows found unreadable. */
export type EvictionReason = 'full' | 'corrupt';

/** Sorted, disjoint inclusive ranges `[first, last]`. */
export type SeqRanges = Array<[number, number]>;

/**
 * One eviction: records of one lane dropped, reported upstream so the gap they leave is
 * explained. `full`: a contiguous seq range dropped to stay inside the byte bound; `corrupt`:
 * single rows the uplink could not read.
 */
export interface EvictionRow {
  id: number;
  lane: Lane;
  reason: EvictionReason;
  firstSeq: number;
  lastSeq: number;
  records: number;
  bytes: number;
  byDevice: Record<string, number>;
  /** The device seqs of the telemetry dropped, per device (at most MAX_EVICTED_SEQ_RANGES ranges each, the rest merged). */
  deviceSeqs: Array<[deviceId: string, ranges: SeqRanges]>;
  atMs: number;
}

/** One entry of the resend window: the last device message of a slot (`deviceSeq % RESEND_WINDOW_SEQS`). */
export interface DeviceWindowRow {
  deviceId: string;
  deviceSeq: number;
  ts: number;
  /** Agent time of its commit, epoch ms. */
  atMs: number;
}

export interface OutboxStats {
  records: Record<Lane, number>;
  bytes: number;
  maxBytes: number;
  /** Records evicted since the database was created, per lane. */
  evicted: Record<Lane, number>;
  evictedBytes: number;
  deadLetters: number;
  /** Dead letters dropped to keep the table at `deadLetterMaxRows`. */
  deadLettersDropped: number;
  /** Transactions committed since open. */
  commits: number;
  /** Records committed since open. */
  committedRecords: number;
  /** Commit time of the oldest record still in the outbox, epoch ms. */
  oldestReceivedAtMs?: number | undefined;
}

export interface OutboxOptions {
  /** SQLite file; its folder is created if missing. */
  path: string;
  agentId: string;
  /** `power`: synchronous=FULL; `process`: synchronous=NORMAL. Asserted after every open. */
  durability: 'power' | 'process';
  /** Bound on the summed `bytes` of all records. */
  maxBytes: number;
  deadLetterMaxRows: number;
  /** At most this many records in one transaction (one multi-row INSERT per lane). */
  maxRecordsPerCommit: number;
  /** Hard cap on the database file (SQLite max_page_count); beyond it commits fail with STORAGE_FAILED. */
  maxFileBytes?: number | undefined;
  logger?: Logger | undefined;
  /** Called after each commit that added records (the uplink wakes on it); `records` is how many. */
  onCommit?: ((records: number) => void) | undefined;
  /** Called after each committed eviction. */
  onEviction?: ((eviction: EvictionRow) => void) | undefined;
}

/**
 * The durable, append-only outbox (DESIGN section 2). Appends are group-committed: every
 * append waiting while a transaction runs goes into the next one.
 */
export interface Outbox {
  readonly agentId: string;
  /** Minted when the database was created; never changes for this file. */
  readonly epoch: string;
  readonly path: string;
  /** Resolves with the record's seq once the transaction holding it has committed. */
  append(record: OutboxRecordInput): Promise<number>;
  /**
   * `append` with a callback instead of a promise: the ingest hot path, where a promise per
   * record (and the microtasks of its chain) costs more than the record's share of the INSERT.
   */
  appendWith(record: OutboxRecordInput, done: AppendDone): void;
  /** Resolves once the dead letter has committed. */
  appendDeadLetter(deadLetter: DeadLetterInput): Promise<void>;
  /** Records of `lane` with seq > afterSeq, oldest first. */
  read(lane: Lane, afterSeq: number, limit: number): Promise<StoredRecord[]>;
  /** Deletes records of `lane` with seq <= seq (after upstream acknowledged them); returns how many. */
  deleteThrough(lane: Lane, seq: number): Promise<number>;
  /** Eviction rows with id > afterId, oldest first. */
  evictions(afterId?: number): Promise<EvictionRow[]>;
  /** The newest dead letters first. */
  deadLetters(limit: number): Promise<StoredDeadLetter[]>;
  /**
   * Drops records the uplink found corrupt (`StoredRecord.corrupt`) and writes an eviction row
   * with reason `corrupt` for them, in one transaction; the row is reported like any eviction.
   */
  discardCorrupt(lane: Lane, records: readonly StoredRecord[]): Promise<EvictionRow>;
  /** The persisted resend window (the last device messages per device), to rebuild it after a restart. */
  deviceWindow(): Promise<DeviceWindowRow[]>;
  /** Keeps the resend window of the `keepDevices` devices heard from last; returns how many entries went. */
  pruneDeviceWindow(keepDevices: number): Promise<number>;
  stats(): OutboxStats;
  /** A new byte bound (a config change), from the next commit on; a lower one evicts then, counted and reported. */
  setMaxBytes(maxBytes: number): void;
  /** Commits what is queued, then closes the database. Idempotent. */
  close(): Promise<void>;
}
