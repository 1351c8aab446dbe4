/**
 * `npm run rekey`: every secret at rest sealed again under the current SECRET_KEY, so that
 * SECRET_KEY_PREVIOUS can be dropped. Secrets at rest are a job's target headers
 * (`jobs.target_headers`, and the plain-text headers of a row written before migration 0040) and
 * a service's signing secrets (`signing_secret`, `previous_signing_secret`), and the copy of a
 * job's row each version-history entry holds (`job_versions.definition`: its `target_headers`, or
 * the plain-text headers of an entry written before migration 0040).
 *
 * Safe while the fleet runs: it reads a batch (keyset by id, no lock held between batches) and
 * writes each value back only if it is still the one it read (compare-and-set in one UPDATE). A
 * row an api changed in between was written under the current key already; it is read again and
 * judged afresh. A rekey neither changes a job's version nor its `updated_at`: the definition is
 * the same. Running it twice is harmless; the second run finds nothing to do.
 */
import { sql, type Kysely } from 'kysely';
import { encryptSecret, isSealedUnder, openHeaders, openSecret, sealHeaders, type SecretKeys } from '@tickwork/core';
import type { Database } from './types.ts';

export interface RekeyReport {
  /** Jobs whose headers were sealed again (under the previous key before) or sealed at all (plain text before). */
  jobs: number;
  /** History entries whose copy of the job's headers was sealed again (or sealed at all). */
  versions: number;
  /** Services whose signing secret (or previous one) was sealed again. */
  services: number;
  /** Values neither key opens: left as they are. A rekey that finds any fails (`npm run rekey` exits 1). */
  unreadable: string[];
}

export interface RekeyOptions {
  /** Rows read and written per statement. @defaultValue 500 */
  batchSize?: number;
  /** Called after each batch, with the totals so far (progress lines). */
  onBatch?: (report: RekeyReport) => void;
}

interface JobSecretRow {
  id: string;
  target: string;
  target_headers: string | null;
}

/** What one job row becomes, or undefined when it is sealed under the current key already (or has no headers). */
function resealedJob(
  row: JobSecretRow,
  keys: SecretKeys,
): { target: string; targetHeaders: string | null } | undefined {
  if (row.target_headers !== null) {
    if (isSealedUnder(row.target_headers, keys.current)) return undefined;
    return { target: row.target, targetHeaders: sealHeaders(openHeaders(row.target_headers, keys), keys) };
  }
  const target = JSON.parse(row.target) as { headers?: Record<string, string> };
  if (!target.headers || Object.keys(target.headers).length === 0) return undefined;
  return { target: JSON.stringify({ ...target, headers: {} }), targetHeaders: sealHeaders(target.headers, keys) };
}

async function jobRows(db: Kysely<Database>, where: { afterId: string; limit: number } | { ids: string[] }) {
  const filter = 'ids' in where ? sql`id = ANY(${where.ids}::uuid[])` : sql`id > ${where.afterId}::uuid`;
  const limit = 'ids' in where ? sql`` : sql`LIMIT ${where.limit}`;
  const { rows } = await sql<JobSecretRow>`
    SELECT id, target::text AS target, target_headers FROM jobs WHERE ${filter} ORDER BY id ${limit}
  `.execute(db);
  return rows;
}

/** Writes the batch's new values where each row still holds what was read; the ids written. */
async function writeJobs(
  db: Kysely<Database>,
  changes: { row: JobSecretRow; target: string; targetHeaders: string | null }[],
): Promise<Set<string>> {
  if (changes.length === 0) return new Set();
  const { rows } = await sql<{ id: string }>`
    UPDATE jobs AS j SET target = v.target::jsonb, target_headers = v.sealed
    FROM unnest(
      ${changes.map((c) => c.row.id)}::uuid[],
      ${changes.map((c) => c.row.target)}::text[],
      ${changes.map((c) => c.row.target_headers)}::text[],
      ${changes.map((c) => c.target)}::text[],
      ${changes.map((c) => c.targetHeaders)}::text[]
    ) AS v(id, old_target, old_sealed, target, sealed)
    WHERE j.id = v.id AND j.target = v.old_target::jsonb AND j.target_headers IS NOT DISTINCT FROM v.old_sealed
    RETURNING j.id
  `.execute(db);
  return new Set(rows.map((r) => r.id));
}

