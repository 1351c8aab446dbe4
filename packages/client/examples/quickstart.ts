/**
 * Tickwork's client in one page: create a job, read it, list its runs, delete it.
 *
 *   TICKWORK_URL=http://127.0.0.1:3000 TICKWORK_API_KEY=tw_… node packages/client/examples/quickstart.ts
 */
import { TickworkApiError, createTickworkClient } from '@tickwork/client';

const baseUrl = process.env.TICKWORK_URL;
const apiKey = process.env.TICKWORK_API_KEY;
if (!baseUrl || !apiKey) {
  console.error('Set TICKWORK_URL and TICKWORK_API_KEY.');
  process.exit(2);
}

const tickwork = createTickworkClient({ baseUrl, apiKey });

try {
  // Creates send an Idempotency-Key of their own, so a retry after a 429 or 503 creates one job.
  const job = await tickwork.createJob({
    body: {
      name: `quickstart-${Date.now()}`,
      schedule: { every: '1h' },
      target: {
        url: 'https://example.com/hooks/report',
        headers: { authorization: 'Bearer receiver-token' },
        body: { kind: 'hourly' },
      },
    },
  });
  console.log(
    `created ${job.id}, next run at ${job.nextRunAt}; authorization shows as ${job.target.headers?.authorization}`,
  );

  const read = await tickwork.getJob({ params: { path: { id: job.id } } });
  console.log(`read ${read.name}: ${read.state}, version ${read.version}`);

  let runs = 0;
  for await (const run of tickwork.pages('listJobRuns', { params: { path: { id: job.id } } })) {
    console.log(`run ${run.id}: ${run.status}`);
    runs++;
  }
  console.log(`${runs} runs so far`);

  await tickwork.deleteJob({ params: { path: { id: job.id } } });
  console.log(`deleted ${job.id}`);
} catch (error) {
  if (error instanceof TickworkApiError) console.error(`${error.message} (request ${error.requestId})`, error.problem);
  else console.error(error);
  process.exitCode = 1;
}
