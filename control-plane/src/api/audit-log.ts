// The audit log of mutating API calls, kept in NATS: one message per call in the audit stream
// (OUTPOST_AUDIT, limits retention, file storage), so it outlives any replica and every
// replica lists the same log. Entries are written after the call with its outcome (see
// route-spec.ts); a write that fails after retries is logged as an error with the whole entry
// (which holds nothing secret) and counted, so it is never lost silently.
import { randomUUID } from 'node:crypto';
import { AuditEntrySchema, type AuditEntry, type AuditListEntry, type Logger } from '@outpost/shared';
import type { NatsClient } from '../nats/types.js';

/** Where route definitions send their entries. */
export interface AuditSink {
  /** Stores one entry; never throws. Resolves once it is stored, or once the failure is logged and counted. */
  append(entry: AuditEntry): Promise<void>;
}

export interface AuditQueryInput {
  limit: number;
  /** Only entries with `atMs >= sinceMs`. */
  sinceMs?: number | undefined;
  actor?: string | undefined;
}

export interface AuditLog extends AuditSink {
  /** Entries newest first, filtered; reads at most MAX_AUDIT_SCAN entries back. */
  list(query: AuditQueryInput): Promise<AuditListEntry[]>;
}

export interface AuditLogDeps {
  nats: Pick<NatsClient, 'publishToStream' | 'readLast'>;
  stream: string;
  subject: string;
  /** Declares the stream again (it may have been deleted under us); called before a retry. */
  redeclare(): Promise<void>;
  metrics: { stored(): void; failed(): void };
  logger: Logger;
}

/** Tries per entry; each retry re-declares the stream first and keeps the entry's Nats-Msg-Id, so it is stored once. */
export const AUDIT_WRITE_ATTEMPTS = 3;
/** Wait for the stream's ack per attempt, ms. */
const AUDIT_WRITE_TIMEOUT_MS = 3_000;
/** Entries read per page when a filter may skip some. */
const LIST_PAGE = 256;
/** A listing reads at most this many entries back from the newest (an actor that matches none costs no more). */
export const MAX_AUDIT_SCAN = 20_000;

export function createAuditLog(deps: AuditLogDeps): AuditLog {
  const { nats, stream, subject, logger } = deps;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  return {
    async append(entry) {
      const data = encoder.encode(JSON.stringify(entry));
      const msgId = randomUUID();
      let lastError: unknown;
      for (let attempt = 1; attempt <= AUDIT_WRITE_ATTEMPTS; attempt++) {
        try {
          if (attempt > 1) await deps.redeclare();
          await nats.publishToStream(subject, data, { msgId, expectStream: stream, timeoutMs: AUDIT_WRITE_TIMEOUT_MS });
          deps.metrics.stored();
          return;
        } catch (err) {
          lastError = err;
        }
      }
      deps.metrics.failed();
      // The entry itself goes to the log, so the record of the call survives somewhere.
      logger.error({ err: lastError, audit: entry }, 'audit write failed: this log line is the only record of the call');
    },

    async list(query) {
      const entries: AuditListEntry[] = [];
      const pageSize = query.actor === undefined ? Math.min(query.limit, LIST_PAGE) : LIST_PAGE;
      let beforeSeq: number | undefined;
      let scanned = 0;
      while (entries.length < query.limit && scanned < MAX_AUDIT_SCAN) {
        const page = await nats.readLast(stream, Math.min(pageSize, MAX_AUDIT_SCAN - scanned), beforeSeq === undefined ? {} : { beforeSeq });
        if (page.length === 0) break;
        scanned += page.length;
        let olderThanSince = false;
        for (const message of page) {
          const entry = decodeEntry(message.data, message.streamSeq);
          if (entry === undefined) continue;
          // Replicas' clocks differ a little, so the log is in write order, not strictly in
          // atMs order: the page is finished, then the listing stops.
          if (query.sinceMs !== undefined && entry.atMs < query.sinceMs) {
            olderThanSince = true;
            continue;
          }
          if (query.actor !== undefined && entry.actor !== query.actor) continue;
          entries.push({ seq: message.streamSeq, ...entry });
          if (entries.length === query.limit) break;
        }
        if (olderThanSince) break;
        beforeSeq = page.at(-1)!.streamSeq;
      }
      return entries;
    },
  };

  function decodeEntry(data: Uint8Array, seq: number): AuditEntry | undefined {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(data));
    } catch {
      json = undefined;
    }
    const parsed = AuditEntrySchema.safeParse(json);
    if (parsed.success) return parsed.data;
    // Only the control plane writes the stream; a bad entry is a bug or tampering: say so, list the rest.
    logger.warn({ stream, seq }, 'audit entry does not decode; left out of the listing');
    return undefined;
  }
}
