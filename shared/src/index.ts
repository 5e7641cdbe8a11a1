export * from './errors.js';
export * from './topics.js';
export * from './subjects.js';
export * from './schemas/device.js';
export * from './schemas/uplink.js';
export * from './config/load-config.js';
export * from './config/agent-config.js';
export * from './logger.js';
