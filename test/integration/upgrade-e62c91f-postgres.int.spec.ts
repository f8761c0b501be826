jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'pg';
import pino from 'pino';
import { THIS_BUILD_STORE_FORMAT } from '../../src/application/store-format';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';
import { caller, expectAttachedConsultationErasedWithPatient, expectOldConsultationReadsAuditedUnderItsPatient, expectDirectoryConsultationsAudit, expectNewWrites, expectReadingsAndDocuments, readAnswers, runOnFixtureDay } from '../support/upgrade-answers';

/**
 * upgrade-e62c91f.int.spec.ts on PostgreSQL: the database the landed build e62c91f wrote (a pg_dump of it,
 * test/fixtures/upgrade/e62c91f/README.md), restored into a database of this file's own and opened by this build.
 * That build kept the registry's readings in clear columns and its downlink checkpoints in memory: the start seals
 * the rows, and says so, and that the downlink history goes out once more.
 */
jest.setTimeout(60_000);

const FIXTURE = join(__dirname, '..', 'fixtures', 'upgrade', 'e62c91f', 'postgres');
const answers = readAnswers(FIXTURE);
const server = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = `rts_upgrade_e62c91f_${process.pid}_${randomBytes(3).toString('hex')}`;
const url = (() => {
  const u = new URL(server);
  u.pathname = `/${DB}`;
  return u.toString();
})();
const data = tempDataDir('rts-upgrade-e62c91f-pg-');
const lines: Record<string, unknown>[] = [];
let admin: Client;
let hub: RunningHub;
const call = caller(() => hub.url, async () => null); // access control off: nothing of it is upgraded here

const query = async (sql: string) => {
  const c = new Client({ connectionString: url });
  await c.connect();
  return c.query(sql).finally(() => c.end());
};

beforeAll(async () => {
  admin = new Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DB}`);
  // The dump as pg_dump wrote it, but psql's \restrict lines (no SQL) left out when it was committed.
  await query(readFileSync(join(FIXTURE, 'dump.sql'), 'utf8'));
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), done()) }));
  runOnFixtureDay();
  hub = await startHub(
    loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url, RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) }),
    logger,
  );
});

afterAll(async () => {
  await hub?.stop();
  jest.useRealTimers();
  await admin?.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin?.end();
  data.remove();
});

it('says what it migrates at start, that it sealed the registry rows the old build wrote in clear and that no downlink checkpoint was kept', async () => {
  const said = (start: string) => lines.find((l) => String(l['msg']).startsWith(start));
  expect(said('event store schema: migrating')).toMatchObject({ from: '001_events', to: '004_events_audit_by_subject' });
  expect(said('store format: upgraded')).toMatchObject({ from: 0, to: THIS_BUILD_STORE_FORMAT.format });
  const { rows } = await query('SELECT count(*)::int AS n, count(*) FILTER (WHERE sealed IS NULL OR systolic IS NOT NULL OR observation_id IS NOT NULL)::int AS clear FROM registry_entries');
  expect(rows[0]).toEqual({ n: 8, clear: 0 }); // 9 documents written, 120485-1122's erased
  expect(said('registry: rows an older build wrote in clear are sealed now')).toMatchObject({ level: 40, rows: 8 });
  // No broker here, but the next start with one sends the history again (the drill measured it: all 39 messages
  // of the old build's three downlink queues, the same ids); the table is there from now on.
  expect(said('downlink checkpoints: the build before kept none')).toMatchObject({ level: 40 });
  expect((await query("SELECT to_regclass('subscription_checkpoints') IS NOT NULL AS made")).rows[0]).toEqual({ made: true });
  expect(lines.filter((l) => Number(l['level']) >= 50)).toEqual([]);
});

it('answers readings and documents as the old build did', () => expectReadingsAndDocuments(call, answers));

it('answers the directory, the systems and their keys, the consultations and the audit trail as the old build did', () => expectDirectoryConsultationsAudit(call, answers));

it('takes new writes on top: uploads, retries of old uploads, corrections of old documents, consultation steps', () => expectNewWrites(call, answers));

it("audits reads of a consultation the old build stored, by id and in a page, under its patient's key: that patient's export lists them, another's does not", () =>
  expectOldConsultationReadsAuditedUnderItsPatient(call, answers));

it("erasing a patient erases the texts of the consultations the old build attached to the patient's readings", () => expectAttachedConsultationErasedWithPatient(call, answers));
