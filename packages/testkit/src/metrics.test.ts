import { Counter, Histogram } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRegistry, FIRE_LAG_BUCKETS } from '@tickwork/metrics';
import { parseExposition, sampleValue } from './metrics.ts';

describe('parseExposition', () => {
  it('reads what prom-client writes: families, types, labelled samples, histogram series', async () => {
    const registry = createRegistry();
    const counter = new Counter({
      name: 'demo_total',
      help: 'a "quoted" help',
      labelNames: ['status'],
      registers: [registry],
    });
    const histogram = new Histogram({
      name: 'demo_seconds',
      help: 'h',
      buckets: FIRE_LAG_BUCKETS,
      registers: [registry],
    });
    counter.inc({ status: 'a "b"\\c' }, 2);
    histogram.observe(0.003);

    const families = parseExposition(await registry.metrics());

    expect(families.get('demo_total')?.type).toBe('counter');
    expect(sampleValue(families, 'demo_total', { status: 'a "b"\\c' })).toBe(2);
    expect(families.get('demo_seconds')?.type).toBe('histogram');
    expect(sampleValue(families, 'demo_seconds_bucket', { le: '0.0025' })).toBe(0);
    expect(sampleValue(families, 'demo_seconds_bucket', { le: '0.005' })).toBe(1);
    expect(sampleValue(families, 'demo_seconds_bucket', { le: '60' })).toBe(1);
    expect(sampleValue(families, 'demo_seconds_count')).toBe(1);
    // Node's default process metrics come with every registry.
    expect(families.has('process_cpu_user_seconds_total')).toBe(true);
    expect(families.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('refuses a line that is not a sample', () => {
    expect(() => parseExposition('# TYPE x gauge\nx{a="1" 3\n')).toThrow(/not a Prometheus sample/);
  });
});
