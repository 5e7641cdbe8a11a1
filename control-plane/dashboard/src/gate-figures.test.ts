import { describe, expect, it } from 'vitest';
import type { GateResult, RolloutView } from './api-types.js';
import { gateFigures, gateName } from './gate-figures.js';

const gates: RolloutView['spec']['gates'] = {
  applied: true,
  healthy: true,
  inferenceErrorRate: { max: 0.01, minRows: 100 },
  anomalyRate: { maxRatio: 3, minRatio: 0.2, floorRate: 0.01, minRows: 100, minExpectedAnomalies: 10 },
};

const result = (gate: GateResult['gate'], values: GateResult['values'], outcome: GateResult['outcome'] = 'pass'): GateResult => ({ gate, outcome, values, detail: '' });

describe('gate figures', () => {
  it('put the anomaly rate beside its upper bound, and the lower bound only once it was judged', () => {
    const values = {
      rows: 1000,
      anomalies: 2,
      rate: 0.002,
      baselineRows: 3000,
      baselineAnomalies: 3,
      baselineRate: 0.001,
      baselineSource: '2 agent(s) not yet updated',
      maxRate: 0.03,
      minRatio: 0.2,
      expectedAnomalies: 1,
    };
    expect(gateFigures(result('anomalyRate', values), gates)).toEqual([
      { label: 'anomaly rate', value: '0.2 %', limit: 'max 3 %', note: '2 of 1,000 rows' },
      { label: 'baseline rate', value: '0.1 %', note: '3 of 3,000 rows, 2 agent(s) not yet updated' },
      { label: 'rows', value: '1,000', limit: 'min 100' },
    ]);
    const judged = gateFigures(result('anomalyRate', { ...values, baselineRate: 0.05, expectedAnomalies: 50 }), gates)[0];
    expect(judged?.limit).toBe('max 3 %, min 1 %');
    // Without the spec the figures the values carry still show.
    expect(gateFigures(result('anomalyRate', values))).toHaveLength(2);
  });

  it('read counts against the failure budget, and the error rate against its maximum', () => {
    expect(gateFigures(result('applied', { agents: 3, applied: 2, failed: 1, budget: 0 }, 'fail'))).toEqual([
      { label: 'applied', value: '2 of 3' },
      { label: 'failed', value: '1', limit: 'budget 0' },
    ]);
    expect(gateFigures(result('inferenceErrorRate', { rows: 990, errors: 10, errorRate: 0.01, max: 0.01, minRows: 100 }))[0]).toEqual({ label: 'error rate', value: '1 %', limit: 'max 1 %' });
    // Not measured (no rows yet): a dash, not 0.
    expect(gateFigures(result('anomalyRate', { rows: 0, anomalies: 0, rate: null, maxRate: null }, 'inconclusive'))[0]?.value).toBe('–');
  });

  it('show a gate this dashboard does not know as it came', () => {
    const unknown = { gate: 'latency', outcome: 'pass', values: { p99Ms: 12.345, source: 'x', none: null }, detail: '' } as unknown as GateResult;
    expect(gateFigures(unknown)).toEqual([
      { label: 'p99Ms', value: '12.35' },
      { label: 'source', value: 'x' },
      { label: 'none', value: '–' },
    ]);
    expect(gateName('latency')).toBe('latency');
    expect(gateName('anomalyRate')).toBe('anomaly rate');
  });
});
