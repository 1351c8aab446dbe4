/** The machine a figure was measured on, printed with every run and written into RESULTS.md. */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, readdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';

export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  redis: string;
  redisHz: string;
  redisPersistence: string;
  postgres: string;
  load: string;
}

export const loadNow = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

export async function describeMachine(redisUrl: string, databaseUrl: string): Promise<Machine> {
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
  const server = await redis.info('server');
  const [, hz] = (await redis.config('GET', 'hz')) as string[];
  const [, save] = (await redis.config('GET', 'save')) as string[];
  const [, aof] = (await redis.config('GET', 'appendonly')) as string[];
  redis.disconnect();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ server_version: string }>('show server_version');
  await client.end();
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc').toString().trim());
  } catch {
    // cpus() is close enough where nproc is missing
  }
  return {
    nproc,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    redis: /redis_version:(\S+)/.exec(server)?.[1] ?? '?',
    redisHz: hz ?? '?',
    redisPersistence: `save "${save ?? ''}", appendonly ${aof ?? '?'}`,
    postgres: rows[0]?.server_version ?? '?',
    load: loadNow(),
  };
}

export function printMachine(m: Machine): void {
  console.log(
    `machine: nproc=${m.nproc} (${m.cpuModel}) mem=${m.memoryGiB}GiB node=${m.node} redis=${m.redis} hz=${m.redisHz} ` +
      `persistence=[${m.redisPersistence}] postgres=${m.postgres} load=${m.load}`,
  );
}

/** Resident memory of a process now and at its peak, in MiB (Linux /proc). */
export function rssOf(pid: number): { rssMiB: number; peakMiB: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rssMiB: Math.round(kb('VmRSS') / 1024), peakMiB: Math.round(kb('VmHWM') / 1024) };
  } catch {
    return { rssMiB: Number.NaN, peakMiB: Number.NaN };
  }
}

/** A process's CPU so far in user and in kernel mode, ms (Linux `/proc/<pid>/stat`, 100 ticks a second). */
function cpuMsOf(pid: number): { userMs: number; sysMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { userMs: Number(fields[11]) * 10, sysMs: Number(fields[12]) * 10 };
}

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
export function cpuSecondsOf(pid: number): number {
  try {
    const { userMs, sysMs } = cpuMsOf(pid);
    return (userMs + sysMs) / 1000;
  } catch {
    return Number.NaN;
  }
}

/** Every process whose command name is `name` (Linux /proc), e.g. all of Postgres's backends. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // it ended meanwhile
    }
  }
  return pids;
}

/** Busy and total CPU ticks of the whole box so far (/proc/stat's first line). */
function boxTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * CPU used by each role during a window, in % of one core (200% = both cores of a 2-core box),
 * and the whole box's busy share. A role is a set of pids read at the start and at the end (so
 * Postgres backends that come and go are counted for the part of the window they lived).
 */
export function cpuWindow(roles: Record<string, () => number[]>): () => Record<string, number> {
  const startedAt = performance.now();
  const box0 = boxTicks();
  const self0 = process.cpuUsage();
  const before = new Map<number, number>();
  for (const pids of Object.values(roles)) for (const pid of pids()) before.set(pid, cpuSecondsOf(pid));
  return () => {
    const seconds = (performance.now() - startedAt) / 1000;
    const share = (cpu: number) => Math.round((cpu / seconds) * 100);
    const out: Record<string, number> = {};
    for (const [role, pids] of Object.entries(roles)) {
      let cpu = 0;
      for (const pid of pids()) {
        const now = cpuSecondsOf(pid);
        if (Number.isFinite(now)) cpu += now - (before.get(pid) ?? 0);
      }
      out[role] = share(cpu);
    }
    const self = process.cpuUsage(self0);
    out['bench (driver + sink)'] = share((self.user + self.system) / 1e6);
    const box1 = boxTicks();
    out.box = Math.round(((box1.busy - box0.busy) / Math.max(1, box1.total - box0.total)) * 100 * cpus().length);
    return out;
  };
}

/**
 * A process's read and write syscalls so far (Linux `/proc/<pid>/io`: `syscr`, `syscw`, every
 * thread of it; `read`/`recv*`/`readv` and `write`/`send*`/`writev` alike) and its CPU ms in user
 * and in kernel mode (`/proc/<pid>/stat`), or undefined when the files cannot be read (another
 * user's process, e.g. Postgres's backends).
 */
export function syscallsOf(pid: number): { reads: number; writes: number; userMs: number; sysMs: number } | undefined {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    return { reads: field('syscr'), writes: field('syscw'), ...cpuMsOf(pid) };
  } catch {
    return undefined;
  }
}

/**
 * Starts counting the read and write syscalls of each role's processes, and their CPU in user and
 * kernel mode; the returned function gives the growth per role as `<role>.reads`, `<role>.writes`,
 * `<role>.userMs`, `<role>.sysMs` (roles whose files cannot be read are left out). Reading
 * `/proc/<pid>/io` costs the process counted nothing.
 */
export function syscallWindow(roles: Record<string, () => number[]>): () => Record<string, number> {
  type Counts = NonNullable<ReturnType<typeof syscallsOf>>;
  const before = new Map<number, Counts>();
  for (const pids of Object.values(roles))
    for (const pid of pids()) {
      const now = syscallsOf(pid);
      if (now) before.set(pid, now);
    }
  return () => {
    const out: Record<string, number> = {};
    for (const [role, pids] of Object.entries(roles)) {
      const sum: Counts = { reads: 0, writes: 0, userMs: 0, sysMs: 0 };
      let seen = false;
      for (const pid of pids()) {
        const start = before.get(pid);
        const now = syscallsOf(pid);
        if (!start || !now) continue;
        seen = true;
        for (const key of Object.keys(sum) as Array<keyof Counts>) sum[key] += now[key] - start[key];
      }
      if (seen) for (const [key, n] of Object.entries(sum)) out[`${role}.${key}`] = n;
    }
    return out;
  };
}
