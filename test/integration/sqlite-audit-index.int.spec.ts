import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pino from 'pino';
import { EVENT_STORE_MIGRATIONS, migrate } from '../../src/adapters/event-store/sqlite/schema';
import { auditEventsByFieldSql, SqliteAuditEventsByField } from '../../src/adapters/event-store/sqlite/sqlite-audit-events-by-field';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { AUDIT_EVENT_TYPE, auditPartition, auditStreamName } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { loadConfig } from '../../src/bootstrap/config';
import type { EventStore } from '../../src/application/ports/event-store';
import { auditEventsByField, buildContainer, TOKENS } from '../../src/bootstrap/container';
import { auditEntry, auditSearchOf30November, countingIndex, countingReads, pagesOfPatient } from '../support/audit-reads';

/**
 * The SQLite store's index of audit events by patient (migration 3): a patient's audit search reads the patient's
 * own rows from it, not the partition chain of everyone's requests, and SQLite answers the query from the index.
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

describe('SQLite index of audit events by patient', () => {
  it('is answered from the partial index events_audit_by_patient, not by a scan', () => {
    const store = open();
    const plan = (store.database.prepare(`EXPLAIN QUERY PLAN ${auditEventsByFieldSql('patientKey')}`).all('audit-2026-11-30-3', 'p1', 0, 1000) as { detail: string }[]).map((r) => r.detail);
    expect(plan.join('\n')).toMatch(/^SEARCH events USING INDEX events_audit_by_patient \(stream_name=\? AND <expr>=\? AND stream_version>\?\)$/);
    expect(plan.join('\n')).not.toMatch(/SCAN|TEMP B-TREE/); // no scan, and the index gives the order
    // The planner takes it on its own as well (INDEXED BY only makes a regression fail loudly).
    const unforced = auditEventsByFieldSql('patientKey').replace('INDEXED BY events_audit_by_patient', '');
    expect((store.database.prepare(`EXPLAIN QUERY PLAN ${unforced}`).all('audit-2026-11-30-3', 'p1', 0, 1000) as { detail: string }[]).map((r) => r.detail).join('\n')).toContain('USING INDEX events_audit_by_patient');
  });

  it('is created on a store of the migrations before it, with the audit events already there', async () => {
    const file = join(dir, `${randomUUID()}.db`);
    const old = new BetterSqlite3(file);
    migrate(old, EVENT_STORE_MIGRATIONS.slice(0, 2));
    const insert = old.prepare(`INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, '{}', '2026-11-30T08:00:00Z')`);
    for (let v = 0; v < 10; v++) insert.run('audit-2026-11-30-1', v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: `p${v % 3}`, at: 'x' }));
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
  });

  it('holds audit events only, whose data is JSON text with the patient key', async () => {
    const store = open();
    const trail = new AuditTrail({ store });
    await trail.record(auditEntry(1, 'pa'));
    await store.appendToStream('other-1', [{ id: randomUUID(), type: 'SomethingElse', data: { patientKey: 'pa' } }]);
    const rows = store.database.prepare(`SELECT type, typeof(data) AS t, json_valid(data) AS valid, json_extract(data, '$.patientKey') AS key FROM events`).all() as { type: string; t: string; valid: number; key: string }[];
    expect(rows.filter((r) => r.type === AUDIT_EVENT_TYPE)).toEqual([{ type: AUDIT_EVENT_TYPE, t: 'text', valid: 1, key: 'pa' }]);
    const indexed = store.database.prepare(`SELECT count(*) FROM events INDEXED BY events_audit_by_patient WHERE type = '${AUDIT_EVENT_TYPE}'`).pluck().get();
    expect(indexed).toBe(1);
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

    const { counted, read: readFromChains } = countingReads(store);
    const { index, read: readThroughIndex } = countingIndex(new SqliteAuditEventsByField(store));
    const indexed = new AuditTrail({ store: counted, eventsByField: index });
    const page = await indexed.byPatient(patient, auditSearchOf30November());
    expect(page.items).toHaveLength(200);
    expect(readThroughIndex()).toBe(200); // the patient's own events, of the 4,000 of the chain
    expect(readFromChains()).toBe(0);
    expect(page).toEqual(await new AuditTrail({ store }).byPatient(patient, auditSearchOf30November()));

    // Page by page, as a cursor goes on: the same pages as the chain walk.
    const walked = await pagesOfPatient(new AuditTrail({ store }), patient, 64);
    expect(walked.length).toBeGreaterThan(1);
    expect(await pagesOfPatient(indexed, patient, 64)).toEqual(walked);
  });

  it('sees an audit event recorded just before the search (the trail drains its queue, the append has committed)', async () => {
    const store = open();
    const trail = new AuditTrail({ store, eventsByField: new SqliteAuditEventsByField(store) });
    await trail.record(auditEntry(1, 'pz'));
    void trail.record(auditEntry(2, 'pz')); // not awaited: still in the trail's queue, then in the store's writer queue
    const page = await trail.byPatient('pz', auditSearchOf30November());
    expect(page.items.map((e) => e.requestId)).toEqual(['r-1', 'r-2']);
  });

  it('is what the container hands the hub\'s and the library\'s audit trails on the embedded store', async () => {
    const data = join(dir, randomUUID());
    const c = buildContainer(loadConfig({ RTS_DATA_DIR: data }), pino({ level: 'silent' }));
    try {
      expect(auditEventsByField(c)).toBeInstanceOf(SqliteAuditEventsByField);
    } finally {
      await c.get<EventStore>(TOKENS.EventStore).close();
    }
  });
});
