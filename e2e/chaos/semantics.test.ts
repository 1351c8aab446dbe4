/**
 * The job lifecycle (PATCH, pause, resume, trigger, delete) racing the workers:
 * - stale version: update a job while its occurrences are in flight; no occurrence of the old
 *   version is delivered after the update is acknowledged;
 * - model test: fast-check races create / update / pause / resume / delete / trigger against the
 *   workers, and after each reconcile pass Postgres and Redis agree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Queue, type ConnectionOptions } from 'bullmq';
import { sql } from 'kysely';
import { redisOptionsFrom, FIRE_QUEUE, MAINTENANCE_QUEUE, schedulerIdOf } from '@tickwork/queue';
import { call, eventually, testBaseUrls } from '@tickwork/testkit';
import { startScenario, type Scenario } from './lib/scenario.ts';

const RECONCILE_INTERVAL_MS = 2_000;
let scenario: Scenario;

beforeAll(async () => {
  scenario = await startScenario({
    apis: 1,
    workers: 2,
    // It reads the fire and maintenance queues itself: always on one Redis.
    redisUrl: testBaseUrls().redisUrl,
    // Every pass a sweep: the model test checks that passes converge on every kind of drift, the
    // orphans of deleted jobs too, which only a sweep finds (the steady pass has its own tests).
    env: { RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS), RECONCILE_SWEEP_INTERVAL_MS: '0' },
  });
}, 60_000);

afterAll(async () => {
  await scenario?.close();
}, 60_000);

describe('chaos: job lifecycle against the workers', () => {
  it('delivers no occurrence of the old version after an update is acknowledged', async () => {
    const { sink, token, api } = scenario;
    sink.respond = () => ({ status: 200, delayMs: 100 });
    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'versioned', schedule: { everyMs: 1_000 }, target: { url: `${sink.url}/old` } },
    });
    expect(created.status).toBe(201);
    await sink.waitFor((r) => r.filter((c) => c.path === '/old').length >= 3, 15_000, 'the old version firing');

    for (let round = 0; round < 5; round++) {
      const path = round % 2 === 0 ? '/new' : '/old';
      const job = await call(api, 'GET', `/v1/jobs/${created.body.id}`, { token });
      const updated = await call(api, 'PATCH', `/v1/jobs/${created.body.id}`, {
        token,
        headers: { 'if-match': String(job.headers.etag) },
        body: { target: { url: `${sink.url}${path}` } },
      });
      expect(updated.status).toBe(200);
      const acknowledgedAt = Date.now();
      const stale = round % 2 === 0 ? '/old' : '/new';
      await sink.waitFor(
        (r) => r.filter((c) => c.path === path && c.at > acknowledgedAt).length >= 2,
        15_000,
        'the new version firing',
      );
      // An occurrence sent before the acknowledgement may still arrive within its 100 ms delay.
      const late = sink.received.filter((c) => c.path === stale && c.at > acknowledgedAt + 500);
      expect(late).toEqual([]);
      const dueAfter = sink.received.filter(
        (c) => c.path === stale && Date.parse(String(c.headers['tickwork-scheduled-for'])) > acknowledgedAt,
      );
      expect(dueAfter).toEqual([]);
    }
  }, 120_000);

  it('keeps Postgres and Redis in agreement after each reconcile, whatever the api is asked (model test)', async () => {
    const { token, api, sink } = scenario;
    const connection = redisOptionsFrom(scenario.env.REDIS_URL, 'worker') as ConnectionOptions;
    const fire = new Queue(FIRE_QUEUE, { connection, prefix: scenario.env.BULLMQ_PREFIX });
    const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix: scenario.env.BULLMQ_PREFIX });
    let names = 0;
    type Model = { ids: string[] };
    const pick = (model: Model, n: number) => (model.ids.length ? model.ids[n % model.ids.length] : undefined);
    const commands = [
      fc.constant(async (model: Model) => {
        const r = await call(api, 'POST', '/v1/jobs', {
          token,
          body: { name: `model-${++names}`, schedule: { everyMs: 1_000 }, target: { url: `${sink.url}/model` } },
        });
        expect(r.status).toBe(201);
        model.ids.push(r.body.id);
      }),
      ...(['pause', 'resume', 'trigger'] as const).map((action) =>
        fc.nat().map((n) => async (model: Model) => {
          const id = pick(model, n);
          if (!id) return;
          const r = await call(api, 'POST', `/v1/jobs/${id}/${action}`, { token });
          // A delete racing in the same group may have taken the job away: 404 is an answer too.
          expect([200, 202, 404, 409]).toContain(r.status);
        }),
      ),
      fc.tuple(fc.nat(), fc.integer({ min: 1, max: 5 })).map(([n, seconds]) => async (model: Model) => {
        const id = pick(model, n);
        if (!id) return;
        const r = await call(api, 'PATCH', `/v1/jobs/${id}`, {
          token,
          body: { schedule: { everyMs: seconds * 1_000 } },
        });
        expect([200, 404]).toContain(r.status);
      }),
      fc.nat().map((n) => async (model: Model) => {
        const id = pick(model, n);
        if (!id) return;
        expect([204, 404]).toContain((await call(api, 'DELETE', `/v1/jobs/${id}`, { token })).status);
        model.ids = model.ids.filter((x) => x !== id);
      }),
    ];
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(...commands), { minLength: 3, maxLength: 12 }), async (steps) => {
          const model: Model = { ids: [] };
          // Racing: the commands go out concurrently, in small groups, while the workers fire.
          for (let i = 0; i < steps.length; i += 3) await Promise.all(steps.slice(i, i + 3).map((step) => step(model)));
          const issuedAt = Date.now();
          await eventually(
            async () => {
              const passes = await maintenance.getJobs(['completed'], 0, 50);
              // Passes that did the work: one that found another still running returns skipped.
              const after = passes.filter((p) => {
                const report = p.returnvalue as { now?: number; skipped?: string } | undefined;
                return p.name === 'reconcile' && !report?.skipped && (report?.now ?? 0) > issuedAt;
              });
              // Two passes: one that Redis may be ahead of Postgres in is judged again by the next.
              return after.length >= 2 ? true : undefined;
            },
            RECONCILE_INTERVAL_MS * 8,
            'two reconcile passes after the commands',
          );
          const rows = await sql<{
            id: string;
            version: number;
            state: string;
          }>`select id, version, state from jobs`.execute(scenario.db.db);
          const expected = rows.rows
            .filter((r) => r.state === 'active')
            .map((r) => schedulerIdOf(r.id, r.version))
            .sort();
          const actual = (await fire.getJobSchedulers(0, -1)).map((s) => s.key).sort();
          expect(actual, JSON.stringify(rows.rows)).toEqual(expected);
          for (const id of model.ids) await call(api, 'DELETE', `/v1/jobs/${id}`, { token });
        }),
        // Each run waits for two reconcile passes: no shrinking, the first counterexample is reported.
        { numRuns: 4, endOnFailure: true },
      );
    } finally {
      await fire.close();
      await maintenance.close();
    }
  }, 240_000);
});
