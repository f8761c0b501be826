import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { createTeleObservation, lastDays, openTeleMed, parseCpr } from '../../src';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { SqliteRegistry } from '../../src/adapters/registry/sqlite-registry';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { Director, HL7Builder } from '../../src/domain/documents/hl7';
import type { Cpr } from '../../src/domain/monitoring/cpr';

/**
 * A registry rebuild on the embedded store (the library's rebuildRegistry), built beside the live registry and
 * swapped in: queries and uploads go on meanwhile, and none reads a half-replayed registry. Before (a reset of the
 * registry, then the replay), every query waited for the whole replay: 356 s for 1,000,000 events.
 */
describe('rebuildRegistry on SQLite: beside the live registry', () => {
  const now = DateTime.utc();
  const patient = parseCpr('251248-1234');
  const reading = (i: number) =>
    createTeleObservation({ patientId: '251248-1234', systolic: 110 + (i % 60), diastolic: 70, measuredAt: now.minus({ minutes: 5 + i }).toISO()! }, now);

  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'rts-sqlite-rebuild-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const tables = (file: string): { tables: string[]; indexes: string[] } => {
    const db = new Database(file, { readonly: true });
    try {
      const names = (type: string) =>
        (db.prepare(`SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%' ORDER BY name`).all(type) as { name: string }[]).map((r) => r.name);
      return { tables: names('table'), indexes: names('index') };
    } finally {
      db.close();
    }
  };

  it('answers queries and takes uploads while it runs, never from a half-replayed registry; the live names come back', async () => {
    const rts = await openTeleMed({ dataDir });
    const ids: string[] = [];
    try {
      for (let i = 0; i < 600; i++) ids.push(await rts.telemed.processAndStore(reading(i)));
      let rebuilding = true;
      let answeredDuring = 0;
      const short: number[] = [];
      const reader = (async () => {
        while (rebuilding) {
          const answer = await rts.telemed.getObservationsFor(patient, lastDays(7, now));
          if (answer.length < 600) short.push(answer.length);
          if (rebuilding) answeredDuring++;
          // A query on this store may settle in microtasks alone: let the rebuild's turns in, as requests would.
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const later: string[] = [];
      const writer = (async () => {
        for (let i = 600; rebuilding && i < 700; i++) later.push(await rts.telemed.processAndStore(reading(i)));
      })();
      await rts.rebuildRegistry();
      rebuilding = false;
      await Promise.all([reader, writer]);
      // Before, every query waited for the rebuild to end: the reader's one query in flight was answered as it ended,
      // and no other while it ran.
      expect(answeredDuring).toBeGreaterThan(2);
      expect(short).toEqual([]);
      const after = await rts.telemed.getObservationsFor(patient, lastDays(7, now));
      expect(after.map((o) => o.uniqueId).sort()).toEqual([...ids, ...later].sort());
    } finally {
      await rts.close();
    }
    // Nothing of the rebuild is left in the file, and the queries' index is there once, under its own name.
    const { tables: names, indexes } = tables(join(dataDir, 'telemed.sqlite'));
    expect(names.filter((t) => /rebuild/.test(t))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['registry_entries', 'erased_patients']));
    expect(indexes.filter((i) => /registry_entries/.test(i))).toEqual(['registry_entries_by_patient_time']);
    const again = await openTeleMed({ dataDir });
    try {
      expect(await again.telemed.getObservationsFor(patient, lastDays(7, now))).toHaveLength(600 + (await countLater(again)));
    } finally {
      await again.close();
    }
    expect(tables(join(dataDir, 'telemed.sqlite')).indexes.filter((i) => /registry_entries/.test(i))).toEqual(['registry_entries_by_patient_time']);
  });

  /** Readings beyond the first 600 that the writer above stored (it stops when the rebuild ends). */
  const countLater = async (rts: Awaited<ReturnType<typeof openTeleMed>>): Promise<number> =>
    (await rts.telemed.getObservationsFor(patient, lastDays(7, now))).length - 600;

  it('a replacement a stopped rebuild left in the file is dropped, not built on; two rebuilds at once both end on the rows of the events (their order: projector.unit.spec)', async () => {
    let rts = await openTeleMed({ dataDir });
    const stored = [await rts.telemed.processAndStore(reading(1)), await rts.telemed.processAndStore(reading(2))];
    await rts.close();
    // What a rebuild whose process ended leaves: its tables, with a row an older rule wrote, and its checkpoint.
    const db = new Database(join(dataDir, 'telemed.sqlite'));
    db.exec(`CREATE TABLE registry_entries_rebuild AS SELECT * FROM registry_entries; CREATE TABLE erased_patients_rebuild (patient_key TEXT PRIMARY KEY);`);
    db.prepare(`UPDATE registry_entries_rebuild SET systolic = 250 WHERE unique_id = ?`).run(stored[0]);
    db.prepare(`INSERT INTO projection_checkpoints (name, position) VALUES ('registry-rebuild', 1000000)`).run();
    db.close();

    rts = await openTeleMed({ dataDir });
    try {
      await Promise.all([rts.rebuildRegistry(), rts.rebuildRegistry()]);
      const answer = await rts.telemed.getObservationsFor(patient, lastDays(7, now));
      expect(answer.map((o) => [o.uniqueId, o.systolic.value]).sort()).toEqual([
        [stored[0], 111],
        [stored[1], 112],
      ].sort());
    } finally {
      await rts.close();
    }
    expect(tables(join(dataDir, 'telemed.sqlite')).tables.filter((t) => /rebuild/.test(t))).toEqual([]);
  });
});

/** A DocumentSubmitted as the registry reads it (the HL7 in clear: a document opened), at a given position. */
const measuredAt = '2024-03-10T12:00:00Z';
const content = (() => {
  const builder = new HL7Builder();
  Director.construct({ patientId: '251248-1234' as Cpr, systolic: { value: 120, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt }, builder);
  return builder.getResult();
})();
const submitted = (uniqueId: string, patientKey: string, position: bigint): RecordedEvent => ({
  id: randomUUID(),
  type: 'DocumentSubmitted',
  data: {
    uniqueId, patientKey, repositoryUniqueId: '2.25.1', observationId: null, creationTime: measuredAt, serviceStartTime: measuredAt,
    serviceStopTime: measuredAt, mimeType: 'text/xml', classCode: '8716-3', typeCode: '55284-4', formatCode: 'urn:telemed-rts:hl7:bp:1',
    title: 'Home blood pressure measurement', languageCode: 'en', hash: 'a'.repeat(64), size: content.length, replaces: null, content,
  },
  metadata: {},
  streamName: `document-${uniqueId}`,
  streamVersion: 0n,
  globalPosition: position,
  recordedAt: new Date().toISOString(),
});

describe('SqliteRegistry.rebuildBeside: the swap and an erasure being applied', () => {
  it("a swap between the registry's forgetting of a patient and its advance past the PatientErased keeps the erasure", async () => {
    // OpeningRegistry forgets the patient in one transaction and moves the checkpoint past the PatientErased in the
    // next: a swap in between (the replacement at the same checkpoint) would put the patient's rows back for good.
    const dir = mkdtempSync(join(tmpdir(), 'rts-sqlite-swap-erasure-'));
    const store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite') });
    try {
      const registry = new SqliteRegistry(store);
      const erased = 'p'.padEnd(33, 'x');
      const docs = [submitted('2.25.9901', erased, 1n), submitted('2.25.9902', 'p'.padEnd(33, 'y'), 2n)];
      await registry.apply(docs, 2n, 0n);
      const replacement = await registry.rebuildBeside();
      try {
        await replacement.target.apply(docs, 2n, 0n);
        await registry.forgetPatient(erased); // the live registry, before its checkpoint passes the PatientErased
        expect(await replacement.swapIn(false)).toBe(true);
      } finally {
        await replacement.close();
      }
      expect(await registry.knowsPatient(erased)).toBe(false);
      expect(await registry.get('2.25.9901')).toBeNull();
      expect(await registry.get('2.25.9902')).not.toBeNull();
      // A document of theirs that comes later (sealed by a hub that still held the key) gets no row either.
      await registry.apply([submitted('2.25.9903', erased, 3n)], 3n, 2n);
      expect(await registry.get('2.25.9903')).toBeNull();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteRegistry.rebuildBeside: an erasure while a replacement is being built', () => {
  it("forgets the patient's rows in the replacement too, at once: not left in the file until the replay reaches the PatientErased, or for good when the rebuild stops", async () => {
    // The replacement is fed from the first event: a patient's documents replayed before their erasure had rows
    // (readings in clear) in registry_entries_rebuild after the erasure was reported done, until the replay passed
    // the PatientErased; a `rts backup` meanwhile copied them, and a process that ended meanwhile left them in the
    // file (only a later rebuild drops the table), while the patient's key, and so every other copy, was gone.
    const dir = mkdtempSync(join(tmpdir(), 'rts-sqlite-rebuild-erasure-'));
    const file = join(dir, 'telemed.sqlite');
    const store = SqliteEventStore.open({ file });
    const erased = 'p'.padEnd(33, 'e');
    const other = 'p'.padEnd(33, 'o');
    try {
      const registry = new SqliteRegistry(store);
      const docs = [submitted('2.25.9801', erased, 1n), submitted('2.25.9802', other, 2n)];
      await registry.apply(docs, 2n, 0n);
      const replacement = await registry.rebuildBeside();
      await replacement.target.apply(docs, 2n, 0n); // the replay has passed the patient's documents
      await registry.forgetPatient(erased); // the erasure, done on the live registry
      const rowsOf = (patientKey: string): number =>
        (store.database.prepare('SELECT count(*) AS n FROM registry_entries_rebuild WHERE patient_key = ?').get(patientKey) as { n: number }).n;
      expect(rowsOf(erased)).toBe(0);
      expect(rowsOf(other)).toBe(1);
      // A document of theirs the replay opens after it (a key still cached) gets no row there either.
      await replacement.target.apply([submitted('2.25.9803', erased, 3n)], 3n, 2n);
      expect(rowsOf(erased)).toBe(0);
      // The process ends here, the replacement neither swapped in nor dropped.
    } finally {
      await store.close();
    }
    const db = new Database(file, { readonly: true });
    try {
      const withPatientKey = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%patient_key%'`).all() as { name: string }[])
        .map((r) => r.name)
        .filter((t) => /^registry_entries/.test(t));
      expect(withPatientKey.sort()).toEqual(['registry_entries', 'registry_entries_rebuild']);
      for (const table of withPatientKey) expect(db.prepare(`SELECT count(*) AS n FROM ${table} WHERE patient_key = ?`).get(erased)).toEqual({ n: 0 });
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteRegistry.rebuildBeside: a patient the live registry forgot before the replacement was created', () => {
  it("gets no row in the replacement from a document the replay still opens (a key still cached, or not yet deleted)", async () => {
    // The live registry may forget a patient before their key is gone everywhere: the projector applies the
    // PatientErased as soon as it is appended, before the erasure deletes the key, and another process's cache keeps
    // it up to its TTL. A replacement created after that forgetting, whose replay opens one of their documents, had
    // nothing telling it of the erasure until the replay reached the PatientErased: the row (reading in clear) stayed
    // there after the erasure was reported done, for good if the process ended before.
    const dir = mkdtempSync(join(tmpdir(), 'rts-sqlite-rebuild-erased-before-'));
    const store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite') });
    const erased = 'p'.padEnd(33, 'f');
    try {
      const registry = new SqliteRegistry(store);
      const doc = submitted('2.25.9701', erased, 1n);
      await registry.apply([doc], 1n, 0n);
      await registry.forgetPatient(erased); // the live registry applies the PatientErased (position 2)
      const replacement = await registry.rebuildBeside(); // a rebuild starts
      try {
        await replacement.target.apply([doc], 1n, 0n); // its replay opens the document with a key still at hand
        const n = store.database.prepare('SELECT count(*) AS n FROM registry_entries_rebuild WHERE patient_key = ?').get(erased) as { n: number };
        expect(n).toEqual({ n: 0 });
      } finally {
        await replacement.close();
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
