/**
 * Rolling restart behind nginx: SIGTERM every api process in turn under a steady request load —
 * no client request fails; then SIGTERM every worker in turn while schedules fire — no occurrence
 * is lost and none is delivered under two ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { eventually } from '@tickwork/testkit';
import { judge, report, startScenario, type Scenario } from './lib/scenario.ts';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await startScenario({ apis: 3, workers: 2, nginx: true });
}, 60_000);

afterAll(async () => {
  await scenario?.close();
}, 60_000);

/** Client loops through nginx until stopped; counts every answer that is not a success. */
function steadyLoad(url: string, token: string, jobId: string, lanes = 6) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  let created = 0;
  const lane = async (n: number) => {
    while (running) {
      const write = n === 0;
      try {
        const response = write
          ? await request(`${url}/v1/jobs`, {
              method: 'POST',
              headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
              body: JSON.stringify({
                name: `load-${created++}`,
                paused: true,
                schedule: { every: '1h' },
                target: { url: 'http://127.0.0.1:9/' },
              }),
            })
          : await request(`${url}/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${token}` } });
        await response.body.dump();
        if (response.statusCode === (write ? 201 : 200)) ok++;
        else failures.push(`${write ? 'POST' : 'GET'} ${response.statusCode}`);
      } catch (error) {
        failures.push(`${write ? 'POST' : 'GET'} ${(error as Error).message}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)));
  return {
    async stop() {
      running = false;
      await done;
      return { ok, failures };
    },
  };
}

describe('chaos: rolling restart', () => {
  it('SIGTERM every api in turn behind nginx under load: 0 failed requests', async () => {
    const { fleet, token } = scenario;
    const [job] = await scenario.createEveryJobs(1, 60_000, 'rolling-api');
    const load = steadyLoad(fleet.url, token, job!.id);
    await new Promise((r) => setTimeout(r, 1_000));
    for (let i = 0; i < fleet.apis.length; i++) {
      await fleet.restartApi(i, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 1_500));
    }
    const { ok, failures } = await load.stop();
    report('rolling-api', { restarts: fleet.apis.length, requests: ok + failures.length, failed: failures.length });
    expect(ok).toBeGreaterThan(200);
    expect(failures).toEqual([]);
  }, 120_000);

  it('SIGTERM every worker in turn while 30 schedules fire every 2 s: 0 lost', async () => {
    const { fleet, sink } = scenario;
    sink.respond = () => ({ status: 200, delayMs: 200 + Math.floor(Math.random() * 300) });
    const jobs = await scenario.createEveryJobs(30, 2_000, 'rolling-worker');
    const from = Date.now() + 2_000;
    await sink.waitFor(
      (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= from)),
      15_000,
      'every job firing',
    );
    for (let i = 0; i < fleet.workers.length; i++) {
      await fleet.restartWorker(i, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 2_000));
    }
    const until = Date.now();
    const verdict = await eventually(
      async () => {
        const v = judge({ jobs, ledger: await scenario.ledger(), from, until });
        return v.lost.length === 0 && v.notSucceeded.length === 0 && v.undelivered.length === 0 ? v : undefined;
      },
      30_000,
      'every occurrence of the restart window to succeed',
    );
    report('rolling-worker', {
      restarts: fleet.workers.length,
      occurrences: verdict.expected,
      lost: verdict.lost.length,
      maxLatenessMs: verdict.maxLatenessMs,
    });
    expect(verdict.lost).toEqual([]);
    expect(verdict.twoIds).toEqual([]);
    expect(verdict.unknownIds).toEqual([]);
  }, 120_000);
});
