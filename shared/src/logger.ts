import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Extra fields on every line, e.g. `{ agentId }`. */
  base?: Record<string, unknown>;
}

/** Structured JSON logs to stdout (pino); one line per event, machine-readable. */
export function createLogger(options: LoggerOptions): Logger {
  return pino({ name: options.name, level: options.level ?? 'info', base: { ...options.base } });
}
