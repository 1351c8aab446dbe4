/**
 * The jobs service tier: a service's jobs and their runs, and enabling or disabling a service.
 * Every write here keeps Postgres (the truth) and Redis (BullMQ's timers, holding only
 * `{ jobId, version }`) in step; the routes map HTTP to these calls and back, and nothing here
 * knows of HTTP.
 *
 * ## The write order
 *
 * A worker acts on what Redis hands it only as far as Postgres confirms it when the worker takes
 * it: an occurrence of a job version Postgres does not hold active, of a disabled service, or of
 * a run Postgres has no row for delivers nothing. So every operation writes in this order:
 *
 * 1. **What makes a job fire is registered before the commit that confirms it**: a create, the
 *    new version of a patch or a resume, an enable. Until the commit the registration fires
 *    nothing, and no job is acknowledged that Redis does not hold. When Redis refuses, nothing
 *    is written (503); when the commit fails, the registration is taken back.
 * 2. **What stops a job firing is committed before it leaves Redis**: a delete, a pause, the
 *    old version of a patch, a disable. From the commit on, workers skip it; the removal after
 *    it is best effort, and a Redis failure does not fail the request.
 * 3. **A run the api records itself is committed before its BullMQ job**: run now, replay. A
 *    worker may take that job the instant it exists and must find the run. When Redis refuses,
 *    the run is taken back (503).
 *
 * Taking back is awaited and best effort: what it or a removal leaves behind, the reconciler
 * repairs (it removes a scheduler that no active job accounts for, and re-queues a run left
 * open). A change of a job's definition or state locks its row for the whole change, so two
 * changes of one job never interleave and the `If-Match` check is exact.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import {
  TickworkError,
  applyJobPatch,
  buildJobSpec,
  canonicalJson,
  ifMatchAllows,
  nextRunOf,
  normalizedScheduleOf,
  quotaExceeded,
  uuidv7,
  windowOf,
  type Actor,
  type CreateJobBody,
  type JobChange,
  type Job,
  type JobState,
  type MarkedOccurrence,
  type PatchJobBody,
  nextMarkedOccurrences,
  type SecretKeys,
  type SkipJobBody,
} from '@tickwork/core';
import { manualJobIdOf, replayJobIdOf } from '@tickwork/queue';
import {
  deleteJobRecorded,
  deleteRun,
  deleteVersion,
  findJob,
  findJobUnlessStamp,
  findRun,
  findServiceById,
  hasVersions,
  insertJobRecorded,
  insertJobRecordedGrouped,
  insertRequestedRun,
  isForeignKeyViolation,
  isMaxJobsViolation,
  isMissingCalendar,
  isUniqueViolation,
  jobFromRow,
  jobsOfService,
  findStampedJobs,
  findStampedRuns,
  listJobStamps,
  listJobs,
  listRunStamps,
  listRunsOfJob,
  listRunsOfService,
  listVersions,
  lockJob,
  recordVersion,
  setServiceDisabled,
  setSkipUntil,
  updateJob,
  WITHOUT_HEADERS,
  type Database,
  type JobListFilter,
  type JobRow,
  type Page,
  type RunListFilter,
  type RunOwner,
  type RunRow,
  type ServiceRow,
  type StampText,
  type VersionStamp,
} from '@tickwork/db';
import type { FireQueue } from '@tickwork/queue';
import type { JobCache } from '../auth-cache.ts';
import { etagOf } from '../serializers.ts';
import { CalendarsService, calendarsNotFound } from './calendars.ts';
import { skipUntilOf, untilOf } from './history.ts';
import { SameTurnReads } from './same-turn.ts';

export interface JobsServiceDeps {
  /** The primary: every write, and every read a write decides on. */
  db: Kysely<Database>;
  /** Reads a client asks for: a replica when DATABASE_READ_URL is set, else the primary. */
  readDb: Kysely<Database>;
  /** Job rows kept in process for reads (`auth-cache.ts`); each change here drops its job's row. */
  jobCache?: JobCache | undefined;
  /** BullMQ's `fire` queue, where a job's schedule and a recorded run are handed to workers. */
  fireQueue: FireQueue;
  /** Milliseconds since the epoch. @defaultValue Date.now */
  clock?: () => number;
  /** Where a best-effort step that failed is reported (a request's logger carries its id). */
  log: Pick<Logger, 'warn'>;
  /**
   * Tells every api instance that what an API key may do has changed (their principal caches).
   * Called after the commit that enables or disables a service, before the call returns.
   */
  announceAuthChange: () => Promise<void>;
  /**
   * Makes a committed change of a job visible through every api instance before the call
   * returns (read your writes: their job caches, and a read replica's routing). Never fails.
   */
  announceJobChange?: (serviceId: string, jobId: string) => Promise<void>;
  /** The calendars a job lists, checked and read (by default, over `db` and `readDb`). */
  calendars?: CalendarsService;
  /** Seal a target's headers on every write, and open them where a change needs them (a PATCH). */
  secretKeys: SecretKeys;
  /** Who the changes are made by: recorded in the job's version history (see `by`). */
  actor?: Actor;
}

