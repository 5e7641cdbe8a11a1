/**
 * Exit codes of `outpostctl`, the same for every command, so scripts can branch on them.
 * Listed in `outpostctl --help` (EXIT_CODES_HELP, written from EXIT_CODE_MEANINGS so the two
 * never drift apart).
 */
export const CliExitCode = {
  ok: 0,
  /** The control plane answered with an error other than the ones below (a 5xx, a 4xx not listed). */
  apiError: 1,
  /** Bad command line: unknown command or option, missing argument, malformed value, an unreadable file. */
  usage: 2,
  /** The agent, device, rollout, model or route does not exist (HTTP 404). */
  notFound: 3,
  /** The control plane refused the token, wants one, or the token's role does not allow the command (HTTP 401/403). */
  auth: 4,
  /** The control plane could not be reached (refused, DNS, timeout, not HTTP). */
  unreachable: 5,
  /** The state does not allow it (HTTP 409): a rollout's status refuses the action, another rollout selects the same agents, a model version exists with other bytes. */
  conflict: 6,
  /** The control plane refused what was sent as invalid (HTTP 400): a rollout spec (each bad key by path), a model manifest or its bytes. */
  invalid: 7,
  /** `rollout status --watch`: the rollout ended failed. */
  rolloutFailed: 10,
  /** `rollout status --watch`: the rollout ended rolled back (a gate failed, or an operator rolled it back). */
  rolloutRolledBack: 11,
  /** `rollout status --watch`: the rollout ended aborted. */
  rolloutAborted: 12,
  /** `agents doctor`: the agent's report has a warning (and no failure). */
  doctorWarn: 13,
  /** `agents doctor`: a check of the agent's report failed. */
  doctorFail: 14,
  /** Interrupted (Ctrl-C, SIGINT or SIGTERM): 128 + SIGINT, as shells report it. */
  interrupted: 130,
} as const;
export type CliExitCode = (typeof CliExitCode)[keyof typeof CliExitCode];

/** What each exit code means, as `--help` prints it. */
export const EXIT_CODE_MEANINGS: Readonly<Record<CliExitCode, string>> = {
  [CliExitCode.ok]: 'ok',
  [CliExitCode.apiError]: 'the control plane answered with another error (5xx, or a 4xx not listed below)',
  [CliExitCode.usage]: 'usage error (unknown command or option, missing or malformed argument, unreadable file)',
  [CliExitCode.notFound]: 'not found (unknown agent, device, rollout, model or route)',
  [CliExitCode.auth]: "authentication failed (missing or unknown token), or the token's role does not allow it (a viewer token on a change)",
  [CliExitCode.unreachable]: 'cannot reach the control plane',
  [CliExitCode.conflict]: "conflict: the rollout's status does not allow the action, another rollout selects the same agents, or the model version exists with other bytes",
  [CliExitCode.invalid]: 'the control plane refused the input as invalid (a rollout spec: each bad key by path; a model manifest or its bytes)',
  [CliExitCode.rolloutFailed]: 'rollout status --watch: the rollout failed',
  [CliExitCode.rolloutRolledBack]: 'rollout status --watch: the rollout was rolled back',
  [CliExitCode.rolloutAborted]: 'rollout status --watch: the rollout was aborted',
  [CliExitCode.doctorWarn]: 'agents doctor: a check warned (none failed)',
  [CliExitCode.doctorFail]: 'agents doctor: a check failed',
  [CliExitCode.interrupted]: 'interrupted (Ctrl-C)',
};

export const EXIT_CODES_HELP = `Exit codes:\n${Object.entries(EXIT_CODE_MEANINGS)
  .map(([code, meaning]) => `${code.padStart(3)}  ${meaning}`)
  .join('\n')}`;

/** A failure that ends the command with `exitCode`; `message` goes to stderr. */
export class CliError extends Error {
  readonly exitCode: CliExitCode;
  /** The API's error code, when the control plane answered with one. */
  readonly code: string | undefined;
  /** The API error's `details`, when it had any. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(exitCode: CliExitCode, message: string, options: { code?: string; details?: Readonly<Record<string, unknown>>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = options.code;
    this.details = options.details;
  }
}
