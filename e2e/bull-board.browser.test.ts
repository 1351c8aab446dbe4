/**
 * An operator opens Bull Board in a real browser: the token is asked for, the `fire` queue shows
 * its counts, a job opens under its service's and its own name, and a callback that failed shows
 * as what it was (HTTP 500), not as a stack trace. Screenshots land in test-output/bull-board/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  ROOT,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  deletePrefix,
  eventually,
  startSink,
  type Sink,
} from '@tickwork/testkit';
import { ensureChromium, launchChromium, type Browser } from './lib/chromium.ts';

const OUTPUT = join(ROOT, 'test-output', 'bull-board');

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc | undefined;
let sink: Sink | undefined;
let browser: Browser | undefined;
let onceJobId: string;
let apiKey: string;

beforeAll(async () => {
  ensureChromium();
  mkdirSync(OUTPUT, { recursive: true });
  db = await createTestDatabase('tw_e2e_board');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  api = await startApi(env);
  apiKey = (await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'board' } })).body.apiKey;
  const target = { url: 'https://example.com/hook' };
  const hourly = await call(api, 'POST', '/v1/jobs', {
    token: apiKey,
    body: { name: 'hourly', schedule: { cron: '0 * * * *' }, target },
  });
  const once = await call(api, 'POST', '/v1/jobs', {
    token: apiKey,
    body: { name: 'tomorrow', schedule: { at: new Date(Date.now() + 86_400_000).toISOString() }, target },
  });
  expect([hourly.status, once.status]).toEqual([201, 201]);
  onceJobId = once.body.id;
}, 660_000);

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await sink?.close();
  await api?.stop();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

describe('Bull Board in a browser', () => {
  it('refuses a wrong token', async () => {
    const intruder = await launchChromium({
      httpCredentials: { username: 'operator', password: 'not-the-admin-token' },
    });
    try {
      const page = await intruder.context.newPage();
      const response = await page.goto(`${api.url}/admin/queues`);
      expect(response?.status()).toBe(401);
      expect(response?.headers()['www-authenticate']).toMatch(/^Basic /);
      expect(await page.locator('body').innerText()).toContain('Operators only');
      expect(await page.locator('a[href$="/queue/fire"]').count()).toBe(0);
    } finally {
      await intruder.close();
    }
  });

  it('logs in, shows the fire queue with its counts, and opens a job', async () => {
    browser = await launchChromium({
      httpCredentials: { username: 'operator', password: ADMIN_TOKEN },
      viewport: { width: 1280, height: 900 },
    });
    const page = await browser.context.newPage();

    const overview = await page.goto(`${api.url}/admin/queues`);
    expect(overview?.status()).toBe(200);
    // The card in the page's main part (the sidebar links to the queue too).
    const card = page.getByRole('main').locator('a[title="fire"][href$="/queue/fire"]');
    await card.waitFor({ timeout: 20_000 });
    // The card's bar: two jobs, both delayed (the hourly job's next occurrence and the one-shot).
    const counts = page.getByRole('button', { name: '2 Jobs' });
    await counts.waitFor({ timeout: 20_000 });
    expect(await counts.locator('span[class*="delayed"]').getAttribute('style')).toContain('width: 100%');
    await counts.click();
    await expect.poll(() => page.locator('body').innerText(), { timeout: 10_000 }).toMatch(/2 Jobs\s+Delayed\s+2/);
    await page.screenshot({ path: join(OUTPUT, 'overview.png'), fullPage: true });

    await page.goto(`${api.url}/admin/queues/queue/fire?status=delayed`);
    const bullJobId = `once:${onceJobId}:v1`;
    const jobLink = page.getByText(bullJobId).first();
    await jobLink.waitFor({ timeout: 20_000 });
    await jobLink.click();
    await page.waitForURL((url) => decodeURIComponent(url.pathname).endsWith(`/queue/fire/${bullJobId}`), {
      timeout: 20_000,
    });
    await expect.poll(() => page.locator('body').innerText(), { timeout: 20_000 }).toContain(onceJobId);
    await page.screenshot({ path: join(OUTPUT, 'job.png'), fullPage: true });
  });

  it('names a job by its service and job, and shows a failed callback as its HTTP status', async () => {
    sink = await startSink();
    sink.respond = () => ({ status: 500 });
    worker = await startWorker(env);
    const job = await call(api, 'POST', '/v1/jobs', {
      token: apiKey,
      body: {
        name: 'flaky',
        schedule: { every: '1h' },
        target: { url: `${sink.url}/fail` },
        // The next attempt an hour away: the occurrence waits, delayed, with its failure on it.
        retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 3_600_000, maxDelayMs: 3_600_000 } },
      },
    });
    const run = await call(api, 'POST', `/v1/jobs/${job.body.id}/trigger`, { token: apiKey });
    expect(run.status).toBe(202);
    await eventually(async () => {
      const { body } = await call(api, 'GET', `/v1/runs/${run.body.id}`, { token: apiKey });
      expect(body).toMatchObject({ status: 'retrying', attempts: 1, error: 'HTTP 500' });
      return true;
    });
    const bullJobId = `manual:${job.body.id}:${run.body.id}`;
    await eventually(async () => {
      const { body } = await call(api, 'GET', `/admin/queues/api/queues/fire/${encodeURIComponent(bullJobId)}`, {
        token: ADMIN_TOKEN,
      });
      expect(body.job).toMatchObject({ name: 'board / flaky', failedReason: 'HTTP 500', stacktrace: [] });
      return true;
    });

    browser ??= await launchChromium({
      httpCredentials: { username: 'operator', password: ADMIN_TOKEN },
      viewport: { width: 1280, height: 900 },
    });
    const page = await browser.context.newPage();
    await page.goto(`${api.url}/admin/queues/queue/fire/${encodeURIComponent(bullJobId)}`);
    await expect.poll(() => page.locator('body').innerText(), { timeout: 20_000 }).toContain('board / flaky');
    await page
      .getByRole('button', { name: 'Error', exact: true })
      .or(page.getByText('Error', { exact: true }))
      .first()
      .click();
    await expect.poll(() => page.locator('body').innerText(), { timeout: 10_000 }).toContain('HTTP 500');
    const text = await page.locator('body').innerText();
    expect(text).not.toMatch(/\.(ts|js):\d+|node_modules|RetryLaterError/);
    await page.screenshot({ path: join(OUTPUT, 'failed-callback.png'), fullPage: true });
  });
});
