/**
 * Exit codes of `outpostctl`, the same for every command, so scripts can branch on them.
 * Listed in `outpostctl --help`.
 */
export const CliExitCode = {
  ok: 0,
  /** The control plane answered with an error (4xx/5xx) other than the ones below. */
  apiError: 1,
  /** Bad command line: unknown command or option, missing argument, malformed value. */
  usage: 2,
  /** The agent, device or route does not exist (HTTP 404). */
  notFound: 3,
  /** The control plane refused the token, or wants one (HTTP 401/403). */
  auth: 4,
  /** The control plane could not be reached (refused, DNS, timeout, not HTTP). */
  unreachable: 5,
} as const;
export type CliExitCode = (typeof CliExitCode)[keyof typeof CliExitCode];

export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  the control plane answered with an error (4xx/5xx other than below)
  2  usage error (unknown command or option, missing or malformed argument)
  3  not found (unknown agent, device or route)
  4  authentication failed (missing or unknown token)
  5  cannot reach the control plane`;

/** A failure that ends the command with `exitCode`; `message` goes to stderr. */
export class CliError extends Error {
  readonly exitCode: CliExitCode;
  /** The API's error code, when the control plane answered with one. */
  readonly code: string | undefined;

  constructor(exitCode: CliExitCode, message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = options.code;
  }
}
