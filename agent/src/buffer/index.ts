/** The outbox stage of the agent (DESIGN section 2): its public surface, nothing from sqlite3. */
export { openOutbox, measureRecordBytes, RECORD_OVERHEAD_BYTES, EVICT_TO_FRACTION, MAX_EVICTED_SEQ_RANGES, UNREADABLE_DEVICE_ID } from './outbox.js';
export { RESEND_WINDOW_SEQS, SCHEMA_VERSION } from './outbox-schema.js';
export type { SqliteOutbox, OutboxPragmas } from './outbox.js';
export type {
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
