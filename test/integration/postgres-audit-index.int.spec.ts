import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Pool } from 'pg';
import { loadMigrations, migrate } from '../../src/adapters/event-store/postgres/migrate';
import { auditEventsByFieldSql, PostgresAuditEventsByField } from '../../src/adapters/event-store/postgres/postgres-audit-events-by-field';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { AUDIT_EVENT_TYPE, auditPartition, auditStreamName } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import type { EventStore } from '../../src/application/ports/event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { loadConfig } from '../../src/bootstrap/config';
import { auditEventsByField, buildContainer } from '../../src/bootstrap/container';
import pino from 'pino';
import { auditEntry, auditSearchOf30November, countingIndex, countingReads, pagesOfPatient } from '../support/audit-reads';

/**
 * The PostgreSQL store's index of audit events by patient (migration 003): a patient's audit search reads the
 * patient's own rows from it, not the partition chain of everyone's requests. Each test in a fresh schema, dropped
 * afterwards.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const schemas: string[] = [];
const stores: PostgresEventStore[] = [];
let admin: Client;
beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});
const freshSchema = (): string => {
  const schema = `rts_audit_${process.pid}_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  return schema;
};
const open = async (schema: string): Promise<PostgresEventStore> => {
  const store = await PostgresEventStore.open({ connectionString, schema });
  stores.push(store);
  return store;
};

const partitionOf = (patientKey: string) => auditPartition({ patientKey, subject: '' });

/** One chain of 4,000 audit events of 20 patients, `patient` one of them. */
const fillChain = async (store: PostgresEventStore, patient: string): Promise<void> => {
  const others = Array.from({ length: 400 }, (_, i) => `q${i}`).filter((k) => partitionOf(k) === partitionOf(patient)).slice(0, 19);
  const keys = [patient, ...others];
  const writer = new AuditTrail({ store });
  await Promise.all(Array.from({ length: 4_000 }, (_, i) => writer.record(auditEntry(i, keys[i % keys.length]!))));
};

describe('PostgreSQL index of audit events by patient', () => {
  it('is used by the query (an index scan of events_audit_by_patient, no sequential scan)', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    await fillChain(store, 'p7');
    // Other events too, as in a hub's store, and the statistics autovacuum would have gathered.
    await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data, metadata)
      SELECT 'bulk-' || g, 0, 'bulk-' || g, 'Bulk', jsonb_build_object('patientKey', 'p7'), '{}'::jsonb FROM generate_series(1, 20000) g`);
    await admin.query(`ANALYZE "${schema}".events`);
    const { rows } = await admin.query(`EXPLAIN (FORMAT JSON) ${auditEventsByFieldSql(store.table('events'), 'patientKey')}`, [auditStreamName('2026-11-30', partitionOf('p7')), 'p7', '0', 1000]);
    const plan = JSON.stringify(rows[0]['QUERY PLAN']);
    expect(plan).toContain('"Index Name":"events_audit_by_patient"');
    expect(plan).not.toContain('Seq Scan');
    // (An index scan, or a bitmap scan whose few rows, the patient's, are then sorted: either reads those rows only.)
    expect(plan).not.toContain('"Index Name":"events_stream_version_key"');
  });

  it('lets byPatient read only the patient\'s events, with the same answer as the chain walk', async () => {
    const store = await open(freshSchema());
    const patient = 'p7';
    await fillChain(store, patient);
    expect((await store.readStream(auditStreamName('2026-11-30', partitionOf(patient)))).events).toHaveLength(4_000);

    const { counted, read: readFromChains } = countingReads(store);
    const { index, read: readThroughIndex } = countingIndex(new PostgresAuditEventsByField(store));
    const indexed = new AuditTrail({ store: counted, eventsByField: index });
    const page = await indexed.byPatient(patient, auditSearchOf30November());
    expect(page.items).toHaveLength(200);
    expect(readThroughIndex()).toBe(200); // the patient's own events, of the chain's 4,000
    expect(readFromChains()).toBe(0);
    expect(page).toEqual(await new AuditTrail({ store }).byPatient(patient, auditSearchOf30November()));

    // Page by page, as a cursor goes on: the same pages as the chain walk.
    const walked = await pagesOfPatient(new AuditTrail({ store }), patient, 64);
    expect(walked.length).toBeGreaterThan(1);
    expect(await pagesOfPatient(indexed, patient, 64)).toEqual(walked);
  }, 60_000);

  it('is built on a schema of the migrations before it, with audit events in it, and then answers; a search sees what was just recorded', async () => {
    const schema = freshSchema();
    const pool = new Pool({ connectionString, max: 1 });
    try {
      await migrate(pool, schema, loadMigrations().slice(0, 2));
    } finally {
      await pool.end();
    }
    const stream = 'audit-2026-11-30-1';
    for (let v = 0; v < 10; v++) {
      await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data) VALUES ($1, $2, $3, $4, $5::jsonb)`, [stream, v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: `p${v % 3}` })]);
    }
    const store = await open(schema);
    const index = await admin.query(
      `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'events_audit_by_patient'`,
      [schema],
    );
    expect(index.rows).toEqual([{ indisvalid: true }]);
    expect((await new PostgresAuditEventsByField(store).read(stream, 2n, 'patientKey', 'p1', 10)).map((e) => e.streamVersion)).toEqual([4n, 7n]);

    const trail = new AuditTrail({ store, eventsByField: new PostgresAuditEventsByField(store) });
    void trail.record(auditEntry(1, 'pz')); // not awaited: byPatient drains the trail's queue first
    expect((await trail.byPatient('pz', auditSearchOf30November())).items.map((e) => e.requestId)).toEqual(['r-1']);
  });

  it('is what the container hands the audit trails on a PostgreSQL store (and nothing on another)', async () => {
    const store = await open(freshSchema());
    const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString });
    const c = buildContainer(config, pino({ level: 'silent' }), { store, registry: new InMemoryRegistry(), registryKind: 'memory' });
    expect(auditEventsByField(c)).toBeInstanceOf(PostgresAuditEventsByField);
    const other = buildContainer(config, pino({ level: 'silent' }), { store: { ...store } as unknown as EventStore, registry: new InMemoryRegistry(), registryKind: 'memory' });
    expect(auditEventsByField(other)).toBeUndefined();
  });
});
