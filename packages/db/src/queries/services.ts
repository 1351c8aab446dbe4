import type { Kysely } from 'kysely';
import type { Database, ServiceRow } from '../types.ts';

export async function insertService(
  db: Kysely<Database>,
  service: { id: string; name: string; signingSecret: string },
): Promise<ServiceRow> {
  return db
    .insertInto('services')
    .values({ id: service.id, name: service.name, signing_secret: service.signingSecret })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findServiceById(db: Kysely<Database>, id: string): Promise<ServiceRow | undefined> {
  return db.selectFrom('services').selectAll().where('id', '=', id).executeTakeFirst();
}
