/**
 * Stable error codes of Outpost. Callers branch on `code`, never on message text.
 * Add a code here (and only here) when a caller needs to tell a failure apart.
 */
export const ErrorCode = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_UNREADABLE: 'CONFIG_UNREADABLE',
  PAYLOAD_INVALID: 'PAYLOAD_INVALID',
  TOPIC_INVALID: 'TOPIC_INVALID',
  SUBJECT_INVALID: 'SUBJECT_INVALID',
  NOT_AUTHORIZED: 'NOT_AUTHORIZED',
  RATE_LIMITED: 'RATE_LIMITED',
  OUTBOX_UNSAFE: 'OUTBOX_UNSAFE',
  OUTBOX_FULL: 'OUTBOX_FULL',
  OUTBOX_CLOSED: 'OUTBOX_CLOSED',
  STORAGE_FAILED: 'STORAGE_FAILED',
  PASSWORD_HASH_INVALID: 'PASSWORD_HASH_INVALID',
  KV_CONFLICT: 'KV_CONFLICT',
  KV_VALUE_INVALID: 'KV_VALUE_INVALID',
  /** Applying an uplink message to the accounting threw: the message is terminated after retries. */
  ACCOUNTING_FAILED: 'ACCOUNTING_FAILED',
  /** The rollout's status does not allow the action (resume a finished rollout, ...). */
  ROLLOUT_STATE_INVALID: 'ROLLOUT_STATE_INVALID',
  ROLLOUT_NOT_FOUND: 'ROLLOUT_NOT_FOUND',
  /** Another rollout that is not finished selects some of the same agents. */
  ROLLOUT_CONFLICT: 'ROLLOUT_CONFLICT',
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  /** A model version already in the store with other bytes. */
  MODEL_EXISTS: 'MODEL_EXISTS',
  /** The desired model is older than the one running and the desired state is no rollback. */
  MODEL_VERSION_OLDER: 'MODEL_VERSION_OLDER',
  /** A managed config change needs the device connections closed and the rollout does not allow it. */
  CONFIG_NEEDS_RESTART: 'CONFIG_NEEDS_RESTART',
  /** A key, creds or enrolment file that group or others may read. */
  SECRET_FILE_UNSAFE: 'SECRET_FILE_UNSAFE',
  /** Enrolment or revocation needs `security` in the control plane's config (NATS JWT auth). */
  SECURITY_NOT_CONFIGURED: 'SECURITY_NOT_CONFIGURED',
  NATS_UNAVAILABLE: 'NATS_UNAVAILABLE',
  AGENT_NOT_FOUND: 'AGENT_NOT_FOUND',
  /** The agent did not answer a diagnostics request over NATS (offline, or an enrolment or version without diagnostics). */
  AGENT_UNREACHABLE: 'AGENT_UNREACHABLE',
  DEVICE_NOT_FOUND: 'DEVICE_NOT_FOUND',
  REQUEST_INVALID: 'REQUEST_INVALID',
  ROUTE_NOT_FOUND: 'ROUTE_NOT_FOUND',
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  AUTH_REQUIRED: 'AUTH_REQUIRED',
  AUTH_INVALID: 'AUTH_INVALID',
  /** A known API token whose role does not allow the call (a viewer on an operator route). */
  FORBIDDEN: 'FORBIDDEN',
  MODEL_INVALID: 'MODEL_INVALID',
  MODEL_DIGEST_MISMATCH: 'MODEL_DIGEST_MISMATCH',
  MODEL_SIGNATURE_INVALID: 'MODEL_SIGNATURE_INVALID',
  MODEL_KEY_UNTRUSTED: 'MODEL_KEY_UNTRUSTED',
  MODEL_KEY_INVALID: 'MODEL_KEY_INVALID',
  MODEL_EXPIRED: 'MODEL_EXPIRED',
  MODEL_EXTERNAL_DATA: 'MODEL_EXTERNAL_DATA',
  MODEL_SELF_TEST_FAILED: 'MODEL_SELF_TEST_FAILED',
  INFERENCE_UNAVAILABLE: 'INFERENCE_UNAVAILABLE',
  SCENARIO_INVALID: 'SCENARIO_INVALID',
  HARNESS_MISSING_BINARY: 'HARNESS_MISSING_BINARY',
  HARNESS_START_FAILED: 'HARNESS_START_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface OutpostErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

/** The one base error of Outpost: a stable `code`, a chained `cause` and structured details. */
export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: OutpostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OutpostError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** True when `err` is an OutpostError, optionally with the given code. */
export function isOutpostError(err: unknown, code?: ErrorCode): err is OutpostError {
  return err instanceof OutpostError && (code === undefined || err.code === code);
}
