// A PostgreSQL server of the test's own, for what the machine's shared one must not be changed for: here, TLS only.
// The machine's PostgreSQL binaries (Debian's postgresql-15) run as the `postgres` user on a temporary data
// directory, on a free port of 127.0.0.1, with a certificate made by openssl; removed by stop().
//
//   const support = privatePostgresSupport();           // { ok } or { ok: false, reason } (root, initdb, openssl)
//   const pg = await startPrivatePostgres({ certificateNames: ['IP:127.0.0.1'] });
//   pg.url('sslmode=verify-full&sslrootcert=' + pg.caFile);
//   await pg.restartWithCertificate(['DNS:localhost']);  // the same server, a certificate for other names
//   await pg.stop();
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './hub-process';

const PG_LIB = '/usr/lib/postgresql';

const pgBin = (): string | null => {
  if (!existsSync(PG_LIB)) return null;
  const versions = readdirSync(PG_LIB).filter((v) => existsSync(join(PG_LIB, v, 'bin', 'initdb')));
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest === undefined ? null : join(PG_LIB, newest, 'bin');
};

const postgresIds = (): { uid: number; gid: number } | null => {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return null;
  }
};

export const privatePostgresSupport = (): { ok: true } | { ok: false; reason: string } => {
  if (userInfo().uid !== 0) return { ok: false, reason: 'needs root (initdb runs as the postgres user)' };
  if (pgBin() === null) return { ok: false, reason: `no PostgreSQL binaries under ${PG_LIB}` };
  if (postgresIds() === null) return { ok: false, reason: 'no postgres user' };
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: 'no openssl' };
  }
  return { ok: true };
};

export type PrivatePostgres = Readonly<{
  port: number;
  /** The certificate the server presents (self-signed): what a client trusts as its root. */
  caFile: string;
  /** postgres://postgres@127.0.0.1:<port>/postgres?<params> (trust auth: the test is about the channel). */
  url(params: string): string;
  restartWithCertificate(names: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}>;

export const startPrivatePostgres = async (options: { certificateNames: readonly string[] }): Promise<PrivatePostgres> => {
  const bin = pgBin();
  const ids = postgresIds();
  if (bin === null || ids === null) throw new Error('startPrivatePostgres: see privatePostgresSupport()');
  const base = mkdtempSync(join(tmpdir(), 'rts-private-pg-'));
  chownSync(base, ids.uid, ids.gid);
  const data = join(base, 'data');
  // A failed pg_ctl names the server's log, which stop() removes with the folder: its end goes into the error (a CI
  // run saw a restart fail, "could not start server", and nothing said why).
  const asPostgres = (command: string, args: readonly string[]) => {
    try {
      return execFileSync('runuser', ['-u', 'postgres', '--', join(bin, command), ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    } catch (error) {
      let log = '';
      try {
        log = readFileSync(join(base, 'server.log'), 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        // no log yet
      }
      throw new Error(`${(error as Error).message}${log ? `\nserver.log, its end:\n${log}` : ''}`);
    }
  };
  const port = await freePort();
  const caFile = join(base, 'server-ca.pem');
  const certificate = (names: readonly string[]) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(data, 'server.key'), '-out', join(data, 'server.crt'),
      '-days', '2', '-subj', '/CN=rts test postgres', '-addext', `subjectAltName=${names.join(',')}`], { stdio: 'ignore' });
    for (const file of ['server.key', 'server.crt']) chownSync(join(data, file), ids.uid, ids.gid);
    chmodSync(join(data, 'server.key'), 0o600);
    execFileSync('cp', [join(data, 'server.crt'), caFile]);
  };
  try {
    asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
    certificate(options.certificateNames);
    writeFileSync(join(data, 'postgresql.auto.conf'), [`port = ${port}`, `listen_addresses = '127.0.0.1'`, `unix_socket_directories = '${base}'`, 'ssl = on', 'fsync = off', ''].join('\n'));
    // TLS only: no `host` line, so a connection without encryption finds no entry.
    writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n');
    asPostgres('pg_ctl', ['-D', data, '-l', join(base, 'server.log'), '-w', 'start']);
  } catch (error) {
    rmSync(base, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    caFile,
    url: (params) => `postgres://postgres@127.0.0.1:${port}/postgres?${params}`,
    restartWithCertificate: async (names) => {
      certificate(names);
      asPostgres('pg_ctl', ['-D', data, '-l', join(base, 'server.log'), '-w', 'restart']);
    },
    stop: async () => {
      try {
        asPostgres('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
};
