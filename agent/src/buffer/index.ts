/** The outbox stage of the agent (DESIGN section 2): its public surface, nothing from sqlite3. */
export { openOutbox, measureRecordBytes, RECORD_OVERHEAD_BYTES, EVICT_TO_FRACTION } from './outbox.js';
export type { SqliteOutbox, OutboxPragmas } from './outbox.js';
export type {
  DeadLetterInput,
  EvictionRow,
  Outbox,
  OutboxOptions,
  OutboxRecordInput,
  OutboxStats,
  StoredDeadLetter,
  StoredRecord,
} from './outbox-types.js';
