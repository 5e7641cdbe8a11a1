import { describe, expect, it } from 'vitest';
import { CliExitCode, type CliError } from './exit-codes.js';
import { parseSpecText } from './spec-file.js';

const YAML = `# a rollout
name: model 2
selector:
  labels: { site: lab }
change:
  model:
    name: constant
    version: 2.0.0
strategy:
  waves: [1, "50%"]
  soak: soon
`;

function refusal(text: string): CliError {
  try {
    parseSpecText(text, 'spec.yaml');
  } catch (error) {
    return error as CliError;
  }
  throw new Error('parsed');
}

describe('parseSpecText', () => {
  it('reads YAML and JSON to the same value', () => {
    const yaml = parseSpecText(YAML, 'spec.yaml');
    const json = parseSpecText(JSON.stringify(yaml.value), 'spec.json');
    expect(yaml.value).toEqual({ name: 'model 2', selector: { labels: { site: 'lab' } }, change: { model: { name: 'constant', version: '2.0.0' } }, strategy: { waves: [1, '50%'], soak: 'soon' } });
    expect(json.value).toEqual(yaml.value);
  });

  it('finds the line of a path the API names, or of its deepest part in the file', () => {
    const spec = parseSpecText(YAML, 'spec.yaml');
    expect(spec.lineOf('strategy.soak')).toBe(11);
    expect(spec.lineOf('strategy.waves.1')).toBe(10);
    expect(spec.lineOf('change.model.version')).toBe(8);
    expect(spec.lineOf('selector.labels.site')).toBe(4);
    // Not in the file: the deepest part that is.
    expect(spec.lineOf('strategy.failureBudget')).toBe(9);
    expect(spec.lineOf('gates.anomalyRate')).toBeUndefined();
    expect(spec.lineOf('(spec)')).toBeUndefined();
    const json = parseSpecText('{\n  "name": "x",\n  "strategy": {\n    "soak": "soon"\n  }\n}\n', 'spec.json');
    expect(json.lineOf('strategy.soak')).toBe(4);
  });

  it('refuses what is not one YAML or JSON document as a usage error, with the line', () => {
    const bad = refusal('name: x\nstrategy:\n  waves: [1, 2\n');
    expect(bad.exitCode).toBe(CliExitCode.usage);
    expect(bad.message).toMatch(/^spec\.yaml:\d+:\d+: not valid YAML or JSON: /);
    expect(refusal('name: x\nname: y\n').message).toMatch(/^spec\.yaml:2:1: not valid YAML or JSON: .*unique/i);
    expect(refusal('name: a\n---\nname: b\n').message).toBe('spec.yaml: holds 2 YAML documents; a rollout spec is one');
    expect(refusal('').message).toBe('spec.yaml: empty; a rollout spec is a YAML or JSON object');
    expect(refusal('# nothing\n').exitCode).toBe(CliExitCode.usage);
  });
});
