/**
 * Chooses the Postgres and Redis every test runs against, once per `vitest run`:
 *   1. DATABASE_URL / REDIS_URL when set;
 *   2. else containers from testcontainers, when a Docker engine answers;
 *   3. else the local services (127.0.0.1:5432 database `test`, 127.0.0.1:6379).
 * Each test file then makes its own database and BullMQ prefix (packages/db/src/testing.ts).
 */
import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(_project: TestProject) {
  const stops: Array<() => Promise<unknown>> = [];
  if (!process.env.DATABASE_URL && !process.env.REDIS_URL && dockerAnswers()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const postgres = await new GenericContainer('postgres:15')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    const redis = await new GenericContainer('redis:7').withExposedPorts(6379).start();
    process.env.DATABASE_URL = `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/test`;
    process.env.REDIS_URL = `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`;
    stops.push(
      () => postgres.stop(),
      () => redis.stop(),
    );
  }
  process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/test';
  process.env.REDIS_URL ??= 'redis://127.0.0.1:6379';
  return async () => {
    for (const stop of stops) await stop();
  };
}
