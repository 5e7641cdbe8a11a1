import { clamp, createSlowNoise, type Profile } from './profile.js';

const SECONDS_PER_DAY = 86_400;
const TWO_PI = 2 * Math.PI;

/**
 * An indoor environment sensor: temperature with a daily cycle and slow drift, relative
 * humidity falling when the air warms up (same moisture, warmer air) plus its own wander.
 */
export const envSensorProfile: Profile = {
  name: 'env-sensor',
  description: 'indoor environment sensor: temperature, humidity',
  metrics: [
    { name: 'temperature', unit: '°C', decimals: 2, spread: 0.5, min: -40, max: 85 },
    { name: 'humidity', unit: '%RH', decimals: 1, spread: 2, min: 0, max: 100 },
  ],
  anomalyMetrics: ['temperature', 'humidity'],
  createSignal({ params, noise, intervalS }) {
    const meanC = params.uniform(19, 24);
    const dailyAmplitudeC = params.uniform(1, 2.5);
    const dailyPhase = params.uniform(0, TWO_PI);
    const meanHumidity = params.uniform(35, 55);
    const drift = createSlowNoise(noise, 0.3, 1_800, intervalS);
    const humidityWander = createSlowNoise(noise, 2, 900, intervalS);
    let index = 0;
    return {
      next() {
        const tS = index * intervalS;
        index += 1;
        const temperature = meanC + dailyAmplitudeC * Math.sin((TWO_PI * tS) / SECONDS_PER_DAY + dailyPhase) + drift() + 0.03 * noise.normal();
        const humidity = clamp(meanHumidity - 1.5 * (temperature - meanC) + humidityWander() + 0.2 * noise.normal(), 0, 100);
        return { temperature, humidity };
      },
    };
  },
};
