import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * node:util's parseArgs for the bench scripts, strict as by default (an unknown flag, a missing
 * value or a positional argument is an error); the error names the script's usage line.
 */
export function parseBenchArgs<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${usage}`, { cause: error });
  }
}
