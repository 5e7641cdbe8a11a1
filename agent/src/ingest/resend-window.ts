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

export interface ResendWindow {
  check(deviceId: string, seq: number, ts: number): ResendCheck;
  /** Remembers a message whose commit `committed` settles: a resend until then is `pending`, after it `resend`. */
  track(deviceId: string, seq: number, ts: number, committed: Promise<unknown>): void;
  /** Devices with a window in memory. */
  devices(): number;
  /** Devices dropped from memory since the last call (the caller prunes the persisted window). */
  takeForgotten(): number;
}

interface DeviceRing {
  /** Seq per slot; NaN for a slot never used. */
  seqs: Float64Array;
  tss: Float64Array;
  pending: Map<number, { ts: number; committed: Promise<boolean> }> | undefined;
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
      if (pending !== undefined && pending.ts === ts) return { type: 'pending', committed: pending.committed };
      const slot = seq % RESEND_WINDOW_SEQS;
      return ring.seqs[slot] === seq && ring.tss[slot] === ts ? RESEND : NEW;
    },
    track(deviceId, seq, ts, committed) {
      const ring = touch(deviceId);
      const entry = {
        ts,
        committed: committed.then(
          () => {
            // Commits settle in commit order, the order the outbox's trigger wrote the slots in.
            remember(ring, seq, ts);
            return true;
          },
          () => false,
        ),
      };
      ring.pending ??= new Map();
      ring.pending.set(seq, entry);
      void entry.committed.then(() => {
        if (ring.pending?.get(seq) === entry) ring.pending.delete(seq);
      });
    },
    devices: () => rings.size,
    takeForgotten() {
      const n = forgotten;
      forgotten = 0;
      return n;
    },
  };
}