/** Who creates a job: their service and its minimum-interval quota, as the api key lookup found them. */
export interface Creator {
  serviceId: string;
  minIntervalMs: number;
}

/**
 * Creates arriving together are inserted by one statement (`insertJobRecordedGrouped`);
 * `TICKWORK_CREATE_GROUP=off` inserts each alone (to measure the lever).
 */
const GROUP_CREATES = process.env.TICKWORK_CREATE_GROUP !== 'off';

/** Jobs (un)registered at once while a service is enabled or disabled. */
const REGISTRATION_BATCH = 50;

const UNCOMMITTED_VERSION = 'could not remove the scheduler of a version not committed; the reconciler will';

const noJob = (id: string) => new TickworkError('not_found', `No job ${id}.`);
const noRun = (id: string) => new TickworkError('not_found', `No run ${id}.`);
const noService = (id: string) => new TickworkError('not_found', `No service ${id}.`);

function nameTaken(name: string): TickworkError {
  return new TickworkError('conflict', `A job named "${name}" already exists in this service.`, {
    errors: [{ field: 'name', message: 'is already taken' }],
  });
}

/**
 * The job's state after a change: a paused job stays paused; otherwise it is active when its new
 * definition fires again (a completed one-shot moved to a later `at`, a higher `maxRuns`) and
 * completed when it will not (an `endAt` moved into the past of its next occurrence).
 */
function stateAfterChange(current: JobState, draft: Job, now: number, runCount: number): JobState {
  if (current === 'paused') return current;
  return nextRunOf({ ...draft, state: 'active' }, now, runCount) === null ? 'completed' : 'active';
}

const dateOrNull = (ms: number | null) => (ms === null ? null : new Date(ms));

export class JobsService {
  readonly #deps: JobsServiceDeps;
  readonly #now: () => number;
  readonly #calendars: CalendarsService;
  /** The stamps of list pages, identical reads of one turn sharing a query; none with a replica. */
  readonly #stamps: SameTurnReads<StampText> | undefined;

  constructor(deps: JobsServiceDeps) {
    this.#deps = deps;
    this.#stamps =
      deps.readDb === deps.db && process.env.TICKWORK_SAME_TURN_READS !== 'off' ? new SameTurnReads() : undefined;
    this.#now = deps.clock ?? Date.now;
    this.#calendars = deps.calendars ?? new CalendarsService({ db: deps.db, readDb: deps.readDb, clock: deps.clock });
  }

