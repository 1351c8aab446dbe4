export * from './deliver.ts';
export * from './fire/index.ts';
export * from './outbound-guard.ts';
export * from './prune.ts';
export * from './worker.ts';
export * from './alerts.ts';
export * from './metrics.ts';
export * from './reconcile.ts';
