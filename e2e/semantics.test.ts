/**
 * Scheduling semantics with real processes: one api, two workers, a local sink. Each test uses a
 * job (and a sink path) of its own, so they share the fleet without seeing each other's callbacks.
 * Late or stale occurrences are put into BullMQ directly, exactly as a scheduler would have left
 * them (id `repeat:job:<id>:v<n>:<ms>`), so the misfire and superseded rules are tested
 * deterministically against real workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { dueAtOf } from '@tickwork/core';
import { OCCURRENCE_OPTIONS, type FireJobData } from '@tickwork/queue';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  eventually,
  startSink,
  type Received,
  type Sink,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let workers: Proc[];
let sink: Sink;
let token: string;
let queue: Queue<FireJobData>;

/** How the sink answers, per path: tests install their own. */
const answers = new Map<
  string,
  (r: Received, nth: number) => { status: number; delayMs?: number; headers?: Record<string, string> }
>();

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_sem');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  sink.respond = (received) => {
    const answer = answers.get(received.path);
    const nth = sink.received.filter((r) => r.path === received.path).length;
    return answer ? answer(received, nth) : { status: 200 };
  };
  const started = await Promise.all([startApi(env), startWorker(env), startWorker(env)]);
  api = started[0];
  workers = started.slice(1);
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'semantics' } });
  token = service.body.apiKey;
  queue = new Queue<FireJobData>('fire', {
    connection: new Redis(env.REDIS_URL, { maxRetriesPerRequest: null }),
    prefix: env.BULLMQ_PREFIX,
  });
});

