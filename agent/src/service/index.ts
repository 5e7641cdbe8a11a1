// The agent as a systemd service: readiness (READY=1) and a watchdog fed by its own health.
// main.ts uses it only when systemd set NOTIFY_SOCKET.
export { createHealthzProbe, healthzUrl } from './healthz-probe.js';
export { createServiceNotifier, watchdogIntervalMs, type ServiceNotifier, type ServiceNotifierOptions } from './service-notifier.js';
export { createSystemdNotify, findSystemdNotify, readSystemdEnvironment, SYSTEMD_NOTIFY_VARIABLES, type Notify, type SystemdEnvironment } from './systemd-notify.js';
export { decideWatchdog, DEFAULT_WATCHDOG_POLICY, HEALTHZ_CHECK, type WatchdogPolicy } from './watchdog-policy.js';
