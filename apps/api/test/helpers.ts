import { deletePrefix, createTestDatabase, testBaseUrls, testPrefix, type TestDatabase } from '@tickwork/testkit';
import { buildServer } from '../src/build.ts';
import type { AppConfig } from '../src/app.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const SECRET_KEY = 'test-secret-key-0123456789-0123456789';

/** An api's config for a test: its database, Redis and BullMQ prefix, the test tokens, and `overrides`. */
export function testServerConfig(
  databaseUrl: string,
  redisUrl: string,
  prefix: string,
  overrides: Partial<AppConfig> = {},
): AppConfig {
  return {
    databaseUrl,
    databaseReadUrl: undefined,
    databasePoolMax: 5,
    redisUrl,
    bullmqPrefix: prefix,
    adminToken: ADMIN_TOKEN,
    secretKey: SECRET_KEY,
    ...overrides,
  } as AppConfig;
}

/** A second api instance on the same database, Redis and prefix as `api` (not started: call `ready`). */
export function anotherInstance(api: TestApi, overrides: Partial<AppConfig> = {}) {
  return buildServer(
    testServerConfig(api.db.url, api.redisUrl, api.prefix, {
      databasePoolMax: 2,
      callbackAllowPrivate: true,
      ...overrides,
    }),
  );
}

export interface TestApi {
  app: Awaited<ReturnType<typeof buildServer>>;
  db: TestDatabase;
  prefix: string;
  redisUrl: string;
  /** Creates a service through the admin route and returns its key. */
  newService(name?: string): Promise<{ id: string; apiKey: string; signingSecret: string }>;
  close(): Promise<void>;
}

/**
 * The api on a database and BullMQ prefix of this test file's own. Callbacks to private
 * addresses are allowed (tests aim them at loopback) unless `overrides` says otherwise.
 */
export async function startTestApi(overrides: Partial<AppConfig> = {}): Promise<TestApi> {
  const db = await createTestDatabase('tw_api');
  const prefix = testPrefix();
  const { redisUrl } = testBaseUrls();
  const app = await buildServer(
    testServerConfig(db.url, redisUrl, prefix, { callbackAllowPrivate: true, ...overrides }),
  );
  await app.ready();
  let services = 0;
  return {
    app,
    db,
    prefix,
    redisUrl,
    async newService(name = `svc-${++services}-${Date.now()}`) {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/admin/services',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: { name },
      });
      if (response.statusCode !== 201) throw new Error(`service create failed: ${response.body}`);
      return response.json();
    },
    async close() {
      await app.close();
      await db.drop();
      await deletePrefix(redisUrl, prefix);
    },
  };
}

export { deletePrefix };
