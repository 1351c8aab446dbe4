/**
 * PATCH /v1/jobs/{id}: JSON Merge Patch (RFC 7396) over the job as a client would have created it,
 * then the same rules as a create (`buildJobSpec`). One exception: `schedule` (exactly one of
 * cron/every/everyMs/at) and `target.body` (opaque to Tickwork) are replaced whole, never merged.
 */
import type { JobSpec } from './job.ts';
import type { CreateJobBody, PatchJobBody } from './schemas.ts';

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** RFC 7396: objects merge key by key, `null` removes a key, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A stored job's definition, spelled as a create request: the document a PATCH applies to. */
export function bodyOfSpec(spec: JobSpec): CreateJobBody {
  const { bodyText: _text, ...target } = spec.target;
  return {
    name: spec.name,
    schedule: spec.schedule,
    target: { ...target, headers: { ...target.headers } },
    ...(spec.description === null ? {} : { description: spec.description }),
    labels: { ...spec.labels },
    ...(spec.startAt === null ? {} : { startAt: new Date(spec.startAt).toISOString() }),
    ...(spec.endAt === null ? {} : { endAt: new Date(spec.endAt).toISOString() }),
    ...(spec.maxRuns === null ? {} : { maxRuns: spec.maxRuns }),
    jitterMs: spec.jitterMs,
    overlap: spec.overlap,
    misfire: { ...spec.misfire },
    retry: { maxAttempts: spec.retry.maxAttempts, backoff: { ...spec.retry.backoff } },
    ...(spec.calendars?.length ? { calendars: [...spec.calendars] } : {}),
    ...(spec.alertAfterMs == null ? {} : { alertAfterMs: spec.alertAfterMs }),
  };
}

/** Applies a PATCH body to the stored definition; the result still has to pass `buildJobSpec`. */
export function applyJobPatch(spec: JobSpec, patch: PatchJobBody): CreateJobBody {
  const current = bodyOfSpec(spec);
  const { schedule, target, ...rest } = patch;
  const merged = mergePatch(current, rest) as CreateJobBody;
  if (schedule !== undefined) merged.schedule = schedule;
  if (target !== undefined) {
    const { body, ...targetRest } = target;
    merged.target = mergePatch(current.target, targetRest) as CreateJobBody['target'];
    if (body === null) delete merged.target.body;
    else if (body !== undefined) merged.target.body = body;
  }
  return merged;
}

/**
 * Whether an `If-Match` header lets a change to `version` through: `*`, or a list holding the
 * job's ETag. The ETag is weak (`W/"3"`); a client may also send it strong (`"3"`).
 */
export function ifMatchAllows(header: string | undefined, version: number): boolean {
  if (header === undefined) return true;
  const trimmed = header.trim();
  if (trimmed === '*') return true;
  return trimmed
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === `"${version}"`);
}
