import { describe, expect, it } from 'vitest';
import { RESEND_WINDOW_SEQS } from '../buffer/index.js';
import { createResendWindow } from './resend-window.js';

const T0 = 1_700_000_000_000;

describe('createResendWindow', () => {
  it('recognises a committed message by device, seq and ts, and nothing else', () => {
    const window = createResendWindow([]);
    window.settle(window.track('d1', 5, T0), true);
    expect(window.check('d1', 5, T0)).toEqual({ type: 'resend' });
    expect(window.check('d1', 5, T0 + 1)).toEqual({ type: 'new' }); // a reboot: same seq, another ts
    expect(window.check('d2', 5, T0)).toEqual({ type: 'new' });
    expect(window.check('d1', 6, T0)).toEqual({ type: 'new' });
  });

  it('holds a message while its commit is pending, and forgets it when the commit fails', async () => {
    const window = createResendWindow([]);
    const one = window.track('d1', 1, T0);
    const two = window.track('d1', 2, T0);
    const first = window.check('d1', 1, T0);
    const second = window.check('d1', 2, T0);
    expect(first.type).toBe('pending');
    expect(second.type).toBe('pending');
    // A second resend while pending waits for the same outcome.
    expect(window.check('d1', 1, T0)).toEqual(first);
    window.settle(one, true);
    window.settle(two, false);
    expect(first.type === 'pending' && (await first.committed)).toBe(true);
    expect(second.type === 'pending' && (await second.committed)).toBe(false);
    expect(window.check('d1', 1, T0)).toEqual({ type: 'resend' });
    expect(window.check('d1', 2, T0)).toEqual({ type: 'new' });
  });

  it('is rebuilt from the persisted rows, and keeps the last RESEND_WINDOW_SEQS seqs of a device', () => {
    const rows = Array.from({ length: RESEND_WINDOW_SEQS + 10 }, (_, k) => ({ deviceId: 'd1', deviceSeq: k + 1, ts: T0 + k, atMs: T0 + k }));
    // The table keeps one row per slot; the window sees what the table holds.
    const kept = rows.slice(10);
    const window = createResendWindow(kept);
    expect(window.check('d1', RESEND_WINDOW_SEQS + 10, T0 + RESEND_WINDOW_SEQS + 9)).toEqual({ type: 'resend' });
    expect(window.check('d1', 11, T0 + 10)).toEqual({ type: 'resend' });
    expect(window.check('d1', 10, T0 + 9)).toEqual({ type: 'new' });
  });

  it('keeps at most maxDevices devices, dropping the one heard from longest ago, and says how many it dropped', () => {
    const window = createResendWindow([], 3);
    const tracked = ['a', 'b', 'c'].map((id) => window.track(id, 1, T0));
    tracked.push(window.track('a', 2, T0)); // a is recent again
    tracked.push(window.track('d', 1, T0)); // b goes
    for (const message of tracked) window.settle(message, true);
    expect(window.devices()).toBe(3);
    expect(window.takeForgotten()).toBe(1);
    expect(window.takeForgotten()).toBe(0);
    expect(window.check('b', 1, T0)).toEqual({ type: 'new' });
    expect(window.check('a', 1, T0)).toEqual({ type: 'resend' });
  });
});
