export * from './duration.js';
export * from './desired-state.js';
export * from './rollout.js';
export * from './api.js';
