/** The OpenAPI document as an api serves it over HTTP: a given one's, or one started for the purpose. */
import { createTestDatabase, deletePrefix, startApi, testBaseUrls, testPrefix } from '@tickwork/testkit';

export async function fetchDocument(baseUrl: string): Promise<Record<string, unknown>> {
  const response = await fetch(new URL('/openapi.json', baseUrl));
  if (!response.ok) throw new Error(`GET ${baseUrl}/openapi.json answered ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

export async function servedDocument(baseUrl?: string): Promise<Record<string, unknown>> {
  if (baseUrl) return fetchDocument(baseUrl);
  const db = await createTestDatabase('tw_client_generate');
  const env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  const api = await startApi(env);
  try {
    return await fetchDocument(api.url);
  } finally {
    await api.stop();
    await db.drop();
    await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
  }
}
