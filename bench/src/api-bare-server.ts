/**
 * Bare routes for `api-ceiling.ts`: what each api endpoint could at best be on this box, in a
 * Fastify process of its own on the same Node. Every route parses the `Authorization` header and
 * hashes the key as the api does (SHA-256, a map lookup of the principal), then does only the
 * I/O any design of that endpoint needs:
 *
 * - `GET /`                    hello-world (the bench's ceiling);
 * - `GET /bare/body/:name`     the api's own answer, kept in memory (`get`, `list`, `runs`): no I/O at all;
 * - `GET /bare/select/:id`     one prepared Postgres SELECT of a job's row, sent as kept JSON;
 * - `POST /bare/insert`        one INSERT of the body (its own transaction, so one commit);
 * - `POST /bare/schedule`      one BullMQ `upsertJobScheduler`;
 * - `POST /bare/create`        both, one after the other, as a create does.
 *
 * Environment: PORT, BARE_DB_URL, BARE_REDIS_URL, BARE_PREFIX, BARE_BODIES (a JSON file:
 * `{ token, serviceId, bodies: { get, list, runs } }`).
 */
import { readFileSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import Fastify, { type FastifyRequest } from 'fastify';
import pg from 'pg';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const config = JSON.parse(readFileSync(process.env.BARE_BODIES!, 'utf8')) as {
  token: string;
  serviceId: string;
  bodies: Record<string, string>;
};
const hash = (key: string) => createHash('sha256').update(key).digest('hex');
const principals = new Map([
  [hash(config.token), { serviceId: config.serviceId, scopes: ['jobs:read', 'jobs:write'] }],
]);

const pool = new pg.Pool({ connectionString: process.env.BARE_DB_URL, max: 20 });
await pool.query(
  'create table if not exists bare_jobs (id uuid primary key, service_id uuid not null, body jsonb not null, ' +
    'created_at timestamptz not null default now())',
);
const connection = new Redis(process.env.BARE_REDIS_URL!, { maxRetriesPerRequest: null });
const queue = new Queue('bare', { connection, prefix: process.env.BARE_PREFIX! });

/** The api's bearer parse and key hash, then the principal from memory. */
function principalOf(request: FastifyRequest) {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  const principal = match ? principals.get(hash(match[1]!)) : undefined;
  if (!principal) throw Object.assign(new Error('unauthorized'), { statusCode: 401 });
  return principal;
}

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
app.get<{ Params: { name: string } }>('/bare/body/:name', async (request, reply) => {
  principalOf(request);
  const body = config.bodies[request.params.name];
  if (body === undefined) return reply.code(404).send();
  return reply.header('etag', 'W/"1"').type('application/json; charset=utf-8').send(body);
});
app.get<{ Params: { id: string } }>('/bare/select/:id', async (request, reply) => {
  const { serviceId } = principalOf(request);
  await pool.query({
    name: 'bare_select',
    text: 'select * from jobs where service_id = $1 and id = $2',
    values: [serviceId, request.params.id],
  });
  return reply.type('application/json; charset=utf-8').send(config.bodies.get);
});
const insert = (serviceId: string, body: unknown) =>
  pool.query({
    name: 'bare_insert',
    text: 'insert into bare_jobs (id, service_id, body) values ($1, $2, $3)',
    values: [randomUUID(), serviceId, JSON.stringify(body)],
  });
const schedule = () =>
  queue.upsertJobScheduler(
    randomUUID(),
    { every: 3_600_000, startDate: Date.now() + 30 * 86_400_000 },
    {
      name: 'bare',
      data: { jobId: randomUUID(), version: 1 },
    },
  );
app.post('/bare/insert', async (request, reply) => {
  await insert(principalOf(request).serviceId, request.body);
  return reply.code(201).type('application/json; charset=utf-8').send(config.bodies.get);
});
app.post('/bare/schedule', async (request, reply) => {
  principalOf(request);
  await schedule();
  return reply.code(201).type('application/json; charset=utf-8').send(config.bodies.get);
});
app.post('/bare/create', async (request, reply) => {
  const { serviceId } = principalOf(request);
  await schedule();
  await insert(serviceId, request.body);
  return reply.code(201).type('application/json; charset=utf-8').send(config.bodies.get);
});

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.send?.({ type: 'ready' });
process.on('SIGTERM', () => {
  void (async () => {
    await app.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    connection.disconnect();
    await pool.end();
    process.exit(0);
  })();
});
