export * from './catalog.ts';
export * from './connection.ts';
export * from './fire-queue.ts';
export * from './eviction.ts';
export * from './layout.ts';
export * from './shards.ts';