  /** The same service, reporting to `log`: a request's logger, so its lines carry the request id. */
  withLog(log: JobsServiceDeps['log']): JobsService {
    return new JobsService({ ...this.#deps, log });
  }

  /** The same service, making its changes as `actor` (each is recorded in the job's history). */
  by(actor: Actor): JobsService {
    return new JobsService({ ...this.#deps, actor });
  }

  /**
   * A history entry of a change made at `now` by this service's actor. Its id (the history's
   * order) is taken when the stamp is: under the job's row lock for a change that takes it, so two
   * changes of one job are ordered as they committed.
   */
  #stamp(change: JobChange, now: number): VersionStamp {
    const actor = this.#deps.actor;
    if (!actor) throw new Error('a change of a job needs an actor: call by(actor) first');
    return { id: uuidv7(), change, actor, at: new Date(now) };
  }

  /**
   * Creates a job (rule 1): its schedule in Redis, then its row in one statement, in its own
   * transaction, shared with the creates of this process that arrive at the same time (group commit:
   * each is answered only once that statement has committed its row). The `maxJobs` quota is
   * counted by the insert's trigger on one of the service's count shards (migration 0060), so
   * racing creates can never pass it and, far from the quota, never wait for each other; a group
   * that would pass it is written again create by create, so exactly the creates over it fail.
   */
  /** `bodyText` is `body.target.body` as the client wrote it, the bytes its callbacks send. */
  async create(creator: Creator, body: CreateJobBody, bodyText?: string): Promise<JobRow> {
    const { serviceId } = creator;
    const now = this.#now();
    const spec = buildJobSpec(body, { now, limits: { minIntervalMs: creator.minIntervalMs }, bodyText });
    const id = uuidv7(now);
    const draft = { ...spec, id, serviceId, state: 'active' as JobState, version: 1, createdAt: now, updatedAt: now };
    const exclusion = await this.#calendars.exclusionFor(serviceId, spec.calendars);
    const nextRunAt = nextRunOf(draft, now);
    // A window that holds no occurrence (endAt before the first one) makes a job that is done already.
    const state: JobState = body.paused ? 'paused' : nextRunAt === null ? 'completed' : 'active';
    const stamp = this.#stamp('create', now);
    await this.#deps.fireQueue.register({ ...draft, state }, now);
    try {
      return await (GROUP_CREATES ? insertJobRecordedGrouped : insertJobRecorded)(
        this.#deps.db,
        {
          ...spec,
          id,
          serviceId,
          state,
          now: new Date(now),
          // Shown without the days its calendars exclude; whether it is done, never (see nextRunOf).
          nextRunAt: state === 'active' ? dateOrNull(nextRunOf(draft, now, 0, exclusion)) : null,
        },
        stamp,
        this.#deps.secretKeys,
      );
    } catch (error) {
      await this.#takeBack(
        { jobId: id },
        'could not remove the scheduler of a job not created; the reconciler will',
        () => this.#deps.fireQueue.unregister(id, 1),
      );
      if (isUniqueViolation(error)) throw nameTaken(spec.name);
      if (isMissingCalendar(error)) throw await this.#calendarsGone(serviceId, spec.calendars);
      if (isMaxJobsViolation(error)) throw await this.#maxJobsExceeded(serviceId);
      throw error;
    }
  }

  /**
   * Applies a JSON Merge Patch as the job's next version (rules 1 and 2, see `#nextVersion`). The
   * result is checked like a create; a patch that changes nothing keeps the version.
   */
  async patch(
    serviceId: string,
    id: string,
    patch: PatchJobBody,
    ifMatch?: string,
    bodyText?: string,
  ): Promise<JobRow> {
    const service = await findServiceById(this.#deps.db, serviceId);
    if (!service) throw new TickworkError('unauthorized', 'The API key is not valid.');
    const now = this.#now();
    let listed: string[] | undefined;
    try {
      return await this.#nextVersion(serviceId, id, now, 'patch', async (current, trx) => {
        if (!ifMatchAllows(ifMatch, current.version)) {
          throw new TickworkError(
            'precondition_failed',
            `The job is at version ${current.version} (ETag ${etagOf(current.version)}); read it again and retry.`,
          );
        }
        const old = jobFromRow(current, this.#deps.secretKeys);
        const spec = buildJobSpec(applyJobPatch(old, patch), {
          now,
          limits: { minIntervalMs: service.min_interval_ms },
          previous: old,
          // A body the patch does not replace keeps its bytes; one it reorders is a change.
          bodyText: patch.target?.body === undefined ? old.target.bodyText : bodyText,
        });
        // jsonb does not keep key order: compare canonical forms.
        if (canonicalJson({ ...old, ...spec }) === canonicalJson(old)) return current;
        const draft: Job = { ...old, ...spec, version: old.version + 1, updatedAt: now };
        draft.state = stateAfterChange(old.state, draft, now, current.run_count);
        listed = spec.calendars;
        const exclusion = await this.#calendars.exclusionFor(serviceId, spec.calendars, trx);
        return updateJob(trx, old.id, {
          spec,
          keys: this.#deps.secretKeys,
          state: draft.state,
          version: draft.version,
          nextRunAt: dateOrNull(nextRunOf(draft, now, current.run_count, exclusion)),
          now: new Date(now),
        });
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTaken(patch.name ?? '');
      if (isMissingCalendar(error)) throw await this.#calendarsGone(serviceId, listed);
      throw error;
    }
  }

  /**
   * Pauses a job, idempotently (rule 2): the paused version commits, then the active one's
   * registration goes. Postgres alone already stops delivery (workers record `paused`), so a pause
   * succeeds while Redis is away. With `until` (ISO 8601, in the future) the job resumes by itself
   * at that instant (the worker's resume-due task); a pause without it ends only with a resume.
   */
  async pause(serviceId: string, id: string, until?: string): Promise<JobRow> {
    const now = this.#now();
    const pausedUntil = until === undefined ? null : new Date(untilOf(until, now, 'until'));
    return this.#nextVersion(serviceId, id, now, 'pause', async (current, trx) => {
      if (current.state === 'paused' && current.paused_until?.getTime() === pausedUntil?.getTime()) return current;
      if (current.state === 'completed')
        throw new TickworkError('conflict', 'The job is completed; there is nothing to pause.');
      return updateJob(trx, current.id, {
        state: 'paused',
        version: current.version + 1,
        nextRunAt: null,
        now: new Date(now),
        pausedUntil,
      });
    });
  }

  /**
   * Skips the job's next occurrences: each is recorded `skipped` (`requested`) when it comes due,
   * and not delivered. `count` is resolved now to the instant after the last occurrence it names;
   * `until` is that instant itself. Replaces a skip in force (`count: 0` ends it). The definition
   * and the version do not change, so Redis is not involved; the skip is recorded in the history.
   */
  async skip(serviceId: string, id: string, body: SkipJobBody): Promise<JobRow> {
    const now = this.#now();
    return this.#deps.db.transaction().execute(async (trx) => {
      const current = await lockJob(trx, serviceId, id);
      if (!current) throw noJob(id);
      if (current.state === 'completed')
        throw new TickworkError('conflict', 'The job is completed; it has no occurrence left to skip.');
      const skipUntil = skipUntilOf(current, body, now);
      if (current.skip_until?.getTime() === skipUntil?.getTime()) return current;
      const row = await setSkipUntil(trx, current.id, skipUntil);
      await recordVersion(trx, current.id, this.#stamp('skip', now));
      return row;
    });
  }

  /**
   * Resumes a paused job from now on, idempotently (rule 1): its next version is registered
   * before it commits. What it missed while paused is not caught up; an interval keeps its phase.
   */
  async resume(serviceId: string, id: string): Promise<JobRow> {
    const now = this.#now();
    return this.#nextVersion(serviceId, id, now, 'resume', async (current, trx) => {
      if (current.state === 'active') return current;
      if (current.state === 'completed')
        throw new TickworkError('conflict', 'The job is completed; change it with PATCH to make it fire again.');
      const draft: Job = {
        ...jobFromRow(current, WITHOUT_HEADERS),
        state: 'active',
        version: current.version + 1,
        updatedAt: now,
      };
      const nextRunAt = nextRunOf(draft, now, current.run_count);
      const exclusion = await this.#calendars.exclusionFor(serviceId, draft.calendars, trx);
      return updateJob(trx, current.id, {
        state: nextRunAt === null ? 'completed' : 'active',
        version: draft.version,
        nextRunAt: nextRunAt === null ? null : dateOrNull(nextRunOf(draft, now, current.run_count, exclusion)),
        now: new Date(now),
        pausedUntil: null,
      });
    });
  }

  /** Deletes a job (rule 2): its row, then its registration. It never fires again; its history stays. */
  async delete(serviceId: string, id: string): Promise<void> {
    const removed = await deleteJobRecorded(this.#deps.db, serviceId, id, this.#stamp('delete', this.#now()));
    if (!removed) throw noJob(id);
    this.#deps.jobCache?.delete(removed.id);
    await this.#deps.announceJobChange?.(serviceId, removed.id);
    await this.#removeAfterCommit(removed.id, removed.version);
  }

  /** Runs a job now, outside its schedule (rule 3), whatever its state; the schedule does not move. */
  async trigger(serviceId: string, id: string): Promise<RunRow> {
    const job = await findJob(this.#deps.db, serviceId, id);
    if (!job) throw noJob(id);
    return this.#startRequestedRun({
      jobId: job.id,
      serviceId,
      jobVersion: job.version,
      trigger: 'manual',
      stamp: this.#stamp('trigger', this.#now()),
    });
  }

  /** Delivers a dead or failed run again as a new run (rule 3), with the job's current target. */
  async replay(serviceId: string, runId: string): Promise<RunRow> {
    const original = await findRun(this.#deps.db, serviceId, runId);
    if (!original) throw noRun(runId);
    if (original.status !== 'dead' && original.status !== 'failed') {
      throw new TickworkError('conflict', `Only dead or failed runs can be replayed; this one is ${original.status}.`);
    }
    const job = await findJob(this.#deps.db, serviceId, original.job_id);
    if (!job) throw new TickworkError('not_found', `The job of run ${original.id} no longer exists.`);
    return this.#startRequestedRun({
      jobId: job.id,
      serviceId,
      jobVersion: job.version,
      trigger: 'replay',
      replayOf: original.id,
    });
  }

  /**
   * Disables a service (rule 2), idempotently: from its commit on, its keys are refused (once
   * every api instance is told) and workers skip its occurrences; then its jobs' registrations
   * are removed, best effort.
   */
  async disableService(serviceId: string): Promise<ServiceRow> {
    const row = await setServiceDisabled(this.#deps.db, serviceId, true);
    if (!row) throw noService(serviceId);
    await this.#deps.announceAuthChange();
    try {
      await this.#forEachJob(row.id, (job) => this.#deps.fireQueue.unregister(job.id, job.version));
    } catch (error) {
      this.#deps.log.warn(
        { err: error, serviceId: row.id },
        'disabled, but some schedules are still in Redis; workers skip them',
      );
    }
    return row;
  }

  /**
   * Enables a service (rule 1), idempotently: its jobs are registered again from Postgres, then
   * the enable is committed and every api instance told. Occurrences that fell due while it was
   * disabled are not delivered. A failure leaves it disabled, its new registrations taken back.
   */
  async enableService(serviceId: string): Promise<ServiceRow> {
    const service = await findServiceById(this.#deps.db, serviceId);
    if (!service) throw noService(serviceId);
    const now = this.#now();
    const registered: Array<{ id: string; version: number }> = [];
    let row: ServiceRow | undefined;
    try {
      await this.#forEachJob(service.id, async (job, runCount) => {
        const registration = await this.#deps.fireQueue.register(job, now, runCount);
        if (registration.kind !== 'none') registered.push({ id: job.id, version: job.version });
      });
      row = await setServiceDisabled(this.#deps.db, service.id, false);
    } catch (error) {
      // An enabled service's registrations are its live schedules: only a disabled one's are taken back.
      if (service.disabled_at !== null) {
        await this.#takeBack(
          { serviceId: service.id },
          'could not remove every schedule of a service not enabled; workers skip them',
          () => Promise.all(registered.map((job) => this.#deps.fireQueue.unregister(job.id, job.version))),
        );
      }
      throw error;
    }
    if (!row) throw noService(serviceId);
    await this.#deps.announceAuthChange();
    return row;
  }

  /** One job of the service. */
  /**
   * The job's row when this instance's cache holds it fresh for this service, else undefined
   * (then {@link get} reads it): what {@link get} would answer, without a promise.
   */
  cached(serviceId: string, id: string): JobRow | undefined {
    return this.#deps.jobCache?.peek(serviceId, id) ?? undefined;
  }

  async get(serviceId: string, id: string): Promise<JobRow> {
    const { jobCache, readDb } = this.#deps;
    const row = await (jobCache
      ? jobCache.read(serviceId, id, (stamp) => findJobUnlessStamp(readDb, serviceId, id, stamp))
      : findJob(readDb, serviceId, id));
    if (!row) throw noJob(id);
    return row;
  }

  /** The service's jobs, newest first, by keyset. */
  list(serviceId: string, filter: JobListFilter): Promise<Page<JobRow>> {
    return listJobs(this.#deps.readDb, serviceId, filter);
  }

  /** The page {@link list} gives, as ids and row versions in one text (`page-cache.ts`). */
  listStamps(serviceId: string, filter: JobListFilter): Promise<StampText> {
    const read = () => listJobStamps(this.#deps.readDb, serviceId, filter);
    if (this.#stamps === undefined) return read();
    // The whole filter is the key, so a field added to it later can never make two pages share.
    return this.#stamps.read(JSON.stringify(['jobs', serviceId, filter]), read);
  }

  /** The service's jobs of these ids, each with its row version. */
  stampedJobs(serviceId: string, ids: readonly string[]) {
    return findStampedJobs(this.#deps.readDb, serviceId, ids);
  }

  /**
   * A job's coming occurrences: inside its window and within `maxRuns`; none unless active. The
   * days its calendars exclude are left out, or with `includeExcluded` listed and marked.
   */
  async nextRuns(
    serviceId: string,
    id: string,
    count: number,
    options: { includeExcluded?: boolean } = {},
  ): Promise<MarkedOccurrence[]> {
    const row = await this.get(serviceId, id);
    const job = jobFromRow(row, WITHOUT_HEADERS);
    if (job.state !== 'active') return [];
    const left = job.maxRuns === null ? count : Math.max(0, Math.min(count, job.maxRuns - row.run_count));
    const exclusion = await this.#calendars.exclusionFor(serviceId, job.calendars, this.#deps.readDb);
    return nextMarkedOccurrences(normalizedScheduleOf(job), windowOf(job), this.#now(), left, exclusion, options);
  }

  /**
   * A job's version history, newest first, by keyset. Readable after the job is deleted (until the
   * prune takes it, RUN_RETENTION_DAYS after the delete); a job of another service is not found.
   */
  async versions(serviceId: string, id: string, filter: { limit: number; afterId?: string }) {
    const page = await listVersions(this.#deps.readDb, serviceId, id, filter);
    if (page.items.length === 0 && !(await hasVersions(this.#deps.readDb, serviceId, id))) {
      // A job written before the history existed has none: an empty page, not a 404.
      if (!(await findJob(this.#deps.readDb, serviceId, id))) throw noJob(id);
    }
    return page;
  }

  /** A job's runs, newest first, by keyset. */
  async runsOf(serviceId: string, id: string, filter: RunListFilter): Promise<Page<RunRow>> {
    const job = await this.get(serviceId, id);
    return listRunsOfJob(this.#deps.readDb, job.id, filter);
  }

  /** Whose runs {@link runsOf} lists: the job's, once it is known to be the service's. */
  async runOwnerOf(serviceId: string, id: string): Promise<RunOwner> {
    const job = await this.get(serviceId, id);
    return { column: 'job_id', id: job.id };
  }

  /** A page of an owner's runs as ids and row versions in one text (`page-cache.ts`). */
  runStamps(owner: RunOwner, filter: RunListFilter): Promise<StampText> {
    const read = () => listRunStamps(this.#deps.readDb, owner, filter);
    if (this.#stamps === undefined) return read();
    return this.#stamps.read(JSON.stringify(['runs', owner.column, owner.id, filter]), read);
  }

  /** An owner's runs of these ids, each with its row version. */
  stampedRuns(owner: RunOwner, ids: readonly string[]) {
    return findStampedRuns(this.#deps.readDb, owner, ids);
  }

  /** One run of the service's jobs. */
  async run(serviceId: string, id: string): Promise<RunRow> {
    const row = await findRun(this.#deps.readDb, serviceId, id);
    if (!row) throw noRun(id);
    return row;
  }

  /** The runs of all the service's jobs, newest first, by keyset (`status: dead`: the dead letters). */
  runs(serviceId: string, filter: RunListFilter): Promise<Page<RunRow>> {
    return listRunsOfService(this.#deps.readDb, serviceId, filter);
  }

  /**
   * Writes a job's next version under its row lock, in the write order: rule 1 for the new
   * version (registered before the commit when it is active, taken back when the commit fails),
   * rule 2 for the active version it replaces (its registration removed after the commit). The
   * new version has a new scheduler id, so both exist for a moment and none is ever missing.
   * `next` returns the row it wrote, or `current` itself when nothing changes.
   */
  async #nextVersion(
    serviceId: string,
    id: string,
    now: number,
    change: JobChange,
    next: (current: JobRow, trx: Transaction<Database>) => Promise<JobRow>,
  ): Promise<JobRow> {
    // Fails before any write when the service has no actor.
    this.#stamp(change, now);
    let registered: number | undefined;
    let replaced: JobRow | undefined;
    let changed = false;
    const row = await this.#deps.db
      .transaction()
      .execute(async (trx): Promise<JobRow> => {
        const current = await lockJob(trx, serviceId, id);
        if (!current) throw noJob(id);
        const written = await next(current, trx);
        if (written === current) return current;
        changed = true;
        await recordVersion(trx, written.id, this.#stamp(change, now));
        if (written.state === 'active') {
          await this.#deps.fireQueue.register(jobFromRow(written, WITHOUT_HEADERS), now, written.run_count);
          registered = written.version;
        }
        if (current.state === 'active') replaced = current;
        return written;
      })
      .catch(async (error: unknown) => {
        const version = registered;
        if (version !== undefined) {
          await this.#takeBack({ jobId: id }, UNCOMMITTED_VERSION, () => this.#deps.fireQueue.unregister(id, version));
        }
        throw error;
      });
    // Read your writes: this instance's cache forgets the old row before the change answers, and
    // every other instance's too (when it changed).
    this.#deps.jobCache?.delete(id);
    if (changed) await this.#deps.announceJobChange?.(serviceId, id);
    if (replaced) await this.#removeAfterCommit(replaced.id, replaced.version);
    return row;
  }

  /** Rule 3: the run first, then its BullMQ job; when Redis refuses, the run is taken back. */
  async #startRequestedRun(run: {
    jobId: string;
    serviceId: string;
    jobVersion: number;
    trigger: 'manual' | 'replay';
    replayOf?: string;
    /** A run now is a change in the job's history, recorded with its run. */
    stamp?: VersionStamp;
  }): Promise<RunRow> {
    const now = this.#now();
    const { stamp, ...fields } = run;
    const recorded = await insertRequestedRun(this.#deps.db, { ...fields, id: uuidv7(now), now }, stamp).catch(
      (error: unknown) => {
        // The job was deleted between the lookup and this insert (found by the chaos model test,
        // a trigger racing a delete): its run has nothing to belong to.
        if (isForeignKeyViolation(error)) throw noJob(run.jobId);
        throw error;
      },
    );
    const bullJobId =
      run.trigger === 'manual' ? manualJobIdOf(run.jobId, recorded.id) : replayJobIdOf(run.jobId, recorded.id);
    try {
      await this.#deps.fireQueue.enqueueRun(
        { jobId: run.jobId, version: run.jobVersion, runId: recorded.id },
        bullJobId,
      );
    } catch (error) {
      await this.#takeBack(
        { jobId: run.jobId, runId: recorded.id },
        'could not remove a run not queued; the reconciler will queue it',
        () => Promise.all([deleteRun(this.#deps.db, recorded.id), stamp && deleteVersion(this.#deps.db, stamp.id)]),
      );
      throw error;
    }
    return recorded;
  }

  /** Rule 2's second step: a registration the commit made void leaves Redis, best effort. */
  async #removeAfterCommit(jobId: string, version: number): Promise<void> {
    await this.#deps.fireQueue.unregister(jobId, version).catch((error: unknown) => {
      this.#deps.log.warn({ err: error, jobId }, 'could not remove the scheduler; the reconciler will');
    });
  }

  /** Undoes the first write of a change whose second failed, best effort; `failed` says what is left. */
  async #takeBack(ids: Record<string, string>, failed: string, undo: () => Promise<unknown>): Promise<void> {
    await undo().catch((error: unknown) => {
      this.#deps.log.warn({ err: error, ...ids }, failed);
    });
  }

  /** A job's write lost a race with a calendar's delete: the 400 for the calendars no longer there. */
  async #calendarsGone(serviceId: string, ids: readonly string[] | undefined): Promise<TickworkError> {
    const list = ids ?? [];
    try {
      await this.#calendars.exclusionFor(serviceId, list);
    } catch (error) {
      if (error instanceof TickworkError) return error;
    }
    return calendarsNotFound(list, new Set(list.map((id) => id.toLowerCase())));
  }

  async #maxJobsExceeded(serviceId: string): Promise<TickworkError> {
    const service = await findServiceById(this.#deps.db, serviceId).catch(() => undefined);
    return quotaExceeded(
      'maxJobs',
      service ? `This service may hold at most ${service.max_jobs} jobs.` : 'This service holds its maximum of jobs.',
    );
  }

  /**
   * Calls `each` on every job of a service, a batch at a time, in id order. A batch is waited for
   * whole, so after a failure no call is still in flight to land after a take-back.
   */
  async #forEachJob(serviceId: string, each: (job: Job, runCount: number) => Promise<unknown>): Promise<void> {
    let afterId: string | undefined;
    for (;;) {
      const rows = await jobsOfService(this.#deps.db, serviceId, { limit: REGISTRATION_BATCH, afterId });
      const settled = await Promise.allSettled(
        rows.map((row) => each(jobFromRow(row, WITHOUT_HEADERS), row.run_count)),
      );
      const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
      if (rows.length < REGISTRATION_BATCH) return;
      afterId = rows.at(-1)?.id;
    }
  }
}
