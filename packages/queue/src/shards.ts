/**
 * The `fire` queue split over shards, and the names of every BullMQ queue Tickwork uses. On a
 * Redis Cluster, every key of one BullMQ queue must hash to one slot: the first `{…}` of a key
 * (its hash tag) decides. With `BULLMQ_PREFIX` tagged (the default `{tickwork}`), the prefix's
 * tag holds every queue on one slot, so one master. With an untagged prefix (e.g. `tickwork`),
 * each queue carries a tag of its own in its name, and the fire shards' tags are chosen to land
 * in evenly spaced slots, so the masters of an evenly split cluster share them.
 * Pure: nothing here talks to Redis.
 */
import { FIRE_QUEUE, MAINTENANCE_QUEUE } from './catalog.ts';

/** Redis Cluster's slot count. */
export const CLUSTER_SLOTS = 16_384;

/** The hash tag of a key (what Redis Cluster hashes), or undefined when the key has none. */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open === -1) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** CRC16 (XMODEM), the checksum Redis Cluster takes of a key's tag. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Redis Cluster slot of a key (`CLUSTER KEYSLOT`). */
export function keySlotOf(key: string): number {
  return crc16(hashTagOf(key) ?? key) % CLUSTER_SLOTS;
}

/** How many fire queues at most (FIRE_QUEUE_SHARDS). */
export const MAX_FIRE_SHARDS = 256;

export interface QueueNamesOptions {
  /** The BullMQ prefix (BULLMQ_PREFIX). */
  prefix: string;
  /** FIRE_QUEUE_SHARDS. @defaultValue 1 */
  shards?: number;
  /** Whether Redis is a Cluster (REDIS_CLUSTER_NODES). */
  cluster?: boolean;
}

/**
 * Whether each queue needs a hash tag of its own in its name: on a Cluster under an untagged
 * prefix. (Under a tagged prefix, a tag in the name changes nothing: the prefix's comes first.)
 */
function namesCarryTags({ prefix, cluster }: QueueNamesOptions): boolean {
  return cluster === true && hashTagOf(`${prefix}:`) === undefined;
}

/**
 * The tag of shard `index` of `count`: `<count>-<index>-<k>`, with the smallest k whose slot lies
 * within a quarter of a share of the middle of the index-th of `count` equal slot ranges (a
 * cluster made by `redis-cli --cluster create` splits the slots in equal ranges, one per master).
 */
function shardTagOf(index: number, count: number): string {
  const share = CLUSTER_SLOTS / count;
  const middle = (index + 0.5) * share;
  for (let k = 0; ; k++) {
    const tag = `${count}-${index}-${k}`;
    if (Math.abs(keySlotOf(`{${tag}}`) - middle) <= share / 4) return tag;
  }
}

/**
 * The names of the fire queues, shard 0 first. One shard keeps today's name, `fire`, unless the
 * queue needs a tag; more shards are each `fire-{<count>-<index>-<k>}`. The names depend on the
 * count, so a change of FIRE_QUEUE_SHARDS moves jobs (the reconciler does it; see reconcile.ts).
 */
export function fireQueueNamesOf(options: QueueNamesOptions): string[] {
  const count = options.shards ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_FIRE_SHARDS) {
    throw new RangeError(`the fire queue has 1 to ${MAX_FIRE_SHARDS} shards (got ${count})`);
  }
  if (count === 1 && !namesCarryTags(options)) return [FIRE_QUEUE];
  return Array.from({ length: count }, (_, index) => `${FIRE_QUEUE}-{${shardTagOf(index, count)}}`);
}

/** The maintenance queue's name: `maintenance`, or `{maintenance}` where it needs a tag. */
export function maintenanceQueueNameOf(options: QueueNamesOptions): string {
  return namesCarryTags(options) ? `{${MAINTENANCE_QUEUE}}` : MAINTENANCE_QUEUE;
}

/** FNV-1a (32 bits) of a string: a fast, stable hash for picking a shard. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The shard of a Tickwork job (every version and occurrence of it): stable, from its id alone. */
export function shardIndexOf(jobId: string, shards: number): number {
  return shards <= 1 ? 0 : fnv1a(jobId) % shards;
}
