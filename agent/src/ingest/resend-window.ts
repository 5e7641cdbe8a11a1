/**
 * Recognises device resends (DESIGN section 2): a QoS 1/2 publish sent again after its
 * acknowledgement was lost carries the same device id, `seq` and `ts` as the original. A device
 * that restarts its seqs sends the same seq with another ts: that is new data, never a resend.
 *
 * Per device, the last RESEND_WINDOW_SEQS seqs (one slot each, `seq % RESEND_WINDOW_SEQS`) with
 * their ts; the outbox keeps the same window on disk, written by the statement that commits the
 * record, and hands it back after a restart. Messages still waiting for their commit are held
 * apart: a resend that arrives meanwhile waits for the original's outcome.
 */
import { DEFAULT_RESEND_WINDOW_DEVICES } from '@outpost/shared';
import { RESEND_WINDOW_SEQS } from '../buffer/index.js';
import type { DeviceWindowRow } from '../buffer/index.js';

export type ResendCheck =
  | { type: 'new' }
  /** The same message was committed before: acknowledge, do not store. */
  | { type: 'resend' }
  /** The same message is waiting for its commit: `committed` says whether it got one. */
  | { type: 'pending'; committed: Promise<boolean> };

/** A message waiting for its commit, as `track` returned it. */
export interface TrackedMessage {
  readonly ring: DeviceRing;
  readonly seq: number;
  readonly ts: number;
  /** Created only when a resend arrives while the commit is pending (rare). */
  waiting: { committed: Promise<boolean>; resolve: (committed: boolean) => void } | undefined;
}

export interface ResendWindow {
  check(deviceId: string, seq: number, ts: number): ResendCheck;
  /**
   * Remembers a message whose commit has started: a resend until `settle` is `pending`, after
   * a successful commit `resend`. No promise per message: the ingest hot path calls `settle`
   * from the outbox's commit callback.
   */
  track(deviceId: string, seq: number, ts: number): TrackedMessage;
  /** The commit of a tracked message ended; call in commit order (the order the outbox's trigger wrote the slots in). */
  settle(message: TrackedMessage, committed: boolean): void;
  /** Devices with a window in memory. */
  devices(): number;
  /** Devices dropped from memory since the last call (the caller prunes the persisted window). */
  takeForgotten(): number;
}

interface DeviceRing {
  /** Seq per slot; NaN for a slot never used. */
  seqs: Float64Array;
  tss: Float64Array;
  pending: Map<number, TrackedMessage> | undefined;
}

const NEW: ResendCheck = { type: 'new' };
const RESEND: ResendCheck = { type: 'resend' };

/**
 * @param rows the persisted window, oldest first (`Outbox.deviceWindow()`)
 * @param maxDevices devices kept in memory; a device beyond it is forgotten (its resends are
 *   then stored again, and the control plane counts them as device duplicates)
 */
export function createResendWindow(rows: readonly DeviceWindowRow[], maxDevices = DEFAULT_RESEND_WINDOW_DEVICES): ResendWindow {
  // Insertion order is recency: a device is re-inserted on every message, so the first key is the one heard from longest ago.
  const rings = new Map<string, DeviceRing>();
  let forgotten = 0;

  const touch = (deviceId: string): DeviceRing => {
    let ring = rings.get(deviceId);
    if (ring === undefined) {
      ring = { seqs: new Float64Array(RESEND_WINDOW_SEQS).fill(Number.NaN), tss: new Float64Array(RESEND_WINDOW_SEQS), pending: undefined };
      if (rings.size >= maxDevices) {
        rings.delete(rings.keys().next().value as string);
        forgotten++;
      }
    } else {
      rings.delete(deviceId);
    }
    rings.set(deviceId, ring);
    return ring;
  };

  const remember = (ring: DeviceRing, seq: number, ts: number): void => {
    const slot = seq % RESEND_WINDOW_SEQS;
    ring.seqs[slot] = seq;
    ring.tss[slot] = ts;
  };

  for (const row of rows) remember(touch(row.deviceId), row.deviceSeq, row.ts);
  forgotten = 0;

  return {
    check(deviceId, seq, ts) {
      const ring = rings.get(deviceId);
      if (ring === undefined) return NEW;
      const pending = ring.pending?.get(seq);
      if (pending !== undefined && pending.ts === ts) {
        if (pending.waiting === undefined) {
          let resolve!: (committed: boolean) => void;
          const committed = new Promise<boolean>((r) => (resolve = r));
          pending.waiting = { committed, resolve };
        }
        return { type: 'pending', committed: pending.waiting.committed };
      }
      const slot = seq % RESEND_WINDOW_SEQS;
      return ring.seqs[slot] === seq && ring.tss[slot] === ts ? RESEND : NEW;
    },
    track(deviceId, seq, ts) {
      const ring = touch(deviceId);
      const message: TrackedMessage = { ring, seq, ts, waiting: undefined };
      ring.pending ??= new Map();
      ring.pending.set(seq, message);
      return message;
    },
    settle(message, committed) {
      const { ring, seq } = message;
      if (committed) remember(ring, seq, message.ts);
      if (ring.pending?.get(seq) === message) ring.pending.delete(seq);
      message.waiting?.resolve(committed);
    },
    devices: () => rings.size,
    takeForgotten() {
      const n = forgotten;
      forgotten = 0;
      return n;
    },
  };
}
