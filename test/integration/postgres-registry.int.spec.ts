import { randomBytes } from 'node:crypto';
import { registryEvents } from '../support/registry-events';
import { Client } from 'pg';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PostgresKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { PostgresDatabase, PostgresRegistry, REGISTRY_LOCK_CLASS } from '../../src/adapters/registry/postgres-registry';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { ProjectionBehind, Projector } from '../../src/application/projector';
import { readCoveredPage } from '../../src/application/covered-page';
import { OpeningRegistry, PATIENT_ERASED, type ForgettingRegistry } from '../../src/application/sealed-documents';
import type { DocumentEntryData } from '../../src/domain/documents/document-entry';
import { Director, HL7Builder } from '../../src/domain/documents/hl7';
import type { Cpr } from '../../src/domain/monitoring/cpr';

/**
 * The registry projection in PostgreSQL, checked for the same behaviour as the SQLite one: rows and checkpoint in
 * one transaction, [from, to) bounds and order, deprecated rows left out, knowsPatient, reset and rebuild; plus
 * what only a shared database raises: two hub processes feeding the same tables. One fresh schema per file,
 * dropped at the end.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_registry_${process.pid}_${randomBytes(4).toString('hex')}`;

let admin: Client;
let store: PostgresEventStore;
let registry: PostgresRegistry;
/** The hub's cipher: the registry seals its rows' personal values under the patients' keys. */
let protection: PatientCipher;

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
  store = await PostgresEventStore.open({ connectionString, schema });
  protection = new PatientCipher({ keys: await PostgresKeyStore.open(store) });
  registry = await PostgresRegistry.open(store, protection);
});

