import type { CurvePoint, DetectionStats } from './alarms.js';
import type { ScenarioEvaluation } from './evaluate-scenario.js';

// The evaluation as text (no onnxruntime here: `models build` prints curves too).

function percent(x: number, digits = 1): string {
  return Number.isNaN(x) ? 'n/a' : `${(x * 100).toFixed(digits)}%`;
}

function seconds(x: number): string {
  return Number.isNaN(x) ? '-' : `${x.toFixed(0)} s`;
}

function detectionTable(rows: Record<string, DetectionStats>, all: DetectionStats | undefined): string[] {
  const line = (name: string, s: DetectionStats): string =>
    `  ${name.padEnd(22)} ${String(s.episodes).padStart(8)} ${String(s.detected).padStart(8)} ${percent(s.detectionRate).padStart(7)} ${seconds(s.delayP50S).padStart(9)} ${seconds(s.delayP95S).padStart(9)} ${percent(s.beforeEndRate).padStart(10)}`;
  return [
    `  ${'anomaly type'.padEnd(22)} ${'episodes'.padStart(8)} ${'detected'.padStart(8)} ${'rate'.padStart(7)} ${'p50 delay'.padStart(9)} ${'p95 delay'.padStart(9)} ${'before end'.padStart(10)}`,
    ...Object.entries(rows).map(([type, s]) => line(type, s)),
    ...(all === undefined ? [] : [line('all', all)]),
  ];
}

/** The trade-off curve as a table (every `step`-th point and the model's threshold). */
export function formatCurve(curve: readonly CurvePoint[], threshold: number, step = 4): string[] {
  const chosen = curve.findIndex((p) => p.threshold === threshold);
  return [
    `  ${'threshold'.padStart(10)} ${'detected'.padStart(9)} ${'worst type'.padStart(10)} ${'false alarms/device-day'.padStart(24)}`,
    ...curve
      .filter((_, i) => i % step === 0 || i === chosen)
      .map(
        (p) =>
          `  ${p.threshold.toPrecision(4).padStart(10)} ${percent(p.detectionRate).padStart(9)} ${percent(p.worstTypeDetectionRate).padStart(10)} ${p.falseAlarmsPerDeviceDay.toFixed(2).padStart(24)}${p.threshold === threshold ? '   <- manifest threshold' : ''}`,
      ),
  ];
}

/** The human-readable evaluation: per model, detection per type, cut-off episodes, false alarms, the trade-off curve. */
export function formatEvaluation(e: ScenarioEvaluation): string {
  const lines = [`scenario ${e.scenario}${e.seed === undefined ? '' : ` (seed ${e.seed})`}: ${e.messages} messages`];
  if (e.unroutedDevices.length > 0) lines.push(`${e.unroutedDevices.length} devices fit no model (their ${e.unroutedEpisodes} episodes are not evaluated): ${e.unroutedDevices.slice(0, 5).join(', ')}${e.unroutedDevices.length > 5 ? ', ...' : ''}`);
  for (const m of e.models) {
    lines.push(
      '',
      `model ${m.model.name}@${m.model.version}: ${m.devices} devices, ${m.deviceDays.toFixed(2)} device-days, ${m.windows} windows, threshold ${m.threshold.toPrecision(6)}, stride ${m.strideSamples} samples`,
      m.trainingDevicesKnown
        ? m.seenInTraining === 0
          ? '  evaluation devices: none of them seen in training'
          : `  evaluation devices: ${m.seenInTraining} of ${m.devices} SEEN IN TRAINING (--allow-training-devices)`
        : '  evaluation devices: training devices unknown (no training report next to the manifest)',
      '  detected while active: a flagged window ends on the episode or at most one stride after it; before end: one ends on the episode',
      '  (the stride after an episode may see a fault step back to normal: "before end" does not count that window)',
      ...detectionTable(m.perType, m.all),
    );
    if (Object.keys(m.cutOff).length > 0) lines.push('  cut off by the end of the recording (apart):', ...detectionTable(m.cutOff, undefined));
    if (m.unscored > 0) lines.push(`  ${m.unscored} episodes no window could see (too close to the end of the recording)`);
    lines.push(
      `  false alarms: ${m.falseAlarmEvents} alarm events touching no episode in ${m.deviceDays.toFixed(2)} device-days = ${m.falseAlarmsPerDeviceDay.toFixed(2)} per device-day (${m.alarmEvents} alarm events in all); ${percent(m.flaggedNormalShare, 3)} of the normal windows flagged`,
      '  trade-off (detection of complete episodes while active vs false alarms):',
      ...formatCurve(m.curve, m.threshold),
      ...m.missed.slice(0, 10).map((x) => `  missed: ${x.type} on ${x.deviceId} ${x.metric} seq ${x.startSeq}-${x.endSeq} (${x.durationS.toFixed(0)} s, highest score ${x.maxScore === undefined ? 'n/a' : x.maxScore.toPrecision(3)})`),
      ...m.falseAlarms.slice(0, 10).map((f) => `  false alarm: ${f.deviceId} ${new Date(f.startTs).toISOString()} - ${new Date(f.endTs).toISOString()} (peak ${f.peakScore.toPrecision(3)})`),
    );
  }
  return `${lines.join('\n')}\n`;
}
