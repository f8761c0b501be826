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
import { until } from './hub-support';
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

  /**
   * default_transaction_read_only for every session, as a demoted primary or a DBA freezing writes does it. A reload
   * reaches each session at its next command, after pg_reload_conf() has returned: waited for on this one.
   */
  const readOnly = async (on: boolean): Promise<void> => {
    await admin.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
    await admin.query('SELECT pg_reload_conf()');
    await until(`default_transaction_read_only ${on ? 'on' : 'off'}`, async () => (await admin.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only === (on ? 'on' : 'off'), 10_000);
  };
  const healthOf = async (hub: RunningHub) => {
    const answer = await fetch(`${hub.url}/health`);
    return { status: answer.status, body: (await answer.json()) as { code?: string; detail?: string } };
  };

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
      // /health says so, for the load balancer to take the hub out (it answered 200 ok while every upload got 503).
      await readOnly(true);
      await until('/health saying the database takes no writes', async () => (await healthOf(hub)).status === 503, 10_000);
      const health = await healthOf(hub);
      expect(health.body.code).toBe('storage_unavailable');
      expect(health.body.detail).toMatch(/\(25006\): the database takes no writes now/);
      const refused = await upload(hub, 'ro-2');
      const problem = (await refused.json()) as { code?: string };
      expect({ status: refused.status, code: problem.code, retryAfter: refused.headers.get('retry-after') }).toEqual({ status: 503, code: 'storage_unavailable', retryAfter: '5' });
      await readOnly(false);
      await until('/health ok again', async () => (await healthOf(hub)).status === 200, 10_000);
      expect((await upload(hub, 'ro-2')).status).toBe(201);
      expect((await upload(hub, 'ro-2')).status).toBe(200);
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM read_only.events WHERE event_type = 'DocumentSubmitted'`);
      expect(rows[0].n).toBe(2);
    } finally {
      await readOnly(false);
      await hub.stop();
    }
  });

  it('a start on a database that takes no writes is transient (exit 69) and says so, not "is it running?"', async () => {
    const dir = tempDataDir('rts-pg-settings-');
    dirs.push(dir);
    await readOnly(true);
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
      await readOnly(false);
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
