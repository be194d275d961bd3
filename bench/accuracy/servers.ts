// The servers of the accuracy benchmark, each started by the bench with its own config under
// one temporary directory: a private PostgreSQL cluster (so the server log can be switched on
// without restarting the shared server, and no one else's statements are logged), php-fpm with
// 4 static workers and agent.php prepended, and nginx in front of it with Debian's stock
// fastcgi_params.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const FPM_WORKERS = 4;

interface Binaries {
  nginx: string;
  fpm: string;
  pgBin: string;
}

/** The binaries, or the reason the bench cannot run here (naming the Debian package). */
export function findBinaries(): Binaries | string {
  const sbin = (name: RegExp) => readdirSync('/usr/sbin').find((f) => name.test(f));
  const nginx = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined;
  if (!nginx) return 'nginx is not installed (apt-get install nginx)';
  const fpm = sbin(/^php-fpm[0-9.]*$/);
  if (!fpm) return 'php-fpm is not installed (apt-get install php-fpm php-pgsql)';
  const pgRoot = '/usr/lib/postgresql';
  const version = existsSync(pgRoot) ? readdirSync(pgRoot).filter((v) => existsSync(join(pgRoot, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0] : undefined;
  if (!version) return 'the PostgreSQL server binaries are not installed (apt-get install postgresql)';
  const mods = execFileSync(join('/usr/sbin', fpm), ['-m'], { encoding: 'utf8' });
  if (!/^pgsql$/m.test(mods) || !/^pdo_pgsql$/m.test(mods)) return 'php-fpm has no pgsql / pdo_pgsql module (apt-get install php-pgsql)';
  return { nginx, fpm: join('/usr/sbin', fpm), pgBin: join(pgRoot, version, 'bin') };
}

export interface Server {
  stop(): Promise<void>;
}

function started(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Server {
  const exited = once(child, 'exit');
  return {
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** PostgreSQL refuses to run as root: then the cluster belongs to the `postgres` OS user. */
function asServerUser(cmd: string, args: string[]): [string, string[]] {
  return userInfo().uid === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export interface Cluster extends Server {
  dsn: string;
  /** Sets log_min_duration_statement for the whole cluster (0: every statement; -1: none). */
  logStatements(on: boolean): Promise<void>;
}

/** A private cluster on `port`, writing a jsonlog the pg-agent can follow; trust auth on loopback only. */
export async function startCluster(bin: string, dir: string, port: number): Promise<Cluster> {
  const data = join(dir, 'pgdata');
  const logs = join(dir, 'pglog');
  const socketDir = join(dir, 'pgsock');
  for (const d of [data, logs, socketDir]) mkdirSync(d, { recursive: true });
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    for (const d of [dir, data, logs, socketDir]) chownSync(d, id('-u'), id('-g'));
  }
  const [initCmd, initArgs] = asServerUser(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  execFileSync(initCmd, initArgs, { stdio: 'ignore' });
  const settings = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: socketDir,
    max_connections: '100',
    fsync: 'off',
    logging_collector: 'on',
    log_destination: 'jsonlog',
    log_directory: logs,
    log_file_mode: '0644',
    log_timezone: 'UTC',
  };
  // Not log_min_duration_statement: a command-line setting would override ALTER SYSTEM (logStatements).
  const [cmd, args] = asServerUser(join(bin, 'postgres'), ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])]);
  const child = spawn(cmd, args, { stdio: 'ignore' });
  // SIGINT: fast shutdown (persistent connections would hold a smart shutdown forever).
  const server = started(child, 'SIGINT');
  const dsn = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: dsn, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.end();
      break;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the bench's PostgreSQL did not start: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  return {
    dsn,
    stop: server.stop,
    logStatements: async (on) => {
      const client = new pg.Client({ connectionString: dsn });
      await client.connect();
      try {
        await client.query(`ALTER SYSTEM SET log_min_duration_statement = ${on ? 0 : -1}`);
        await client.query('SELECT pg_reload_conf()');
      } finally {
        await client.end();
      }
    },
  };
}

/** pgbouncer in transaction mode in front of the cluster, or undefined when it is not installed. */
export async function startBouncer(dir: string, port: number, pgPort: number): Promise<Server | undefined> {
  if (!existsSync('/usr/sbin/pgbouncer')) return undefined;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n');
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${pgPort} dbname=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 4',
      'max_client_conn = 100',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  // pgbouncer refuses to run as root.
  const root = userInfo().uid === 0;
  if (root) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  const child = spawn('/usr/sbin/pgbouncer', [...(root ? ['-u', 'postgres'] : []), ini], { stdio: 'ignore' });
  const server = started(child, 'SIGINT');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return server;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) {
        await server.stop();
        throw new Error(`pgbouncer did not start: ${(err as Error).message}; see ${join(dir, 'pgbouncer.log')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

export interface WebOptions {
  dir: string;
  port: number;
  appDir: string;
  agentPhp: string;
  /** Environment of the PHP workers (the agent's BITVILLE_* settings, the pages' BV_ACC_*). */
  env: Record<string, string>;
}

/** php-fpm (static pool) and nginx in front of it; resolves when nginx answers. */
export async function startWeb(bin: Binaries, o: WebOptions): Promise<Server> {
  const root = userInfo().uid === 0;
  const fpmSocket = join(o.dir, 'fpm.sock');
  const fpmConf = join(o.dir, 'php-fpm.conf');
  writeFileSync(
    fpmConf,
    [
      '[global]',
      `pid = ${join(o.dir, 'php-fpm.pid')}`,
      `error_log = ${join(o.dir, 'php-fpm.log')}`,
      'daemonize = no',
      // A stop lets the last requests finish: the agent sends after the response is complete.
      'process_control_timeout = 10s',
      '[bench]',
      ...(root ? ['user = root', 'group = root'] : []),
      `listen = ${fpmSocket}`,
      'listen.mode = 0666',
      'pm = static',
      `pm.max_children = ${FPM_WORKERS}`,
      'clear_env = no',
      'catch_workers_output = yes',
      `php_admin_value[auto_prepend_file] = ${o.agentPhp}`,
      `php_admin_value[error_log] = ${join(o.dir, 'php-errors.log')}`,
      'php_admin_flag[log_errors] = on',
      '',
    ].join('\n'),
  );
  const fpm = spawn(bin.fpm, ['--nodaemonize', '--fpm-config', fpmConf, ...(root ? ['--allow-to-run-as-root'] : [])], { stdio: 'ignore', env: { ...process.env, ...o.env } });
  const fpmServer = started(fpm, 'SIGQUIT');

  const temp = join(o.dir, 'nginx-temp');
  mkdirSync(temp, { recursive: true });
  const nginxConf = join(o.dir, 'nginx.conf');
  writeFileSync(
    nginxConf,
    `${root ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${join(o.dir, 'nginx.pid')};
error_log ${join(o.dir, 'nginx-error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${temp}/body;
  fastcgi_temp_path ${temp}/fastcgi;
  proxy_temp_path ${temp}/proxy;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  server {
    listen 127.0.0.1:${o.port};
    root ${o.appDir};
    location ~ \\.php$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass unix:${fpmSocket};
    }
  }
}
`,
  );
  const nginx = spawn(bin.nginx, ['-p', o.dir, '-e', join(o.dir, 'nginx-error.log'), '-c', nginxConf], { stdio: 'ignore' });
  const nginxServer = started(nginx, 'SIGQUIT');
  const stop = async () => {
    await nginxServer.stop();
    await fpmServer.stop();
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${o.port}/ping.php`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline || nginx.exitCode !== null || fpm.exitCode !== null) {
      await stop();
      throw new Error(`nginx + php-fpm did not answer (status ${res?.status}); see ${o.dir}/nginx-error.log and php-fpm.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { stop };
}
