import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Extra fields on every line, e.g. `{ agentId }`. */
  base?: Record<string, unknown>;
  /**
   * Also hands every line to this, exactly as written to stdout (secrets already redacted,
   * newline included): the agent keeps its recent lines for `outpostctl agents logs`.
   */
  onLine?: (line: string) => void;
}

/**
 * Field names whose values never reach a log line, wherever a caller puts them (top level or one
 * object down): a config, an error's details, a request. pino replaces them with "[redacted]".
 */
export const REDACTED_LOG_FIELDS: readonly string[] = ['password', 'pass', 'token', 'secret', 'seed', 'privateKey', 'authorization', 'creds'];
const REDACT_PATHS = REDACTED_LOG_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);

/** Structured JSON logs to stdout (pino); one line per event, machine-readable; secrets redacted by field name. */
export function createLogger(options: LoggerOptions): Logger {
  const settings = { name: options.name, level: options.level ?? 'info', base: { ...options.base }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  const { onLine } = options;
  if (onLine === undefined) return pino(settings);
  // pino's own stdout destination (flushed on exit), with the line handed on first.
  const stdout = pino.destination(1);
  return pino(settings, {
    write(line: string) {
      onLine(line);
      stdout.write(line);
    },
  });
}

/**
 * A server URL fit for a log line or an error message: user and password (`nats://u:p@host`)
 * are replaced by `***`. Anything that does not parse as a URL is returned as it is, minus
 * anything before an `@`.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username === '' && parsed.password === '') return url;
    parsed.username = '***';
    parsed.password = '';
    return parsed.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
  } catch {
    const at = url.lastIndexOf('@');
    return at < 0 ? url : `***@${url.slice(at + 1)}`;
  }
}
