/**
 * Chooses the Postgres and Redis every test runs against, once per `vitest run`:
 *   1. DATABASE_URL / REDIS_URL when set;
 *   2. else the local services (127.0.0.1:5432 database `test`, 127.0.0.1:6379) when both answer;
 *   3. else containers from testcontainers, when a Docker engine answers;
 *   4. else the local defaults anyway (their connection errors then say what is missing).
 * A Docker engine that answers is not enough reason to leave services that already run: an
 * engine without a registry (or started without bridge networks) cannot run the containers.
 * Each test file then makes its own database and BullMQ prefix (the test kit: packages/testkit/src/database.ts),
 * its database a copy of a template migrated here once per run (and dropped at the end).
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import type { TestProject } from 'vitest/node';
import { TEMPLATE_DATABASE_ENV, createTemplateDatabase } from '@tickwork/testkit';

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts a TCP connection on 127.0.0.1:port within a second. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 1_000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

export default async function setup(_project: TestProject) {
  const stops: Array<() => Promise<unknown>> = [];
  const unset = !process.env.DATABASE_URL && !process.env.REDIS_URL;
  const localUp = unset && (await answers(5432)) && (await answers(6379));
  if (unset && !localUp && dockerAnswers()) {
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
  // Without Postgres (a run of the projects that need none), each file creates and migrates its
  // own database as before, and those that need one fail there, saying why.
  const template = await createTemplateDatabase().catch(() => undefined);
  if (template) {
    process.env[TEMPLATE_DATABASE_ENV] = template.name;
    stops.unshift(() => template.drop());
  }
  return async () => {
    for (const stop of stops) await stop();
  };
}
