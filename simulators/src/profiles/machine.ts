import { clamp, createSlowNoise, type Profile } from './profile.js';

const SECONDS_PER_DAY = 86_400;
const TWO_PI = 2 * Math.PI;

/**
 * A motor-driven machine (pump, fan, conveyor) with one telemetry message per tick. Load
 * drives the correlated metrics: current and the running-speed vibration rise with it, the
 * speed sags with motor slip, the winding temperature follows it with a thermal lag.
 *
 * - temperature (°C): ambient + daily cycle + load heating (first-order lag) + slow drift + noise
 * - vibration (mm/s RMS): RMS of three components (1x running speed scaled by load, 2x
 *   misalignment with a slow beat, a small bearing tone) + noise; ISO 10816 "good" range
 * - pressure (bar): discharge pressure rising with load, with pump pulsation
 * - current (A): idle + load share of the rated current
 * - voltage (V), rpm: supply and speed, small load effects
 */
export const machineProfile: Profile = {
  name: 'machine',
  description: 'motor-driven machine: temperature, vibration, pressure, current, voltage, rpm',
  metrics: [
    { name: 'temperature', unit: '°C', decimals: 2, spread: 1, min: -40, max: 150 },
    { name: 'vibration', unit: 'mm/s', decimals: 3, spread: 0.25, min: 0 },
    { name: 'pressure', unit: 'bar', decimals: 3, spread: 0.1, min: 0 },
    { name: 'current', unit: 'A', decimals: 2, spread: 0.5, min: 0 },
    { name: 'voltage', unit: 'V', decimals: 1, spread: 1, min: 0 },
    { name: 'rpm', unit: '1/min', decimals: 0, spread: 5, min: 0 },
  ],
  anomalyMetrics: ['temperature', 'vibration', 'pressure', 'current'],
  createSignal({ params, noise, intervalS }) {
    const ambientC = params.uniform(18, 24);
    const dailyAmplitudeC = params.uniform(1.5, 3.5);
    const dailyPhase = params.uniform(0, TWO_PI);
    const heatingAtFullLoadC = params.uniform(15, 30);
    const thermalTauS = params.uniform(300, 900);
    const ratedCurrentA = params.uniform(8, 16);
    const idleCurrentA = ratedCurrentA * params.uniform(0.15, 0.25);
    const basePressureBar = params.uniform(5, 7);
    const pressurePerLoadBar = params.uniform(0.5, 1);
    const pulsationPeriodS = params.uniform(20, 60);
    const runningSpeedMmS = params.uniform(1, 2);
    const misalignmentMmS = params.uniform(0.3, 0.8);
    const beatPeriodS = params.uniform(60, 300);
    const bearingMmS = params.uniform(0.1, 0.3);
    const bearingPeriodS = params.uniform(7, 20);
    const nominalRpm = params.pick([1480, 2960, 980]);
    const baseLoad = params.uniform(0.45, 0.75);
    const loadCycleAmplitude = params.uniform(0.08, 0.18);
    const loadCyclePeriodS = params.uniform(600, 1800);
    const loadCyclePhase = params.uniform(0, TWO_PI);

    const loadWander = createSlowNoise(noise, 0.06, 300, intervalS);
    const temperatureDrift = createSlowNoise(noise, 0.5, 3_600, intervalS);
    const thermalKeep = Math.exp(-intervalS / thermalTauS);
    let heatingC: number | undefined;
    let index = 0;

    return {
      next() {
        const tS = index * intervalS;
        index += 1;
        const load = clamp(baseLoad + loadCycleAmplitude * Math.sin((TWO_PI * tS) / loadCyclePeriodS + loadCyclePhase) + loadWander(), 0.05, 1);
        const heatingTargetC = heatingAtFullLoadC * load;
        heatingC = heatingC === undefined ? heatingTargetC : heatingTargetC + (heatingC - heatingTargetC) * thermalKeep;
        const dailyC = dailyAmplitudeC * Math.sin((TWO_PI * tS) / SECONDS_PER_DAY + dailyPhase);

        const oneX = runningSpeedMmS * (0.5 + 0.5 * load);
        const twoX = misalignmentMmS * (1 + 0.25 * Math.sin((TWO_PI * tS) / beatPeriodS));
        const bearing = bearingMmS * (1 + 0.5 * Math.sin((TWO_PI * tS) / bearingPeriodS));
        const vibrationRms = Math.sqrt((oneX * oneX + twoX * twoX + bearing * bearing) / 2);

        return {
          temperature: ambientC + dailyC + heatingC + temperatureDrift() + 0.05 * noise.normal(),
          vibration: Math.max(0, vibrationRms + 0.03 * noise.normal()),
          pressure: basePressureBar + pressurePerLoadBar * load + 0.05 * Math.sin((TWO_PI * tS) / pulsationPeriodS) + 0.01 * noise.normal(),
          current: Math.max(0, idleCurrentA + (ratedCurrentA - idleCurrentA) * load + 0.05 * noise.normal()),
          voltage: 230 - 1.5 * load + 0.4 * noise.normal(),
          rpm: nominalRpm * (1 - 0.02 * load) + 1.5 * noise.normal(),
        };
      },
    };
  },
};