afterAll(async () => {
  await queue?.close();
  await Promise.allSettled([api?.stop(), ...(workers ?? []).map((w) => w.stop())]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

const at = (path: string) => sink.received.filter((r) => r.path === path);

async function createJob(path: string, body: Record<string, unknown>) {
  const created = await call(api, 'POST', '/v1/jobs', {
    token,
    body: { name: path.slice(1), schedule: { cron: '0 0 1 1 *' }, target: { url: `${sink.url}${path}` }, ...body },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as { id: string; createdAt: string; version: number };
}

async function runsOf(jobId: string): Promise<Array<Record<string, any>>> {
  return (await call(api, 'GET', `/v1/jobs/${jobId}/runs?limit=100`, { token })).body.items;
}

async function runUntil(runId: string, done: (run: Record<string, any>) => boolean, what: string) {
  return eventually(
    async () => {
      const run = (await call(api, 'GET', `/v1/runs/${runId}`, { token })).body;
      return done(run) ? run : undefined;
    },
    30_000,
    what,
  );
}

/**
 * Puts an occurrence due at `ms` into BullMQ, to be processed now. BullMQ refuses custom ids of
 * the scheduler's own shape (`repeat:job:<id>:v<n>:<ms>`), so it is named `stale:<jobId>:<ms>`
 * and carries its instant as its timestamp: the worker reads the instant of an id that does not
 * carry one from `timestamp + delay`, the way it reads a delayed one-shot's.
 */
async function addOccurrence(jobId: string, version: number, ms: number) {
  await queue.add('fire', { jobId, version }, { ...OCCURRENCE_OPTIONS, jobId: `stale:${jobId}:${ms}`, timestamp: ms });
}

describe('overlap', () => {
  it('skip: two workers, a slow target: an occurrence due while a run is in flight is skipped', async () => {
    answers.set('/slow', () => ({ status: 200, delayMs: 2_500 }));
    const job = await createJob('/slow', { schedule: { every: '1s' }, overlap: 'skip' });
    const skipped = await eventually(
      async () => {
        const runs = await runsOf(job.id);
        const overlaps = runs.filter((r) => r.status === 'skipped' && r.skipReason === 'overlap');
        return overlaps.length >= 3 && runs.filter((r) => r.status === 'succeeded').length >= 2 ? runs : undefined;
      },
      30_000,
      'overlapping occurrences to be skipped',
    );
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    const callbacks = at('/slow');
    for (let i = 1; i < callbacks.length; i++) {
      // The next callback starts only after the previous one was answered (2.5 s later).
      expect(callbacks[i]!.at - callbacks[i - 1]!.at).toBeGreaterThanOrEqual(2_490);
    }
    const delivered = skipped.filter((r) => r.status !== 'skipped');
    expect(new Set(delivered.map((r) => r.id)).size).toBe(delivered.length);
    for (const run of skipped.filter((r) => r.status === 'skipped')) expect(run.attempts).toBe(0);
  });

  it('allow: runs of one job overlap', async () => {
    answers.set('/overlapping', () => ({ status: 200, delayMs: 2_500 }));
    const job = await createJob('/overlapping', { schedule: { every: '1s' } });
    await sink.waitFor((r) => r.filter((x) => x.path === '/overlapping').length >= 3, 20_000, 'overlapping callbacks');
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    const callbacks = at('/overlapping');
    expect(callbacks[2]!.at - callbacks[0]!.at).toBeLessThan(2_500);
  });
});

describe('retries', () => {
  it('retries 503 and 429 after their Retry-After, with the same webhook-id and counting attempts', async () => {
    answers.set('/flaky', (_r, nth) =>
      nth === 1
        ? { status: 503, headers: { 'retry-after': '2' } }
        : nth === 2
          ? { status: 429, headers: { 'retry-after': '1' } }
          : { status: 200 },
    );
    const job = await createJob('/flaky', { retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 100 } } });
    const triggered = await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token });
    expect(triggered.status).toBe(202);
    const run = await runUntil(
      triggered.body.id,
      (r) => r.status === 'succeeded',
      `the run to succeed; sink saw ${JSON.stringify(at('/flaky').map((c) => [c.at, c.headers['tickwork-attempt']]))}`,
    );
    expect(run).toMatchObject({ attempts: 3, httpStatus: 200, trigger: 'manual', error: null });
    const callbacks = at('/flaky');
    expect(callbacks.map((c) => c.headers['tickwork-attempt'])).toEqual(['1', '2', '3']);
    expect(new Set(callbacks.map((c) => c.headers['webhook-id']))).toEqual(new Set([triggered.body.id]));
    expect(callbacks.every((c) => c.headers['tickwork-trigger'] === 'manual')).toBe(true);
    expect(callbacks[1]!.at - callbacks[0]!.at).toBeGreaterThanOrEqual(2_000);
    expect(callbacks[2]!.at - callbacks[1]!.at).toBeGreaterThanOrEqual(1_000);
  });

  it('caps Retry-After at maxDelayMs', async () => {
    answers.set('/capped', (_r, nth) =>
      nth === 1 ? { status: 503, headers: { 'retry-after': '3600' } } : { status: 204 },
    );
    const job = await createJob('/capped', {
      retry: { maxAttempts: 2, backoff: { type: 'exponential', delayMs: 100, maxDelayMs: 500 } },
    });
    const triggered = await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token });
    await runUntil(triggered.body.id, (r) => r.status === 'succeeded', 'the capped retry');
    const callbacks = at('/capped');
    expect(callbacks[1]!.at - callbacks[0]!.at).toBeGreaterThanOrEqual(500);
  });

  it('fails at once on a 4xx or a redirect, without following it', async () => {
    answers.set('/moved', () => ({ status: 302, headers: { location: `${sink.url}/elsewhere` } }));
    answers.set('/gone', () => ({ status: 410 }));
    for (const path of ['/moved', '/gone']) {
      const job = await createJob(path, {});
      const triggered = await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token });
      const run = await runUntil(triggered.body.id, (r) => r.status === 'failed', `${path} to fail`);
      expect(run.attempts).toBe(1);
      expect(at(path)).toHaveLength(1);
    }
    expect(at('/elsewhere')).toHaveLength(0);
  });

  it('aborts a slow callback at timeoutMs; attempts run out, the run is dead, and a replay delivers it', async () => {
    let healthy = false;
    answers.set('/dead', () => (healthy ? { status: 200 } : { status: 200, delayMs: 3_000 }));
    const job = await createJob('/dead', {
      target: { url: `${sink.url}/dead`, timeoutMs: 300 },
      retry: { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 100 } },
    });
    const triggered = await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token });
    const dead = await runUntil(triggered.body.id, (r) => r.status === 'dead', 'the run to be dead');
    expect(dead).toMatchObject({ attempts: 2, httpStatus: null, error: 'timed out after 300 ms' });
    const letters = await call(api, 'GET', '/v1/runs?status=dead&limit=100', { token });
    expect(letters.body.items.map((r: { id: string }) => r.id)).toContain(dead.id);

    healthy = true;
    const replayed = await call(api, 'POST', `/v1/runs/${dead.id}/replay`, { token });
    expect(replayed.status).toBe(202);
    const replay = await runUntil(replayed.body.id, (r) => r.status === 'succeeded', 'the replay to succeed');
    expect(replay).toMatchObject({ trigger: 'replay', replayOf: dead.id, attempts: 1 });
    const last = at('/dead').at(-1)!;
    expect(last.headers['webhook-id']).toBe(replay.id);
    expect(last.headers['tickwork-trigger']).toBe('replay');
  });
});

