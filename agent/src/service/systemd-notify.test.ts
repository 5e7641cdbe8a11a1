import { describe, expect, it } from 'vitest';
import { healthzUrl } from './healthz-probe.js';
import { readSystemdEnvironment } from './systemd-notify.js';

describe('readSystemdEnvironment', () => {
  it('is undefined without NOTIFY_SOCKET: outside systemd nothing is signalled', () => {
    expect(readSystemdEnvironment({}, 42)).toBeUndefined();
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '', WATCHDOG_USEC: '30000000' }, 42)).toBeUndefined();
  });

  it('reads the socket and the watchdog period in ms', () => {
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toEqual({ notifySocket: '/run/systemd/notify', watchdogMs: 30_000 });
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '@abstract', WATCHDOG_USEC: '2500' }, 42)).toEqual({ notifySocket: '@abstract', watchdogMs: 2.5 });
  });

  it('leaves a watchdog meant for another process alone, and ignores a period that is not a positive integer', () => {
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)?.watchdogMs).toBeUndefined();
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '/s' }, 42)?.watchdogMs).toBeUndefined();
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '0' }, 42)?.watchdogMs).toBeUndefined();
    expect(readSystemdEnvironment({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: 'soon' }, 42)?.watchdogMs).toBeUndefined();
  });
});

describe('healthzUrl', () => {
  it('reaches a wildcard listen address on loopback and brackets IPv6 literals', () => {
    expect(healthzUrl('127.0.0.1', 9464)).toBe('http://127.0.0.1:9464/healthz');
    expect(healthzUrl('0.0.0.0', 9464)).toBe('http://127.0.0.1:9464/healthz');
    expect(healthzUrl('::', 9464)).toBe('http://[::1]:9464/healthz');
    expect(healthzUrl('fd00::5', 80)).toBe('http://[fd00::5]:80/healthz');
    expect(healthzUrl('gateway.local', 9464)).toBe('http://gateway.local:9464/healthz');
  });
});
