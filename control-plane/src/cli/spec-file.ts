// A rollout spec as an operator writes it: a YAML or JSON file (JSON is YAML 1.2 too, so one
// parser reads both), or stdin. Parsing the file is the CLI's job; checking the spec is the
// control plane's (it names each bad key by path), and the CLI turns those paths back into
// lines of the file.
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node } from 'yaml';
import { CliError, CliExitCode } from './exit-codes.js';

export interface SpecSource {
  /** How messages name it: the file's path, or `stdin`. */
  name: string;
  /** The parsed document. */
  value: unknown;
  /**
   * The 1-based line of the key at `path` (`strategy.waves.0`, as the API names paths), or of
   * the deepest part of it the file has; undefined when not even the first key is there.
   */
  lineOf(path: string): number | undefined;
}

/**
 * Parses `text` (YAML or JSON) read from `name`.
 *
 * @throws CliError usage when it is not YAML, holds more than one document, or is empty.
 */
export function parseSpecText(text: string, name: string): SpecSource {
  const lineCounter = new LineCounter();
  // uniqueKeys (the default) makes a key written twice an error instead of the last one winning silently.
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (docs.length === 0) throw new CliError(CliExitCode.usage, `${name}: empty; a rollout spec is a YAML or JSON object`);
  if (docs.length > 1) throw new CliError(CliExitCode.usage, `${name}: holds ${docs.length} YAML documents; a rollout spec is one`);
  const doc = docs[0]!;
  const error = doc.errors[0];
  if (error !== undefined) {
    const at = lineCounter.linePos(error.pos[0]);
    throw new CliError(CliExitCode.usage, `${name}:${at.line}:${at.col}: not valid YAML or JSON: ${error.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) throw new CliError(CliExitCode.usage, `${name}: empty; a rollout spec is a YAML or JSON object`);

  return {
    name,
    value,
    lineOf(path) {
      let node: unknown = doc.contents;
      let offset: number | undefined;
      for (const segment of path.split('.')) {
        if (isMap(node)) {
          const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment);
          if (pair === undefined) break;
          offset = (pair.key as Node).range?.[0];
          node = pair.value;
        } else if (isSeq(node) && /^\d+$/.test(segment)) {
          const item = node.items[Number(segment)] as Node | undefined;
          if (item === undefined) break;
          offset = item.range?.[0];
          node = item;
        } else {
          break;
        }
      }
      return offset === undefined ? undefined : lineCounter.linePos(offset).line;
    },
  };
}
