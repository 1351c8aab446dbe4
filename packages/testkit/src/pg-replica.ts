/**
 * A Postgres primary and a streaming read replica of a test's (or the fleet's) own: `initdb` for
 * the primary, `pg_basebackup -R` for the replica, Debian's Postgres 15 binaries, loopback only,
 * on free ports, in a temporary directory removed on stop. Nothing of the machine's own Postgres
 * is touched: its data directory, its `pg_hba.conf` and its port stay as they are (the pair's
 * `pg_hba.conf` is initdb's own, in the pair's own data directory).
 *
 * The replica can replay late on purpose (`recovery_min_apply_delay`), which is how tests show
 * what a lagging replica would serve. Each server runs as a child of this process (no pg_ctl
 * daemon), so a test can crash one (`SIGQUIT`, Postgres' immediate shutdown) or freeze it
 * (`SIGSTOP`), and nothing outlives the process that started it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.ts';

export interface PgReplicaOptions {
  /** `recovery_min_apply_delay` of the replica, in ms. @defaultValue 0 */
  applyDelayMs?: number;
  /** The database to create on the primary (it reaches the replica by replication). @defaultValue 'tickwork' */
  database?: string;
  /** Where the Postgres binaries are. @defaultValue `PG_BIN`, else /usr/lib/postgresql/15/bin */
  binDir?: string;
  /** Where the server logs go besides the pair's own log files. */
  onOutput?: (name: 'primary' | 'replica', line: string) => void;
}

export interface PgServer {
  readonly name: 'primary' | 'replica';
  readonly port: number;
  /** The URL of `database` (or the pair's database) on this server. */
  url(database?: string): string;
  /** Whether the server process runs. */
  running(): boolean;
  /** Stops it: `fast` (SIGINT, a clean stop), `immediate` (SIGQUIT, as a crash), `kill` (SIGKILL). */
  stop(mode?: 'fast' | 'immediate' | 'kill'): Promise<void>;
  /** Starts it again on the same port and data (a replica catches up from the primary). */
  start(): Promise<void>;
  /** SIGSTOP to the server and its backends: it holds its connections but answers nothing (a hung host). */
  freeze(): void;
  /** SIGCONT after {@link freeze}. */
  thaw(): void;
  /** One query on a connection of its own. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
}

export interface PgReplicaPair {
  primary: PgServer;
  replica: PgServer;
  database: string;
  /** The replica stops (`pg_wal_replay_pause()`) or goes on (`pg_wal_replay_resume()`) replaying. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once the replica has replayed everything the primary has written so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Finds the binaries: PG_BIN, else Debian's Postgres 15. */
export function pgBinDir(explicit?: string): string {
  const dir = explicit ?? process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
  if (!existsSync(join(dir, 'initdb')) || !existsSync(join(dir, 'pg_basebackup'))) {
    throw new Error(
      `pg-replica: no initdb and pg_basebackup in ${dir}; ` +
        "install Debian's postgresql-15 (apt-get install -y postgresql-15) or set PG_BIN",
    );
  }
  return dir;
}

/**
 * Postgres refuses to run as root: as root the servers run as the `postgres` user (setpriv execs
 * in place, so the child process is the server itself); as anyone else, as themselves.
 */
function asServerUser(): { wrap: (cmd: string, args: string[]) => [string, string[]]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { wrap: (cmd, args) => [cmd, args] };
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0) throw new Error('pg-replica: running as root needs a `postgres` user (Debian postgresql-15)');
  return {
    wrap: (cmd, args) => ['setpriv', ['--reuid=postgres', '--regid=postgres', '--clear-groups', '--', cmd, ...args]],
    uid: Number(id.stdout.trim()),
    gid: Number(gid.stdout.trim()),
  };
}

function runTool(wrap: ReturnType<typeof asServerUser>['wrap'], cmd: string, args: string[]): void {
  const [command, argv] = wrap(cmd, args);
  const result = spawnSync(command, argv, { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() });
  if (result.status !== 0) {
    throw new Error(`pg-replica: ${cmd} failed (${result.status}): ${result.stderr || result.stdout}`);
  }
}

async function poll<T>(what: string, timeoutMs: number, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pg-replica: ${what} after ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
}

const live = new Set<ChildProcess>();
let exitHookSet = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookSet) {
    exitHookSet = true;
    // Nothing outlives the test process, even one that ends without stopping the pair.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGQUIT');
    });
  }
}

