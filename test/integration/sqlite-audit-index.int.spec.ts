import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pino from 'pino';
import { EVENT_STORE_MIGRATIONS, migrate } from '../../src/adapters/event-store/sqlite/schema';
import { AUDIT_INDEX_OF_FIELD, auditChainFromSql, auditEventsByFieldSql, auditEventsScanSql, SqliteAuditEventsByField, STREAM_VERSION_INDEX } from '../../src/adapters/event-store/sqlite/sqlite-audit-events-by-field';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { AUDIT_EVENT_TYPE, auditPartition, auditStreamName } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { loadConfig } from '../../src/bootstrap/config';
import type { EventStore } from '../../src/application/ports/event-store';
import { auditEventsByField, buildContainer, TOKENS } from '../../src/bootstrap/container';
import { auditEntry, auditSearchOf30November, expectChainDays, expectSearchThroughIndex, expectSearchThroughScan, recordResourcesDay, recordUsersDay } from '../support/audit-reads';

/**
 * The SQLite store's indexes of audit events by patient (migration 3) and by subject (migration 4): a patient's
 * audit search reads the patient's own rows from the first, not the partition chain of everyone's requests; a
 * user's, the user's own rows from the second, not all eight chains of each day; SQLite answers both from them.
 */
let dir: string;
const opened: SqliteEventStore[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-audit-index-'));
});
afterAll(async () => {
  for (const store of opened) await store.close();
  rmSync(dir, { recursive: true, force: true });
});
const open = (file = join(dir, `${randomUUID()}.db`)): SqliteEventStore => {
  const store = SqliteEventStore.open({ file });
  opened.push(store);
  return store;
};

const partitionOf = (patientKey: string) => auditPartition({ patientKey, subject: '' });

