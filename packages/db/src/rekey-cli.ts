/**
 * `npm run rekey`: seals every secret at rest again under SECRET_KEY (the rotation procedure is in
 * docs/security.md). Reads SECRET_KEY_PREVIOUS to open what the previous key sealed. Exits 1 when
 * a value opens under neither key.
 */
import { loadConfig, secretKeysOf } from '@tickwork/core';
import { createDatabase } from './database.ts';
import { rekey } from './rekey.ts';

const config = loadConfig();
// Rows per statement: smaller batches hold each row's lock for less time, larger ones finish sooner.
const batchSize = Number(process.env.REKEY_BATCH_SIZE ?? 500);
if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
  console.error(
    `rekey: REKEY_BATCH_SIZE must be a whole number from 1 to 10000 (got "${process.env.REKEY_BATCH_SIZE}")`,
  );
  process.exit(1);
}
const handle = createDatabase({ url: config.databaseUrl, poolMax: 2, applicationName: 'tickwork-rekey' });
try {
  const started = Date.now();
  const report = await rekey(handle.db, secretKeysOf(config), {
    batchSize,
    onBatch: (so) => console.log(`rekey: ${so.jobs} jobs and ${so.services} services sealed again so far`),
  });
  console.log(
    `rekey: ${report.jobs} jobs and ${report.services} services sealed again under SECRET_KEY ` +
      `(and ${report.versions} history entries) in ${Date.now() - started} ms`,
  );
  if (report.unreadable.length > 0) {
    console.error(
      `rekey: ${report.unreadable.length} values open under neither SECRET_KEY nor SECRET_KEY_PREVIOUS: ` +
        report.unreadable.slice(0, 20).join(', '),
    );
    process.exitCode = 1;
  }
} catch (error) {
  console.error(`rekey: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await handle.close();
}
