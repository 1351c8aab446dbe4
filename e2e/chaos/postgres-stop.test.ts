/**
 * Postgres goes away for 20 s — cut by a TCP proxy of this file's own, which stands between the
 * fleet and the shared Postgres as Toxiproxy would. Throughout, every api answers 503
 * problem+json in under a second and /health/ready names Postgres; the workers take no
 * occurrence meanwhile, and afterwards every occurrence in flight at the cut succeeds under its
 * run id, each job catches up once (its misfire policy), and nothing is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startTcpProxy, testBaseUrls, type TcpProxy, eventually } from '@tickwork/testkit';
import { judge, report, scaled, startScenario, type Scenario } from './lib/scenario.ts';

let proxy: TcpProxy;
let scenario: Scenario;

beforeAll(async () => {
  const target = new URL(testBaseUrls().databaseUrl);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  scenario = await startScenario({ apis: 2, workers: 2, databaseUrlFor: (url) => proxy.urlThrough(url) });
}, 60_000);

afterAll(async () => {
  await proxy?.restore();
  await scenario?.close();
  await proxy?.close();
}, 60_000);

async function timedGet(url: string, token?: string) {
  const started = performance.now();
  const response = await request(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    type: String(response.headers['content-type']),
    body: JSON.parse(text),
    ms: performance.now() - started,
  };
}

describe('chaos: Postgres stops for 20 s', () => {
  it(
    'answers 503 in < 1 s throughout, pauses the workers, and loses nothing',
    async () => {
      const { sink, fleet, token } = scenario;
      sink.respond = () => ({ status: 200, delayMs: 300 });
      const jobs = await scenario.createEveryJobs(20, 2_000, 'pg');
      const from = Date.now() + 1_000;
      await sink.waitFor(
        (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= from)),
        15_000,
        'every job firing',
      );

      const cutAt = Date.now();
      await proxy.cut();
      let answered = 0;
      let slowest = 0;
      const outageEnds = cutAt + scaled(20_000);
      while (Date.now() < outageEnds) {
        for (const api of fleet.apis) {
          for (const check of [
            await timedGet(`${api.url}/v1/jobs`, token),
            await timedGet(`${api.url}/v1/jobs/${jobs[0]!.id}`, token),
          ]) {
            expect(check.status).toBe(503);
            expect(check.type).toMatch(/^application\/problem\+json/);
            expect(check.body).toMatchObject({ status: 503, code: 'unavailable' });
            expect(check.ms).toBeLessThan(1_000);
            slowest = Math.max(slowest, check.ms);
            answered++;
          }
          const ready = await timedGet(`${api.url}/health/ready`);
          expect(ready.status).toBe(503);
          expect(ready.body.checks).toMatchObject({ postgres: { status: 'down' }, redis: { status: 'ok' } });
        }
        for (const worker of fleet.workers) {
          const ready = await timedGet(`${worker.url}/health/ready`);
          expect(ready.status).toBe(503);
          expect(ready.body.checks.postgres.status).toBe('down');
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const deliveredDuringOutage = sink.received.filter((c) => c.at > cutAt + 2_000).length;
      await proxy.restore();
      const restoredAt = Date.now();

      // Every job fires again, every run in flight at the cut ends succeeded under its own id.
      const until = restoredAt + 6_000;
      const verdict = await eventually(
        async () => {
          if (Date.now() < until + 2_000) return undefined;
          const all = judge({ jobs, ledger: await scenario.ledger(), from, until });
          return all.notSucceeded.length === 0 && all.undelivered.length === 0 ? all : undefined;
        },
        90_000,
        'every run to succeed after Postgres is back',
      );
      const ledger = await scenario.ledger();
      const { runs } = ledger;
      const before = judge({ jobs, ledger, from, until: cutAt - 2_000 });
      const after = judge({ jobs, ledger, from: restoredAt + 3_000, until });
      // Slots of the outage no worker ever saw are recorded `missed`; the catch-ups are the rest.
      const catchUps = jobs.map(
        (j) =>
          runs.filter(
            (r) => r.jobId === j.id && r.scheduledFor > cutAt && r.scheduledFor < restoredAt && r.status !== 'skipped',
          ).length,
      );
      report('postgres-stop', {
        outageMs: restoredAt - cutAt,
        apiAnswers: answered,
        slowest503Ms: Math.round(slowest),
        deliveredDuringOutage,
        maxCatchUpsPerJob: Math.max(...catchUps),
        missedSlots: verdict.missed.length,
        lostOutsideGap: before.lost.length + after.lost.length,
        maxLatenessMs: verdict.maxLatenessMs,
      });
      expect(answered).toBeGreaterThan(20);
      expect(deliveredDuringOutage).toBe(0);
      expect(before.lost).toEqual([]);
      expect(after.lost).toEqual([]);
      expect(verdict.twoIds).toEqual([]);
      expect(verdict.unknownIds).toEqual([]);
      // Per job: the occurrence that waited out the outage in Redis (its one catch-up), and at most
      // one more that a worker had taken in the moment before it noticed and paused — in flight at
      // the cut, retried under its run id once Postgres was back.
      expect(Math.min(...catchUps)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...catchUps)).toBeLessThanOrEqual(2);
    },
    scaled(20_000) + 150_000,
  );
});
