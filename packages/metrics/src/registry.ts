/**
 * A Prometheus registry per process (or per app in tests): Node's default process metrics plus
 * whatever the caller adds. prom-client's global registry is avoided so several apps in one
 * test process never collide on a metric name.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Fire lag buckets, 1 ms to 60 s: a healthy fleet sits in the low milliseconds (Redis `hz 100`),
 * a starved one in seconds; the alert's 5 s threshold falls on a bucket boundary.
 */
export const FIRE_LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Request and callback durations: 5 ms to the longest callback timeout Tickwork allows. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
