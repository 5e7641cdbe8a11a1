import { envSensorProfile } from './env-sensor.js';
import { machineProfile } from './machine.js';
import type { Profile } from './profile.js';

export type { MetricSpec, Profile, SignalInput, SignalSource } from './profile.js';

/** Every device profile by name; a scenario names one per device group. */
export const PROFILES = {
  machine: machineProfile,
  'env-sensor': envSensorProfile,
} as const satisfies Record<string, Profile>;

export type ProfileName = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as [ProfileName, ...ProfileName[]];
export const DEFAULT_PROFILE: ProfileName = 'machine';
