import { DEFAULT_MAX_PACKET_BYTES } from '@outpost/shared';

/** How a malformed payload is broken; each makes the agent dead-letter it with its own reason. */
export const MalformedKind = {
  /** The valid JSON cut in half, as a truncated write would leave it (agent: invalid-json). */
  invalidJson: 'invalid-json',
  /** Valid JSON, a metric sent as a string (agent: invalid-payload). */
  schemaInvalid: 'schema-invalid',
  /** Valid JSON with two bytes that are no UTF-8 in the middle (agent: not-utf8). */
  notUtf8: 'not-utf8',
} as const;
export type MalformedKind = (typeof MalformedKind)[keyof typeof MalformedKind];
export const MALFORMED_KINDS = Object.values(MalformedKind) as [MalformedKind, ...MalformedKind[]];

/** The agent's reject reason each kind should produce (its dead letter and devices/{id}/errors answer). */
export const EXPECTED_REJECT_REASON: Readonly<Record<MalformedKind, string>> = {
  'invalid-json': 'invalid-json',
  'schema-invalid': 'invalid-payload',
  'not-utf8': 'not-utf8',
};

/** Default size of an oversize publish: 1 KiB over the agent's default maxPacketBytes. */
export const DEFAULT_OVERSIZE_BYTES = DEFAULT_MAX_PACKET_BYTES + 1024;

interface TelemetryParts {
  ts: number;
  seq: number;
  metrics: Record<string, number>;
}

/** The bytes of one malformed payload, built from the sample it replaces. */
export function buildMalformedBody(kind: MalformedKind, parts: TelemetryParts): string | Buffer {
  const valid = JSON.stringify(parts);
  switch (kind) {
    case MalformedKind.invalidJson:
      return valid.slice(0, Math.floor(valid.length / 2));
    case MalformedKind.schemaInvalid: {
      const [first] = Object.keys(parts.metrics);
      const metrics: Record<string, number | string> = { ...parts.metrics };
      if (first !== undefined) metrics[first] = String(parts.metrics[first]);
      return JSON.stringify({ ts: parts.ts, seq: parts.seq, metrics });
    }
    case MalformedKind.notUtf8: {
      const bytes = Buffer.from(valid, 'utf8');
      const middle = Math.floor(bytes.length / 2);
      return Buffer.concat([bytes.subarray(0, middle), Buffer.from([0xff, 0xfe]), bytes.subarray(middle)]);
    }
  }
}

/**
 * A valid telemetry payload padded to exactly `bytes` (an extra `padding` key the agent would
 * drop), so only its size is wrong.
 */
export function buildOversizeBody(parts: TelemetryParts, bytes: number): string {
  const head = JSON.stringify({ ts: parts.ts, seq: parts.seq, metrics: parts.metrics, padding: '' });
  const fill = Math.max(0, bytes - Buffer.byteLength(head));
  return `${head.slice(0, -2)}${'x'.repeat(fill)}"}`;
}
