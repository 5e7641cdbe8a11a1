import { describe, expect, it } from 'vitest';
import { TelemetrySchema } from '@outpost/shared';
import { buildMalformedBody, buildOversizeBody } from './message-faults.js';

const parts = { ts: 1767225600000, seq: 12, metrics: { temperature: 21.5, vibration: 1.25 } };

/** How the agent's ingest would classify a payload (UTF-8, then JSON, then schema). */
function classify(body: string | Buffer): string {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'not-utf8';
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'invalid-json';
  }
  return TelemetrySchema.safeParse(value).success ? 'valid' : 'invalid-payload';
}

describe('message faults', () => {
  it('breaks a payload in exactly the intended way', () => {
    expect(classify(JSON.stringify(parts))).toBe('valid');
    expect(classify(buildMalformedBody('invalid-json', parts))).toBe('invalid-json');
    expect(classify(buildMalformedBody('schema-invalid', parts))).toBe('invalid-payload');
    expect(classify(buildMalformedBody('not-utf8', parts))).toBe('not-utf8');
  });

  it('pads an oversize payload to exactly the requested bytes, still valid telemetry', () => {
    const body = buildOversizeBody(parts, 300_000);
    expect(Buffer.byteLength(body)).toBe(300_000);
    expect(classify(body)).toBe('valid');
  });
});