describe('SQLite indexes of audit events by patient and by subject, and the scan by resource and request id', () => {
  it.each(['patientKey', 'subject'] as const)('answer the query by %s from its partial index, not by a scan', (field) => {
    const store = open();
    const index = AUDIT_INDEX_OF_FIELD[field];
    const plan = (store.database.prepare(`EXPLAIN QUERY PLAN ${auditEventsByFieldSql(field)}`).all('audit-2026-11-30-3', 'p1', 0, 1000) as { detail: string }[]).map((r) => r.detail);
    expect(plan.join('\n')).toBe(`SEARCH events USING INDEX ${index} (stream_name=? AND <expr>=? AND stream_version>?)`);
    expect(plan.join('\n')).not.toMatch(/SCAN|TEMP B-TREE/); // no scan, and the index gives the order
    // The planner takes it on its own as well (INDEXED BY only makes a regression fail loudly).
    const unforced = auditEventsByFieldSql(field).replace(`INDEXED BY ${index}`, '');
    expect((store.database.prepare(`EXPLAIN QUERY PLAN ${unforced}`).all('audit-2026-11-30-3', 'p1', 0, 1000) as { detail: string }[]).map((r) => r.detail).join('\n')).toContain(`USING INDEX ${index}`);
  });

  it('are created on a store of the migrations before them, with the audit events already there', async () => {
    const file = join(dir, `${randomUUID()}.db`);
    const old = new BetterSqlite3(file);
    migrate(old, EVENT_STORE_MIGRATIONS.slice(0, 2));
    const insert = old.prepare(`INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, '{}', '2026-11-30T08:00:00Z')`);
    for (let v = 0; v < 10; v++) insert.run('audit-2026-11-30-1', v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: `p${v % 3}`, subject: `s${v % 2}`, at: 'x' }));
    old.close();
    const pending: string[][] = [];
    const store = SqliteEventStore.open({ file, onMigrations: (p) => pending.push([...p.migrations]) });
    opened.push(store);
    expect(pending).toEqual([
      [
        "3 audit events by patient: a patient's audit search and export read only the patient's own events",
        "4 audit events by subject: a user's audit search reads only the user's own events",
      ],
    ]);
    const found = await new SqliteAuditEventsByField(store).read('audit-2026-11-30-1', 2n, 'patientKey', 'p1', 10);
    expect(found.map((e) => e.streamVersion)).toEqual([4n, 7n]);
    const bySubject = await new SqliteAuditEventsByField(store).read('audit-2026-11-30-1', 3n, 'subject', 's1', 3); // from 3 on, 3 included, and no more than 3
    expect(bySubject.map((e) => e.streamVersion)).toEqual([3n, 5n, 7n]);
  });

  it('leave a build of the migrations before 4 free to open the store, and take in what it appends', async () => {
    const file = join(dir, `${randomUUID()}.db`);
    await open(file).close();
    // What a build of migrations 1-3 does at start (no store format marker is needed: nothing it reads changed).
    const older = new BetterSqlite3(file);
    const pending: unknown[] = [];
    migrate(older, EVENT_STORE_MIGRATIONS.slice(0, 3), (p) => pending.push(p));
    expect(pending).toEqual([]);
    // Its appends: the database keeps the index it does not know up to date.
    const insert = older.prepare(`INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, '{}', '2026-11-30T08:00:00Z')`);
    for (let v = 0; v < 4; v++) insert.run('audit-2026-11-30-2', v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: 'p1', subject: `s${v % 2}` }));
    older.close();
    const store = open(file);
    expect((await new SqliteAuditEventsByField(store).read('audit-2026-11-30-2', 0n, 'subject', 's0', 10)).map((e) => e.streamVersion)).toEqual([0n, 2n]);
  });

  it('hold audit events only, whose data is JSON text with the patient key and the subject', async () => {
    const store = open();
    const trail = new AuditTrail({ store });
    await trail.record(auditEntry(1, 'pa'));
    await store.appendToStream('other-1', [{ id: randomUUID(), type: 'SomethingElse', data: { patientKey: 'pa' } }]);
    const rows = store.database.prepare(`SELECT type, typeof(data) AS t, json_valid(data) AS valid, json_extract(data, '$.patientKey') AS key, json_extract(data, '$.subject') AS subject FROM events`).all() as { type: string; t: string; valid: number; key: string }[];
    expect(rows.filter((r) => r.type === AUDIT_EVENT_TYPE)).toEqual([{ type: AUDIT_EVENT_TYPE, t: 'text', valid: 1, key: 'pa', subject: 's-1' }]);
    for (const index of Object.values(AUDIT_INDEX_OF_FIELD)) {
      expect(store.database.prepare(`SELECT count(*) FROM events INDEXED BY ${index} WHERE type = '${AUDIT_EVENT_TYPE}'`).pluck().get()).toBe(1);
    }
  });

  it('lets byPatient read only the patient\'s events, with the same answer as the chain walk', async () => {
    const store = open();
    const writer = new AuditTrail({ store });
    // Many patients of one chain, the patient asked for one in 20 of its events.
    const patient = 'p7';
    const others = Array.from({ length: 400 }, (_, i) => `q${i}`).filter((k) => k !== patient && partitionOf(k) === partitionOf(patient)).slice(0, 19);
    const keys = [patient, ...others];
    await Promise.all(Array.from({ length: 4_000 }, (_, i) => writer.record(auditEntry(i, keys[i % keys.length]!))));
    const chainLength = (await store.readStream(auditStreamName('2026-11-30', partitionOf(patient)))).events.length;
    expect(chainLength).toBe(4_000);
    // The patient's own 200 events, of the 4,000 of the chain the walk reads; page by page the same.
    await expectSearchThroughIndex(store, new SqliteAuditEventsByField(store), { by: 'byPatient', who: patient, own: 200, walked: 4_000 });
  });

  it('lets bySubject read only the user\'s events, with the same answer as the chain walk', async () => {
    const store = open();
    await recordUsersDay(new AuditTrail({ store }), 'clinician-7');
    // The user's own 200 events, of the 4,000 of the day's eight chains the walk reads; page by page the same.
    await expectSearchThroughIndex(store, new SqliteAuditEventsByField(store), { by: 'bySubject', who: 'clinician-7', own: 200, walked: 4_000 });
  });

  it('see an audit event recorded just before the search (the trail drains its queue, the append has committed)', async () => {
    const store = open();
    const trail = new AuditTrail({ store, eventsByField: new SqliteAuditEventsByField(store) });
    await trail.record(auditEntry(1, 'pz'));
    void trail.record(auditEntry(2, 'pz')); // not awaited: still in the trail's queue, then in the store's writer queue
    const page = await trail.byPatient('pz', auditSearchOf30November());
    expect(page.items.map((e) => e.requestId)).toEqual(['r-1', 'r-2']);
    void trail.record(auditEntry(8, 'pz'));
    expect((await trail.bySubject('s-1', auditSearchOf30November())).items.map((e) => e.requestId)).toEqual(['r-1', 'r-8']);
  });

  it.each(['resource', 'requestId'] as const)('scan a window of a chain by %s through the index of stream and version, comparing the field in SQLite (no index of it)', async (field) => {
    const store = open();
    const plan = (store.database.prepare(`EXPLAIN QUERY PLAN ${auditEventsScanSql(field)}`).all('audit-2026-11-30-3', 0, 1000, 'x') as { detail: string }[]).map((r) => r.detail);
    expect(plan.join('\n')).toBe(`SEARCH events USING INDEX ${STREAM_VERSION_INDEX} (stream_name=? AND stream_version>? AND stream_version<?)`);
    // The window's versions, that field's value only, in version order, the upper bound left out.
    const stream = 'audit-2026-11-30-1';
    await store.appendToStream(
      stream,
      Array.from({ length: 12 }, (_, v) => ({ id: randomUUID(), type: AUDIT_EVENT_TYPE, data: { resource: v % 3 === 0 ? '1.2.3' : '1.2.4', requestId: v % 4 === 0 ? 'r-a' : `r-${v}` } })),
    );
    await store.appendToStream('other-1', [{ id: randomUUID(), type: 'SomethingElse', data: { resource: '1.2.3', requestId: 'r-a' } }]);
    const found = await new SqliteAuditEventsByField(store).scan(stream, 1n, 9n, field, field === 'resource' ? '1.2.3' : 'r-a');
    expect(found.map((e) => e.streamVersion)).toEqual(field === 'resource' ? [3n, 6n] : [4n, 8n]);
  });

  it('lets byResource and byRequestId hand back only their events, with the same answers as the chain walk', async () => {
    const store = open();
    await recordResourcesDay(new AuditTrail({ store }), '1.2.208.176.1');
    // The resource's 200 events (and the request's 3), of the 4,000 of the day's eight chains the walk reads and parses.
    await expectSearchThroughScan(store, new SqliteAuditEventsByField(store), { by: 'byResource', who: '1.2.208.176.1', own: 200, walked: 4_000 });
    await expectSearchThroughScan(store, new SqliteAuditEventsByField(store), { by: 'byRequestId', who: 'r-7', own: 3, walked: 4_000, limit: 1 });
  });

  it('are what the container hands the hub\'s and the library\'s audit trails on the embedded store', async () => {
    const data = join(dir, randomUUID());
    const c = buildContainer(loadConfig({ RTS_DATA_DIR: data }), pino({ level: 'silent' }));
    try {
      expect(auditEventsByField(c)).toBeInstanceOf(SqliteAuditEventsByField);
    } finally {
      await c.get<EventStore>(TOKENS.EventStore).close();
    }
  });

  it('find the days holding audit chains from the index by patient, a seek per day (a clock set wrong puts days outside the rest)', async () => {
    const store = open();
    await expectChainDays(store, new SqliteAuditEventsByField(store));
    const plan = (store.database.prepare(`EXPLAIN QUERY PLAN ${auditChainFromSql}`).all('audit-2026-12-01') as { detail: string }[]).map((r) => r.detail).join('\n');
    expect(plan).toMatch(new RegExp(`SEARCH events USING (COVERING )?INDEX ${AUDIT_INDEX_OF_FIELD.patientKey} \\(stream_name>\\?\\)`)); // a seek
    expect(plan).not.toContain('TEMP B-TREE'); // the index gives the order: its first row at the name, not a sort
  });
});
