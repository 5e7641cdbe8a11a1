// What every outpostctl command gets: the process's I/O (CliIo, given by main.ts), the global
// options turned into an API client and a style, JSON printing, and the checks that make a bad
// argument a usage error before any request.
import type { Command } from 'commander';
import type { AgentIdSchema, ApiSchema, DeviceIdSchema, RolloutIdSchema } from '@outpost/shared';
import { createApiClient, DEFAULT_CLI_TIMEOUT_MS, type ApiClient } from './api-client.js';
import { CliError, CliExitCode } from './exit-codes.js';
import { createStyle, type Style } from './style.js';

export const DEFAULT_CONTROL_PLANE_URL = 'http://127.0.0.1:8080';

export interface CliIo {
  stdout: {
    write(text: string): void;
    readonly isTTY: boolean;
    /** The terminal's size, when stdout is one (read at each redraw: it may be resized). */
    readonly columns?: number | undefined;
    readonly rows?: number | undefined;
  };
  stderr: { write(text: string): void };
  /** All of stdin, as text. */
  readStdin(): Promise<string>;
  /** OUTPOST_URL, OUTPOST_TOKEN, and whether NO_COLOR is set. */
  env: { url?: string | undefined; token?: string | undefined; noColor: boolean };
  now(): number;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM: requests stop, a watch ends tidily, the exit code is 130. */
  signal?: AbortSignal | undefined;
}

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  timeout?: string;
}

export interface Context {
  api: ApiClient;
  json: boolean;
  style: Style;
}

/** What the command files get from program.ts. */
export interface CommandKit {
  io: CliIo;
  out(text: string): void;
  printJson(body: unknown): void;
  /** The API client, --json and the style of `command` (global options included). */
  context(command: Command): Context;
}

export const usage = (message: string): CliError => new CliError(CliExitCode.usage, message);

type IdSchema = typeof AgentIdSchema | typeof DeviceIdSchema | typeof RolloutIdSchema;

export function checkId(schema: IdSchema, what: string, value: string): string {
  const result = schema.safeParse(value);
  if (!result.success) throw usage(`invalid ${what} ${JSON.stringify(value)}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

export function parseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--url: ${JSON.stringify(text)} is not a URL (e.g. ${DEFAULT_CONTROL_PLANE_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`--url: must be http:// or https://, not ${url.protocol}`);
  return url.toString().replace(/\/+$/, '');
}

export function parsePositiveInt(name: string, text: string, max: number): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > max) throw usage(`${name}: must be an integer from 1 to ${max}, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** Parses a successful answer for human output; a body of another shape means another API version. */
export function expectBody<T>(schema: ApiSchema<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body);
  if (!result.success) throw new CliError(CliExitCode.apiError, `unexpected answer for ${what} (another version of the control plane?): ${result.error.issues[0]?.message ?? ''}`);
  return result.data;
}

export function createCommandKit(io: CliIo): CommandKit {
  const out = (text: string): void => io.stdout.write(text);
  return {
    io,
    out,
    printJson: (body) => out(`${JSON.stringify(body, null, 2)}\n`),
    context(command) {
      const opts = command.optsWithGlobals<GlobalOptions>();
      const url = parseUrl(opts.url ?? io.env.url ?? DEFAULT_CONTROL_PLANE_URL);
      const timeoutMs = opts.timeout === undefined ? DEFAULT_CLI_TIMEOUT_MS : parsePositiveInt('--timeout', opts.timeout, 3_600_000);
      const token = opts.token ?? io.env.token;
      return {
        api: createApiClient({ url, token: token === '' ? undefined : token, timeoutMs, ...(io.signal === undefined ? {} : { signal: io.signal }) }),
        json: opts.json === true,
        style: createStyle(io.stdout.isTTY && !io.env.noColor),
      };
    },
  };
}
