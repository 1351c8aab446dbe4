/** `npm run migrate`: creates the database if it is missing, then applies every migration. */
import { loadConfig } from '@tickwork/core';
import { createDatabase, ensureDatabase } from './database.ts';
import { migrateToLatest } from './migrate.ts';

const config = loadConfig();
const created = await ensureDatabase(config.databaseUrl);
const handle = createDatabase({ url: config.databaseUrl, poolMax: 2, applicationName: 'tickwork-migrate' });
try {
  const applied = await migrateToLatest(handle.db);
  const where = new URL(config.databaseUrl);
  where.password = '';
  console.log(
    `migrate: ${created ? 'created the database, ' : ''}${applied.length ? `applied ${applied.join(', ')}` : 'schema up to date'} (${where.host}${where.pathname})`,
  );
} catch (error) {
  console.error(`migrate: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await handle.close();
}