afterAll(async () => {
  await store?.close();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

beforeEach(async () => {
  await registry.reset();
});

const PATIENT = 'p'.padEnd(33, 'a');
const OTHER = 'p'.padEnd(33, 'b');
const T0 = Date.parse('2024-03-10T12:00:00Z') / 1000;
const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');

const hl7 = (systolic: number, measuredAt: string): string => {
  const builder = new HL7Builder();
  Director.construct({ patientId: '251248-1234' as Cpr, systolic: { value: systolic, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt }, builder);
  return builder.getResult();
};

const { recorded } = registryEvents();

const submitted = (uniqueId: string, epoch: number, options: { patientKey?: string; systolic?: number; replaces?: string } = {}): RecordedEvent => {
  const content = hl7(options.systolic ?? 120, iso(epoch));
  const entry: DocumentEntryData = {
    uniqueId,
    patientKey: options.patientKey ?? PATIENT,
    repositoryUniqueId: '2.25.1',
    observationId: `obs-${uniqueId}`,
    creationTime: iso(epoch),
    serviceStartTime: iso(epoch),
    serviceStopTime: iso(epoch),
    mimeType: 'text/xml',
    classCode: '8716-3',
    typeCode: '55284-4',
    formatCode: 'urn:telemed-rts:hl7:bp:1',
    title: 'Home blood pressure measurement',
    languageCode: 'en',
    hash: 'a'.repeat(64),
    size: content.length,
    replaces: options.replaces ?? null,
  };
  return recorded('DocumentSubmitted', { ...entry, content });
};
const deprecated = (uniqueId: string, replacedBy: string): RecordedEvent =>
  recorded('DocumentDeprecated', { uniqueId, replacedBy, deprecatedAt: iso(T0) });
const unrelated = (): RecordedEvent => recorded('ExpertRegistered', { expertId: 'e-1' });

const ids = (rows: readonly { uniqueId: string }[]) => rows.map((r) => r.uniqueId);
const count = async (table: string): Promise<number> => Number((await admin.query(`SELECT count(*)::int AS n FROM "${schema}"."${table}"`)).rows[0].n);

describe('PostgresRegistry', () => {
  it('creates its tables and the (patient_key, status, service_start_epoch) index idempotently', async () => {
    await PostgresRegistry.open(store, protection); // a second open (another hub process) changes nothing
    const { rows } = await admin.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'registry_entries'`, [schema]);
    expect(rows.map((r: { indexdef: string }) => r.indexdef).join('\n')).toMatch(/\(patient_key, status, service_start_epoch\)/);
    // Concurrent opens (hubs starting together) do not race.
    await expect(Promise.all(Array.from({ length: 4 }, () => PostgresRegistry.open(store, protection)))).resolves.toHaveLength(4);
  });

  it('applies a batch: rows with the values parsed from the HL7, checkpoint set; unknown event types ignored', async () => {
    expect(await registry.checkpoint()).toBe(0n);
    const batch = [submitted('2.25.10', T0, { systolic: 131 }), unrelated()];
    await registry.apply(batch, batch[1]!.globalPosition);
    expect(await registry.checkpoint()).toBe(batch[1]!.globalPosition);
    expect(await registry.get('2.25.10')).toEqual({
      uniqueId: '2.25.10',
      patientKey: PATIENT,
      repositoryUniqueId: '2.25.1',
      status: 'Approved',
      creationTime: iso(T0),
      serviceStartTime: iso(T0),
      serviceStartEpoch: T0,
      mimeType: 'text/xml',
      hash: 'a'.repeat(64),
      size: expect.any(Number),
      replaces: null,
      replacedBy: null,
      observationId: 'obs-2.25.10',
      systolic: { value: 131, unit: 'mmHg' },
      diastolic: { value: 70, unit: 'mmHg' },
    });
    expect(await registry.get('2.25.999')).toBeNull();
  });

  it('a failing apply leaves checkpoint and rows unchanged', async () => {
    const first = submitted('2.25.20', T0);
    await registry.apply([first], first.globalPosition);

    // A bad event in the batch (content that does not parse) fails the whole batch.
    const good = deprecated('2.25.20', '2.25.21');
    const bad = recorded('DocumentSubmitted', { ...submitted('2.25.22', T0).data, content: '<not-hl7/>' });
    await expect(registry.apply([good, bad], bad.globalPosition)).rejects.toThrow();
    expect(await registry.checkpoint()).toBe(first.globalPosition);
    expect((await registry.get('2.25.20'))?.status).toBe('Approved');

    // A failure in the database after the rows were written (here: the checkpoint write) rolls the rows back too.
    await admin.query(`CREATE FUNCTION "${schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'checkpoint refused'; END $$`);
    await admin.query(`CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON "${schema}".projection_checkpoints FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse()`);
    try {
      const next = submitted('2.25.23', T0 + 60);
      await expect(registry.apply([good, next], next.globalPosition)).rejects.toThrow(/checkpoint refused/);
      expect(await registry.checkpoint()).toBe(first.globalPosition);
      expect((await registry.get('2.25.20'))?.status).toBe('Approved');
      expect(await registry.get('2.25.23')).toBeNull();
      expect(await count('registry_entries')).toBe(1);
    } finally {
      await admin.query(`DROP TRIGGER refuse ON "${schema}".projection_checkpoints`);
      await admin.query(`DROP FUNCTION "${schema}".refuse()`);
    }
  });

  it('findCurrent: [from, to) in whole seconds, oldest first, limited, one patient only', async () => {
    const batch = [
      submitted('2.25.33', T0 + 120),
      submitted('2.25.30', T0 - 1), // just before from
      submitted('2.25.31', T0), // exactly from: in
      submitted('2.25.32', T0 + 60),
      submitted('2.25.34', T0 + 180), // exactly to: out
      submitted('2.25.35', T0 + 60, { patientKey: OTHER }),
      submitted('2.25.36', T0 + 60), // same second as .32: ordered by uniqueId
    ];
    await registry.apply(batch, batch.at(-1)!.globalPosition);
    expect(ids(await registry.findCurrent(PATIENT, T0, T0 + 180, 100))).toEqual(['2.25.31', '2.25.32', '2.25.36', '2.25.33']);
    expect(ids(await registry.findCurrent(PATIENT, T0, T0 + 180, 2))).toEqual(['2.25.31', '2.25.32']);
    expect(ids(await registry.findCurrent(PATIENT, T0 + 180, T0 + 181, 100))).toEqual(['2.25.34']);
    expect(ids(await registry.findCurrent(PATIENT, T0, T0, 100))).toEqual([]);
    expect(ids(await registry.findCurrent(OTHER, T0, T0 + 180, 100))).toEqual(['2.25.35']);
  });

  it('leaves deprecated rows out of findCurrent but keeps them for get and knowsPatient', async () => {
    const batch = [submitted('2.25.40', T0), submitted('2.25.41', T0 + 1, { replaces: '2.25.40', systolic: 125 }), deprecated('2.25.40', '2.25.41')];
    await registry.apply(batch, batch.at(-1)!.globalPosition);
    expect(ids(await registry.findCurrent(PATIENT, T0, T0 + 10, 100))).toEqual(['2.25.41']);
    expect(await registry.get('2.25.40')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.41' });
    expect(await registry.get('2.25.41')).toMatchObject({ status: 'Approved', replaces: '2.25.40', systolic: { value: 125, unit: 'mmHg' } });

    // A deprecation alone is no reason to know the patient.
    await registry.reset();
    const only = deprecated('2.25.40', '2.25.41');
    await registry.apply([only], only.globalPosition);
    expect(await registry.knowsPatient(PATIENT)).toBe(false);
  });

  it('findAllOf: every row of the patient, deprecated ones too, by time then uniqueId (code points), page by page', async () => {
    const batch = [
      submitted('2.25.53', T0 + 120),
      submitted('2.25.6', T0 + 60), // same second as .56: '2.25.56' < '2.25.6' by code points
      submitted('2.25.56', T0 + 60),
      submitted('2.25.51', T0 - 86_400 * 400),
      submitted('2.25.55', T0 + 60, { patientKey: OTHER }),
      submitted('2.25.57', T0 + 200, { replaces: '2.25.53', systolic: 125 }),
      deprecated('2.25.53', '2.25.57'),
    ];
    await registry.apply(batch, batch.at(-1)!.globalPosition);
    const all = await registry.findAllOf(PATIENT, null, 100);
    expect(ids(all)).toEqual(['2.25.51', '2.25.56', '2.25.6', '2.25.53', '2.25.57']);
    expect(all.find((r) => r.uniqueId === '2.25.53')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.57', systolic: { value: 120, unit: 'mmHg' } });
    const first = await registry.findAllOf(PATIENT, null, 2);
    const last = first.at(-1)!;
    expect(ids(await registry.findAllOf(PATIENT, { serviceStartEpoch: last.serviceStartEpoch, uniqueId: last.uniqueId }, 2))).toEqual(['2.25.6', '2.25.53']);
    expect(ids(await registry.findAllOf(OTHER, null, 100))).toEqual(['2.25.55']);
  });

  it('an erased patient gets no row for a document later in the events (sealed by a hub that still held the key)', async () => {
    const erasedKey = 'p'.padEnd(33, 'e');
    const first = submitted('2.25.70', T0, { patientKey: erasedKey });
    await registry.apply([first], first.globalPosition);
    expect(ids(await registry.findCurrent(erasedKey, T0 - 10, T0 + 10, 10))).toEqual(['2.25.70']);
    await registry.forgetPatient(erasedKey);
    const later = [submitted('2.25.71', T0 + 1, { patientKey: erasedKey }), submitted('2.25.72', T0 + 2)];
    await registry.apply(later, later.at(-1)!.globalPosition);
    expect(await registry.findCurrent(erasedKey, T0 - 10, T0 + 10, 10)).toEqual([]);
    expect(await registry.knowsPatient(erasedKey)).toBe(false);
    expect(await registry.get('2.25.72')).not.toBeNull(); // another patient's document goes on as before
    expect(await count('erased_patients')).toBeGreaterThanOrEqual(1);
  });

  it('knowsPatient: true once any document was registered, even if none is current', async () => {
    expect(await registry.knowsPatient(PATIENT)).toBe(false);
    // Corrected, and the correction's reading outside the interval: nothing current in it.
    const batch = [submitted('2.25.50', T0), deprecated('2.25.50', '2.25.51'), submitted('2.25.51', T0 + 1000, { replaces: '2.25.50' })];
    await registry.apply(batch, batch.at(-1)!.globalPosition);
    expect(await registry.findCurrent(PATIENT, T0 - 10, T0 + 10, 10)).toEqual([]);
    expect(await registry.knowsPatient(PATIENT)).toBe(true);
    expect(await registry.knowsPatient(OTHER)).toBe(false);
  });

  it('two hub processes feeding the same tables: a stale batch neither reverts a row nor moves the checkpoint back', async () => {
    const db = PostgresDatabase.open({ connectionString, schema });
    try {
      await twoProcesses(await PostgresRegistry.open(db, new PatientCipher({ keys: await PostgresKeyStore.open(db) })));
    } finally {
      await db.close();
    }
  });

  it('two hub processes on a database whose default isolation is repeatable read: the apply that waited for the other reads what it committed', async () => {
    await overlappingApplies('rr', '-c default_transaction_isolation=repeatable\\ read');
  });

  it("two hub processes on a role or database with a lock_timeout: the apply waiting for the other's registry lock is not cut by it", async () => {
    // Waiting for the registry lock is how hubs sharing a schema take turns, not a fault: with the DBA's common guard
    // the waiting apply failed with 55P03 and the projector logged and retried it, for as long as the other held it.
    await overlappingApplies('lt', '-c lock_timeout=100ms', { waitedMs: 500 });
  });

  /**
   * Hub A's apply waits in its INSERT (holding the registry lock) for an advisory lock the test holds, until hub B's
   * apply of an overlapping page has begun and waits for the registry lock (for `waitedMs` by the server's clock, when
   * given); then A goes on, and B must apply what A did not, reading what A committed.
   */
  const overlappingApplies = async (suffix: string, serverOptions: string, { waitedMs = 0 }: { waitedMs?: number } = {}): Promise<void> => {
    const own = `${schema}_${suffix}`;
    const bounded = `${connectionString}${connectionString.includes('?') ? '&' : '?'}options=${encodeURIComponent(serverOptions)}`;
    const dbs = [PostgresDatabase.open({ connectionString: bounded, schema: own }), PostgresDatabase.open({ connectionString: bounded, schema: own })];
    try {
      await admin.query(`CREATE SCHEMA "${own}"`);
      const hubs: PostgresRegistry[] = [];
      for (const db of dbs) hubs.push(await PostgresRegistry.open(db, new PatientCipher({ keys: await PostgresKeyStore.open(db) })));
      const gate = 0x7e58;
      // The gate's own wait is the test's, not the hub's: no lock_timeout for it.
      await admin.query(`CREATE FUNCTION "${own}".gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN SET LOCAL lock_timeout = 0; PERFORM pg_advisory_xact_lock(${gate}); RETURN NULL; END $$`);
      await admin.query(`CREATE TRIGGER gate AFTER INSERT ON "${own}".registry_entries FOR EACH ROW EXECUTE FUNCTION "${own}".gate()`);
      const waiting = async (where: string, key: number, forMs = 0) =>
        (
          await admin.query(
            `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND NOT l.granted AND l.${where} = $1::bigint::oid AND now() - a.query_start >= $2 * interval '1 ms'`,
            [key, forMs],
          )
        ).rows[0].n > 0;
      const sub = submitted('2.25.95', T0);
      const dep = deprecated('2.25.95', '2.25.96');
      const replacement = submitted('2.25.96', T0 + 1000, { replaces: '2.25.95' });
      await admin.query('SELECT pg_advisory_lock($1)', [gate]);
      try {
        const applyA = hubs[0]!.apply([sub], sub.globalPosition);
        await until(() => waiting('objid', gate));
        let settled = false;
        const applyB = hubs[1]!.apply([sub, dep, replacement], replacement.globalPosition).then(() => 'applied', (error: unknown) => String(error)).finally(() => (settled = true));
        await until(async () => settled || (await waiting('classid', REGISTRY_LOCK_CLASS, waitedMs)));
        await admin.query('SELECT pg_advisory_unlock($1)', [gate]);
        await applyA;
        expect(await applyB).toBe('applied');
      } finally {
        await admin.query('SELECT pg_advisory_unlock_all()');
      }
      expect(await hubs[0]!.checkpoint()).toBe(replacement.globalPosition);
      expect(await hubs[0]!.get('2.25.95')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.96' });
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await admin.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
    }
  };

  it('a page read before a reset (a rebuild by this or another hub) is refused, not applied over the emptied rows', async () => {
    // Applied, its few rows went in and the checkpoint moved to the head: a registry rebuilt during uploads held 32
    // rows of 2,534 documents, for every hub on the schema, until the next rebuild.
    const sub = submitted('2.25.90', T0);
    const later = submitted('2.25.91', T0 + 1);
    await registry.apply([sub], sub.globalPosition);
    await registry.reset();
    await expect(registry.apply([later], later.globalPosition, sub.globalPosition)).rejects.toBeInstanceOf(ProjectionBehind);
    expect(await registry.checkpoint()).toBe(0n);
    expect(await registry.get('2.25.91')).toBeNull();
    // From where the model is, it applies.
    await registry.apply([sub, later], later.globalPosition, 0n);
    expect(await registry.checkpoint()).toBe(later.globalPosition);
  });

  const twoProcesses = async (other: PostgresRegistry): Promise<void> => {
    const sub = submitted('2.25.60', T0);
    const dep = deprecated('2.25.60', '2.25.61');
    const replacement = submitted('2.25.61', T0 + 1000, { replaces: '2.25.60' });
    await registry.apply([sub, dep, replacement], replacement.globalPosition); // hub A is ahead
    await other.apply([sub], sub.globalPosition); // hub B applies the older batch it had read
    expect(await registry.checkpoint()).toBe(replacement.globalPosition);
    expect(await other.get('2.25.60')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.61' });

    // Overlapping batches applied concurrently by both: each event applied once, the checkpoint the furthest.
    const batch = Array.from({ length: 20 }, (_, i) => submitted(`2.25.7${String(i).padStart(2, '0')}`, T0 + i));
    // The first ten corrected (deprecation, then the replacement, whose reading is outside the interval queried).
    const deps = batch.slice(0, 10).flatMap((e, i) => {
      const id = String(e.data['uniqueId']);
      return [deprecated(id, `2.25.8${id}`), submitted(`2.25.8${id}`, T0 + 1000 + i, { replaces: id })];
    });
    await Promise.all([
      registry.apply(batch, batch.at(-1)!.globalPosition),
      other.apply(batch.slice(0, 10), batch[9]!.globalPosition),
      other.apply(batch, batch.at(-1)!.globalPosition),
    ]);
    await Promise.all([registry.apply(deps, deps.at(-1)!.globalPosition), other.apply(batch, batch.at(-1)!.globalPosition)]);
    expect(await other.checkpoint()).toBe(deps.at(-1)!.globalPosition);
    expect(ids(await registry.findCurrent(PATIENT, T0, T0 + 100, 100))).toEqual(ids(batch.slice(10).map((e) => ({ uniqueId: String(e.data['uniqueId']) }))));
  };
});

describe('PostgresRegistry fed by the Projector from the PostgreSQL event store', () => {
  it('catches up from the events, and reset + rebuild gives the same answers', async () => {
    const projector = new Projector(store, registry, undefined, 3); // small batches: several applies
    const stream = (e: RecordedEvent) => e.streamName;
    const events = [submitted('2.25.90', T0), submitted('2.25.91', T0 + 30), submitted('2.25.92', T0 + 60, { replaces: '2.25.90' }), deprecated('2.25.90', '2.25.92')];
    for (const e of events) await store.appendToStream(stream(e), [{ id: e.id, type: e.type, data: e.data }]);
    await projector.catchUp();
    const before = await registry.findCurrent(PATIENT, T0, T0 + 100, 100);
    expect(ids(before)).toEqual(['2.25.91', '2.25.92']);
    const checkpoint = await registry.checkpoint();
    expect(checkpoint).toBe(await store.headPosition());

    await projector.rebuild();
    expect(await registry.findCurrent(PATIENT, T0, T0 + 100, 100)).toEqual(before);
    expect(await registry.get('2.25.90')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.92' });
    expect(await registry.checkpoint()).toBe(checkpoint);
  });
});

describe('A rebuild on PostgreSQL, beside the live registry (every hub on the schema reads it whole throughout)', () => {
  const tablesOf = async (): Promise<string[]> =>
    (await admin.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema])).rows.map((r: { tablename: string }) => r.tablename);
  const indexesOf = async (table: string): Promise<string[]> =>
    (await admin.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname`, [schema, table])).rows.map((r: { indexname: string }) => r.indexname);
  const append = async (events: readonly RecordedEvent[]): Promise<void> => {
    for (const e of events) await store.appendToStream(e.streamName, [{ id: e.id, type: e.type, data: e.data }]);
  };
  /** The store's events from the first, with the store's positions. */
  const storedEvents = async (): Promise<readonly RecordedEvent[]> => (await readCoveredPage(store, 0n, 100_000)).events;
  /** A patient of each test's own: the store keeps the events of the tests before. */
  const patientOf = (letter: string): string => 'p'.padEnd(33, letter);

  it('another hub reading during the rebuild finds every document, also those uploaded meanwhile; the live names come back', async () => {
    // Before: a rebuild emptied the shared table and replayed into it, and the other hubs, whose reads it could not
    // hold, answered documents absent (a review saw ~1 in 100-300 reads) until the replay passed them.
    const patientKey = patientOf('r');
    const documents = Array.from({ length: 240 }, (_, i) => submitted(`2.25.4${String(i).padStart(4, '0')}`, T0 + i, { patientKey }));
    await append(documents);
    const projector = new Projector(store, registry, undefined, 10); // pages of 10: the replay takes many applies
    await projector.catchUp();
    const db = PostgresDatabase.open({ connectionString, schema });
    try {
      const other = await PostgresRegistry.open(db, new PatientCipher({ keys: await PostgresKeyStore.open(db) }));
      const otherProjector = new Projector(store, other, undefined, 10);
      let rebuilding = true;
      const misses: string[] = [];
      let reads = 0;
      const later: RecordedEvent[] = [];
      const reader = (async () => {
        while (rebuilding) {
          const e = documents[reads % documents.length]!;
          const id = String(e.data['uniqueId']);
          if ((await other.get(id)) === null) misses.push(id);
          if ((await other.findCurrent(patientKey, T0, T0 + documents.length, 1000)).length < documents.length) misses.push(`series@${reads}`);
          reads++;
        }
      })();
      const writer = (async () => {
        // Uploads go on meanwhile, and the other hub projects them into the live registry.
        for (let i = 0; rebuilding && i < 40; i++) {
          const e = submitted(`2.25.5${String(i).padStart(4, '0')}`, T0 + 10_000 + i, { patientKey });
          later.push(e);
          await append([e]);
          await otherProjector.catchUp();
        }
      })();
      await projector.rebuild();
      rebuilding = false;
      await Promise.all([reader, writer]);
      expect(reads).toBeGreaterThan(5);
      expect(misses).toEqual([]);

      await projector.catchUp();
      expect(await registry.checkpoint()).toBe(await store.headPosition());
      expect(ids(await other.findCurrent(patientKey, T0, T0 + 20_000, 1000))).toEqual([...documents, ...later].map((e) => String(e.data['uniqueId'])));
      // The replacement took the live names: nothing of the rebuild is left, and a hub opening the registry later
      // finds its index under the name it creates it with (no second index).
      expect((await tablesOf()).filter((t) => /rebuild/.test(t))).toEqual([]);
      await PostgresRegistry.open(store, protection);
      expect(await indexesOf('registry_entries')).toEqual(['registry_entries_by_patient_time', 'registry_entries_pkey']);
      expect(await indexesOf('erased_patients')).toEqual(['erased_patients_pkey']);
      expect((await admin.query(`SELECT name FROM "${schema}".projection_checkpoints WHERE name LIKE 'registry%'`)).rows).toEqual([{ name: 'registry' }]);
    } finally {
      await db.close();
    }
  });

  it('two rebuilds at once, from two hubs: one after the other, the same rows', async () => {
    const documents = [submitted('2.25.6001', T0), submitted('2.25.6002', T0 + 1, { replaces: '2.25.6001' }), deprecated('2.25.6001', '2.25.6002')];
    await append(documents);
    const db = PostgresDatabase.open({ connectionString, schema });
    try {
      const other = await PostgresRegistry.open(db, new PatientCipher({ keys: await PostgresKeyStore.open(db) }));
      await Promise.all([new Projector(store, registry, undefined, 2).rebuild(), new Projector(store, other, undefined, 2).rebuild()]);
      expect(await registry.get('2.25.6001')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.6002' });
      expect(await other.checkpoint()).toBe(await store.headPosition());
      expect((await tablesOf()).filter((t) => /rebuild/.test(t))).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('a replacement left by a rebuild whose process ended is dropped, not built on; one not swapped in is dropped at close', async () => {
    const patientKey = patientOf('s');
    await append([submitted('2.25.6101', T0, { patientKey })]);
    // What a rebuild that stopped halfway leaves: its tables, with a row an older rule wrote, and its checkpoint.
    await admin.query(`CREATE TABLE "${schema}".registry_entries_rebuild (LIKE "${schema}".registry_entries INCLUDING ALL)`);
    await admin.query(`CREATE TABLE "${schema}".erased_patients_rebuild (LIKE "${schema}".erased_patients INCLUDING ALL)`);
    await admin.query(
      `INSERT INTO "${schema}".registry_entries_rebuild (unique_id, patient_key, repository_unique_id, status, service_start_epoch, mime_type)
       VALUES ('2.25.6199', $1, '2.25.1', 'Approved', $2, 'text/xml')`,
      [patientKey, T0],
    );
    await admin.query(`INSERT INTO "${schema}".projection_checkpoints (name, position) VALUES ('registry-rebuild', $1)`, [String(await store.headPosition())]);

    await new Projector(store, registry).rebuild();
    expect(await registry.get('2.25.6199')).toBeNull();
    expect(await registry.get('2.25.6101')).not.toBeNull();
    expect((await tablesOf()).filter((t) => /rebuild/.test(t))).toEqual([]);

    const abandoned = await registry.rebuildBeside();
    expect((await tablesOf()).filter((t) => /rebuild/.test(t)).sort()).toEqual(['erased_patients_rebuild', 'registry_entries_rebuild']);
    await abandoned.close();
    expect((await tablesOf()).filter((t) => /rebuild/.test(t))).toEqual([]);
    expect((await admin.query(`SELECT name FROM "${schema}".projection_checkpoints WHERE name = 'registry-rebuild'`)).rows).toEqual([]);
    expect(await registry.get('2.25.6101')).not.toBeNull();
  });

  it('the swap waits for the live registry to be caught up with, unless forced; the lock keeps a second rebuild waiting', async () => {
    const patientKey = patientOf('t');
    await append([submitted('2.25.6201', T0, { patientKey })]);
    const atFirst = await store.headPosition();
    await append([submitted('2.25.6202', T0 + 1, { patientKey })]);
    const head = await store.headPosition();
    const events = await storedEvents();
    const replacement = await registry.rebuildBeside();
    let second: Promise<unknown> | undefined;
    try {
      let secondStarted = false;
      second = registry.rebuildBeside().then(async (r) => {
        secondStarted = true;
        await r.close();
      });
      await registry.apply(events, head, 0n); // the live registry is at the head
      await replacement.target.apply(events.filter((e) => e.globalPosition <= atFirst), atFirst, 0n); // the replacement one behind
      expect(await replacement.swapIn(false)).toBe(false);
      expect(await registry.get('2.25.6202')).not.toBeNull(); // untouched
      expect(await replacement.swapIn(true)).toBe(true);
      expect(await registry.get('2.25.6202')).toBeNull(); // forced: the registry is the replacement, behind
      expect(await registry.checkpoint()).toBe(atFirst);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(secondStarted).toBe(false); // the first still holds the rebuild's lock
    } finally {
      await replacement.close();
    }
    await second; // and now has it
    await new Projector(store, registry).catchUp(); // the registry's projectors apply the rest again
    expect(await registry.get('2.25.6202')).not.toBeNull();
  });
});

describe('A rebuild on PostgreSQL beside the live registry, and an erasure a hub is applying meanwhile', () => {
  it("a swap between a hub's forgetting of the patient and its advance past the PatientErased keeps the erasure", async () => {
    // OpeningRegistry forgets the patient in one transaction (then VACUUMs) and moves the checkpoint past the
    // PatientErased in the next. A swap in between (the replacement at the same checkpoint, fed to a head before the
    // erasure) put back the patient's rows, and no later apply forgot them.
    const patientKey = 'p'.padEnd(33, 'x');
    const doc = submitted('2.25.9901', T0, { patientKey });
    await registry.apply([doc], doc.globalPosition, 0n);
    const replacement = await registry.rebuildBeside();
    let swapped: boolean | undefined;
    try {
      await new OpeningRegistry(replacement.target as unknown as ForgettingRegistry, protection).apply([doc], doc.globalPosition, 0n);
      const erasure = recorded(PATIENT_ERASED, { patientKey });
      const hub: ForgettingRegistry = Object.assign(Object.create(registry) as PostgresRegistry, {
        forgetPatient: async (key: string) => {
          await registry.forgetPatient(key);
          swapped = await replacement.swapIn(false); // the rebuilding hub, while this one VACUUMs
        },
      });
      await new OpeningRegistry(hub, protection).apply([erasure], erasure.globalPosition, doc.globalPosition);
    } finally {
      await replacement.close();
    }
    expect(swapped).toBe(true);
    expect(await registry.knowsPatient(patientKey)).toBe(false);
    expect(await count('registry_entries')).toBe(0);
    // A document of theirs sealed later by a hub that still held the key gets no row either.
    const late = submitted('2.25.9902', T0 + 1, { patientKey });
    await registry.apply([late], late.globalPosition);
    expect(await registry.get('2.25.9902')).toBeNull();
  });
});

describe('A swap while a long reader (pg_dump) holds the live registry', () => {
  it('gives up within a moment and is tried again, instead of queueing every hub\'s reads behind its DROP until the query timeout', async () => {
    const doc = submitted('2.25.9951', T0);
    await registry.apply([doc], doc.globalPosition, 0n);
    const db = PostgresDatabase.open({ connectionString, schema, timeouts: { queryTimeoutMs: 4000 } });
    const dump = new Client({ connectionString });
    await dump.connect();
    try {
      const hub = await PostgresRegistry.open(db, protection);
      const replacement = await hub.rebuildBeside();
      let closed = false;
      try {
        await replacement.target.apply([doc], doc.globalPosition, 0n);
        // What pg_dump does: one long transaction holding ACCESS SHARE on every table it dumps.
        await dump.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await dump.query(`SELECT count(*) FROM "${schema}".registry_entries`);
        const swap = replacement.swapIn(false).then(
          (swapped) => ({ swapped }),
          async (error: unknown) => {
            closed = true; // as Projector.rebuild does: the session, and its DROP waiting on the server, end
            await replacement.close();
            return { error };
          },
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        const started = performance.now();
        expect(await registry.get('2.25.9951')).not.toBeNull(); // another hub's read
        const waited = performance.now() - started;
        expect(await swap).toEqual({ swapped: false });
        expect(waited).toBeLessThan(1500);
        await dump.query('COMMIT');
        expect(await replacement.swapIn(false)).toBe(true);
      } finally {
        if (!closed) await replacement.close();
      }
      expect(await registry.get('2.25.9951')).not.toBeNull();
    } finally {
      await dump.end();
      await db.close();
    }
  });
});

describe('A rebuild on PostgreSQL beside the live registry, and an erasure while the replacement is being built', () => {
  it("forgets the patient in the replacement too, at once: not kept there until the replay reaches the PatientErased, or for good when the rebuild stops", async () => {
    // The replacement is fed from the first event: the rows of a patient's documents the replay had passed stayed in
    // registry_entries_rebuild after the erasure (pseudonymous key, uniqueId, times in clear; a pg_dump copied them)
    // until the replay reached the PatientErased, and for good when the rebuild stopped before it.
    const erasedKey = 'p'.padEnd(33, 'q');
    const otherKey = 'p'.padEnd(33, 'w');
    const docs = [submitted('2.25.9951', T0, { patientKey: erasedKey }), submitted('2.25.9952', T0, { patientKey: otherKey })];
    await registry.apply(docs, docs[1]!.globalPosition, 0n);
    const rowsOf = async (patientKey: string): Promise<number> =>
      Number((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".registry_entries_rebuild WHERE patient_key = $1`, [patientKey])).rows[0].n);
    const replacement = await registry.rebuildBeside();
    try {
      await replacement.target.apply(docs, docs[1]!.globalPosition, 0n); // the replay has passed the patient's documents
      await registry.forgetPatient(erasedKey); // the erasure, on the live registry
      expect(await rowsOf(erasedKey)).toBe(0);
      expect(await rowsOf(otherKey)).toBe(1);
      // A document of theirs the replay opens after it (a key still cached) gets no row there either.
      const late = submitted('2.25.9953', T0 + 1, { patientKey: erasedKey });
      await replacement.target.apply([late], late.globalPosition, docs[1]!.globalPosition);
      expect(await rowsOf(erasedKey)).toBe(0);
    } finally {
      await replacement.close();
    }
    // With no replacement in the schema, an erasure goes on as before.
    await registry.forgetPatient(otherKey);
    expect(await registry.knowsPatient(otherKey)).toBe(false);
  });
});

describe('A rebuild on PostgreSQL beside the live registry, and a patient the live registry forgot before it began', () => {
  it('gets no row in the replacement from a document the replay still opens (a key still cached on the rebuilding hub)', async () => {
    // Another hub erased the patient and reported it done; the rebuilding hub's key cache holds their key until its
    // erasure subscriber sees the event (up to the cache's TTL, 60 s). The replacement, created after the live
    // registry forgot them, knew nothing of the erasure until its replay reached the PatientErased.
    const erasedKey = 'p'.padEnd(33, 'z');
    const doc = submitted('2.25.9961', T0, { patientKey: erasedKey });
    await registry.apply([doc], doc.globalPosition, 0n);
    await registry.forgetPatient(erasedKey);
    const replacement = await registry.rebuildBeside();
    try {
      await replacement.target.apply([doc], doc.globalPosition, 0n);
      expect(Number((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".registry_entries_rebuild WHERE patient_key = $1`, [erasedKey])).rows[0].n)).toBe(0);
    } finally {
      await replacement.close();
    }
  });
});

async function until(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
