import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ErrorCode, OutpostError } from '../errors.js';

/** One problem in a config file: where it is (`broker.devices.0.id`) and what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** Formats zod issues as `path.to.key: message`, all of them, one per line. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('\n');
}

function toConfigIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    const path = issue.path.map(String);
    // zod names the parent of unknown keys; a user wants the key itself: `broker.shape: unknown key`.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...path, key].join('.'), message: 'unknown key' }));
    }
    return [{ path: path.join('.'), message: issue.message }];
  });
}

/**
 * Validates an already-parsed config value. Throws CONFIG_INVALID listing every bad key
 * (`details.issues`), so a user fixes the whole file in one go.
 */
export function parseConfig<S extends z.ZodType>(schema: S, value: unknown, source = 'config'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = toConfigIssues(result.error);
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `invalid ${source}:\n${formatIssues(issues)}`, {
      details: { source, issues },
    });
  }
  return result.data;
}

/** Reads a YAML (.yaml/.yml) or JSON file and validates it with `schema`. */
export async function loadConfigFile<S extends z.ZodType>(schema: S, file: string): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new OutpostError(ErrorCode.CONFIG_UNREADABLE, `cannot read config file ${file}: ${(cause as Error).message}`, { cause });
  }
  let value: unknown;
  try {
    value = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `config file ${file} is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(cause as Error).message}`, {
      cause,
      details: { source: file, issues: [] },
    });
  }
  return parseConfig(schema, value, `config file ${file}`);
}