export async function startPgReplica(options: PgReplicaOptions = {}): Promise<PgReplicaPair> {
  const bin = pgBinDir(options.binDir);
  const database = options.database ?? 'tickwork';
  if (!/^[a-z0-9_]+$/.test(database)) throw new Error(`pg-replica: refusing database name "${database}"`);
  const user = asServerUser();
  const root = mkdtempSync(join(tmpdir(), 'tickwork-pg-'));
  chmodSync(root, 0o700);
  if (user.uid !== undefined && user.gid !== undefined) chownSync(root, user.uid, user.gid);
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const servers: ServerImpl[] = [];

  const stopAll = async () => {
    await Promise.allSettled([...servers].reverse().map((s) => s.stop('fast')));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const primaryDir = join(root, 'primary');
    runTool(user.wrap, join(bin, 'initdb'), [
      '-D',
      primaryDir,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    // Loopback only, sockets in the pair's own directory; a scratch server: no fsync.
    appendFileSync(
      join(primaryDir, 'postgresql.conf'),
      [
        '',
        '# tickwork pg-replica',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${root}'`,
        'wal_level = replica',
        'max_wal_senders = 5',
        'fsync = off',
        'full_page_writes = off',
        'max_connections = 200',
        '',
      ].join('\n'),
    );
    const primary = new ServerImpl({
      name: 'primary',
      bin,
      dir: primaryDir,
      port: primaryPort,
      database,
      user,
      onOutput: options.onOutput,
    });
    servers.push(primary);
    await primary.start();
    await primary.query(`CREATE DATABASE ${database}`, [], 'postgres');

    const replicaDir = join(root, 'replica');
    runTool(user.wrap, join(bin, 'pg_basebackup'), [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-D',
      replicaDir,
      '-R',
      '-X',
      'stream',
      '--checkpoint=fast',
      '--no-sync',
    ]);
    appendFileSync(
      join(replicaDir, 'postgresql.conf'),
      [
        '',
        '# tickwork pg-replica: the standby',
        `port = ${replicaPort}`,
        'hot_standby = on',
        'hot_standby_feedback = on',
        `recovery_min_apply_delay = '${options.applyDelayMs ?? 0}ms'`,
        "wal_receiver_status_interval = '1s'",
        '',
      ].join('\n'),
    );
    const replica = new ServerImpl({
      name: 'replica',
      bin,
      dir: replicaDir,
      port: replicaPort,
      database,
      user,
      onOutput: options.onOutput,
    });
    servers.push(replica);
    await replica.start();
    await poll('the replica did not stream from the primary', 30_000, async () => {
      const rows = await primary.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'",
      );
      return rows[0]!.n > 0 ? true : undefined;
    });

    const pair: PgReplicaPair = {
      primary,
      replica,
      database,
      async pauseReplay() {
        await replica.query('SELECT pg_wal_replay_pause()');
      },
      async resumeReplay() {
        await replica.query('SELECT pg_wal_replay_resume()');
      },
      async caughtUp(timeoutMs = 30_000) {
        const [{ lsn }] = (await primary.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')) as [
          { lsn: string },
        ];
        await poll(`the replica did not replay up to ${lsn}`, timeoutMs, async () => {
          const rows = await replica.query<{ done: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [
            lsn,
          ]);
          return rows[0]!.done ? true : undefined;
        });
      },
      stop: stopAll,
    };
    return pair;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

interface ServerSetup {
  name: 'primary' | 'replica';
  bin: string;
  dir: string;
  port: number;
  database: string;
  user: ReturnType<typeof asServerUser>;
  onOutput: PgReplicaOptions['onOutput'];
}

class ServerImpl implements PgServer {
  readonly name: 'primary' | 'replica';
  readonly port: number;
  readonly #setup: ServerSetup;
  #child: ChildProcess | undefined;

  constructor(setup: ServerSetup) {
    this.#setup = setup;
    this.name = setup.name;
    this.port = setup.port;
  }

  url(database = this.#setup.database): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running()) return;
    // A crashed server leaves its pid file; Postgres checks the pid and starts anyway.
    const { bin, dir, user, onOutput } = this.#setup;
    const [command, args] = user.wrap(join(bin, 'postgres'), ['-D', dir, '-p', String(this.port)]);
    // A process group of its own: a Ctrl-C meant for the fleet's terminal reaches the fleet, which stops it.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir(), detached: true });
    this.#child = child;
    track(child);
    const output: string[] = [];
    const onData = (d: Buffer) => {
      const text = d.toString();
      output.push(text);
      if (output.length > 200) output.shift();
      appendFileSync(`${dir}.log`, text);
      if (onOutput) for (const line of text.split('\n')) if (line) onOutput(this.name, line);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    await poll(`the ${this.name} did not accept connections`, 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}): ${output.join('')}`);
      await this.query('SELECT 1', [], 'postgres');
      return true;
    });
  }

  async stop(mode: 'fast' | 'immediate' | 'kill' = 'fast'): Promise<void> {
    const child = this.#child;
    if (!child || !this.running()) return;
    const exited = once(child, 'exit');
    this.#group('SIGCONT');
    child.kill(mode === 'fast' ? 'SIGINT' : mode === 'immediate' ? 'SIGQUIT' : 'SIGKILL');
    await exited;
  }

  freeze(): void {
    this.#group('SIGSTOP');
  }

  thaw(): void {
    this.#group('SIGCONT');
  }

  /** The postmaster and its children (each backend makes itself a process group leader, so no group kill). */
  #group(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined || !this.running()) return;
    process.kill(pid, signal);
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // /proc/<pid>/stat: pid (comm) state ppid …; comm may hold spaces, so split after its ')'.
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) process.kill(Number(entry), signal);
      } catch {
        // gone meanwhile
      }
    }
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
    database = this.#setup.database,
  ): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database), connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }
}
