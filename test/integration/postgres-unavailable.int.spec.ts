import { Client } from 'pg';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool, isPgUnavailable, pgUnavailableReason } from '../../src/adapters/event-store/postgres/sql';
import { toProblem } from '../../src/adapters/http/problem';

/**
 * What node-postgres really throws when the database goes away (a refused connection, a session the server ends as
 * a restart or failover does), told apart from statements PostgreSQL refuses: the first become 503
 * storage_unavailable over HTTP (send it again later), the others stay what they were.
 */
const base = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const thrown = async (work: () => Promise<unknown>): Promise<unknown> => {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
};

describe('PostgreSQL unavailable: the errors node-postgres throws, as the HTTP edge answers them', () => {
  it('a refused connection is storage_unavailable (503)', async () => {
    const client = new Client({ host: '127.0.0.1', port: 1, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    const error = await thrown(() => client.connect());
    expect((error as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isPgUnavailable(error)).toBe(true);
    expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
  });

  it('a local database reached by its unix socket, stopped (its socket file gone: ENOENT), is storage_unavailable (503)', async () => {
    // PostgreSQL removes its socket file when it stops: a hub on host=/var/run/postgresql then meets ENOENT, not
    // ECONNREFUSED. Counted as an ordinary failure, the uplink used up its messages' attempts and dead-lettered them.
    const dir = mkdtempSync(join(tmpdir(), 'rts-pg-nosocket-'));
    try {
      const client = new Client({ host: dir, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
      client.on('error', () => undefined);
      const error = await thrown(() => client.connect());
      expect((error as { code?: string }).code).toBe('ENOENT');
      expect(isPgUnavailable(error)).toBe(true);
      expect(pgUnavailableReason(error)).toBe('ENOENT');
      expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a local database or pooler on a unix socket that takes no more connections (its listen queue full: EAGAIN) is storage_unavailable (503)', async () => {
    // A hung postmaster or PgBouncer behind host=/var/run/postgresql: its queue fills and a connect fails EAGAIN at
    // once. Counted as an ordinary failure, the uplink used up its messages' attempts and dead-lettered them.
    const dir = mkdtempSync(join(tmpdir(), 'rts-pg-full-'));
    const path = join(dir, '.s.PGSQL.5432');
    const listener = spawn(process.execPath, ['-e', `require('node:net').createServer().listen({ path: ${JSON.stringify(path)}, backlog: 1 }, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const held: Client[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        listener.stdout!.once('data', () => resolve());
        listener.once('exit', () => reject(new Error('the listener exited')));
      });
      listener.kill('SIGSTOP'); // it accepts nothing more: connections queue until the queue is full
      let error: unknown;
      for (let i = 0; i < 64 && error === undefined; i++) {
        const client = new Client({ host: dir, user: 'postgres', database: 'test', connectionTimeoutMillis: 60_000 });
        client.on('error', () => undefined);
        const attempt = client.connect();
        const outcome = await Promise.race([attempt.then(() => 'connected', (e: unknown) => e), new Promise((r) => setTimeout(() => r('queued'), 100))]);
        if (outcome === 'queued') {
          held.push(client);
          attempt.catch(() => undefined);
        } else error = outcome;
      }
      expect((error as { code?: string }).code).toBe('EAGAIN');
      expect(isPgUnavailable(error)).toBe(true);
      expect(pgUnavailableReason(error)).toBe('EAGAIN');
      expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
    } finally {
      listener.kill('SIGKILL');
      for (const c of held) c.end().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a database host whose name stops resolving while the hub runs (ENOTFOUND: a stopped compose service, a DNS record withdrawn in a failover) is storage_unavailable (503), through the pool too', async () => {
    // Docker's DNS answers NXDOMAIN for a stopped container, Consul or a headless Kubernetes service for one with no
    // healthy primary: a running hub then meets ENOTFOUND on connect. Counted as an ordinary failure, the uplink used up
    // its messages' attempts and dead-lettered them, and HTTP answered 500. (At start it stays a setting to fix: exit 78.)
    const client = new Client({ host: 'rts-no-such-host.invalid', user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    const error = await thrown(() => client.connect());
    expect((error as { code?: string }).code).toBe('ENOTFOUND');
    expect(isPgUnavailable(error)).toBe(true);
    expect(pgUnavailableReason(error)).toBe('ENOTFOUND');
    expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
    const pool = createPool({ host: 'rts-no-such-host.invalid', user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
    try {
      // What the uplink consumer defers on (an RtsError of kind 'unavailable'), not a fault that uses up attempts.
      await expect(pool.query('SELECT 1')).rejects.toMatchObject({ kind: 'unavailable', code: 'storage_unavailable' });
    } finally {
      await pool.end();
    }
  });

  it('an ENOENT that is no connection attempt (a file) stays what it was', () => {
    const error = Object.assign(new Error("ENOENT: no such file or directory, open '/nowhere'"), { code: 'ENOENT', syscall: 'open', path: '/nowhere' });
    expect(isPgUnavailable(error)).toBe(false);
  });

  it('a session the server ends (pg_terminate_backend) is storage_unavailable, on the query in flight and after', async () => {
    const admin = new Client({ connectionString: base });
    const victim = new Client({ connectionString: base });
    victim.on('error', () => undefined);
    await Promise.all([admin.connect(), victim.connect()]);
    try {
      const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const inFlight = thrown(() => victim.query('SELECT pg_sleep(5)'));
      await new Promise((r) => setTimeout(r, 200));
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      const during = await inFlight;
      const after = await thrown(() => victim.query('SELECT 1'));
      for (const error of [during, after]) {
        expect(isPgUnavailable(error)).toBe(true);
        expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
      }
    } finally {
      await admin.end();
      await victim.end().catch(() => undefined);
    }
  });

  it('a database that takes no connections now (ALLOW_CONNECTIONS false: 55000) is storage_unavailable; other 55000s are not', async () => {
    const database = `rts_noconn_${process.pid}_${Date.now()}`;
    const admin = new Client({ connectionString: base });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${database}"`);
      await admin.query(`ALTER DATABASE "${database}" ALLOW_CONNECTIONS false`);
      const url = new URL(base);
      url.pathname = `/${database}`;
      const client = new Client({ connectionString: url.toString() });
      client.on('error', () => undefined);
      const refused = await thrown(() => client.connect());
      expect((refused as { code?: string }).code).toBe('55000');
      expect(isPgUnavailable(refused)).toBe(true);
      expect(toProblem(refused, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
      // A statement's 55000 (here: currval before nextval in this session) is a fault, not an outage.
      await admin.query('CREATE TEMP SEQUENCE rts_unused_seq');
      const statement = await thrown(() => admin.query("SELECT currval('rts_unused_seq')"));
      expect((statement as { code?: string }).code).toBe('55000');
      expect(isPgUnavailable(statement)).toBe(false);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await admin.end();
    }
  });

  it("a statement cut by a statement_timeout the DBA set (57014), or a write refused by a read-only server (25006), is storage_unavailable", async () => {
    // The session's settings stand in for the role's or database's (ALTER ROLE ... SET), which reach the hub the same way.
    const client = new Client({ connectionString: base });
    await client.connect();
    try {
      await client.query(`SET statement_timeout = '50ms'`);
      const cancelled = await thrown(() => client.query('SELECT pg_sleep(5)'));
      await client.query('RESET statement_timeout');
      await client.query('SET default_transaction_read_only = on');
      const readOnly = await thrown(() => client.query('CREATE TEMP TABLE rts_read_only_probe (x int)'));
      expect([(cancelled as { code?: string }).code, (readOnly as { code?: string }).code]).toEqual(['57014', '25006']);
      for (const error of [cancelled, readOnly]) {
        expect(isPgUnavailable(error)).toBe(true);
        expect(toProblem(error, '/observations')).toMatchObject({ status: 503, code: 'storage_unavailable' });
      }
    } finally {
      await client.end();
    }
  });

  it('a statement PostgreSQL refuses is not: it stays a 500 (a fault to fix, not to wait out)', async () => {
    const client = new Client({ connectionString: base });
    await client.connect();
    try {
      const syntax = await thrown(() => client.query('SELEC 1'));
      expect((syntax as { code?: string }).code).toBe('42601');
      expect(isPgUnavailable(syntax)).toBe(false);
      expect(toProblem(syntax, '/observations')).toMatchObject({ status: 500, code: 'internal_error' });
      const missing = await thrown(() => client.query('SELECT * FROM no_such_table_rts'));
      expect(isPgUnavailable(missing)).toBe(false);
    } finally {
      await client.end();
    }
  });
});
