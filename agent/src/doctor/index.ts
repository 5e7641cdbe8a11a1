/** The doctor (issue [install]): its public surface. */
export { runDoctor, DOCTOR_STEPS } from './doctor.js';
export type { RunDoctorOptions } from './doctor.js';
export { localDoctorEnvironment, runningAgentDoctorEnvironment, DEFAULT_DOCTOR_NATS_TIMEOUT_MS } from './environment.js';
export type { EnvironmentOptions } from './environment.js';
export { DEFAULT_EXPIRY_WARNING_DAYS } from './check.js';
export type { DoctorContext, DoctorEnvironment, DoctorStep } from './check.js';
export { DEFAULT_CLOCK_FAIL_MS, DEFAULT_CLOCK_WARN_MS, judgeClockSkew, leastSkewMs, measureClockSkew } from './clock-check.js';
export type { ClockSkew } from './clock-check.js';
export { DoctorExitCode, doctorExitCode, formatDoctorReport } from './report-format.js';
