/**
 * What a failed query means, asked by name. Postgres names its errors by SQLSTATE (appendix A of
 * its manual); callers ask these predicates instead of comparing codes, so each code is spelled
 * once, here.
 */
export const SQLSTATE = {
  foreignKeyViolation: '23503',
  uniqueViolation: '23505',
  checkViolation: '23514',
  adminShutdown: '57P01',
  cannotConnectNow: '57P03',
  duplicateDatabase: '42P04',
} as const;

/** The trigger (migration 0060; 0003 before) that keeps a service within its `max_jobs`. */
const MAX_JOBS_CONSTRAINT = 'jobs_within_max_jobs';

export function fieldsOf(error: unknown): { code?: unknown; constraint?: unknown; message?: unknown } {
  return typeof error === 'object' && error !== null ? error : {};
}

/** A row would repeat a unique key (a job's name within its service, a service's name). */
export function isUniqueViolation(error: unknown): boolean {
  return fieldsOf(error).code === SQLSTATE.uniqueViolation;
}

/** A row names a parent that is not there (a run of a job deleted meanwhile). */
export function isForeignKeyViolation(error: unknown): boolean {
  return fieldsOf(error).code === SQLSTATE.foreignKeyViolation;
}

/** A create found the service full: `jobs_within_max_jobs` refused it. */
export function isMaxJobsViolation(error: unknown): boolean {
  const { code, constraint } = fieldsOf(error);
  return code === SQLSTATE.checkViolation && constraint === MAX_JOBS_CONSTRAINT;
}

/** CREATE DATABASE found the database there: another process created it first. */
export function isDuplicateDatabase(error: unknown): boolean {
  return fieldsOf(error).code === SQLSTATE.duplicateDatabase;
}

/** Errors that mean "Postgres is not there" rather than "this query is wrong". */
export function isConnectionError(error: unknown): boolean {
  const { code, message } = fieldsOf(error);
  return (
    // The circuit breaker's own refusal (`CircuitOpenError`), then the socket's.
    code === 'ECIRCUITOPEN' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === SQLSTATE.adminShutdown ||
    code === SQLSTATE.cannotConnectNow ||
    /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED/i.test(String(message ?? ''))
  );
}
