/** Where stripped sources are cached, and under which name: shared by the preload and the stripper. */
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** Per Node version: another Node may strip differently. */
export const cacheDirOf = (root) =>
  process.env.TICKWORK_TS_CACHE ?? join(root, 'node_modules', '.cache', 'tickwork-stripped', process.version);

/** By content alone: a checkout, a copy or an image layer with the same source hits the same entry. */
export const cacheKeyOf = (source) => createHash('sha256').update(source).digest('hex').slice(0, 40);
