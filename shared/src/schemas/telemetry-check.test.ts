import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TelemetrySchema } from './device.js';
import { checkTelemetryFast } from './telemetry-check.js';

// Values that sit on every boundary of TelemetrySchema, mixed with arbitrary JSON.
const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, -1, 1.5, 8.64e15, 8.64e15 + 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 1e300),
);
const metricName = fc.oneof(fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/), fc.string(), fc.constantFrom('__proto__', 'constructor', '1a', '', 'a'.repeat(65)));
const metrics = fc.oneof(
  fc.dictionary(metricName, fc.oneof(number, fc.string(), fc.constant(null)), { maxKeys: 6 }),
  fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/), number, { minKeys: 250, maxKeys: 260 }),
  fc.jsonValue(),
);
const telemetryLike = fc.record(
  { ts: fc.oneof(number, fc.string()), seq: fc.oneof(number, fc.constant(null)), metrics, extra: fc.jsonValue() },
  { requiredKeys: [] },
);

describe('checkTelemetryFast', () => {
  it('agrees with TelemetrySchema: accepts exactly what it accepts, with the same value', () => {
    fc.assert(
      fc.property(fc.oneof(telemetryLike, fc.jsonValue()), (candidate) => {
        // Every input goes through JSON as a device payload does (own "__proto__" keys included).
        const json: unknown = JSON.parse(JSON.stringify(candidate) ?? 'null');
        const fast = checkTelemetryFast(json);
        const zod = TelemetrySchema.safeParse(json);
        expect(fast !== undefined).toBe(zod.success);
        if (fast !== undefined && zod.success) expect(JSON.stringify(fast)).toBe(JSON.stringify(zod.data));
      }),
      { numRuns: 5_000, seed: 20261125 },
    );
  }, 60_000);

  it('refuses a metric named __proto__ that JSON.parse keeps as an own key', () => {
    const json: unknown = JSON.parse('{"ts":1,"metrics":{"__proto__":1}}');
    expect(checkTelemetryFast(json)).toBeUndefined();
    expect(TelemetrySchema.safeParse(json).success).toBe(false);
  });
});
