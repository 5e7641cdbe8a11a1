/** The outbox stage of the agent (DESIGN section 2): its public surface, nothing from sqlite3. */
export { openOutbox } from './outbox.js';
export { measureRecordBytes, RECORD_OVERHEAD_BYTES } from './outbox-commit.js';
export { EVICT_TO_FRACTION, MAX_EVICTED_SEQ_RANGES } from './outbox-eviction.js';
export { UNREADABLE_DEVICE_ID } from './outbox-reads.js';
export { RESEND_WINDOW_SEQS, SCHEMA_VERSION } from './outbox-schema.js';
export type { SqliteOutbox } from './outbox.js';
export type { OutboxPragmas } from './outbox-reads.js';
export type {
  AppendDone,
  DeadLetterInput,
  DeviceWindowRow,
  EvictionReason,
  EvictionRow,
  Outbox,
  OutboxOptions,
  OutboxRecordInput,
  OutboxStats,
  SeqRanges,
  StoredDeadLetter,
  StoredRecord,
} from './outbox-types.js';
