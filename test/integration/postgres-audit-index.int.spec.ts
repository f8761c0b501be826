import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Pool } from 'pg';
import { loadMigrations, migrate } from '../../src/adapters/event-store/postgres/migrate';
import { auditChainDaysSql, auditEventsByFieldSql, auditEventsScanSql, PostgresAuditEventsByField } from '../../src/adapters/event-store/postgres/postgres-audit-events-by-field';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { AUDIT_EVENT_TYPE, auditPartition, auditStreamName } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import type { EventStore } from '../../src/application/ports/event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { loadConfig } from '../../src/bootstrap/config';
import { auditEventsByField, buildContainer } from '../../src/bootstrap/container';
import pino from 'pino';
import { auditEntry, auditSearchOf30November, expectChainDays, expectSearchThroughIndex, expectSearchThroughScan, recordResourcesDay, recordUsersDay } from '../support/audit-reads';

/**
 * The PostgreSQL store's indexes of audit events by patient (migration 003) and by subject (004): a patient's audit
 * search reads the patient's own rows from the first, not the partition chain of everyone's requests; a user's, the
 * user's own rows from the second, not all eight chains of each day. Each test in a fresh schema, dropped afterwards.
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

describe('PostgreSQL indexes of audit events by patient and by subject, and the scan by resource and request id', () => {
  it('are used by their queries (index scans of events_audit_by_patient and events_audit_by_subject, no sequential scan)', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    await fillChain(store, 'p7');
    // Other events too, as in a hub's store, and the statistics autovacuum would have gathered.
    await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data, metadata)
      SELECT 'bulk-' || g, 0, 'bulk-' || g, 'Bulk', jsonb_build_object('patientKey', 'p7', 'subject', 's-3'), '{}'::jsonb FROM generate_series(1, 20000) g`);
    await admin.query(`ANALYZE "${schema}".events`);
    const planOf = async (field: 'patientKey' | 'subject', value: string): Promise<string> => {
      const { rows } = await admin.query(`EXPLAIN (FORMAT JSON) ${auditEventsByFieldSql(store.table('events'), field)}`, [auditStreamName('2026-11-30', partitionOf('p7')), value, '0', 1000]);
      return JSON.stringify(rows[0]['QUERY PLAN']);
    };
    for (const [field, value, index] of [['patientKey', 'p7', 'events_audit_by_patient'], ['subject', 's-3', 'events_audit_by_subject']] as const) {
      const plan = await planOf(field, value);
      expect(plan).toContain(`"Index Name":"${index}"`);
      expect(plan).not.toContain('Seq Scan');
      // (An index scan, or a bitmap scan whose few rows, the patient's or user's, are then sorted: either reads those rows only.)
      expect(plan).not.toContain('"Index Name":"events_stream_version_key"');
    }
    // The days holding chains (a patient's export): seeks in the index by patient, day after day, never a scan.
    const { rows } = await admin.query(`EXPLAIN (FORMAT JSON) ${auditChainDaysSql(store.table('events'))}`);
    const daysPlan = JSON.stringify(rows[0]['QUERY PLAN']);
    expect(daysPlan).toContain('"Index Name":"events_audit_by_patient"');
    expect(daysPlan).not.toContain('Seq Scan');
  });

  it('scan a window of a chain by resource or request id through the index of stream and version (no index of those fields), and hand back the matches only', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    await recordResourcesDay(new AuditTrail({ store }), '1.2.208.176.1');
    await admin.query(`ANALYZE "${schema}".events`);
    for (const field of ['resource', 'requestId'] as const) {
      const { rows } = await admin.query(`EXPLAIN (FORMAT JSON) ${auditEventsScanSql(store.table('events'), field)}`, [auditStreamName('2026-11-30', 3), '0', '1000', 'x']);
      const plan = JSON.stringify(rows[0]['QUERY PLAN']);
      expect(plan).toContain('"Index Name":"events_stream_version_key"');
      expect(plan).not.toContain('Seq Scan');
      // Not the partial audit indexes, whose version is behind the patient or subject: a window would read the chain's whole part of them.
      expect(plan).not.toMatch(/events_audit_by_/);
    }
    const stream = auditStreamName('2026-11-30', 3);
    const all = (await store.readStream(stream)).events;
    const scan = new PostgresAuditEventsByField(store);
    const window = await scan.scan(stream, 10n, 300n, 'resource', '1.2.208.176.1');
    expect(window.map((e) => e.streamVersion)).toEqual(all.filter((e) => e.streamVersion >= 10n && e.streamVersion < 300n && e.data['resource'] === '1.2.208.176.1').map((e) => e.streamVersion));
    expect(window.length).toBeGreaterThan(0);
  });

  it('lets byResource and byRequestId hand back only their events, with the same answers as the chain walk', async () => {
    const store = await open(freshSchema());
    await recordResourcesDay(new AuditTrail({ store }), '1.2.208.176.1');
    await expectSearchThroughScan(store, new PostgresAuditEventsByField(store), { by: 'byResource', who: '1.2.208.176.1', own: 200, walked: 4_000 });
    await expectSearchThroughScan(store, new PostgresAuditEventsByField(store), { by: 'byRequestId', who: 'r-7', own: 3, walked: 4_000, limit: 1 });
  }, 60_000);

  it('lets byPatient read only the patient\'s events, with the same answer as the chain walk', async () => {
    const store = await open(freshSchema());
    const patient = 'p7';
    await fillChain(store, patient);
    expect((await store.readStream(auditStreamName('2026-11-30', partitionOf(patient)))).events).toHaveLength(4_000);
    // The patient's own 200 events, of the chain's 4,000 the walk reads; page by page the same.
    await expectSearchThroughIndex(store, new PostgresAuditEventsByField(store), { by: 'byPatient', who: patient, own: 200, walked: 4_000 });
  }, 60_000);

  it('lets bySubject read only the user\'s events, with the same answer as the chain walk', async () => {
    const store = await open(freshSchema());
    await recordUsersDay(new AuditTrail({ store }), 'clinician-7');
    // The user's own 200 events, of the 4,000 of the day's eight chains the walk reads; page by page the same.
    await expectSearchThroughIndex(store, new PostgresAuditEventsByField(store), { by: 'bySubject', who: 'clinician-7', own: 200, walked: 4_000 });
  }, 60_000);

  it('are built on a schema of the migrations before them, with audit events in it, and then answer; a search sees what was just recorded', async () => {
    const schema = freshSchema();
    const pool = new Pool({ connectionString, max: 1 });
    try {
      await migrate(pool, schema, loadMigrations().slice(0, 2));
    } finally {
      await pool.end();
    }
    const stream = 'audit-2026-11-30-1';
    for (let v = 0; v < 10; v++) {
      await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data) VALUES ($1, $2, $3, $4, $5::jsonb)`, [stream, v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: `p${v % 3}`, subject: `s${v % 2}` })]);
    }
    const store = await open(schema);
    const index = await admin.query(
      `SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname IN ('events_audit_by_patient', 'events_audit_by_subject') ORDER BY c.relname`,
      [schema],
    );
    expect(index.rows).toEqual([{ relname: 'events_audit_by_patient', indisvalid: true }, { relname: 'events_audit_by_subject', indisvalid: true }]);
    expect((await new PostgresAuditEventsByField(store).read(stream, 2n, 'patientKey', 'p1', 10)).map((e) => e.streamVersion)).toEqual([4n, 7n]);
    expect((await new PostgresAuditEventsByField(store).read(stream, 3n, 'subject', 's1', 3)).map((e) => e.streamVersion)).toEqual([3n, 5n, 7n]);

    const trail = new AuditTrail({ store, eventsByField: new PostgresAuditEventsByField(store) });
    void trail.record(auditEntry(1, 'pz')); // not awaited: byPatient drains the trail's queue first
    expect((await trail.byPatient('pz', auditSearchOf30November())).items.map((e) => e.requestId)).toEqual(['r-1']);
    void trail.record(auditEntry(8, 'pz'));
    expect((await trail.bySubject('s-1', auditSearchOf30November())).items.map((e) => e.requestId)).toEqual(['r-1', 'r-8']);
  });

  it('leave a build of the migrations before 004 free to open the schema, and take in what it appends', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    // What a build of migrations 001-003 does at start (no store format marker is needed: nothing it reads changed).
    const pool = new Pool({ connectionString, max: 1 });
    try {
      expect(await migrate(pool, schema, loadMigrations().slice(0, 3))).toEqual([]);
    } finally {
      await pool.end();
    }
    // Its appends: the database keeps the index it does not know up to date.
    const stream = 'audit-2026-11-30-2';
    for (let v = 0; v < 4; v++) {
      await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data) VALUES ($1, $2, $3, $4, $5::jsonb)`, [stream, v, randomUUID(), AUDIT_EVENT_TYPE, JSON.stringify({ patientKey: 'p1', subject: `s${v % 2}` })]);
    }
    expect((await new PostgresAuditEventsByField(store).read(stream, 0n, 'subject', 's0', 10)).map((e) => e.streamVersion)).toEqual([0n, 2n]);
  });

  it('are what the container hands the audit trails on a PostgreSQL store (and nothing on another)', async () => {
    const store = await open(freshSchema());
    const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString });
    const c = buildContainer(config, pino({ level: 'silent' }), { store, registry: new InMemoryRegistry(), registryKind: 'memory' });
    expect(auditEventsByField(c)).toBeInstanceOf(PostgresAuditEventsByField);
    const other = buildContainer(config, pino({ level: 'silent' }), { store: { ...store } as unknown as EventStore, registry: new InMemoryRegistry(), registryKind: 'memory' });
    expect(auditEventsByField(other)).toBeUndefined();
  });

  it('find the days holding audit chains, a seek per day in the index by patient, none on a store without any', async () => {
    const store = await open(freshSchema());
    await expectChainDays(store, new PostgresAuditEventsByField(store));
  });
});
