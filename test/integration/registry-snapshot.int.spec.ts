import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client, type PoolClient } from 'pg';
import { PostgresKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { PostgresRegistry, type PgTransactor } from '../../src/adapters/registry/postgres-registry';
import { SqliteRegistry } from '../../src/adapters/registry/sqlite-registry';
import { REGISTRY_T0, isoOfEpoch, registryEvents } from '../support/registry-events';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { RegistryEntryView } from '../../src/application/projections/registry-projection';

/**
 * RegistryReadModel.allEntriesOf, the data export's readings, is one snapshot on SQLite and PostgreSQL: a correction
 * committed by another connection (a hub's projector, another hub) after the first page is read is not in the later
 * pages. Each page read on its own showed the old reading (first page) and its replacement (last page) both current.
 * The correction is committed between the pages through a double of the connection the registry reads on.
 */
const PATIENT = 'p'.padEnd(33, 'a');
const T0 = REGISTRY_T0;
const iso = isoOfEpoch;
const events = registryEvents();
/** The global position of the last event made here. */
let position = 0n;
const positioned = (event: RecordedEvent): RecordedEvent => ((position = event.globalPosition), event);
const recorded = (type: string, data: Record<string, unknown>): RecordedEvent => positioned(events.recorded(type, data));
const submitted = (uniqueId: string, epoch: number, replaces: string | null = null): RecordedEvent => positioned(events.submitted(uniqueId, epoch, { patientKey: PATIENT, replaces }));

/** Three readings, the first of them corrected by a reading measured after the others (so on the last page of two). */
const OLD = '2.25.11';
const NEW = '2.25.19';
const readings = () => [submitted(OLD, T0), submitted('2.25.12', T0 + 60), submitted('2.25.13', T0 + 120)];
const correction = () => [recorded('DocumentDeprecated', { uniqueId: OLD, replacedBy: NEW, deprecatedAt: iso(T0 + 300) }), submitted(NEW, T0 + 300, OLD)];

/** The export's view of the reading: current once, as the old one or as the new one (the old deprecated), never both. */
const expectOneSnapshot = (all: readonly RegistryEntryView[]) => {
  const current = all.filter((e) => (e.uniqueId === OLD || e.uniqueId === NEW) && e.status === 'Approved').map((e) => e.uniqueId);
  expect(current).toHaveLength(1);
  expect(all.map((e) => e.uniqueId)).toEqual(current[0] === OLD ? [OLD, '2.25.12', '2.25.13'] : [OLD, '2.25.12', '2.25.13', NEW]);
};

const FIND_ALL_OF_SQLITE = /WHERE patient_key = \? ORDER BY service_start_epoch, unique_id$/;
const FIND_ALL_OF_PG = /> \(\$2::bigint/;

describe('allEntriesOf, SQLite: one read transaction', () => {
  it('does not show a correction another connection commits after the read began', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rts-registry-snapshot-'));
    const file = join(dir, 'hub.db');
    const store = SqliteEventStore.open({ file });
    // Another process on the file: its own connection, its registry writing there.
    const other = new Database(file);
    try {
      other.pragma('busy_timeout = 5000');
      const registry = new SqliteRegistry(store);
      await registry.apply(readings(), position);
      const from = position;
      const otherRegistry = new SqliteRegistry({ database: other, runExclusive: async (fn) => other.transaction(() => fn(other))() });
      let landed = false;
      const land = () => {
        if (landed) return;
        landed = true;
        const events = correction();
        expect(other.transaction(() => otherRegistry.projectInline(events, from, position))()).toBe(true);
      };
      // The registry's connection, with the correction committed by the other one right after a page is read.
      const statementAfter = (statement: object) =>
        new Proxy(statement, {
          get: (target, property) => {
            const value = Reflect.get(target, property, target) as unknown;
            if (property !== 'all' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
            return (...args: unknown[]) => {
              const rows = (value as (...a: unknown[]) => unknown).apply(target, args);
              land();
              return rows;
            };
          },
        });
      const database = new Proxy(store.database, {
        get: (target, property) => {
          const value = Reflect.get(target, property, target) as unknown;
          if (property === 'prepare') return (sql: string) => (FIND_ALL_OF_SQLITE.test(sql) ? statementAfter(target.prepare(sql)) : target.prepare(sql));
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const reader = new SqliteRegistry({ database, runExclusive: (fn, options) => store.runExclusive(fn, options) });
      const all = await reader.allEntriesOf(PATIENT, 2);
      expect(landed).toBe(true);
      expectOneSnapshot(all);
      // The correction is there for the next read.
      expect((await registry.allEntriesOf(PATIENT, 2)).map((e) => [e.uniqueId, e.status])).toEqual([
        [OLD, 'Deprecated'], ['2.25.12', 'Approved'], ['2.25.13', 'Approved'], [NEW, 'Approved'],
      ]);
    } finally {
      other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('allEntriesOf, SQLite: the cost of one snapshot', () => {
  it("reads the patient's rows with one statement, not a page at a time within its transaction", async () => {
    // Pages read without yielding gain nothing over one statement, and each page searched and sorted all of the
    // patient's rows again (the index has status before the time): a patient of 50,000 readings held the event loop,
    // uploads and every other request, for ~0.9 s where one statement takes ~0.25 s.
    const dir = mkdtempSync(join(tmpdir(), 'rts-registry-snapshot-'));
    const store = SqliteEventStore.open({ file: join(dir, 'hub.db') });
    try {
      const registry = new SqliteRegistry(store);
      await registry.apply([...readings(), submitted('2.25.14', T0 + 180), submitted('2.25.15', T0 + 240)], position);
      let reads = 0;
      const database = new Proxy(store.database, {
        get: (target, property) => {
          const value = Reflect.get(target, property, target) as unknown;
          if (property !== 'prepare') return typeof value === 'function' ? value.bind(target) : value;
          return (sql: string) => {
            const statement = target.prepare(sql);
            if (!/FROM registry_entries WHERE patient_key = \?/.test(sql) || /LIMIT 1$/.test(sql.trim())) return statement;
            const all = statement.all.bind(statement);
            return Object.assign(statement, { all: (...args: unknown[]) => (reads++, all(...args)) });
          };
        },
      });
      const reader = new SqliteRegistry({ database, runExclusive: (fn, options) => store.runExclusive(fn, options) });
      const all = await reader.allEntriesOf(PATIENT, 2);
      expect(all.map((e) => e.uniqueId)).toEqual([OLD, '2.25.12', '2.25.13', '2.25.14', '2.25.15']);
      expect(reads).toBe(1);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('allEntriesOf, PostgreSQL: one REPEATABLE READ transaction', () => {
  const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
  // A fresh schema, dropped at the end; RTS_TEST_PG_SCHEMA_PREFIX where a database allows only some names (default rts).
  const schema = `${process.env['RTS_TEST_PG_SCHEMA_PREFIX'] ?? 'rts'}_registry_snapshot_${process.pid}_${randomBytes(4).toString('hex')}`;
  let admin: Client;
  let store: PostgresEventStore;

  beforeAll(async () => {
    admin = new Client({ connectionString });
    await admin.connect();
    store = await PostgresEventStore.open({ connectionString, schema });
  });

  afterAll(async () => {
    await store?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });

  /** `db` with `afterPage` awaited after each page query of findAllOf's shape, inside the reader's transaction. */
  const hooked = (db: PgTransactor, afterPage: () => Promise<void>): PgTransactor => ({
    schema: db.schema,
    table: (name) => db.table(name),
    query: (text, values) => db.query(text, values),
    vacuum: (table) => db.vacuum(table),
    connect: () => db.connect(),
    withTransaction: (work) =>
      db.withTransaction((client) =>
        work(
          new Proxy(client, {
            get: (target, property) => {
              const value = Reflect.get(target, property, target) as unknown;
              if (property !== 'query' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
              return async (...args: unknown[]) => {
                const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
                if (typeof args[0] === 'string' && FIND_ALL_OF_PG.test(args[0])) await afterPage();
                return result;
              };
            },
          }) as PoolClient,
        ),
      ),
  });

  it('does not show a correction another hub commits between two pages', async () => {
    const protection = new PatientCipher({ keys: await PostgresKeyStore.open(store) });
    const registry = await PostgresRegistry.open(store, protection);
    await registry.apply(readings(), position);
    let landed = false;
    const land = async () => {
      if (landed) return;
      landed = true;
      const events = correction();
      await registry.apply(events, position); // on a connection of its own, committed before the next page
    };
    const reader = await PostgresRegistry.open(hooked(store, land), protection);
    const all = await reader.allEntriesOf(PATIENT, 2);
    expect(landed).toBe(true);
    expectOneSnapshot(all);
    expect((await registry.allEntriesOf(PATIENT, 2)).map((e) => [e.uniqueId, e.status])).toEqual([
      [OLD, 'Deprecated'], ['2.25.12', 'Approved'], ['2.25.13', 'Approved'], [NEW, 'Approved'],
    ]);
  });
});
