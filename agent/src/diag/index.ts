/** The agent's diagnostics over NATS (issue [install]): its public surface. */
export { startAgentDiagnostics } from './agent-diagnostics.js';
export type { AgentDiagnosticsOptions } from './agent-diagnostics.js';
export { startDiagService } from './diag-service.js';
export type { DiagService, DiagServiceOptions } from './diag-service.js';
export { createLogRing, LINE_CUT_MARK, MAX_LOG_LINE_CHARS } from './log-ring.js';
export type { LogRing } from './log-ring.js';
