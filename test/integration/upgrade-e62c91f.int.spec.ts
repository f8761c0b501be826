jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { chmodSync, cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { THIS_BUILD_STORE_FORMAT } from '../../src/application/store-format';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { devToken, tempDataDir } from '../support/hub-process';
import { caller, expectAttachedConsultationErasedWithPatient, expectOldConsultationReadsAuditedUnderItsPatient, expectDirectoryConsultationsAudit, expectNewWrites, expectReadingsAndDocuments, readAnswers, runOnFixtureDay } from '../support/upgrade-answers';

/**
 * An upgrade from a real older build: the data directory that the landed build e62c91f (2026-11-30) wrote through
 * its HTTP API and AMQP uplink (test/fixtures/upgrade/e62c91f/README.md), opened by this build. Everything the old
 * build answered (answers.json) is answered the same, new writes work on top of it, and erasing a patient reaches
 * the consultations that build attached to their readings. On PostgreSQL: upgrade-e62c91f-postgres.int.spec.ts.
 */
jest.setTimeout(60_000);

const FIXTURE = join(__dirname, '..', 'fixtures', 'upgrade', 'e62c91f');
const answers = readAnswers(FIXTURE);
const data = tempDataDir('rts-upgrade-e62c91f-');
const lines: Record<string, unknown>[] = [];
let hub: RunningHub;
// Tokens of the fixture's own auth.secret, from the local development login.
const call = caller(() => hub.url, (who) => devToken(hub.url, who));

beforeAll(async () => {
  cpSync(join(FIXTURE, 'data'), data.dir, { recursive: true });
  for (const f of readdirSync(data.dir)) chmodSync(join(data.dir, f), 0o600); // git keeps no modes; the old build made them 0600
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), done()) }));
  // The pseudonym secret the fixture was written with (its README).
  runOnFixtureDay();
  hub = await startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) }), logger);
});

afterAll(async () => {
  await hub?.stop();
  jest.useRealTimers();
  data.remove();
});

it('says what it migrates at start: the schema from 1 to 4, the store format from none, one open pre-UUID consultation', () => {
  const said = (start: string) => lines.find((l) => String(l['msg']).startsWith(start));
  expect(said('event store schema: migrating')).toMatchObject({ from: 1, to: 4 });
  expect(said('store format: upgraded')).toMatchObject({ from: 0, to: THIS_BUILD_STORE_FORMAT.format });
  expect(said('consultations with a pre-UUID id')).toMatchObject({ level: 40, consultations: 1 });
  expect(lines.filter((l) => Number(l['level']) >= 50)).toEqual([]);
});

it("gives the registry rows of the old build's documents the keyed digest: their events hold the plain SHA-256, which beside the row's reading gave the CPR number back", () => {
  const said = lines.find((l) => String(l['msg']).startsWith('registry: rows of documents an older build stored with the plain SHA-256'));
  expect(said).toMatchObject({ level: 40, left: 0 });
  expect(Number(said?.['rows'])).toBeGreaterThan(0);
  const db = new Database(join(data.dir, 'telemed.sqlite'), { readonly: true });
  try {
    const hashes = db.prepare('SELECT hash FROM registry_entries').pluck().all() as string[];
    expect(hashes.length).toBe(Number(said?.['rows']));
    expect(hashes.filter((h) => !h.startsWith('hmac-sha256:'))).toEqual([]);
  } finally {
    db.close();
  }
});

it('answers readings and documents as the old build did', () => expectReadingsAndDocuments(call, answers));

it('answers the directory, the systems and their keys, the consultations and the audit trail as the old build did', () => expectDirectoryConsultationsAudit(call, answers));

it('takes new writes on top: uploads, retries of old uploads, corrections of old documents, consultation steps', () => expectNewWrites(call, answers));

it("audits reads of a consultation the old build stored, by id and in a page, under its patient's key: that patient's export lists them, another's does not", () =>
  expectOldConsultationReadsAuditedUnderItsPatient(call, answers));

it("erasing a patient erases the texts of the consultations the old build attached to the patient's readings", () => expectAttachedConsultationErasedWithPatient(call, answers));
