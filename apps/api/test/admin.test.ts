/**
 * The admin API and what it controls: keys (shown once, hashed, scoped, revocable at once on every
 * instance), services (disable/enable, quotas) and signing-secret rotation.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { decryptSecret, hashApiKey } from '@tickwork/core';
import { ADMIN_TOKEN, SECRET_KEY, anotherInstance, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let queue: Queue;
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  api = await startTestApi();
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

const job = (name: string, schedule: Record<string, unknown> = { every: '1m' }) => ({
  name,
  schedule,
  target: { url: 'https://example.com/hook' },
});

async function createJob(key: string, body: Record<string, unknown>) {
  return api.app.inject({ method: 'POST', url: '/v1/jobs', headers: bearer(key), payload: body });
}

describe('API keys', () => {
  it('issues a key with the tw_ prefix, shows it once and stores only its SHA-256 and a display prefix', async () => {
    const service = await api.newService('keys-1');
    const issued = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/keys`,
      headers: admin,
      payload: {},
    });
    expect(issued.statusCode).toBe(201);
    const body = issued.json();
    expect(body).toMatchObject({
      apiKeyId: expect.any(String),
      apiKey: expect.stringMatching(/^tw_[A-Za-z0-9]{40}$/),
      scopes: ['jobs:read', 'jobs:write'],
    });
    // The key id has one name in every answer that makes a key; `id` stays as an alias.
    expect(body.id).toBe(body.apiKeyId);
    expect(Object.keys((await api.newService('keys-1b')) as object)).toContain('apiKeyId');
    const row = await api.db.db.selectFrom('api_keys').selectAll().where('id', '=', body.id).executeTakeFirstOrThrow();
    expect(row.hash).toBe(hashApiKey(body.apiKey));
    expect(body.apiKey.startsWith(row.prefix)).toBe(true);
    expect(row.prefix.length).toBeLessThan(12);
    expect(JSON.stringify(row)).not.toContain(body.apiKey);
    // The detail lists keys by prefix, never the key.
    const detail = await api.app.inject({ method: 'GET', url: `/v1/admin/services/${service.id}`, headers: admin });
    expect(detail.statusCode).toBe(200);
    expect(detail.json().keys.map((k: { id: string }) => k.id)).toContain(body.id);
    expect(detail.body).not.toContain(body.apiKey);
    // The new key works, and its use is recorded (at most once a minute, off the request path).
    expect(detail.json().keys.find((k: { id: string }) => k.id === body.id).lastUsedAt).toBeNull();
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(body.apiKey) })).statusCode).toBe(
      200,
    );
    await expect
      .poll(
        async () => {
          const keys = (
            await api.app.inject({ method: 'GET', url: `/v1/admin/services/${service.id}`, headers: admin })
          ).json().keys;
          return keys.find((k: { id: string }) => k.id === body.id).lastUsedAt;
        },
        { timeout: 5_000 },
      )
      .toEqual(expect.any(String));
  });

  it('answers 403 for a key that lacks the scope: a read-only key reads but cannot write', async () => {
    const service = await api.newService('keys-scope');
    const issued = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/keys`,
      headers: admin,
      payload: { scopes: ['jobs:read'] },
    });
    const readOnly = issued.json().apiKey as string;
    expect(issued.json().scopes).toEqual(['jobs:read']);
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(readOnly) })).statusCode).toBe(200);
    // Previewing a schedule only reads, though it is a POST.
    const preview = await api.app.inject({
      method: 'POST',
      url: '/v1/schedules/preview',
      headers: bearer(readOnly),
      payload: { schedule: { every: '1h' }, count: 2 },
    });
    expect(preview.statusCode).toBe(200);
    const write = await createJob(readOnly, job('ro'));
    expect(write.statusCode).toBe(403);
    expect(write.headers['content-type']).toContain('application/problem+json');
    expect(write.json().detail).toContain('jobs:write');
    expect(await api.db.db.selectFrom('jobs').select('id').where('service_id', '=', service.id).execute()).toHaveLength(
      0,
    );

    const writeOnly = (
      await api.app.inject({
        method: 'POST',
        url: `/v1/admin/services/${service.id}/keys`,
        headers: admin,
        payload: { scopes: ['jobs:write'] },
      })
    ).json().apiKey as string;
    expect((await createJob(writeOnly, job('wo'))).statusCode).toBe(201);
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(writeOnly) })).statusCode).toBe(403);
  });

  it('refuses a key after its expiry, and an expiry in the past', async () => {
    const service = await api.newService('keys-expiry');
    const past = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/keys`,
      headers: admin,
      payload: { expiresAt: '2020-01-01T00:00:00Z' },
    });
    expect(past.statusCode).toBe(400);
    const soon = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/keys`,
      headers: admin,
      payload: { expiresAt: new Date(Date.now() + 10_000).toISOString() },
    });
    expect(soon.statusCode).toBe(201);
    const key = soon.json().apiKey as string;
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })).statusCode).toBe(200);
    // Its principal is cached now (for up to 60 s): move the clock past the expiry, not past that.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 11_000);
      expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })).statusCode).toBe(401);
    } finally {
      vi.useRealTimers();
    }
    // And expired in the database, the lookup refuses it too.
    await api.db.db
      .updateTable('api_keys')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('id', '=', soon.json().id)
      .execute();
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })).statusCode).toBe(401);
  });

  it('revokes a key: 204, then 401 at once on this and on another api instance', async () => {
    const service = await api.newService('keys-revoke');
    const other = await anotherInstance(api);
    try {
      await other.ready();
      const headers = bearer(service.apiKey);
      expect((await other.inject({ method: 'GET', url: '/v1/jobs', headers })).statusCode).toBe(200);
      const detail = (
        await api.app.inject({ method: 'GET', url: `/v1/admin/services/${service.id}`, headers: admin })
      ).json();
      const keyId = detail.keys[0].id as string;
      const revoked = await api.app.inject({
        method: 'DELETE',
        url: `/v1/admin/services/${service.id}/keys/${keyId}`,
        headers: admin,
      });
      expect(revoked.statusCode).toBe(204);
      expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers })).statusCode).toBe(401);
      expect((await other.inject({ method: 'GET', url: '/v1/jobs', headers })).statusCode).toBe(401);
      const again = await api.app.inject({
        method: 'DELETE',
        url: `/v1/admin/services/${service.id}/keys/${keyId}`,
        headers: admin,
      });
      expect(again.statusCode).toBe(204);
      // A key id of another service is not found under this one.
      const stranger = await api.newService('keys-revoke-other');
      const strangerKey = (
        await api.app.inject({ method: 'GET', url: `/v1/admin/services/${stranger.id}`, headers: admin })
      ).json().keys[0].id;
      const cross = await api.app.inject({
        method: 'DELETE',
        url: `/v1/admin/services/${service.id}/keys/${strangerKey}`,
        headers: admin,
      });
      expect(cross.statusCode).toBe(404);
      expect(
        (await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(stranger.apiKey) })).statusCode,
      ).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('cached principals', () => {
  // Each instance keeps principals in process, emptied by Postgres notifications; every change
  // below is made on one instance and must hold on the other from the next request, its cache warm.
  it('sees a revoke, a disable, an enable and a quota change made on another instance at once', async () => {
    const other = await anotherInstance(api);
    try {
      await other.ready();
      const service = await api.newService('cache-epoch');
      const second = await api.app.inject({
        method: 'POST',
        url: `/v1/admin/services/${service.id}/keys`,
        headers: admin,
        payload: {},
      });
      const keyId = (
        await api.app.inject({ method: 'GET', url: `/v1/admin/services/${service.id}`, headers: admin })
      ).json().keys[0].id as string;
      const warm = async (key: string) => {
        for (let i = 0; i < 2; i++)
          expect((await other.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })).statusCode).toBe(200);
      };
      const onOther = async (key: string) =>
        (await other.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })).statusCode;

      await warm(service.apiKey);
      await warm(second.json().apiKey);
      expect(
        (
          await api.app.inject({
            method: 'DELETE',
            url: `/v1/admin/services/${service.id}/keys/${keyId}`,
            headers: admin,
          })
        ).statusCode,
      ).toBe(204);
      expect(await onOther(service.apiKey)).toBe(401);
      // Another key of the service is untouched.
      expect(await onOther(second.json().apiKey)).toBe(200);

      expect(
        (await api.app.inject({ method: 'POST', url: `/v1/admin/services/${service.id}/disable`, headers: admin }))
          .statusCode,
      ).toBe(200);
      expect(await onOther(second.json().apiKey)).toBe(401);
      expect(
        (await api.app.inject({ method: 'POST', url: `/v1/admin/services/${service.id}/enable`, headers: admin }))
          .statusCode,
      ).toBe(200);
      expect(await onOther(second.json().apiKey)).toBe(200);

      await warm(second.json().apiKey);
      const tenSeconds = {
        name: 'ten-seconds',
        schedule: { every: '10s' },
        target: { url: 'https://example.com/hook' },
      };
      const patched = await api.app.inject({
        method: 'PATCH',
        url: `/v1/admin/services/${service.id}`,
        headers: admin,
        payload: { quotas: { minIntervalMs: 60_000 } },
      });
      expect(patched.statusCode).toBe(200);
      const refused = await other.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: bearer(second.json().apiKey),
        payload: tenSeconds,
      });
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ code: 'quota_exceeded', quota: 'minIntervalMs' });

      // The other instance loses its listening connection: until it listens again it trusts
      // nothing it cached (a notification may be lost meanwhile), and then starts empty.
      const third = await api.app.inject({
        method: 'POST',
        url: `/v1/admin/services/${service.id}/keys`,
        headers: admin,
        payload: {},
      });
      await warm(third.json().apiKey);
      const bus = other.caches.bus!;
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = ${`tickwork-api-cache ${bus.instanceId}`}`.execute(api.db.db);
      await expect.poll(() => bus.live).toBe(false);
      // Revoked while it cannot hear of it.
      await sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${third.json().id}`.execute(api.db.db);
      expect(await onOther(third.json().apiKey)).toBe(401);
      await expect.poll(() => bus.live, { timeout: 5_000 }).toBe(true);
      expect(await onOther(third.json().apiKey)).toBe(401);
    } finally {
      await other.close();
    }
  });
});

describe('admin routes are for the admin token only', () => {
  const routes = (id: string, keyId: string) =>
    [
      ['GET', '/v1/admin/services', undefined],
      ['POST', '/v1/admin/services', { name: 'nope' }],
      ['GET', `/v1/admin/services/${id}`, undefined],
      ['PATCH', `/v1/admin/services/${id}`, { quotas: { maxJobs: 1 } }],
      ['POST', `/v1/admin/services/${id}/keys`, {}],
      ['DELETE', `/v1/admin/services/${id}/keys/${keyId}`, undefined],
      ['POST', `/v1/admin/services/${id}/disable`, undefined],
      ['POST', `/v1/admin/services/${id}/enable`, undefined],
      ['POST', `/v1/admin/services/${id}/signing-secret/rotate`, undefined],
    ] as const;

  it('answers 403 to a service key and 401 without a token, on every admin route, changing nothing', async () => {
    const service = await api.newService('admin-guard');
    const keyId = (
      await api.app.inject({ method: 'GET', url: `/v1/admin/services/${service.id}`, headers: admin })
    ).json().keys[0].id;
    const before = await api.db.db
      .selectFrom('services')
      .selectAll()
      .where('id', '=', service.id)
      .executeTakeFirstOrThrow();
    for (const [method, url, payload] of routes(service.id, keyId)) {
      const withKey = await api.app.inject({
        method,
        url,
        headers: bearer(service.apiKey),
        ...(payload ? { payload } : {}),
      });
      expect(withKey.statusCode, `${method} ${url}`).toBe(403);
      expect(withKey.headers['content-type']).toContain('application/problem+json');
      const anonymous = await api.app.inject({ method, url, ...(payload ? { payload } : {}) });
      expect(anonymous.statusCode, `${method} ${url}`).toBe(401);
    }
    const after = await api.db.db
      .selectFrom('services')
      .selectAll()
      .where('id', '=', service.id)
      .executeTakeFirstOrThrow();
    expect(after).toEqual(before);
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(service.apiKey) })).statusCode).toBe(
      200,
    );
  });

  it('refuses the admin token on service routes', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: admin })).statusCode).toBe(403);
  });

  it('lists services by keyset, without secrets', async () => {
    const a = await api.newService('list-a');
    const b = await api.newService('list-b');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { json(): any; statusCode: number; body: string } = await api.app.inject({
        method: 'GET',
        url: `/v1/admin/services?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: admin,
      });
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toMatch(/whsec_|signing_secret|tw_[A-Za-z0-9]{40}/);
      seen.push(...page.json().items.map((s: { id: string }) => s.id));
      cursor = page.json().nextCursor;
    } while (cursor);
    expect(seen).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('disable and enable', () => {
  it('disables: keys fail with 401 and schedules leave Redis; enable brings both back', async () => {
    const service = await api.newService('disable-1');
    const active = (await createJob(service.apiKey, job('d-active'))).json();
    const once = (
      await createJob(service.apiKey, job('d-once', { at: new Date(Date.now() + 3_600_000).toISOString() }))
    ).json();
    const paused = (await createJob(service.apiKey, { ...job('d-paused'), paused: true })).json();
    expect(await queue.getJobScheduler(`job:${active.id}:v1`)).toBeTruthy();
    expect(await queue.getJob(`once:${once.id}:v1`)).toBeTruthy();

    const disabled = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/disable`,
      headers: admin,
    });
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json().disabledAt).toEqual(expect.any(String));
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(service.apiKey) })).statusCode).toBe(
      401,
    );
    expect(await queue.getJobScheduler(`job:${active.id}:v1`)).toBeFalsy();
    expect(await queue.getJob(`once:${once.id}:v1`)).toBeFalsy();
    // Idempotent: the first disable time stays.
    const twice = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/disable`,
      headers: admin,
    });
    expect(twice.json().disabledAt).toBe(disabled.json().disabledAt);

    const enabled = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/enable`,
      headers: admin,
    });
    expect(enabled.statusCode).toBe(200);
    expect(enabled.json().disabledAt).toBeNull();
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(service.apiKey) })).statusCode).toBe(
      200,
    );
    expect((await queue.getJobScheduler(`job:${active.id}:v1`))?.every).toBe(60_000);
    expect(await queue.getJob(`once:${once.id}:v1`)).toBeTruthy();
    expect(await queue.getJobScheduler(`job:${paused.id}:v1`)).toBeFalsy();
  });

  it('answers 404 for an unknown service', async () => {
    for (const action of ['disable', 'enable', 'signing-secret/rotate']) {
      const response = await api.app.inject({
        method: 'POST',
        url: `/v1/admin/services/00000000-0000-7000-8000-000000000000/${action}`,
        headers: admin,
      });
      expect(response.statusCode).toBe(404);
    }
  });
});

describe('quotas', () => {
  it('sets quotas at create and by PATCH; exceeding maxJobs is a 403 naming the quota, nothing written', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: admin,
      payload: { name: 'quota-1', quotas: { maxJobs: 2 } },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json().quotas).toEqual({ maxJobs: 2, minIntervalMs: 1000 });
    const key = created.json().apiKey as string;
    expect((await createJob(key, job('q1'))).statusCode).toBe(201);
    expect((await createJob(key, job('q2'))).statusCode).toBe(201);
    const third = await createJob(key, job('q3'));
    expect(third.statusCode).toBe(403);
    expect(third.headers['content-type']).toContain('application/problem+json');
    expect(third.json()).toMatchObject({ status: 403, code: 'quota_exceeded', quota: 'maxJobs' });
    expect(third.json().detail).toContain('maxJobs');

    const patched = await api.app.inject({
      method: 'PATCH',
      url: `/v1/admin/services/${created.json().id}`,
      headers: admin,
      payload: { quotas: { maxJobs: 3 } },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().quotas).toEqual({ maxJobs: 3, minIntervalMs: 1000 });
    expect((await createJob(key, job('q3'))).statusCode).toBe(201);
  });

  it('holds maxJobs under 50 parallel creates at the limit', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: admin,
      payload: { name: 'quota-race', quotas: { maxJobs: 23 } },
    });
    const key = created.json().apiKey as string;
    // Far from the quota first (the shards' allowances shared out), then 50 at once for the last 3.
    const early = await Promise.all(Array.from({ length: 20 }, (_, i) => createJob(key, job(`early-${i}`))));
    expect(early.every((a) => a.statusCode === 201)).toBe(true);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => createJob(key, job(`race-${i}`))));
    expect(answers.filter((a) => a.statusCode === 201)).toHaveLength(3);
    expect(answers.filter((a) => a.statusCode === 403)).toHaveLength(47);
    const rows = await api.db.db.selectFrom('jobs').select('id').where('service_id', '=', created.json().id).execute();
    expect(rows).toHaveLength(23);
    // The refused creates had registered their schedules before their slot was refused: each is
    // taken back (in the background), so every scheduler left belongs to a job Postgres has.
    const orphans = async () => {
      const known = new Set((await api.db.db.selectFrom('jobs').select('id').execute()).map((r) => r.id));
      return (await queue.getJobSchedulers(0, -1))
        .map((s) => /^job:([^:]+):/.exec(s.key)?.[1])
        .filter((jobId) => !known.has(jobId!));
    };
    await expect.poll(orphans).toEqual([]);
    const [service] = await api.db.db
      .selectFrom('services')
      .select(sql<number>`service_job_count(id)`.as('job_count'))
      .where('id', '=', created.json().id)
      .execute();
    expect(service!.job_count).toBe(23);
  });

  it('counts jobs on create and delete: a deleted job frees its slot, and the count matches the rows', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: admin,
      payload: { name: 'quota-delete', quotas: { maxJobs: 2 } },
    });
    const key = created.json().apiKey as string;
    const serviceId = created.json().id as string;
    const countOf = async () =>
      (
        await api.db.db
          .selectFrom('services')
          .select(sql<number>`service_job_count(id)`.as('job_count'))
          .where('id', '=', serviceId)
          .executeTakeFirstOrThrow()
      ).job_count;
    const first = await createJob(key, job('d1'));
    expect((await createJob(key, job('d2'))).statusCode).toBe(201);
    expect(await countOf()).toBe(2);
    expect((await createJob(key, job('d3'))).statusCode).toBe(403);
    const removed = await api.app.inject({
      method: 'DELETE',
      url: `/v1/jobs/${first.json().id}`,
      headers: bearer(key),
    });
    expect(removed.statusCode).toBe(204);
    expect(await countOf()).toBe(1);
    // Deleting it again finds nothing and gives nothing back.
    expect(
      (await api.app.inject({ method: 'DELETE', url: `/v1/jobs/${first.json().id}`, headers: bearer(key) })).statusCode,
    ).toBe(404);
    expect(await countOf()).toBe(1);
    // A create refused for another reason (the name is taken) takes no slot.
    expect((await createJob(key, job('d2'))).statusCode).toBe(409);
    expect(await countOf()).toBe(1);
    expect((await createJob(key, job('d3'))).statusCode).toBe(201);
    expect(await countOf()).toBe(2);
    const rows = await api.db.db.selectFrom('jobs').select('id').where('service_id', '=', serviceId).execute();
    expect(rows).toHaveLength(2);
  });

  it('refuses a schedule under minIntervalMs with 403 naming the quota, for intervals and cron', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: admin,
      payload: { name: 'quota-interval', quotas: { minIntervalMs: 300_000 } },
    });
    const key = created.json().apiKey as string;
    for (const schedule of [{ every: '1m' }, { everyMs: 60_000 }, { cron: '*/1 * * * *' }, { cron: '0,1 * * * *' }]) {
      const response = await createJob(
        key,
        job(`qi-${Object.keys(schedule)[0]}-${Math.random().toString(36).slice(2, 8)}`, schedule),
      );
      expect(response.statusCode, JSON.stringify(schedule)).toBe(403);
      expect(response.json()).toMatchObject({ code: 'quota_exceeded', quota: 'minIntervalMs' });
    }
    expect((await createJob(key, job('qi-ok', { every: '5m' }))).statusCode).toBe(201);
    expect((await createJob(key, job('qi-cron-ok', { cron: '*/5 * * * *' }))).statusCode).toBe(201);
    // Below the system floor it is a validation error, whatever the quota.
    expect((await createJob(key, job('qi-floor', { every: '500ms' }))).statusCode).toBe(400);
  });

  it('validates quotas: unknown fields and out-of-range values are 400', async () => {
    for (const quotas of [{ maxJobs: -1 }, { minIntervalMs: 10 }, { maxJobs: 5, extra: 1 }, { maxJobs: '5' }]) {
      const response = await api.app.inject({
        method: 'POST',
        url: '/v1/admin/services',
        headers: admin,
        payload: { name: 'bad-quota', quotas },
      });
      expect(response.statusCode, JSON.stringify(quotas)).toBe(400);
    }
  });
});

describe('signing secret rotation', () => {
  it('keeps the previous secret, sealed, for 24 h and returns the new one once', async () => {
    const service = await api.newService('rotate-1');
    const rotated = await api.app.inject({
      method: 'POST',
      url: `/v1/admin/services/${service.id}/signing-secret/rotate`,
      headers: admin,
    });
    expect(rotated.statusCode).toBe(200);
    const { signingSecret, previousSecretExpiresAt } = rotated.json();
    expect(signingSecret).toMatch(/^whsec_/);
    expect(signingSecret).not.toBe(service.signingSecret);
    const expiresIn = Date.parse(previousSecretExpiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(23.9 * 3_600_000);
    expect(expiresIn).toBeLessThanOrEqual(24 * 3_600_000);
    const row = await api.db.db
      .selectFrom('services')
      .selectAll()
      .where('id', '=', service.id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(signingSecret.slice(6));
    expect(decryptSecret(row.signing_secret, SECRET_KEY)).toBe(signingSecret);
    expect(decryptSecret(row.previous_signing_secret!, SECRET_KEY)).toBe(service.signingSecret);
    expect(() => decryptSecret(row.signing_secret, 'another-secret-key-0123456789-0123456789')).toThrow();
  });
});
