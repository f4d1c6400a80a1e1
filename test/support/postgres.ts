import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';

/**
 * A private PostgreSQL for a test: its own data directory in a temp folder, its own loopback port,
 * a password (so connection strings carry a secret the tests can look for), started and stopped
 * with pg_ctl. When the tests run as root, the server runs as the `postgres` user, since
 * PostgreSQL refuses to run as root.
 */
export interface PostgresInstance {
  readonly port: number;
  readonly password: string;
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string;
  /** Starts the server again on the same port and data (after `stop()`). */
  start(): Promise<void>;
  /** Fast shutdown (clients are disconnected); the data stays for `start()`. */
  stop(): Promise<void>;
  /** Freezes the postmaster and every backend (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Undoes `pause()`. */
  resume(): void;
  /** One query on a fresh connection. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Stops the server and deletes its files; safe to call more than once, and after a failure. */
  destroy(): Promise<void>;
}

export interface PostgresOptions {
  /** Extensions to preload, e.g. `pg_stat_statements`. */
  readonly preload?: readonly string[];
}

const PG_BIN = process.env.PG_BIN ?? findPgBin();
const RUN_AS = process.getuid?.() === 0 ? 'postgres' : undefined;

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresInstance> {
  const instance = await preparePostgres(options);
  try {
    await instance.start();
    if (options.preload?.includes('pg_stat_statements')) await instance.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return instance;
  } catch (error) {
    // The error of a PostgreSQL tool carries the tail of the server's log.
    await instance.destroy().catch(() => undefined);
    throw new Error(`PostgreSQL did not start: ${(error as Error).message}`);
  }
}

/**
 * A PostgreSQL whose data directory is ready but which is not running yet: its port and URL are
 * known, so a client can be pointed at a database that comes up later (`start()`).
 */
export async function preparePostgres(options: PostgresOptions = {}): Promise<PostgresInstance> {
  const base = mkdtempSync(join(tmpdir(), 'nest-rollout-pg-'));
  const dataDir = join(base, 'data');
  const socketDir = join(base, 'socket');
  const logFile = join(base, 'server.log');
  const password = `pg-${Math.random().toString(36).slice(2, 12)}`;
  const port = await freePort();
  let paused = false;
  let destroyed = false;

  const cleanUpOnExit = () => {
    // The test runner is leaving without afterAll (a crash): take the server down with it.
    try {
      const pid = postmasterPid(dataDir);
      if (pid) {
        signalTree(pid, 'SIGCONT');
        process.kill(pid, 'SIGQUIT');
      }
    } catch {
      // already gone
    }
    rmSync(base, { recursive: true, force: true });
  };
  process.once('exit', cleanUpOnExit);

  const pgCtl = (...args: string[]) => run(join(PG_BIN, 'pg_ctl'), ['-D', dataDir, ...args], logFile);

  const instance: PostgresInstance = {
    port,
    password,
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async start() {
      const settings = [
        `-p ${port}`,
        `-k ${socketDir}`,
        '-c listen_addresses=127.0.0.1',
        // A test database: durability buys nothing and costs seconds.
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        ...(options.preload?.length ? [`-c shared_preload_libraries=${options.preload.join(',')}`] : []),
      ];
      await pgCtl('-l', logFile, '-o', settings.join(' '), '-w', '-t', '30', 'start');
    },
    async stop() {
      if (paused) instance.resume();
      if (!postmasterPid(dataDir)) return;
      await pgCtl('-m', 'fast', '-w', '-t', '30', 'stop');
    },
    pause() {
      const pid = postmasterPid(dataDir);
      if (!pid) throw new Error('PostgreSQL is not running');
      signalTree(pid, 'SIGSTOP');
      paused = true;
    },
    resume() {
      const pid = postmasterPid(dataDir);
      if (pid) signalTree(pid, 'SIGCONT');
      paused = false;
    },
    async query<T>(sql: string, params: unknown[] = []) {
      const client = new Client({ connectionString: instance.url, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows as T[];
      } finally {
        await client.end();
      }
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await instance.stop();
      } catch {
        const pid = postmasterPid(dataDir);
        if (pid) process.kill(pid, 'SIGQUIT');
      } finally {
        process.off('exit', cleanUpOnExit);
        rmSync(base, { recursive: true, force: true });
      }
    },
  };

  try {
    mkdirSync(socketDir);
    writeFileSync(join(base, 'pwfile'), `${password}\n`);
    if (RUN_AS) chownTree(base, RUN_AS);
    await run(
      join(PG_BIN, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        'postgres',
        '--pwfile',
        join(base, 'pwfile'),
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--no-sync',
        '--no-instructions',
      ],
      logFile,
    );
    return instance;
  } catch (error) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
    await instance.destroy().catch(() => undefined);
    throw new Error(`PostgreSQL could not be initialised: ${(error as Error).message}\n${log}`);
  }
}

/** Runs a PostgreSQL tool (as the postgres user when we are root), rejecting with its output. */
function run(command: string, args: string[], logFile: string): Promise<void> {
  const [file, argv] = RUN_AS ? ['runuser', ['-u', RUN_AS, '--', command, ...args]] : [command, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: 60_000, cwd: tmpdir() }, (error, stdout, stderr) => {
      if (!error) return resolve();
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
      reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}${log}`));
    });
  });
}

function postmasterPid(dataDir: string): number | undefined {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Signals a process and all its descendants (the postmaster's backends and workers). */
function signalTree(pid: number, signal: NodeJS.Signals): void {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const visit = (p: number) => {
    try {
      process.kill(p, signal);
    } catch {
      // gone
    }
    for (const child of children.get(p) ?? []) visit(child);
  };
  visit(pid);
}

function chownTree(path: string, user: string): void {
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((line) => line.startsWith(`${user}:`));
  if (!passwd) throw new Error(`no user ${user} on this machine`);
  const [, , uid, gid] = passwd.split(':').map(Number);
  const walk = (p: string) => {
    chownSync(p, uid, gid);
    if (readdirSync(p, { withFileTypes: true }).length === 0) return;
    for (const entry of readdirSync(p, { withFileTypes: true })) {
      const child = join(p, entry.name);
      if (entry.isDirectory()) walk(child);
      else chownSync(child, uid, gid);
    }
  };
  walk(path);
}

function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const bin = join(root, version, 'bin');
      if (existsSync(join(bin, 'initdb'))) return bin;
    }
  }
  // Elsewhere (a developer's machine) the tools are expected on the PATH.
  return '';
}
