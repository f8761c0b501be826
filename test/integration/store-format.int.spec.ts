jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import pino from 'pino';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { EventStore } from '../../src/application/ports/event-store';
import { STORE_FORMAT_RECORDED, STORE_FORMAT_STREAM, THIS_BUILD_STORE_FORMAT } from '../../src/application/store-format';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * The store format marker at start (store-format.ts): a store a newer build marked as not for this one is refused
 * before the hub serves or records anything, on SQLite and on PostgreSQL; this build opens its own store again and
 * an unmarked store of an older build (recording its format there), and says so when it migrates the schema.
 */
jest.setTimeout(60_000);

const SECRET = 'ab'.repeat(32);
const server = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = `wt_upgrade_format_${process.pid}_${randomBytes(3).toString('hex')}`;
const pgUrl = (() => {
  const u = new URL(server);
  u.pathname = `/${DB}`;
  return u.toString();
})();
const dirs: { remove(): void }[] = [];
let admin: Client;

beforeAll(async () => {
  admin = new Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DB}`);
});
afterAll(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
  for (const d of dirs) d.remove();
});

const newDir = () => {
  const d = tempDataDir('wt-upgrade-format-');
  dirs.push(d);
  return d.dir;
};
const capture = () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), done()) }));
  return { logger, lines };
};
const sqliteConfig = (dir: string) => loadConfig({ RTS_DATA_DIR: dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '23531', RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: SECRET });
const pgConfig = (dir: string) => loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: pgUrl, RTS_DATA_DIR: dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '23532', RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: SECRET });
const markNewer = (store: EventStore) =>
  store.appendToStream(STORE_FORMAT_STREAM, [
    { id: randomUUID(), type: STORE_FORMAT_RECORDED, data: { format: THIS_BUILD_STORE_FORMAT.format + 1, readableFrom: THIS_BUILD_STORE_FORMAT.format + 1, recordedAt: '2027-01-01T00:00:00Z' } },
  ]);
const expectRefused = async (start: Promise<unknown>, setting: string) => {
  const error = await start.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as Error).message).toContain(`${setting}`);
  expect((error as Error).message).toContain(`this store was written by a newer build (store format ${THIS_BUILD_STORE_FORMAT.format + 1}, opened only by builds of format ${THIS_BUILD_STORE_FORMAT.format + 1} or later); this build knows format ${THIS_BUILD_STORE_FORMAT.format}`);
  expect((error as Error).message).toContain('rts restore');
};

it('SQLite: opens an unmarked older store (logging the migration), then its own store again; refuses one a newer build marked', async () => {
  const dir = newDir();
  // A store as a build before the "events by type" and the two audit index migrations and before the marker left it.
  const old = SqliteEventStore.open({ file: join(dir, DATA_FILES.events) });
  await old.appendToStream('directory-expert-x', [{ id: '0b5e55ed-0000-4000-8000-000000000001', type: 'ExpertRegistered', data: {} }]);
  await old.close();
  const db = new Database(join(dir, DATA_FILES.events));
  db.exec('DROP INDEX events_by_type; DROP INDEX events_audit_by_patient; DROP INDEX events_audit_by_subject; DELETE FROM event_store_migrations WHERE version IN (2, 3, 4)');
  db.close();

  const { logger, lines } = capture();
  const hub = await startHub(sqliteConfig(dir), logger);
  await hub.stop();
  expect(lines.find((l) => String(l['msg']).startsWith('event store schema: migrating'))).toMatchObject({
    from: 1,
    to: 4,
    migrations: [
      '2 events by type: readAll of a few types skips the others in the index',
      "3 audit events by patient: a patient's audit search and export read only the patient's own events",
      "4 audit events by subject: a user's audit search reads only the user's own events",
    ],
  });
  expect(lines.find((l) => String(l['msg']).startsWith('store format: upgraded'))).toMatchObject({ from: 0, to: THIS_BUILD_STORE_FORMAT.format });

  const again = capture();
  const hub2 = await startHub(sqliteConfig(dir), again.logger);
  await hub2.stop();
  expect(again.lines.filter((l) => /^(event store schema|store format)/.test(String(l['msg'])))).toEqual([]);

  const store = SqliteEventStore.open({ file: join(dir, DATA_FILES.events) });
  await markNewer(store);
  await store.close();
  await expectRefused(startHub(sqliteConfig(dir), pino({ level: 'silent' })), 'RTS_DATA_DIR');
});

it('PostgreSQL: a new store is marked at its first start; a store a newer build marked is refused', async () => {
  const dir = newDir();
  const { logger, lines } = capture();
  const hub = await startHub(pgConfig(dir), logger);
  await hub.stop();
  expect(lines.find((l) => String(l['msg']) === 'event store schema: creating it')).toMatchObject({ from: null, to: expect.any(String) });
  // A new database has no downlink history to send again (upgrade-e62c91f-postgres: an old build's has).
  expect(lines.filter((l) => String(l['msg']).startsWith('downlink checkpoints'))).toEqual([]);
  const c = new Client({ connectionString: pgUrl });
  await c.connect();
  const { rows } = await c.query('SELECT data FROM events WHERE stream_name = $1', [STORE_FORMAT_STREAM]).finally(() => c.end());
  expect(rows.map((r: { data: unknown }) => r.data)).toEqual([{ ...THIS_BUILD_STORE_FORMAT, recordedAt: expect.any(String) }]);

  const store = await PostgresEventStore.open({ connectionString: pgUrl });
  await markNewer(store);
  await store.close();
  await expectRefused(startHub(pgConfig(dir), pino({ level: 'silent' })), 'RTS_POSTGRES_URL');
});
