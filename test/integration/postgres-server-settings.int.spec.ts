// What a database administrator's settings do to the hub, on a PostgreSQL of the test's own (the machine's shared
// one must stay as it is): the database made read-only under a running hub (a primary demoted to a standby, writes
// frozen for maintenance with default_transaction_read_only), and a statement_timeout set on the hub's role.
import pino from 'pino';
import pg from 'pg';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { migrate, type Migration } from '../../src/adapters/event-store/postgres/migrate';
import { createPool, vacuumTable } from '../../src/adapters/event-store/postgres/sql';
import { tempDataDir } from '../support/hub-process';
import { privatePostgresSupport, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres';

jest.setTimeout(120_000);

const support = privatePostgresSupport();
if (!support.ok) console.warn(`postgres-server-settings: skipped: ${support.reason}`);

(support.ok ? describe : describe.skip)("the hub under a database administrator's settings", () => {
  let server: PrivatePostgres;
  let admin: pg.Client;
  const url = () => server.url(`sslmode=verify-full&sslrootcert=${server.caFile}`);
  const dirs: Array<{ dir: string; remove(): void }> = [];

  beforeAll(async () => {
    server = await startPrivatePostgres({ certificateNames: ['IP:127.0.0.1'] });
    admin = new pg.Client({ connectionString: url() });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
    for (const dir of dirs) dir.remove();
  });

  const upload = (hub: RunningHub, observationId: string) =>
    fetch(`${hub.url}/observations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ observationId, patientId: '251248-1234', systolic: 126, diastolic: 70 }),
    });

  it('the database turns read-only under a running hub: uploads get 503 storage_unavailable (sent again later, stored once), not 500', async () => {
    const dir = tempDataDir('rts-pg-settings-');
    dirs.push(dir);
    const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url(), RTS_POSTGRES_SCHEMA: 'read_only', RTS_DATA_DIR: dir.dir, RTS_HTTP_PORT: '0', RTS_AUTH: 'off' });
    const hub = await startHub(config, pino({ level: 'silent' }));
    try {
      expect((await upload(hub, 'ro-1')).status).toBe(201);
      // What a demoted primary, or a DBA freezing writes, does to every session: a reload reaches the pooled ones too.
      await admin.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await admin.query('SELECT pg_reload_conf()');
      const refused = await upload(hub, 'ro-2');
      const problem = (await refused.json()) as { code?: string };
      expect({ status: refused.status, code: problem.code, retryAfter: refused.headers.get('retry-after') }).toEqual({ status: 503, code: 'storage_unavailable', retryAfter: '5' });
      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
      expect((await upload(hub, 'ro-2')).status).toBe(201);
      expect((await upload(hub, 'ro-2')).status).toBe(200);
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM read_only.events WHERE event_type = 'DocumentSubmitted'`);
      expect(rows[0].n).toBe(2);
    } finally {
      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
      await hub.stop();
    }
  });

  it('a start on a database that takes no writes is transient (exit 69) and says so, not "is it running?"', async () => {
    const dir = tempDataDir('rts-pg-settings-');
    dirs.push(dir);
    await admin.query('ALTER SYSTEM SET default_transaction_read_only = on');
    await admin.query('SELECT pg_reload_conf()');
    try {
      const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url(), RTS_POSTGRES_SCHEMA: 'read_only_start', RTS_DATA_DIR: dir.dir, RTS_HTTP_PORT: '0', RTS_AUTH: 'off' });
      const failure = await startHub(config, pino({ level: 'silent' })).then(
        async (hub) => {
          await hub.stop();
          throw new Error('started on a read-only database');
        },
        (error: unknown) => error as { exitCode?: number; message: string },
      );
      expect(failure.exitCode).toBe(69);
      expect(failure.message).toMatch(/takes no writes now \(25006/);
      expect(failure.message).not.toMatch(/postgres@/);
    } finally {
      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
    }
  });

  it("a statement_timeout on the hub's role does not cut the migrations, which may rightly take long", async () => {
    // Slower than the role's bound, as an index built on a large events table is; the hub's own bound exempts them.
    const slow = (name: string, sql: string): Migration => ({ name, sql, checksum: name, transaction: !sql.startsWith('-- rts:no-transaction') });
    const migrations = [slow('001_slow', 'SELECT pg_sleep(1)'), slow('002_slow_alone', '-- rts:no-transaction\nSELECT pg_sleep(1)')];
    await admin.query(`ALTER ROLE postgres SET statement_timeout = '200ms'`);
    const pool = createPool({ connectionString: url() });
    try {
      await expect(migrate(pool, 'role_timeout', migrations)).resolves.toEqual(['001_slow', '002_slow_alone']);
    } finally {
      await pool.end();
      await admin.query('ALTER ROLE postgres RESET statement_timeout');
    }
  });

  it("a lock_timeout on the hub's role does not cut the VACUUM after an erasure, which waits its turn behind another's lock", async () => {
    await admin.query('CREATE TABLE IF NOT EXISTS vacuumed (x int)');
    await admin.query(`ALTER ROLE postgres SET lock_timeout = '100ms'`);
    const pool = createPool({ connectionString: url() });
    const holder = new pg.Client({ connectionString: url() });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE vacuumed IN SHARE UPDATE EXCLUSIVE MODE'); // what an ANALYZE holds
      const vacuum = vacuumTable(pool, '"public"."vacuumed"');
      vacuum.catch(() => undefined);
      // Released only once the VACUUM waits for it (no guess at how long that takes).
      for (;;) {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'VACUUM%'`);
        if (rows[0].n > 0) break;
        if ((await Promise.race([vacuum.then(() => 'done', () => 'failed'), new Promise((r) => setTimeout(() => r('waiting'), 20))])) !== 'waiting') break;
      }
      await new Promise((r) => setTimeout(r, 300)); // past the role's lock_timeout
      await holder.query('COMMIT');
      await expect(vacuum).resolves.toBeUndefined();
      const { rows } = await pool.query<{ lock_timeout: string }>('SHOW lock_timeout'); // the pooled session got the role's bound back
      expect(rows[0]!.lock_timeout).toBe('100ms');
    } finally {
      await holder.end();
      await pool.end();
      await admin.query('ALTER ROLE postgres RESET lock_timeout');
    }
  });
});
