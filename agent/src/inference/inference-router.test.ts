import { describe, expect, it } from 'vitest';
import { pickStage } from './inference-router.js';

const stage = (name: string, metrics: string[]) => ({ name, featureSpec: { metrics } });

describe('pickStage: which serving model a new one replaces', () => {
  const machine = stage('anomaly-machine', ['temperature', 'vibration', 'pressure', 'current']);
  const env = stage('anomaly-env-sensor', ['temperature', 'humidity']);

  it('replaces the model of the same name, else the one reading the same metrics (in any order)', () => {
    expect(pickStage([machine, env], { name: 'anomaly-env-sensor', metrics: ['humidity'] }, false)).toBe(env);
    expect(pickStage([machine, env], { name: 'anomaly-pca', metrics: ['current', 'pressure', 'vibration', 'temperature'] }, false)).toBe(machine);
  });

  it('adds a model of other metrics beside the others; a swap (replaceSole) replaces the only model serving', () => {
    expect(pickStage([machine, env], { name: 'anomaly-pump', metrics: ['flow', 'pressure'] }, true)).toBeUndefined();
    expect(pickStage([machine], { name: 'anomaly-env-sensor', metrics: ['temperature', 'humidity'] }, false)).toBeUndefined();
    expect(pickStage([machine], { name: 'anomaly-env-sensor', metrics: ['temperature', 'humidity'] }, true)).toBe(machine);
    expect(pickStage([], { name: 'x', metrics: ['y'] }, true)).toBeUndefined();
  });
});
