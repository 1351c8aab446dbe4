export * from './database.ts';
export * from './migrate.ts';
export * from './types.ts';
export * from './queries/api-keys.ts';
export * from './queries/cursor.ts';
export * from './queries/jobs.ts';
export * from './queries/runs.ts';
export * from './queries/services.ts';
