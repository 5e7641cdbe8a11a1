// A wave's gate results as an operator reads them: each measured value beside the threshold it
// was held against ("anomaly rate 0.2 %, max 3 %"). The API gives each gate's values as a flat
// record (control-plane/src/rollouts/gates.ts names them); a gate or value this file does not
// know is shown as it came. Pure.
import type { GateResult, RolloutView } from './api-types.js';
import { formatCount, formatShare, formatValue } from './format.js';

export interface GateFigure {
  /** What was measured: "anomaly rate". */
  label: string;
  /** The measured value as shown. */
  value: string;
  /** The threshold it was held against ("max 3 %"); absent for a figure given as context. */
  limit?: string;
  /** Where the value comes from, when that matters ("3 agents not yet updated"). */
  note?: string;
}

export const GATE_NAMES: Readonly<Record<string, string>> = {
  applied: 'applied',
  healthy: 'healthy',
  inferenceErrorRate: 'inference error rate',
  anomalyRate: 'anomaly rate',
};

/** A gate's name as words; an unknown gate as it came. */
export function gateName(gate: string): string {
  return GATE_NAMES[gate] ?? gate;
}

type Values = GateResult['values'];

const numberOf = (values: Values, key: string): number | undefined => {
  const v = values[key];
  return typeof v === 'number' ? v : undefined;
};
const countOf = (values: Values, key: string): string => {
  const v = numberOf(values, key);
  return v === undefined ? '–' : formatCount(v);
};
const shareOf = (values: Values, key: string): string => formatShare(numberOf(values, key));

function genericFigures(values: Values): GateFigure[] {
  return Object.entries(values).map(([label, v]) => ({ label, value: v === null ? '–' : typeof v === 'number' ? formatValue(v) : v }));
}

/**
 * The figures of one gate result. `gates` (the rollout's spec) adds the thresholds the values
 * do not carry (the row minimum of the anomaly gate, whether its lower bound was judged).
 */
export function gateFigures(result: GateResult, gates?: RolloutView['spec']['gates']): GateFigure[] {
  const v = result.values;
  switch (result.gate) {
    case 'applied':
      return [
        { label: 'applied', value: `${countOf(v, 'applied')} of ${countOf(v, 'agents')}` },
        { label: 'failed', value: countOf(v, 'failed'), limit: `budget ${countOf(v, 'budget')}` },
      ];
    case 'healthy':
      return [
        { label: 'offline or degraded', value: countOf(v, 'unhealthy'), note: `of ${countOf(v, 'applied')} updated` },
        { label: 'failed', value: countOf(v, 'failed'), limit: `budget ${countOf(v, 'budget')}` },
      ];
    case 'inferenceErrorRate': {
      const scored = (numberOf(v, 'rows') ?? 0) + (numberOf(v, 'errors') ?? 0);
      return [
        { label: 'error rate', value: shareOf(v, 'errorRate'), limit: `max ${shareOf(v, 'max')}` },
        { label: 'rows', value: formatCount(scored), limit: `min ${countOf(v, 'minRows')}`, note: `${countOf(v, 'errors')} not scored` },
      ];
    }
    case 'anomalyRate': {
      const spec = gates?.anomalyRate;
      const baseRate = numberOf(v, 'baselineRate');
      const minRatio = numberOf(v, 'minRatio');
      const expected = numberOf(v, 'expectedAnomalies');
      // The lower bound (a model that hardly flags) is judged only once enough anomalies were expected.
      const lowerJudged = spec !== undefined && baseRate !== undefined && minRatio !== undefined && expected !== undefined && expected >= spec.minExpectedAnomalies;
      const limit = `max ${shareOf(v, 'maxRate')}${lowerJudged ? `, min ${formatShare(minRatio * baseRate)}` : ''}`;
      return [
        { label: 'anomaly rate', value: shareOf(v, 'rate'), limit, note: `${countOf(v, 'anomalies')} of ${countOf(v, 'rows')} rows` },
        {
          label: 'baseline rate',
          value: shareOf(v, 'baselineRate'),
          note: `${countOf(v, 'baselineAnomalies')} of ${countOf(v, 'baselineRows')} rows${typeof v['baselineSource'] === 'string' ? `, ${v['baselineSource']}` : ''}`,
        },
        ...(spec === undefined ? [] : [{ label: 'rows', value: countOf(v, 'rows'), limit: `min ${formatCount(spec.minRows)}` }]),
      ];
    }
    default:
      return genericFigures(v);
  }
}
