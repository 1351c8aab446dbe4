/**
 * Run now racing a delete (found by the chaos model test, e2e/chaos/semantics.test.ts): the job
 * is gone by the time its manual run is inserted. The answer is 404, not a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api?.close();
});

describe('POST /v1/jobs/:id/trigger racing DELETE', () => {
  it('answers 404 problem+json when the job is deleted before its run is recorded', async () => {
    const { apiKey } = await api.newService();
    const auth = { authorization: `Bearer ${apiKey}` };
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth,
      payload: { name: 'raced', schedule: { every: '1h' }, target: { url: 'http://127.0.0.1:9/hook' } },
    });
    expect(created.statusCode).toBe(201);
    // The delete lands between the api's lookup and its insert: a trigger on runs removes the job first.
    await sql`CREATE FUNCTION delete_job_first() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM jobs WHERE id = NEW.job_id; RETURN NEW; END $$`.execute(api.db.db);
    await sql`CREATE TRIGGER delete_job_first BEFORE INSERT ON runs
      FOR EACH ROW EXECUTE FUNCTION delete_job_first()`.execute(api.db.db);
    try {
      const response = await api.app.inject({
        method: 'POST',
        url: `/v1/jobs/${created.json().id}/trigger`,
        headers: auth,
      });
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    } finally {
      await sql`DROP TRIGGER delete_job_first ON runs`.execute(api.db.db);
      await sql`DROP FUNCTION delete_job_first()`.execute(api.db.db);
    }
  });
});