/** Seals one batch of rows again; rows changed under it are read again, up to three times. */
async function rekeyJobBatch(db: Kysely<Database>, rows: JobSecretRow[], keys: SecretKeys, report: RekeyReport) {
  let pending = rows;
  for (let round = 0; round < 3 && pending.length > 0; round++) {
    const changes: { row: JobSecretRow; target: string; targetHeaders: string | null }[] = [];
    for (const row of pending) {
      try {
        const change = resealedJob(row, keys);
        if (change) changes.push({ row, ...change });
      } catch {
        report.unreadable.push(`job ${row.id}`);
      }
    }
    const written = await writeJobs(db, changes);
    report.jobs += written.size;
    const missed = changes.filter((c) => !written.has(c.row.id)).map((c) => c.row.id);
    pending = missed.length === 0 ? [] : await jobRows(db, { ids: missed });
  }
  for (const row of pending) report.unreadable.push(`job ${row.id} (changed during every attempt)`);
}

async function rekeyServices(db: Kysely<Database>, keys: SecretKeys, report: RekeyReport) {
  const reseal = (value: string | null) =>
    value === null || isSealedUnder(value, keys.current) ? value : encryptSecret(openSecret(value, keys), keys.current);
  for (let round = 0; round < 3; round++) {
    const services = await db
      .selectFrom('services')
      .select(['id', 'signing_secret', 'previous_signing_secret'])
      .execute();
    let missed = 0;
    for (const service of services) {
      let current: string | null;
      let previous: string | null;
      try {
        current = reseal(service.signing_secret);
        previous = reseal(service.previous_signing_secret);
      } catch {
        if (round === 0) report.unreadable.push(`service ${service.id}`);
        continue;
      }
      if (current === service.signing_secret && previous === service.previous_signing_secret) continue;
      const result = await db
        .updateTable('services')
        .set({ signing_secret: current as string, previous_signing_secret: previous })
        .where('id', '=', service.id)
        .where('signing_secret', '=', service.signing_secret)
        .where(sql<boolean>`previous_signing_secret IS NOT DISTINCT FROM ${service.previous_signing_secret}`)
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) report.services++;
      else missed++;
    }
    if (missed === 0) return;
  }
}

/** Seals every secret at rest under `keys.current`; see the module's comment. */
export async function rekey(db: Kysely<Database>, keys: SecretKeys, options: RekeyOptions = {}): Promise<RekeyReport> {
  const batchSize = options.batchSize ?? 500;
  const report: RekeyReport = { jobs: 0, versions: 0, services: 0, unreadable: [] };
  await rekeyServices(db, keys, report);
  let afterId = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await jobRows(db, { afterId, limit: batchSize });
    if (rows.length === 0) break;
    await rekeyJobBatch(db, rows, keys, report);
    afterId = rows[rows.length - 1]!.id;
    options.onBatch?.(report);
  }
  await rekeyVersions(db, keys, batchSize, report);
  return report;
}

interface VersionSecretRow {
  id: string;
  sealed: string | null;
  headers: Record<string, string> | null;
}

/**
 * History entries: written once and never changed (only deleted), so each batch is written back
 * without a compare-and-set; an entry deleted in between is simply not updated.
 */
async function rekeyVersions(db: Kysely<Database>, keys: SecretKeys, batchSize: number, report: RekeyReport) {
  let afterId = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await sql<VersionSecretRow>`
      SELECT id, definition->>'target_headers' AS sealed, definition->'target'->'headers' AS headers
      FROM job_versions WHERE id > ${afterId}::uuid ORDER BY id LIMIT ${batchSize}
    `.execute(db);
    if (rows.length === 0) return;
    const changes: { id: string; sealed: string | null }[] = [];
    for (const row of rows) {
      try {
        if (row.sealed !== null) {
          if (!isSealedUnder(row.sealed, keys.current)) {
            changes.push({ id: row.id, sealed: sealHeaders(openHeaders(row.sealed, keys), keys) });
          }
        } else if (row.headers && Object.keys(row.headers).length > 0) {
          changes.push({ id: row.id, sealed: sealHeaders(row.headers, keys) });
        }
      } catch {
        report.unreadable.push(`job version ${row.id}`);
      }
    }
    if (changes.length > 0) {
      const result = await sql`
        UPDATE job_versions AS e
        SET definition = jsonb_set(
          jsonb_set(e.definition, '{target_headers}', coalesce(to_jsonb(v.sealed), 'null'::jsonb)), '{target,headers}', '{}'::jsonb
        )
        FROM unnest(
          ${changes.map((c) => c.id)}::uuid[],
          ${changes.map((c) => c.sealed)}::text[]
        ) AS v(id, sealed)
        WHERE e.id = v.id
      `.execute(db);
      report.versions += Number(result.numAffectedRows ?? 0n);
    }
    afterId = rows[rows.length - 1]!.id;
  }
}
