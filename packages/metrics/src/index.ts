export * from './registry.ts';
export * from './shared-gauges.ts';
export * from './alerts.ts';
export * from './replica-gauges.ts';