describe('lifecycle', () => {
  it('records an occurrence of a replaced version as superseded, of a paused job as paused, unsent', async () => {
    const job = await createJob('/versions', {});
    const patched = await call(api, 'PATCH', `/v1/jobs/${job.id}`, {
      token,
      body: { description: 'v2' },
      headers: { 'if-match': 'W/"1"' },
    });
    expect(patched.status).toBe(200);
    const stale = Date.now() - 500;
    await addOccurrence(job.id, 1, stale);
    await eventually(
      async () => ((await runsOf(job.id)).length === 1 ? true : undefined),
      20_000,
      'the superseded run',
    );
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    await addOccurrence(job.id, 3, stale + 1);
    const runs = await eventually(
      async () => {
        const all = await runsOf(job.id);
        return all.length >= 2 ? all : undefined;
      },
      20_000,
      'two skipped runs',
    );
    expect(runs.map((r) => [r.status, r.skipReason]).sort()).toEqual([
      ['skipped', 'paused'],
      ['skipped', 'superseded'],
    ]);
    expect(at('/versions')).toHaveLength(0);
    // Run now still delivers a paused job.
    const triggered = await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token });
    await runUntil(triggered.body.id, (r) => r.status === 'succeeded', 'the manual run');
    expect(at('/versions')).toHaveLength(1);
  });

  it('pause fires nothing; resume fires again from now on', async () => {
    const job = await createJob('/pausing', { schedule: { every: '1s' } });
    await sink.waitFor((r) => r.some((x) => x.path === '/pausing'), 15_000, 'a first callback');
    const paused = await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    expect(paused.body.state).toBe('paused');
    // An occurrence already being delivered may still land; wait for the job's runs to settle.
    await eventually(
      async () => ((await runsOf(job.id)).every((r) => r.status !== 'running') ? true : undefined),
      10_000,
      'runs to settle',
    );
    const settled = at('/pausing').length;
    await expect(sink.waitFor((r) => r.filter((x) => x.path === '/pausing').length > settled, 3_000)).rejects.toThrow(
      /timed out/,
    );
    const resumedAt = Date.now();
    await call(api, 'POST', `/v1/jobs/${job.id}/resume`, { token });
    await sink.waitFor(
      (r) => r.filter((x) => x.path === '/pausing').length > settled,
      15_000,
      'callbacks after resume',
    );
    const next = at('/pausing')[settled]!;
    expect(Date.parse(String(next.headers['tickwork-scheduled-for']))).toBeGreaterThan(resumedAt);
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
  });

  it('completes a job after maxRuns and removes its scheduler', async () => {
    const job = await createJob('/limited', { schedule: { every: '1s' }, maxRuns: 2 });
    const done = await eventually(
      async () => {
        const got = await call(api, 'GET', `/v1/jobs/${job.id}`, { token });
        return got.body.state === 'completed' ? got.body : undefined;
      },
      20_000,
      'the job to complete',
    );
    expect(done).toMatchObject({ runCount: 2, nextRunAt: null });
    await eventually(
      async () => ((await queue.getJobScheduler(`job:${job.id}:v1`)) ? undefined : true),
      10_000,
      'the scheduler to go',
    );
    const runs = (await runsOf(job.id)).filter((r) => r.status !== 'skipped');
    expect(runs).toHaveLength(2);
    expect(at('/limited')).toHaveLength(2);
  });

  it('fires only inside [startAt, endAt], then completes', async () => {
    const startAt = Math.ceil((Date.now() + 2_000) / 1_000) * 1_000;
    const endAt = startAt + 2_500;
    const job = await createJob('/window', {
      schedule: { every: '1s' },
      startAt: new Date(startAt).toISOString(),
      endAt: new Date(endAt).toISOString(),
    });
    await eventually(
      async () =>
        (await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body.state === 'completed' ? true : undefined,
      20_000,
      'the window to close',
    );
    const times = at('/window').map((c) => Date.parse(String(c.headers['tickwork-scheduled-for'])));
    expect(times).toEqual([startAt, startAt + 1_000, startAt + 2_000]);
  });

  it('drops an occurrence after endAt without a run, and completes the job', async () => {
    const job = await createJob('/after-end', { endAt: new Date(Date.now() + 60_000).toISOString() });
    // As if the window had closed meanwhile: an API refuses an endAt in the past.
    const endAt = Date.now() - 1_000;
    await db.db
      .updateTable('jobs')
      .set({ end_at: new Date(endAt) })
      .where('id', '=', job.id)
      .execute();
    await addOccurrence(job.id, 1, endAt + 500);
    await eventually(
      async () =>
        (await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body.state === 'completed' ? true : undefined,
      20_000,
      'the job to complete',
    );
    expect(await runsOf(job.id)).toEqual([]);
    expect(at('/after-end')).toHaveLength(0);
  });

  it('delays each occurrence by its stable jitter without changing tickwork-scheduled-for', async () => {
    const job = await createJob('/jitter', { schedule: { every: '2s' }, jitterMs: 1_500 });
    await sink.waitFor((r) => r.filter((x) => x.path === '/jitter').length >= 3, 20_000, 'jittered callbacks');
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    for (const callback of at('/jitter').slice(0, 3)) {
      const scheduledFor = Date.parse(String(callback.headers['tickwork-scheduled-for']));
      expect((scheduledFor - Date.parse(job.createdAt)) % 2_000).toBe(0);
      expect(callback.at).toBeGreaterThanOrEqual(dueAtOf({ id: job.id, jitterMs: 1_500 }, scheduledFor));
    }
  });
});

