export * from './config.ts';
export * from './duration.ts';
export * from './errors.ts';
export * from './ids.ts';
export * from './job.ts';
export * from './queue-catalog.ts';
export * from './schedule.ts';
export * from './schemas.ts';
