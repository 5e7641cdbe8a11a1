/**
 * Real-server test harness shared by integration tests, e2e tests and benchmarks: private
 * nats-server and mosquitto processes on their own ports, temp dirs, and event waits.
 */
export { getFreePort } from './free-port.js';
export { startMosquitto } from './mosquitto.js';
export type { Mosquitto, MosquittoOptions } from './mosquitto.js';
export { startNatsServer } from './nats-server.js';
export type { NatsServer, NatsServerOptions } from './nats-server.js';
export { createTempDir } from './temp-dir.js';
export type { TempDir } from './temp-dir.js';
export {
  canConnect,
  resolveExecutable,
  spawnOwned,
  waitFor,
  waitForSpawn,
  waitForTcp,
} from './wait.js';
export type { OwnedProcess, WaitForOptions } from './wait.js';