describe('housekeeping', () => {
  it('registers retention as a maintenance job scheduler of its own', async () => {
    const maintenance = new Queue('maintenance', {
      connection: new Redis(env.REDIS_URL, { maxRetriesPerRequest: null }),
      prefix: env.BULLMQ_PREFIX,
    });
    try {
      const scheduler = await eventually(
        async () => (await maintenance.getJobScheduler('prune')) ?? undefined,
        20_000,
        'the prune scheduler',
      );
      expect(scheduler.every).toBe(600_000);
    } finally {
      await maintenance.close();
    }
  });
});

describe('misfire', () => {
  it('skip: an occurrence that starts later than graceMs after its time is recorded missed', async () => {
    const job = await createJob('/misfire-skip', { misfire: { policy: 'skip', graceMs: 1_000 } });
    await addOccurrence(job.id, 1, Date.now() - 5_000);
    const [run] = await eventually(
      async () => {
        const runs = await runsOf(job.id);
        return runs.length ? runs : undefined;
      },
      20_000,
      'the late occurrence',
    );
    expect(run).toMatchObject({ status: 'skipped', skipReason: 'missed', attempts: 0 });
    expect(at('/misfire-skip')).toHaveLength(0);
  });

  it('fire_once: of several late occurrences exactly one is delivered, the newest decided first wins', async () => {
    const job = await createJob('/misfire-once', { misfire: { policy: 'fire_once', graceMs: 1_000 } });
    const now = Date.now();
    await Promise.all([
      addOccurrence(job.id, 1, now - 30_000),
      addOccurrence(job.id, 1, now - 20_000),
      addOccurrence(job.id, 1, now - 10_000),
    ]);
    const runs = await eventually(
      async () => {
        const all = await runsOf(job.id);
        return all.length === 3 && all.every((r) => r.status !== 'running') ? all : undefined;
      },
      20_000,
      'three decided occurrences',
    );
    expect(runs.filter((r) => r.status === 'succeeded')).toHaveLength(1);
    expect(runs.filter((r) => r.status === 'skipped' && r.skipReason === 'missed')).toHaveLength(2);
    expect(at('/misfire-once')).toHaveLength(1);
  });

  it('fire_once after the workers were down: at most one late delivery, then the schedule goes on', async () => {
    await Promise.all(workers.map((w) => w.stop()));
    const job = await createJob('/outage', {
      schedule: { every: '1s' },
      misfire: { policy: 'fire_once', graceMs: 1_000 },
    });
    const firstDue = Date.parse(job.createdAt) + 1_000;
    // No worker runs: let the first occurrence fall well past its grace period.
    await eventually(async () => (Date.now() > firstDue + 3_000 ? true : undefined), 10_000, 'the outage');
    workers = await Promise.all([startWorker(env), startWorker(env)]);
    await sink.waitFor((r) => r.filter((x) => x.path === '/outage').length >= 3, 20_000, 'callbacks after the outage');
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    const callbacks = at('/outage');
    const late = callbacks.filter((c) => c.at - Date.parse(String(c.headers['tickwork-scheduled-for'])) > 1_000);
    const runs = await runsOf(job.id);
    const detail = JSON.stringify(runs.map((r) => [r.scheduledFor, r.status, r.skipReason]));
    // The overdue occurrence was decided: delivered as the one catch-up, or — when a newer
    // occurrence was decided first — recorded missed, the job having already fired again.
    const overdue = runs.find((r) => Date.parse(r.scheduledFor) === firstDue);
    expect(overdue, detail).toBeDefined();
    if (overdue!.status === 'skipped') {
      expect(overdue!.skipReason, detail).toBe('missed');
      expect(late, detail).toHaveLength(0);
    } else {
      expect(
        late.map((c) => c.headers['webhook-id']),
        detail,
      ).toEqual([overdue!.id]);
    }
    expect(callbacks.length - late.length).toBeGreaterThanOrEqual(2);
  });
});
