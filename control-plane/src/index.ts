export { startControlPlane, type ControlPlane, type StartControlPlaneOptions } from './control-plane.js';
export { loadControlPlaneConfig } from './config.js';
export { AGENT_EVENTS_CONSUMER, UPLINK_CONSUMER } from './nats/topology.js';
export { IntervalSet, type Range } from './ingest/interval-set.js';
export type { ControlPlaneMetrics } from './metrics.js';
export { setupNatsAuth, type SetupFiles } from './fleet/setup.js';
export { ENROLLMENTS_BUCKET, mintEnrollmentBundle } from './fleet/enrollment.js';
