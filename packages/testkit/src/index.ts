/**
 * The test kit: what the package tests, the end-to-end tests, the chaos suite, the benchmarks and
 * the local fleet share. Real things only: processes started the way production starts them, a
 * database and a BullMQ prefix per test file, servers of a test's own, a callback receiver.
 */
export * from './database.ts';
export * from './fleet.ts';
export * from './image.ts';
export * from './metrics.ts';
export * from './ports.ts';
export * from './processes.ts';
export * from './redis.ts';
export * from './redis-cluster.ts';
export * from './sink.ts';
export * from './tcp-proxy.ts';
export * from './pg-replica.ts';
