// The health gates of a wave (DESIGN section 3), judged from what the fleet reports. Pure.
// Each gate is pass, fail or inconclusive, with the values it was judged on.
import type { GateOutcome, GateResult, RolloutSpec } from '@outpost/shared';

/** An agent's inference counts for one model since it became active, from its heartbeat. */
export interface InferenceCounts {
  /** `name@version`. */
  model: string;
  rows: number;
  anomalies: number;
  /** Rows that could not be scored (inference process down, a failed batch). */
  errors: number;
}

/** One agent of the wave as the gates see it after the soak. */
export interface WaveMember {
  agentId: string;
  /** Applied the change and runs it. */
  applied: boolean;
  /** Refused it: why (a code and reason), or missed the deadline. */
  failure?: string | undefined;
  online: boolean;
  degraded: boolean;
  /** Counts for the rollout's model since the agent swapped to it. */
  counts?: InferenceCounts | undefined;
}

export interface GateInput {
  spec: RolloutSpec;
  members: readonly WaveMember[];
  /** Failures the wave may have (failureBudget for its size). */
  budget: number;
  /** `name@version` of the model the rollout brings (anomaly and error gates need it). */
  model: string | undefined;
  /** Anomaly counts of the agents not yet updated, or of the updated ones before their update (last wave). */
  baseline: { rows: number; anomalies: number; source: string };
}

const rate = (part: number, whole: number): number | null => (whole > 0 ? part / whole : null);
const round = (value: number | null): number | null => (value === null ? null : Math.round(value * 1e6) / 1e6);

function result(gate: GateResult['gate'], outcome: GateOutcome, values: GateResult['values'], detail: string): GateResult {
  return { gate, outcome, values, detail };
}

/** Judges every configured gate of a wave; `failedAgents` are the agents that count against the budget, with why. */
export function evaluateGates(input: GateInput): { results: GateResult[]; failedAgents: { agentId: string; reason: string }[] } {
  const { spec, members, budget } = input;
  const results: GateResult[] = [];
  const failed = new Map<string, string>();

  // applied: refusals and missed deadlines count against the failure budget.
  for (const m of members) if (!m.applied) failed.set(m.agentId, m.failure ?? 'did not apply the change');
  const notApplied = failed.size;
  results.push(
    result(
      'applied',
      notApplied <= budget ? 'pass' : 'fail',
      { agents: members.length, applied: members.length - notApplied, failed: notApplied, budget },
      notApplied === 0 ? `all ${members.length} applied` : `${notApplied} of ${members.length} did not apply (budget ${budget})`,
    ),
  );

  if (spec.gates.healthy) {
    let unhealthy = 0;
    for (const m of members) {
      if (!m.applied) continue;
      if (!m.online || m.degraded) {
        unhealthy++;
        failed.set(m.agentId, m.online ? 'degraded after applying' : 'offline after applying');
      }
    }
    // One budget for every failed agent, whatever failed it; but this gate fails only for its own
    // findings (refusals are the applied gate's to report).
    results.push(
      result(
        'healthy',
        unhealthy === 0 || failed.size <= budget ? 'pass' : 'fail',
        { applied: members.length - notApplied, unhealthy, failed: failed.size, budget },
        unhealthy === 0
          ? 'every updated agent online and not degraded'
          : `${unhealthy} updated agent(s) offline or degraded${notApplied === 0 ? '' : `, ${notApplied} did not apply`}: ${failed.size} failed agent(s), budget ${budget}`,
      ),
    );
  }

  const counted = members.filter((m) => m.applied && input.model !== undefined && m.counts?.model === input.model);
  const rows = counted.reduce((n, m) => n + m.counts!.rows, 0);
  const anomalies = counted.reduce((n, m) => n + m.counts!.anomalies, 0);
  const errors = counted.reduce((n, m) => n + m.counts!.errors, 0);

  const errorGate = spec.gates.inferenceErrorRate;
  if (errorGate !== undefined) {
    const errorRate = rate(errors, rows + errors);
    const values = { rows, errors, errorRate: round(errorRate), max: errorGate.max, minRows: errorGate.minRows };
    if (rows + errors < errorGate.minRows) results.push(result('inferenceErrorRate', 'inconclusive', values, `only ${rows + errors} rows scored, ${errorGate.minRows} needed`));
    else if ((errorRate ?? 0) > errorGate.max) results.push(result('inferenceErrorRate', 'fail', values, `error rate ${(errorRate! * 100).toFixed(2)} % above ${(errorGate.max * 100).toFixed(2)} %`));
    else results.push(result('inferenceErrorRate', 'pass', values, `error rate ${((errorRate ?? 0) * 100).toFixed(2)} %`));
  }

  const anomalyGate = spec.gates.anomalyRate;
  if (anomalyGate !== undefined) {
    const updated = rate(anomalies, rows);
    const base = rate(input.baseline.anomalies, input.baseline.rows);
    const upper = base === null ? null : Math.max(anomalyGate.maxRatio * base, anomalyGate.floorRate);
    const expected = base === null ? 0 : base * rows;
    const values = {
      rows,
      anomalies,
      rate: round(updated),
      baselineRows: input.baseline.rows,
      baselineAnomalies: input.baseline.anomalies,
      baselineRate: round(base),
      baselineSource: input.baseline.source,
      maxRate: round(upper),
      minRatio: anomalyGate.minRatio,
      expectedAnomalies: round(expected),
    };
    if (rows < anomalyGate.minRows || input.baseline.rows < anomalyGate.minRows) {
      results.push(result('anomalyRate', 'inconclusive', values, `too few rows to compare (${rows} updated, ${input.baseline.rows} baseline; ${anomalyGate.minRows} needed each)`));
    } else if (updated! > upper!) {
      results.push(result('anomalyRate', 'fail', values, `flags ${(updated! * 100).toFixed(2)} % of rows, above ${(upper! * 100).toFixed(2)} % (${anomalyGate.maxRatio}x the ${input.baseline.source})`));
    } else if (expected >= anomalyGate.minExpectedAnomalies && updated! < anomalyGate.minRatio * base!) {
      results.push(result('anomalyRate', 'fail', values, `flags ${(updated! * 100).toFixed(3)} % of rows where the ${input.baseline.source} flag ${(base! * 100).toFixed(3)} %: it hardly flags at all`));
    } else {
      results.push(result('anomalyRate', 'pass', values, `flags ${(updated! * 100).toFixed(3)} % of rows, ${input.baseline.source} ${(base! * 100).toFixed(3)} %`));
    }
  }

  return { results, failedAgents: [...failed].map(([agentId, reason]) => ({ agentId, reason })) };
}

/** A wave's verdict: any fail fails it, else any inconclusive pauses it for a human. */
export function waveOutcome(results: readonly GateResult[]): 'passed' | 'failed' | 'inconclusive' {
  if (results.some((r) => r.outcome === 'fail')) return 'failed';
  if (results.some((r) => r.outcome === 'inconclusive')) return 'inconclusive';
  return 'passed';
}
