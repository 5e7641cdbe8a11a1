/**
 * The one reader of Prometheus text exposition (format 0.0.4) for tests and benches: what an
 * agent or control plane serves on /metrics, or what a prom-client registry renders in process.
 *
 * A line that is neither a comment nor a sample throws: a test must not pass because a body it
 * could not read looked like "no such sample".
 */

/** One sample line: `name{label="value",...} value [timestamp]`. */
export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$/;
const LABEL_PAIR = /[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(?:,|$)/y;

/** Parses a whole exposition body into its samples, in order; comments and blank lines skipped. */
export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (match === null) throw new Error(`metrics line ${index + 1} is not a sample: ${raw}`);
    samples.push({ name: match[1]!, labels: parseLabels(match[2] ?? '', index + 1), value: parseValue(match[3]!, index + 1) });
  }
  return samples;
}

/** Every sample of `name` whose labels include each entry of `labels` (other labels may be present). */
export function metricSamples(text: string, name: string, labels: Readonly<Record<string, string>> = {}): MetricSample[] {
  const wanted = Object.entries(labels);
  return parseMetrics(text).filter((s) => s.name === name && wanted.every(([k, v]) => s.labels[k] === v));
}

/**
 * The value of the one sample of `name` whose labels include `labels`; undefined when there is
 * none. Throws when several match: the labels given do not name one series.
 */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const found = metricSamples(text, name, labels);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}; name more labels`);
  return found[0]?.value;
}

/** The sum over every sample of `name` whose labels include `labels`; 0 when there is none. */
export function sumOf(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  return metricSamples(text, name, labels).reduce((sum, s) => sum + s.value, 0);
}

/**
 * GET http://127.0.0.1:{httpPort}/metrics and its body; throws unless it answers 200. With
 * `timeoutMs` the request is aborted after that long (benches, which have no test timeout).
 */
export async function fetchMetrics(httpPort: number, options: { timeoutMs?: number } = {}): Promise<string> {
  const signal = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal });
  if (response.status !== 200) throw new Error(`GET /metrics on port ${httpPort} answered ${response.status}`);
  return response.text();
}

function parseLabels(body: string, lineNo: number): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL_PAIR.lastIndex = 0;
  while (LABEL_PAIR.lastIndex < body.length) {
    const at = LABEL_PAIR.lastIndex;
    const match = LABEL_PAIR.exec(body);
    if (match === null) throw new Error(`metrics line ${lineNo}: labels unreadable from column ${at}: {${body}}`);
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/** Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(text: string, lineNo: number): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`metrics line ${lineNo}: value ${text} is not a number`);
  return value;
}
